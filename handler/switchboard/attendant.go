package switchboard

// The Attendant Console's contact search (SPEC section 13): package
// attendant answers it, the Graph adapter finds the contacts, the HTTP
// layer renders it.

// Bounds of a search.
const (
	AttendantMinQueryLength = 1
	AttendantMaxQueryLength = 100
	AttendantMinTop         = 1
	AttendantMaxTop         = 50
	AttendantDefaultTop     = 25
)

// Reasons of a ContactsError.
const (
	ContactsFilterInvalid     = "filter-invalid"     // Graph refused the filter (400)
	ContactsPermissionMissing = "permission-missing" // the app may not read users (403): User.Read.All
	ContactsUnavailable       = "unavailable"        // Graph unreachable, failing or throttled past the search's time
)

// ContactFields are the user properties a search asks Graph for ($select).
var ContactFields = []string{"id", "displayName", "userPrincipalName", "mail", "jobTitle", "department"}

// Contact is a directory user.
type Contact struct {
	ID                string
	DisplayName       string
	UserPrincipalName string
	Mail              string
	JobTitle          string
	Department        string
}

// AttendantQuery is one search.
type AttendantQuery struct {
	// Text is what the attendant typed: 1–100 characters.
	Text string
	// Top is how many contacts at most: 1–50; 0 takes 25.
	Top int
	// Attendant is the caller's Entra object id ("" when unknown: then
	// OwnMembers shows no member list).
	Attendant string
}

// AttendantResult is a search's answer.
type AttendantResult struct {
	Contacts []ContactResult
	Services []ServiceMatch
	// ContactsError says why Contacts is empty when Graph did not answer
	// the search; nil otherwise.
	ContactsError *ContactsError
}

// ContactResult is a contact with its stored presence (nil when the user
// was never read: only services' members are tracked).
type ContactResult struct {
	Contact
	Presence *Presence
}

// ServiceMatch is a service the search found.
type ServiceMatch struct {
	ServiceID string
	Name      string
	Members   int // how many members
	Available int // how many could be offered a conversation now
	Waiting   int // conversations waiting in its queue
	// MemberList is nil when the team visibility hides it.
	MemberList []MemberAvailability
}

// ContactsError is a Graph failure of the contact search.
type ContactsError struct {
	Reason  string // ContactsFilterInvalid, ContactsPermissionMissing, ContactsUnavailable
	Message string
}

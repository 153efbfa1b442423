package switchboard

import "context"

// ServiceAvailability is one service as the Attendant Console sees it: its
// members, each with whether it could be offered a conversation now.
type ServiceAvailability struct {
	ServiceID string
	Name      string
	Members   []MemberAvailability // sorted by user id
}

// MemberAvailability is one member's verdict now, by the routing rules.
type MemberAvailability struct {
	UserID   string
	Eligible bool
	Reason   string // one of the Reason* codes when not eligible
	Message  string // a sentence for people (a caveat when eligible)
	Presence *Presence
}

// Availability reports every service of a tenant with its members'
// verdicts, deciding nothing and holding nobody. The routing engine
// implements it.
type Availability interface {
	// ServicesAvailability returns the tenant's services (none: an empty
	// slice), ordered by id.
	ServicesAvailability(ctx context.Context, tenantID string) ([]ServiceAvailability, error)
}

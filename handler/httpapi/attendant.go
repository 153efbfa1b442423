package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"switchboard/handler/switchboard"
)

// AttendantService is what the Attendant Console routes need (package
// attendant).
type AttendantService interface {
	// Search finds contacts and services; a Graph failure is the result's
	// ContactsError, not an error. Returns EINVALID naming q or top for a
	// query out of bounds, EUNAVAILABLE when settings or services cannot
	// be read.
	Search(ctx context.Context, tenantID string, q switchboard.AttendantQuery) (switchboard.AttendantResult, error)
}

// AttendantAPI serves the Attendant Console's contact search (SPEC
// section 13).
type AttendantAPI struct {
	Service AttendantService
	// Now is the clock presence ages are reported against.
	Now func() time.Time
}

// Register adds the Attendant Console routes to r.
func (a *AttendantAPI) Register(r *Router) {
	r.Tenant("GET /api/tenants/{t}/attendant/search", a.search)
}

type contactJSON struct {
	ID                string        `json:"id"`
	DisplayName       string        `json:"displayName"`
	UserPrincipalName string        `json:"userPrincipalName"`
	Mail              *string       `json:"mail"`
	JobTitle          *string       `json:"jobTitle"`
	Department        *string       `json:"department"`
	Presence          *presenceJSON `json:"presence"`
}

type attendantMemberJSON struct {
	UserID   string       `json:"userId"`
	Presence presenceJSON `json:"presence"`
	Eligible bool         `json:"eligible"`
	Reason   *string      `json:"reason"`
	Message  string       `json:"message,omitempty"`
}

type attendantServiceJSON struct {
	ServiceID  string                 `json:"serviceId"`
	Name       string                 `json:"name"`
	Members    int                    `json:"members"`
	Available  int                    `json:"available"`
	Waiting    int                    `json:"waiting"`
	MemberList *[]attendantMemberJSON `json:"memberList,omitempty"`
}

type contactsErrorJSON struct {
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

type searchJSON struct {
	Contacts      []contactJSON          `json:"contacts"`
	Services      []attendantServiceJSON `json:"services"`
	ContactsError *contactsErrorJSON     `json:"contactsError,omitempty"`
}

// attendantID is the caller: the token's oid, or with API_AUTH=none the
// ?asUser= object id. A verified caller cannot pose as another.
func attendantID(r *http.Request) (string, error) {
	if p, ok := PrincipalFrom(r.Context()); ok {
		id, _ := switchboard.NormalizeGUID(p.ObjectID)
		return id, nil
	}
	v := r.URL.Query().Get("asUser")
	if v == "" {
		return "", nil
	}
	id, ok := switchboard.NormalizeGUID(v)
	if !ok {
		return "", switchboard.FieldError("http.AttendantSearch", "asUser", "asUser %q is not an Entra object id (a GUID)", v)
	}
	return id, nil
}

func (a *AttendantAPI) search(w http.ResponseWriter, r *http.Request) error {
	const op = "http.AttendantSearch"
	tenant, err := TenantID(r)
	if err != nil {
		return err
	}
	q := switchboard.AttendantQuery{Text: r.URL.Query().Get("q")}
	if v := r.URL.Query().Get("top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n == 0 {
			return switchboard.FieldError(op, "top", "top must be an integer from %d to %d; got "+
				"%q", switchboard.AttendantMinTop, switchboard.AttendantMaxTop, clipText(v, 20))
		}
		q.Top = n
	}
	if q.Attendant, err = attendantID(r); err != nil {
		return err
	}
	res, err := a.Service.Search(r.Context(), tenant, q)
	if err != nil {
		return err
	}
	now := a.Now()
	out := searchJSON{Contacts: make([]contactJSON, 0, len(res.Contacts)), Services: make([]attendantServiceJSON, 0, len(res.Services))}
	for _, c := range res.Contacts {
		cj := contactJSON{ID: c.ID, DisplayName: c.DisplayName, UserPrincipalName: c.UserPrincipalName,
			Mail: optionalText(c.Mail), JobTitle: optionalText(c.JobTitle), Department: optionalText(c.Department)}
		if c.Presence != nil {
			p := renderPresence(c.Presence, now)
			cj.Presence = &p
		}
		out.Contacts = append(out.Contacts, cj)
	}
	for _, s := range res.Services {
		sj := attendantServiceJSON{ServiceID: s.ServiceID, Name: s.Name, Members: s.Members, Available: s.Available, Waiting: s.Waiting}
		if s.MemberList != nil {
			list := make([]attendantMemberJSON, 0, len(s.MemberList))
			for _, m := range s.MemberList {
				mj := attendantMemberJSON{UserID: m.UserID, Presence: renderPresence(m.Presence, now), Eligible: m.Eligible, Message: m.Message}
				if !m.Eligible {
					mj.Reason = optionalText(m.Reason)
				}
				list = append(list, mj)
			}
			sj.MemberList = &list
		}
		out.Services = append(out.Services, sj)
	}
	if e := res.ContactsError; e != nil {
		out.ContactsError = &contactsErrorJSON{Reason: e.Reason, Message: e.Message}
	}
	return WriteJSON(w, http.StatusOK, out)
}

func optionalText(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func clipText(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

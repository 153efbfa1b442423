package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"switchboard/handler/acs"
	"switchboard/handler/attendant"
	"switchboard/handler/secrets"
	"switchboard/handler/settings"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

const (
	attendantUser = "00000000-0000-4000-8000-00000000000a" // a member of Support only
	otherUser     = "00000000-0000-4000-8000-0000000000b2"
)

type fakeChecker struct{ err error }

func (f *fakeChecker) CheckUserFilter(ctx context.Context, tenantID, filter string) error {
	return f.err
}

type oidVerifier struct{}

func (oidVerifier) Verify(ctx context.Context, token string) (switchboard.Principal, error) {
	return switchboard.Principal{TenantID: tenant, ObjectID: token, Roles: []string{switchboard.RoleAdmin}}, nil
}

type stubDirectory struct{ err error }

func (d stubDirectory) FindUsers(ctx context.Context, tenantID, filter string, top int) ([]attendant.Contact, error) {
	return []attendant.Contact{{ID: otherUser, DisplayName: "Bob Support", UserPrincipalName: "bob@contoso.example"}}, d.err
}

type stubServices struct{}

func (stubServices) ServicesAvailability(ctx context.Context, tenantID string) ([]switchboard.ServiceAvailability, error) {
	p := &switchboard.Presence{Availability: "Busy", Activity: "InACall", Source: "account1", ConfirmedAt: time.Now().Add(-5 * time.Second)}
	return []switchboard.ServiceAvailability{
		{ServiceID: "support", Name: "Support", Members: []switchboard.MemberAvailability{
			{UserID: attendantUser, Eligible: true, Presence: &switchboard.Presence{Availability: "Available", Activity: "Available", Source: "account1", ConfirmedAt: time.Now()}},
			{UserID: otherUser, Reason: switchboard.ReasonInACall, Message: "Busy in a call (Teams)", Presence: p},
		}},
		{ServiceID: "support-2nd", Name: "Second level", Members: []switchboard.MemberAvailability{{UserID: otherUser, Reason: switchboard.ReasonInACall, Presence: p}}},
	}, nil
}

type stubPresence struct{}

func (stubPresence) Readings(ctx context.Context, tenantID string, ids []string) (map[string]switchboard.Presence, error) {
	return map[string]switchboard.Presence{otherUser: {Availability: "Busy", Activity: "InACall", Source: "account1", ConfirmedAt: time.Now()}}, nil
}

// attendantEnv is the real router with the settings and attendant APIs
// over in-memory settings and stubbed Graph, routing and presence.
type attendantEnv struct {
	router  *Router
	checker *fakeChecker
}

func newAttendantEnv(t *testing.T, v switchboard.Verifier, dir attendant.Directory) *attendantEnv {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	checker := &fakeChecker{}
	set, err := settings.New(context.Background(), settings.Options{Tables: store.NewMemoryTables(), Secrets: secrets.Ephemeral(), ACS: acs.New(acs.Options{}), Filters: checker, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := attendant.New(attendant.Options{Directory: dir, Services: stubServices{}, Presence: stubPresence{}, Settings: set})
	if err != nil {
		t.Fatal(err)
	}
	rt := NewRouter(log, v)
	(&SettingsAPI{Service: set}).Register(rt)
	(&AttendantAPI{Service: svc, Now: time.Now}).Register(rt)
	return &attendantEnv{router: rt, checker: checker}
}

type detailProblem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

func TestPatchChecksTheContactSearchFilter(t *testing.T) {
	const body = `{"attendantConsole":{"contactSearchFilter":"endsWith(userPrincipalName,'onmicrosoft.com') and preferredLanguage eq 'en-GB'"}}`
	cases := []struct {
		name      string
		graph     error
		status    int
		problem   string // type
		inTitle   string
		detail    string
		wantState string
	}{
		{"Graph refuses", &switchboard.Error{Code: switchboard.EINVALID, Message: "Invalid filter clause: Syntax error at position 12 in 'x'."}, 400, "contact-search-filter-invalid", "Microsoft Graph refused", "Invalid filter clause: Syntax error at position 12 in 'x'.", ""},
		{"permission missing", &switchboard.Error{Code: switchboard.EFORBIDDEN, Message: "403"}, 400, "graph-permission-missing", "User.Read.All", "", ""},
		{"Graph unreachable", &switchboard.Error{Code: switchboard.EUNAVAILABLE, Message: "Microsoft Graph could not be reached"}, 200, "", "", "", settings.FilterUnverified},
		{"Graph accepts", nil, 200, "", "", "", settings.FilterOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newAttendantEnv(t, nil, stubDirectory{})
			e.checker.err = c.graph
			rec, _ := do(t, e.router, http.MethodPatch, settingsPath, body, "Content-Type", "application/merge-patch+json")
			if rec.Code != c.status {
				t.Fatalf("PATCH: %d %s, want %d", rec.Code, rec.Body, c.status)
			}
			if c.status == 400 {
				var p detailProblem
				_ = json.Unmarshal(rec.Body.Bytes(), &p)
				if p.Type != c.problem || p.Field != "attendantConsole.contactSearchFilter" || !strings.Contains(p.Title, c.inTitle) || p.Detail != c.detail {
					t.Errorf("problem %+v: want type %s, the field, %q in the title, detail %q", p, c.problem, c.inTitle, c.detail)
				}
				// Nothing was written.
				rec, _ = do(t, e.router, http.MethodGet, settingsPath, "")
				if strings.Contains(rec.Body.String(), "onmicrosoft") {
					t.Errorf("a refused filter was saved: %s", rec.Body)
				}
				return
			}
			rec, _ = do(t, e.router, http.MethodGet, settingsPath, "")
			var got struct {
				AttendantConsole struct {
					Filter string                     `json:"contactSearchFilter"`
					Check  map[string]json.RawMessage `json:"contactSearchFilterCheck"`
				} `json:"attendantConsole"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			check := got.AttendantConsole.Check
			if string(check["state"]) != `"`+c.wantState+`"` || check["at"] == nil {
				t.Errorf("GET contactSearchFilterCheck %s, want state %s with at", rec.Body, c.wantState)
			}
			if _, hasMessage := check["message"]; hasMessage != (c.wantState == settings.FilterUnverified) {
				t.Errorf("GET contactSearchFilterCheck %v: a message only when unverified", check)
			}
			// Emptying the filter clears its check.
			rec, _ = do(t, e.router, http.MethodPatch, settingsPath, `{"attendantConsole":{"contactSearchFilter":""}}`, "Content-Type", "application/merge-patch+json")
			if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"contactSearchFilterCheck":null`) {
				t.Errorf("emptied filter: %d %s, want its check null", rec.Code, rec.Body)
			}
		})
	}
}

func TestPatchRefusesAFilterThatClosesItsParentheses(t *testing.T) {
	e := newAttendantEnv(t, nil, stubDirectory{})
	for _, f := range []string{"department eq 'Sales') or (true eq true", "department eq 'Sales", "(department eq 'x'"} {
		b, _ := json.Marshal(map[string]any{"attendantConsole": map[string]any{"contactSearchFilter": f}})
		rec, p := do(t, e.router, http.MethodPatch, settingsPath, string(b), "Content-Type", "application/json")
		if rec.Code != 400 || p.Field != "attendantConsole.contactSearchFilter" {
			t.Errorf("filter %q: %d %+v, want 400 naming the field", f, rec.Code, p)
		}
	}
	if rec, p := do(t, e.router, http.MethodPatch, settingsPath, `{"attendantConsole":{"contactSearchFilterCheck":{"state":"ok"}}}`, "Content-Type", "application/json"); rec.Code != 400 || p.Field != "attendantConsole.contactSearchFilterCheck" {
		t.Errorf("setting the check: %d %+v, want 400 read-only", rec.Code, p)
	}
}

func TestFilterCheckRoute(t *testing.T) {
	e := newAttendantEnv(t, nil, stubDirectory{})
	path := settingsPath + "/attendant-filter-check"
	cases := []struct {
		name  string
		graph error
		state string
	}{
		{"ok", nil, "ok"},
		{"invalid", &switchboard.Error{Code: switchboard.EINVALID, Message: "Invalid filter clause: Syntax error"}, "invalid"},
		{"unverified", &switchboard.Error{Code: switchboard.EUNAVAILABLE, Message: "throttled"}, "unverified"},
	}
	for _, c := range cases {
		e.checker.err = c.graph
		rec, _ := do(t, e.router, http.MethodPost, path, `{"filter":"department eq 'Sales'"}`, "Content-Type", "application/json")
		var got settings.FilterCheck
		_ = json.Unmarshal(rec.Body.Bytes(), &got)
		if rec.Code != 200 || got.State != c.state || got.At.IsZero() || (c.state != "ok") != (got.Message != "") {
			t.Errorf("%s: %d %s, want 200 state %s", c.name, rec.Code, rec.Body, c.state)
		}
		if c.state == "invalid" && got.Message != "Invalid filter clause: Syntax error" {
			t.Errorf("invalid: message %q, want Graph's", got.Message)
		}
	}
	if rec, p := do(t, e.router, http.MethodPost, path, `{}`, "Content-Type", "application/json"); rec.Code != 400 || p.Field != "filter" {
		t.Errorf("no filter, none stored: %d %+v, want 400 naming filter", rec.Code, p)
	}
	// Nothing is saved.
	rec, _ := do(t, e.router, http.MethodGet, settingsPath, "")
	if strings.Contains(rec.Body.String(), "Sales") {
		t.Errorf("the check saved its filter: %s", rec.Body)
	}

	// A filter saved unverified is verified later by checking the stored
	// one (empty body): the outcome is recorded.
	e.checker.err = &switchboard.Error{Code: switchboard.EUNAVAILABLE, Message: "unreachable"}
	if rec, _ := do(t, e.router, http.MethodPatch, settingsPath, `{"attendantConsole":{"contactSearchFilter":"department eq 'Support'"}}`, "Content-Type", "application/json"); !strings.Contains(rec.Body.String(), `"state":"unverified"`) {
		t.Fatalf("PATCH with Graph down: %s", rec.Body)
	}
	e.checker.err = nil
	if rec, _ := do(t, e.router, http.MethodPost, path, ""); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"state":"ok"`) {
		t.Errorf("stored filter check: %d %s, want ok", rec.Code, rec.Body)
	}
	if rec, _ := do(t, e.router, http.MethodGet, settingsPath, ""); !strings.Contains(rec.Body.String(), `"contactSearchFilterCheck":{"state":"ok"`) {
		t.Errorf("after the stored check: %s, want the check ok recorded", rec.Body)
	}
}

type searchReply struct {
	Contacts []struct {
		ID       string          `json:"id"`
		Mail     *string         `json:"mail"`
		Presence json.RawMessage `json:"presence"`
	} `json:"contacts"`
	Services []struct {
		ServiceID  string `json:"serviceId"`
		Members    int    `json:"members"`
		Available  int    `json:"available"`
		Waiting    int    `json:"waiting"`
		MemberList *[]struct {
			UserID   string `json:"userId"`
			Eligible bool   `json:"eligible"`
			Reason   *string
			Presence struct {
				Availability string `json:"availability"`
				AgeSeconds   *int   `json:"ageSeconds"`
			} `json:"presence"`
		} `json:"memberList"`
	} `json:"services"`
	ContactsError *struct {
		Reason  string `json:"reason"`
		Message string `json:"message"`
	} `json:"contactsError"`
}

func search(t *testing.T, e *attendantEnv, query string, hdr ...string) searchReply {
	t.Helper()
	rec, _ := do(t, e.router, http.MethodGet, "/api/tenants/"+tenant+"/attendant/search?"+query, "", hdr...)
	if rec.Code != 200 {
		t.Fatalf("search %s: %d %s", query, rec.Code, rec.Body)
	}
	var out searchReply
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSearchRoute(t *testing.T) {
	e := newAttendantEnv(t, nil, stubDirectory{})
	for _, c := range []struct{ query, field string }{
		{"", "q"}, {"q=", "q"}, {"q=" + strings.Repeat("a", 101), "q"}, {"q=a&top=0", "top"}, {"q=a&top=51", "top"},
		{"q=a&top=ten", "top"}, {"q=a&asUser=me", "asUser"},
	} {
		if rec, p := do(t, e.router, http.MethodGet, "/api/tenants/"+tenant+"/attendant/search?"+c.query, ""); rec.Code != 400 || p.Field != c.field {
			t.Errorf("?%s: %d %+v, want 400 naming %s", c.query, rec.Code, p, c.field)
		}
	}

	got := search(t, e, "q=support")
	if len(got.Contacts) != 1 || got.Contacts[0].ID != otherUser || got.Contacts[0].Mail != nil || !strings.Contains(string(got.Contacts[0].Presence), `"activity":"InACall"`) {
		t.Errorf("contacts %+v, want Bob with his stored presence and mail null", got.Contacts)
	}
	if len(got.Services) != 2 || got.Services[0].ServiceID != "support-2nd" || got.Services[1].Members != 2 || got.Services[1].Available != 1 || got.Services[1].Waiting != 0 {
		t.Fatalf("services %+v, want Second level (id support-2nd) and Support (2 members, 1 available, 0 waiting)", got.Services)
	}
	list := got.Services[1].MemberList // AllMembers by default
	if list == nil || len(*list) != 2 || !(*list)[0].Eligible || (*list)[0].Reason != nil || (*list)[1].Reason == nil || *(*list)[1].Reason != "InACall" || (*list)[1].Presence.AgeSeconds == nil {
		t.Errorf("member list %+v, want the attendant eligible and the other InACall with its presence age", list)
	}
	if got.ContactsError != nil {
		t.Errorf("contactsError %+v, want none", got.ContactsError)
	}

	// OwnMembers: with API_AUTH=none the attendant is ?asUser=.
	if rec, _ := do(t, e.router, http.MethodPatch, settingsPath, `{"attendantConsole":{"teamVisibility":"OwnMembers"}}`, "Content-Type", "application/json"); rec.Code != 200 {
		t.Fatal(rec.Body)
	}
	got = search(t, e, "q=support&asUser="+strings.ToUpper(attendantUser))
	if got.Services[0].MemberList != nil || got.Services[1].MemberList == nil {
		t.Errorf("OwnMembers as the attendant: lists %v, %v; want Support's only", got.Services[0].MemberList, got.Services[1].MemberList)
	}
	got = search(t, e, "q=support")
	if got.Services[0].MemberList != nil || got.Services[1].MemberList != nil {
		t.Error("OwnMembers without an attendant: want no lists")
	}
}

func TestSearchAttendantIsTheTokensOid(t *testing.T) {
	e := newAttendantEnv(t, oidVerifier{}, stubDirectory{err: &switchboard.Error{Code: switchboard.EFORBIDDEN, Message: "grant User.Read.All"}})
	if rec, _ := do(t, e.router, http.MethodPatch, settingsPath, `{"attendantConsole":{"teamVisibility":"OwnMembers"}}`, "Content-Type", "application/json", "Authorization", "Bearer "+otherUser); rec.Code != 200 {
		t.Fatal(rec.Body)
	}
	// The token says otherUser (a member of both); asUser cannot change it.
	got := search(t, e, "q=support&asUser="+attendantUser, "Authorization", "Bearer "+otherUser)
	if got.Services[0].MemberList == nil || got.Services[1].MemberList == nil {
		t.Errorf("lists %v, %v; want both (the token's oid is a member of both)", got.Services[0].MemberList, got.Services[1].MemberList)
	}
	if got.ContactsError == nil || got.ContactsError.Reason != "permission-missing" || len(got.Contacts) != 0 {
		t.Errorf("contacts %+v, error %+v; want none and permission-missing", got.Contacts, got.ContactsError)
	}
}

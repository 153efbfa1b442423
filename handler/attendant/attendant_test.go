package attendant_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"switchboard/handler/attendant"
	"switchboard/handler/switchboard"
)

const tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"

// Users of the fakes.
const (
	me    = "00000000-0000-4000-8000-00000000000a" // the attendant: a member of Support only
	alice = "00000000-0000-4000-8000-0000000000a1"
	bob   = "00000000-0000-4000-8000-0000000000b2"
)

type fakeDirectory struct {
	filter string
	top    int
	users  []attendant.Contact
	err    error
}

func (f *fakeDirectory) FindUsers(ctx context.Context, tenantID, filter string, top int) ([]attendant.Contact, error) {
	f.filter, f.top = filter, top
	return f.users, f.err
}

type fakeServices []switchboard.ServiceAvailability

func (f fakeServices) ServicesAvailability(ctx context.Context, tenantID string) ([]switchboard.ServiceAvailability, error) {
	return f, nil
}

type fakePresence map[string]switchboard.Presence

func (f fakePresence) Readings(ctx context.Context, tenantID string, ids []string) (map[string]switchboard.Presence, error) {
	out := map[string]switchboard.Presence{}
	for _, id := range ids {
		if p, ok := f[id]; ok {
			out[id] = p
		}
	}
	return out, nil
}

type fakeSettings struct{ filter, visibility string }

func (f fakeSettings) ContactSearch(ctx context.Context, tenantID string) (string, string, error) {
	return f.filter, f.visibility, nil
}

type fakeWaiting map[string]int

func (f fakeWaiting) Waiting(ctx context.Context, tenantID string) (map[string]int, error) {
	return f, nil
}

var twoServices = fakeServices{
	{ServiceID: "support", Name: "Support", Members: []switchboard.MemberAvailability{
		{UserID: me, Eligible: true},
		{UserID: alice, Reason: switchboard.ReasonInACall},
	}},
	{ServiceID: "sales", Name: "Sales Support", Members: []switchboard.MemberAvailability{
		{UserID: alice, Eligible: true},
		{UserID: bob, Eligible: true},
		{UserID: "00000000-0000-4000-8000-0000000000c3", Reason: switchboard.ReasonOffline},
	}},
}

func newService(t *testing.T, dir attendant.Directory, set fakeSettings, o ...func(*attendant.Options)) *attendant.Service {
	t.Helper()
	opts := attendant.Options{Services: twoServices, Presence: fakePresence{}, Settings: set}
	if dir != nil {
		opts.Directory = dir
	}
	for _, f := range o {
		f(&opts)
	}
	s, err := attendant.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestFilterIsTenantFilterAndSearch(t *testing.T) {
	search := "startswith(displayName,'ann') or startswith(givenName,'ann') or startswith(surname,'ann') or startswith(mail,'ann') or startswith(userPrincipalName,'ann')"
	cases := []struct{ name, tenantFilter, q, want string }{
		{"no tenant filter", "", "ann", search},
		{"blank tenant filter", "   ", "ann", search},
		{"tenant filter", "department eq 'Sales'", "ann", "(department eq 'Sales') and (" + search + ")"},
		{"quote doubled", "", "O'Neil", strings.ReplaceAll(search, "'ann'", "'O''Neil'")},
		{"injection stays literal", "", "a') or true or ('", strings.ReplaceAll(search, "'ann'", "'a'') or true or ('''")},
	}
	for _, c := range cases {
		if got := attendant.Filter(c.tenantFilter, c.q); got != c.want {
			t.Errorf("%s: Filter(%q, %q) =\n%s\nwant\n%s", c.name, c.tenantFilter, c.q, got, c.want)
		}
	}
}

func TestSearchSendsTheCombinedFilterAndTop(t *testing.T) {
	dir := &fakeDirectory{}
	s := newService(t, dir, fakeSettings{filter: "endsWith(userPrincipalName,'onmicrosoft.com')", visibility: attendant.AllMembers})
	if _, err := s.Search(context.Background(), tenant, attendant.Query{Text: "x"}); err != nil {
		t.Fatal(err)
	}
	if want := attendant.Filter("endsWith(userPrincipalName,'onmicrosoft.com')", "x"); dir.filter != want {
		t.Errorf("directory got filter %q, want %q", dir.filter, want)
	}
	if dir.top != attendant.DefaultTop {
		t.Errorf("top %d, want the default %d", dir.top, attendant.DefaultTop)
	}
}

func TestQueryBounds(t *testing.T) {
	s := newService(t, &fakeDirectory{}, fakeSettings{visibility: attendant.AllMembers})
	cases := []struct {
		name  string
		q     attendant.Query
		field string
	}{
		{"empty", attendant.Query{Text: ""}, "q"},
		{"blank", attendant.Query{Text: "  "}, "q"},
		{"101 characters", attendant.Query{Text: strings.Repeat("é", 101)}, "q"},
		{"control character", attendant.Query{Text: "a\nb"}, "q"},
		{"top 51", attendant.Query{Text: "a", Top: 51}, "top"},
		{"top negative", attendant.Query{Text: "a", Top: -1}, "top"},
		{"100 characters", attendant.Query{Text: strings.Repeat("é", 100)}, ""},
		{"top 1", attendant.Query{Text: "a", Top: 1}, ""},
		{"top 50", attendant.Query{Text: "a", Top: 50}, ""},
	}
	for _, c := range cases {
		_, err := s.Search(context.Background(), tenant, c.q)
		if got := switchboard.ErrorField(err); got != c.field || (c.field != "") != switchboard.IsCode(err, switchboard.EINVALID) {
			t.Errorf("%s: error %v (field %q), want field %q", c.name, err, got, c.field)
		}
	}
}

// The attendant (me) is a member of Support, not of Sales Support; "Support"
// finds both services.
func TestTeamVisibility(t *testing.T) {
	cases := []struct {
		visibility string
		attendant  string
		want       map[string]bool // service id → has a member list
	}{
		{attendant.NoMembers, me, map[string]bool{"support": false, "sales": false}},
		{attendant.OwnMembers, me, map[string]bool{"support": true, "sales": false}},
		{attendant.OwnMembers, "", map[string]bool{"support": false, "sales": false}},
		{attendant.OwnMembers, bob, map[string]bool{"support": false, "sales": true}},
		{attendant.AllMembers, me, map[string]bool{"support": true, "sales": true}},
	}
	for _, c := range cases {
		t.Run(c.visibility+"/"+c.attendant, func(t *testing.T) {
			s := newService(t, &fakeDirectory{}, fakeSettings{visibility: c.visibility})
			res, err := s.Search(context.Background(), tenant, attendant.Query{Text: "support", Attendant: c.attendant})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Services) != 2 {
				t.Fatalf("services %+v, want Sales Support and Support", res.Services)
			}
			for _, svc := range res.Services {
				if got := svc.MemberList != nil; got != c.want[svc.ServiceID] {
					t.Errorf("%s: member list shown %v, want %v", svc.ServiceID, got, c.want[svc.ServiceID])
				}
				src := twoServices[0]
				if svc.ServiceID == "sales" {
					src = twoServices[1]
				}
				if svc.MemberList != nil && len(svc.MemberList) != len(src.Members) {
					t.Errorf("%s: %d members listed, want all %d", svc.ServiceID, len(svc.MemberList), len(src.Members))
				}
			}
		})
	}
}

func TestServicesCountsAndMatching(t *testing.T) {
	s := newService(t, &fakeDirectory{err: &switchboard.Error{Code: switchboard.EINVALID, Message: "Invalid filter clause"}},
		fakeSettings{filter: "department eq 'Nobody'", visibility: attendant.NoMembers},
		func(o *attendant.Options) { o.Waiting = fakeWaiting{"sales": 3} })
	cases := []struct {
		q    string
		want []string
	}{
		{"SUPP", []string{"sales", "support"}}, // name contains, any case
		{"sal", []string{"sales"}},             // id starts with
		{"ales", []string{"sales"}},            // name contains ("Sales Support"), id does not start with it
		{"upport", []string{"sales", "support"}},
		{"port x", nil},
	}
	for _, c := range cases {
		res, err := s.Search(context.Background(), tenant, attendant.Query{Text: c.q})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, svc := range res.Services {
			got = append(got, svc.ServiceID)
			if svc.ServiceID == "sales" && (svc.Members != 3 || svc.Available != 2 || svc.Waiting != 3) {
				t.Errorf("sales: members %d, available %d, waiting %d; want 3, 2, 3", svc.Members, svc.Available, svc.Waiting)
			}
			if svc.ServiceID == "support" && (svc.Members != 2 || svc.Available != 1 || svc.Waiting != 0) {
				t.Errorf("support: members %d, available %d, waiting %d; want 2, 1, 0", svc.Members, svc.Available, svc.Waiting)
			}
		}
		// Services come back whatever the (here refused) tenant filter says.
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("q %q found %v, want %v", c.q, got, c.want)
		}
		if res.ContactsError == nil || res.ContactsError.Reason != attendant.ReasonFilterInvalid || len(res.Contacts) != 0 {
			t.Errorf("q %q: contacts %v, error %+v; want none and filter-invalid", c.q, res.Contacts, res.ContactsError)
		}
	}
}

func TestContactsErrors(t *testing.T) {
	cases := []struct {
		name   string
		err    error
		reason string
	}{
		{"refused filter", &switchboard.Error{Code: switchboard.EINVALID, Message: "Invalid filter clause: Syntax error"}, attendant.ReasonFilterInvalid},
		{"no permission", &switchboard.Error{Code: switchboard.EFORBIDDEN, Message: "grant User.Read.All"}, attendant.ReasonPermissionMissing},
		{"unreachable", &switchboard.Error{Code: switchboard.EUNAVAILABLE, Message: "Graph could not be reached"}, attendant.ReasonUnavailable},
		{"plain error", errors.New("boom"), attendant.ReasonUnavailable},
	}
	for _, c := range cases {
		s := newService(t, &fakeDirectory{err: c.err}, fakeSettings{visibility: attendant.AllMembers})
		res, err := s.Search(context.Background(), tenant, attendant.Query{Text: "support"})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if res.ContactsError == nil || res.ContactsError.Reason != c.reason || res.ContactsError.Message == "" {
			t.Errorf("%s: contactsError %+v, want reason %s with a message", c.name, res.ContactsError, c.reason)
		}
		if len(res.Services) != 2 {
			t.Errorf("%s: %d services, want both despite the Graph failure", c.name, len(res.Services))
		}
	}
	s := newService(t, nil, fakeSettings{visibility: attendant.AllMembers})
	res, err := s.Search(context.Background(), tenant, attendant.Query{Text: "a"})
	if err != nil || res.ContactsError == nil || res.ContactsError.Reason != attendant.ReasonUnavailable {
		t.Errorf("without a directory: %+v, %v; want contactsError unavailable", res.ContactsError, err)
	}
}

func TestContactsCarryStoredPresence(t *testing.T) {
	dir := &fakeDirectory{users: []attendant.Contact{{ID: alice, DisplayName: "Alice"}, {ID: bob, DisplayName: "Bob"}}}
	p := switchboard.Presence{UserID: alice, Availability: "Busy", Activity: "InACall", Source: "account1", ConfirmedAt: time.Now()}
	s := newService(t, dir, fakeSettings{visibility: attendant.AllMembers}, func(o *attendant.Options) { o.Presence = fakePresence{alice: p} })
	res, err := s.Search(context.Background(), tenant, attendant.Query{Text: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Contacts) != 2 || res.Contacts[0].Presence == nil || res.Contacts[0].Presence.Activity != "InACall" || res.Contacts[1].Presence != nil {
		t.Errorf("contacts %+v: want Alice with her presence, Bob with none", res.Contacts)
	}
}

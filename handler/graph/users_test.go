package graph_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"switchboard/handler/acs"
	"switchboard/handler/attendant"
	"switchboard/handler/dev/graphsim"
	"switchboard/handler/graph"
	"switchboard/handler/secrets"
	"switchboard/handler/settings"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// directoryTenant consented to reading users (User.Read.All, application).
var directoryTenant = graphsim.TenantOptions{AppConsent: true, UserReadConsent: true}

// addPeople adds users with a profile: the same names inside and outside
// department Support, so that a search that escaped the tenant filter
// would find the outsiders.
func addPeople(e *simEnv, names ...string) (inside, outside map[string]string) {
	inside, outside = map[string]string{}, map[string]string{}
	for i, n := range names {
		for _, dept := range []string{"Support", "Sales"} {
			upn := strings.ToLower(strings.NewReplacer(" ", "", "'", "", "(", "", ")", "").Replace(n)) + "." + strings.ToLower(dept) + "@contoso.onmicrosoft.com"
			if i%2 == 1 {
				upn = strings.Replace(upn, "onmicrosoft.com", "partner.example", 1)
			}
			u := e.sim.AddUser(tenantID, graphsim.User{UPN: upn, DisplayName: n, Profile: graphsim.Profile{Department: dept, PreferredLanguage: "en-GB", Mail: upn}})
			if dept == "Support" {
				inside[u.ID] = n
			} else {
				outside[u.ID] = n
			}
		}
	}
	return inside, outside
}

func TestFindUsersAsksGraphAsSpecified(t *testing.T) {
	e := newSimEnv(t, directoryTenant, 0)
	inside, _ := addPeople(e, "Anna Meier", "Anna Other", "Bob Smith")
	tenantFilter := "endsWith(userPrincipalName,'onmicrosoft.com') and department eq 'Support'"
	got, err := e.client.FindUsers(context.Background(), tenantID, attendant.Filter(tenantFilter, "anna"), 25)
	if err != nil {
		t.Fatal(err)
	}
	qs := e.sim.UserQueries()
	if len(qs) != 1 {
		t.Fatalf("%d queries, want 1: %+v", len(qs), qs)
	}
	q := qs[0]
	wantFilter := "(" + tenantFilter + ") and (startswith(displayName,'anna') or startswith(givenName,'anna') or startswith(surname,'anna') or startswith(mail,'anna') or startswith(userPrincipalName,'anna'))"
	if q.Filter != wantFilter {
		t.Errorf("Graph received $filter\n%s\nwant\n%s", q.Filter, wantFilter)
	}
	if q.ConsistencyLevel != "eventual" || q.Count != "true" || q.Top != "25" || q.Select != "id,displayName,userPrincipalName,mail,jobTitle,department" {
		t.Errorf("query %+v: want ConsistencyLevel eventual, $count=true, $top=25, $select of the contact fields", q)
	}
	// Anna Meier (onmicrosoft.com, Support) only: Anna Other is a partner
	// address, the Sales twins are outside the filter.
	if len(got) != 1 || inside[got[0].ID] != "Anna Meier" || got[0].Department != "Support" || got[0].Mail == "" {
		t.Errorf("found %+v, want Anna Meier of Support with her mail", got)
	}
}

// Whatever the attendant types, a user outside the tenant filter never
// appears: the text stays inside its string literals.
func TestSearchTextCannotWidenTheTenantFilter(t *testing.T) {
	payloads := []string{
		"'", "''", ")", "') or (", " or ", "x' or department eq 'Sales", "') or startswith(displayName,'",
		"a') or true eq true or ('", "Zoë Çelik", "日本", "O'Neil", "%27", "\\'", "*",
	}
	e := newSimEnv(t, directoryTenant, 0)
	names := append([]string{}, payloads...)
	for i := range names {
		names[i] += " person" // a name starting with the payload, in and outside the filter
	}
	inside, outside := addPeople(e, names...)
	for _, p := range payloads {
		got, err := e.client.FindUsers(context.Background(), tenantID, attendant.Filter("department eq 'Support'", p), 50)
		if err != nil {
			t.Errorf("q %q: %v", p, err)
			continue
		}
		found := false
		for _, u := range got {
			if _, out := outside[u.ID]; out {
				t.Errorf("q %q found %s (%s) of Sales, outside the tenant filter", p, u.ID, u.DisplayName)
			}
			found = found || inside[u.ID] == p+" person"
		}
		if !found {
			t.Errorf("q %q: the Support user named %q was not found (%d results)", p, p+" person", len(got))
		}
	}
}

func TestFindUsersFailures(t *testing.T) {
	t.Run("refused filter", func(t *testing.T) {
		e := newSimEnv(t, directoryTenant, 2)
		_, err := e.client.FindUsers(context.Background(), tenantID, attendant.Filter("startswith(nickName,'a')", "x"), 5)
		if !switchboard.IsCode(err, switchboard.EINVALID) || !strings.Contains(switchboard.ErrorMessage(err), "Could not find a property named 'nickName'") {
			t.Errorf("error %v, want EINVALID with Graph's message", err)
		}
	})
	t.Run("endsWith without advanced parameters is Graph's refusal", func(t *testing.T) {
		// The simulator refuses endsWith without ConsistencyLevel and
		// $count: FindUsers sends both, so the seed's filter works.
		e := newSimEnv(t, directoryTenant, 3)
		got, err := e.client.FindUsers(context.Background(), tenantID, attendant.Filter("endsWith(userPrincipalName,'contoso.example') and preferredLanguage eq 'en-GB'", "agent"), 5)
		if err != nil || len(got) != 2 {
			t.Errorf("found %d, %v; want agents 1 and 2 (en-GB)", len(got), err)
		}
	})
	t.Run("permission missing", func(t *testing.T) {
		e := newSimEnv(t, graphsim.TenantOptions{AppConsent: true}, 2)
		_, err := e.client.FindUsers(context.Background(), tenantID, attendant.Filter("", "x"), 5)
		if !switchboard.IsCode(err, switchboard.EFORBIDDEN) || !strings.Contains(switchboard.ErrorMessage(err), "User.Read.All") {
			t.Errorf("error %v, want EFORBIDDEN naming User.Read.All", err)
		}
	})
	t.Run("Retry-After waited out once", func(t *testing.T) {
		e := newSimEnv(t, directoryTenant, 2)
		e.sim.InjectFaults(tenantID, graphsim.Fault{Status: 429, RetryAfter: 1}, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		got, err := e.client.FindUsers(ctx, tenantID, attendant.Filter("", "agent"), 5)
		if err != nil || len(got) != 2 || time.Since(start) < time.Second {
			t.Errorf("found %d, %v after %v; want both agents after waiting a second", len(got), err, time.Since(start))
		}
	})
	t.Run("Retry-After twice", func(t *testing.T) {
		e := newSimEnv(t, directoryTenant, 2)
		e.sim.InjectFaults(tenantID, graphsim.Fault{Status: 429, RetryAfter: 1}, 2)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := e.client.FindUsers(ctx, tenantID, attendant.Filter("", "agent"), 5)
		if !switchboard.IsCode(err, switchboard.EUNAVAILABLE) {
			t.Errorf("error %v, want EUNAVAILABLE after one wait", err)
		}
	})
	t.Run("Retry-After past the request's time", func(t *testing.T) {
		e := newSimEnv(t, directoryTenant, 2)
		e.sim.InjectFaults(tenantID, graphsim.Fault{Status: 429, RetryAfter: 30}, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		_, err := e.client.FindUsers(ctx, tenantID, attendant.Filter("", "agent"), 5)
		if !switchboard.IsCode(err, switchboard.EUNAVAILABLE) || time.Since(start) > 3*time.Second {
			t.Errorf("error %v after %v, want EUNAVAILABLE at once", err, time.Since(start))
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		e := newSimEnv(t, directoryTenant, 0, func(o *graph.Options) { o.BaseURL = "https://" + closedPort(t) + "/v1.0" })
		_, err := e.client.FindUsers(context.Background(), tenantID, attendant.Filter("", "agent"), 5)
		if !switchboard.IsCode(err, switchboard.EUNAVAILABLE) {
			t.Errorf("error %v, want EUNAVAILABLE", err)
		}
	})
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// Settings check a new filter through the Graph adapter: Graph's refusal
// refuses the PATCH with its message, an unreachable Graph saves it as
// unverified.
func TestSettingsCheckFiltersThroughGraph(t *testing.T) {
	ctx := context.Background()
	newSettings := func(t *testing.T, c *graph.Client) *settings.Service {
		s, err := settings.New(ctx, settings.Options{Tables: store.NewMemoryTables(), Secrets: secrets.Ephemeral(), ACS: acs.New(acs.Options{}), Filters: c})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	patch := func(f string) []byte {
		b, _ := json.Marshal(map[string]any{"attendantConsole": map[string]any{"contactSearchFilter": f}})
		return b
	}

	e := newSimEnv(t, directoryTenant, 2)
	s := newSettings(t, e.client)
	_, _, err := s.Patch(ctx, tenantID, patch("startswith(displayName,'a') and"), "")
	if switchboard.ErrorField(err) != "attendantConsole.contactSearchFilter" || !strings.Contains(switchboard.ErrorDetail(err), "Syntax error") {
		t.Errorf("broken filter: %v (field %q, detail %q); want the field named and Graph's message", err, switchboard.ErrorField(err), switchboard.ErrorDetail(err))
	}
	seed := "endsWith(userPrincipalName,'onmicrosoft.com') and preferredLanguage eq 'en-GB'"
	view, _, err := s.Patch(ctx, tenantID, patch(seed), "")
	if err != nil {
		t.Fatal(err)
	}
	if c := view.AttendantConsole.ContactSearchFilterCheck; c == nil || c.State != settings.FilterOK || c.At.IsZero() {
		t.Errorf("seed filter: check %+v, want ok with a time", c)
	}

	noConsent := newSimEnv(t, graphsim.TenantOptions{AppConsent: true}, 1)
	_, _, err = newSettings(t, noConsent.client).Patch(ctx, tenantID, patch(seed), "")
	if switchboard.ErrorField(err) != "attendantConsole.contactSearchFilter" || !strings.Contains(switchboard.ErrorMessage(err), "User.Read.All") {
		t.Errorf("without User.Read.All: %v; want a 400 naming the permission", err)
	}

	down := newSimEnv(t, directoryTenant, 0, func(o *graph.Options) { o.BaseURL = "https://" + closedPort(t) + "/v1.0" })
	s = newSettings(t, down.client)
	view, _, err = s.Patch(ctx, tenantID, patch(seed), "")
	if err != nil {
		t.Fatalf("unreachable Graph: %v, want the filter saved", err)
	}
	view, _, err = s.Get(ctx, tenantID)
	if err != nil {
		t.Fatal(err)
	}
	c := view.AttendantConsole.ContactSearchFilterCheck
	if view.AttendantConsole.ContactSearchFilter != seed || c == nil || c.State != settings.FilterUnverified || c.Message == "" || c.At.IsZero() {
		t.Errorf("unreachable Graph: filter %q, check %+v; want it saved as unverified with a message", view.AttendantConsole.ContactSearchFilter, c)
	}
}

// pagingGraph answers GET /v1.0/users two users a page, always with a next
// page (at next, when set, else its own).
type pagingGraph struct {
	mu       sync.Mutex
	requests int
	url      string
	next     string
}

func (g *pagingGraph) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	g.requests++
	n := g.requests
	g.mu.Unlock()
	next := g.next
	if next == "" {
		next = g.url + "/v1.0/users?$skiptoken=" + strconv.Itoa(n)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"@odata.nextLink": next, "value": []any{
		map[string]any{"id": fmt.Sprintf("11111111-0000-4000-8000-%012d", 2*n), "displayName": "A"},
		map[string]any{"id": fmt.Sprintf("11111111-0000-4000-8000-%012d", 2*n+1), "displayName": "B"},
	}})
}

func TestFindUsersPagingIsBounded(t *testing.T) {
	newClient := func(t *testing.T, g *pagingGraph) *graph.Client {
		sim, err := graphsim.Start(graphsim.Options{Seed: 7})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(sim.Close)
		sim.AddApp(appID, appSecret, true)
		sim.AddTenant(tenantID, directoryTenant)
		srv := httptest.NewServer(g)
		t.Cleanup(srv.Close)
		g.url = srv.URL
		c, err := graph.New(graph.Options{BaseURL: srv.URL + "/v1.0", AuthorityHost: sim.AuthorityURL(), ClientID: appID, ClientSecret: appSecret, HTTPClient: sim.HTTPClient(), Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	g := &pagingGraph{}
	got, err := newClient(t, g).FindUsers(context.Background(), tenantID, "startswith(displayName,'a')", 50)
	if err != nil || len(got) != 6 || g.requests != 3 {
		t.Errorf("found %d (%v) in %d requests; want 6 in 3 pages, no more", len(got), err, g.requests)
	}
	g = &pagingGraph{}
	got, err = newClient(t, g).FindUsers(context.Background(), tenantID, "startswith(displayName,'a')", 3)
	if err != nil || len(got) != 3 || g.requests != 2 {
		t.Errorf("top 3: found %d (%v) in %d requests; want 3 in 2 pages", len(got), err, g.requests)
	}
	// A next link to another host is not followed: the token would go
	// with it.
	g = &pagingGraph{next: "https://" + closedPort(t) + "/v1.0/users?$skiptoken=x"}
	if _, err := newClient(t, g).FindUsers(context.Background(), tenantID, "startswith(displayName,'a')", 50); !switchboard.IsCode(err, switchboard.EUNAVAILABLE) || g.requests != 1 {
		t.Errorf("foreign next link: %v after %d requests; want EUNAVAILABLE after 1", err, g.requests)
	}
}

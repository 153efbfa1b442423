package graph_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"switchboard/handler/dev/graphsim"
	"switchboard/handler/graph"
	"switchboard/handler/internal/testenv"
	"switchboard/handler/switchboard"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	tenantID  = "33333333-3333-3333-3333-333333333333"
	appID     = "44444444-4444-4444-4444-444444444444"
	appSecret = "app-secret-value"
	account1  = "presence1@switchboard.example"
	account2  = "presence2@switchboard.example"
	password1 = "correct horse 1"
	password2 = "correct horse 2"
)

// simEnv is a simulator with the presence app, two presence accounts and
// one customer tenant, and a graph.Client pointed at it.
type simEnv struct {
	sim    *graphsim.Sim
	users  []graphsim.User
	client *graph.Client
}

// fullyConsented is a tenant whose admin did everything.
var fullyConsented = graphsim.TenantOptions{DelegatedConsent: true, AppConsent: true, Guests: []string{account1, account2}}

func newSimEnv(t testing.TB, tenant graphsim.TenantOptions, users int, configure ...func(*graph.Options)) *simEnv {
	t.Helper()
	sim, err := graphsim.Start(graphsim.Options{Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	sim.AddApp(appID, appSecret, true)
	sim.AddAccount(account1, password1, false)
	sim.AddAccount(account2, password2, false)
	sim.AddTenant(tenantID, tenant)
	e := &simEnv{sim: sim, users: sim.AddUsers(tenantID, "contoso.example", users)}
	o := graph.Options{
		BaseURL: sim.GraphURL(), AuthorityHost: sim.AuthorityURL(), ClientID: appID, ClientSecret: appSecret,
		Accounts:   [2]graph.Account{{UPN: account1, Password: password1}, {UPN: account2, Password: password2}},
		HTTPClient: sim.HTTPClient(), Timeout: 10 * time.Second,
	}
	for _, c := range configure {
		c(&o)
	}
	e.client, err = graph.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *simEnv) ids() []string {
	out := make([]string, len(e.users))
	for i, u := range e.users {
		out[i] = u.ID
	}
	return out
}

func TestPresencesThroughEachSource(t *testing.T) {
	for _, src := range switchboard.PresenceSources {
		t.Run(string(src), func(t *testing.T) {
			e := newSimEnv(t, fullyConsented, 3)
			e.sim.SetPresence(tenantID, e.users[0].ID, "Busy", "InACall", false)
			e.sim.SetPresence(tenantID, e.users[1].ID, "Away", "OutOfOffice", true)
			got, err := e.client.Presences(context.Background(), tenantID, src, append(e.ids(), "00000000-0000-4000-8000-000000000000"))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 3 {
				t.Fatalf("%d readings, want 3 (the unknown id is not reported)", len(got))
			}
			want := map[string]switchboard.PresenceReading{
				e.users[0].ID: {UserID: e.users[0].ID, Availability: "Busy", Activity: "InACall"},
				e.users[1].ID: {UserID: e.users[1].ID, Availability: "Away", Activity: "OutOfOffice", OutOfOffice: true},
				e.users[2].ID: {UserID: e.users[2].ID, Availability: "Available", Activity: "Available"},
			}
			for _, r := range got {
				if r != want[r.UserID] {
					t.Errorf("got %+v, want %+v", r, want[r.UserID])
				}
			}
		})
	}
}

func TestFailuresBecomeReasons(t *testing.T) {
	cases := []struct {
		name       string
		tenant     graphsim.TenantOptions
		src        switchboard.PresenceSource
		setup      func(e *simEnv)
		configure  func(*graph.Options)
		tenantID   string
		wantReason switchboard.SourceReason
		wantCode   string
		wantStatus int
		wantRetry  time.Duration
	}{
		{name: "account not invited as guest", tenant: graphsim.TenantOptions{DelegatedConsent: true, Guests: []string{account2}}, src: switchboard.SourceAccount1,
			wantReason: switchboard.SourceNotInvited, wantCode: "AADSTS50020"},
		{name: "account unknown to Entra", tenant: fullyConsented, src: switchboard.SourceAccount1,
			configure:  func(o *graph.Options) { o.Accounts[0].UPN = "ghost@switchboard.example" },
			wantReason: switchboard.SourceNotInvited, wantCode: "AADSTS50034"},
		{name: "MFA required", tenant: fullyConsented, src: switchboard.SourceAccount2,
			setup:      func(e *simEnv) { e.sim.SetAccount(account2, password2, true) },
			wantReason: switchboard.SourceMFARequired, wantCode: "AADSTS50076"},
		{name: "wrong password", tenant: fullyConsented, src: switchboard.SourceAccount1,
			configure:  func(o *graph.Options) { o.Accounts[0].Password = "stale" },
			wantReason: switchboard.SourceWrongPassword, wantCode: "AADSTS50126"},
		{name: "delegated permissions not granted", tenant: graphsim.TenantOptions{Guests: []string{account1}}, src: switchboard.SourceAccount1,
			wantReason: switchboard.SourcePermissionNotGranted, wantCode: "AADSTS65001"},
		{name: "application permission not granted", tenant: graphsim.TenantOptions{DelegatedConsent: true}, src: switchboard.SourceApplication,
			wantReason: switchboard.SourcePermissionNotGranted, wantStatus: http.StatusForbidden},
		{name: "wrong client secret", tenant: fullyConsented, src: switchboard.SourceApplication,
			configure:  func(o *graph.Options) { o.ClientSecret = "nope" },
			wantReason: switchboard.SourceAppMisconfigured, wantCode: "AADSTS7000215"},
		{name: "public client flows off", tenant: fullyConsented, src: switchboard.SourceAccount1,
			setup:      func(e *simEnv) { e.sim.AddApp(appID, appSecret, false) },
			wantReason: switchboard.SourceAppMisconfigured, wantCode: "AADSTS7000218"},
		{name: "unknown tenant (never consented, or mistyped)", tenant: fullyConsented, src: switchboard.SourceApplication, tenantID: "55555555-5555-5555-5555-555555555555",
			wantReason: switchboard.SourcePermissionNotGranted, wantCode: "AADSTS90002"},
		{name: "account not configured", tenant: fullyConsented, src: switchboard.SourceAccount2,
			configure:  func(o *graph.Options) { o.Accounts[1] = graph.Account{} },
			wantReason: switchboard.SourceNotConfigured},
		{name: "429 with Retry-After", tenant: fullyConsented, src: switchboard.SourceAccount1,
			setup:      func(e *simEnv) { e.sim.InjectFaults(tenantID, graphsim.Fault{Status: 429, RetryAfter: 7}, 1) },
			wantReason: switchboard.SourceThrottled, wantStatus: 429, wantRetry: 7 * time.Second},
		{name: "503 with an HTML page", tenant: fullyConsented, src: switchboard.SourceApplication,
			setup: func(e *simEnv) {
				e.sim.InjectFaults(tenantID, graphsim.Fault{Status: 503, ContentType: "text/html", Body: "<html>busy</html>", RetryAfter: 3}, 1)
			},
			wantReason: switchboard.SourceThrottled, wantStatus: 503, wantRetry: 3 * time.Second},
		{name: "500", tenant: fullyConsented, src: switchboard.SourceAccount1,
			setup:      func(e *simEnv) { e.sim.InjectFaults(tenantID, graphsim.Fault{Status: 500}, 1) },
			wantReason: switchboard.SourceGraphError, wantStatus: 500},
		{name: "malformed JSON", tenant: fullyConsented, src: switchboard.SourceAccount1,
			setup:      func(e *simEnv) { e.sim.InjectFaults(tenantID, graphsim.Fault{Malformed: true}, 1) },
			wantReason: switchboard.SourceGraphError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var configure []func(*graph.Options)
			if tc.configure != nil {
				configure = append(configure, tc.configure)
			}
			e := newSimEnv(t, tc.tenant, 2, configure...)
			if tc.setup != nil {
				tc.setup(e)
			}
			tenant := tenantID
			if tc.tenantID != "" {
				tenant = tc.tenantID
			}
			_, err := e.client.Presences(context.Background(), tenant, tc.src, e.ids())
			se, ok := err.(*switchboard.SourceError)
			if !ok {
				t.Fatalf("got %T %v, want a *switchboard.SourceError", err, err)
			}
			if se.Source != tc.src || se.Reason != tc.wantReason || (tc.wantCode != "" && se.Code != tc.wantCode) || se.Status != tc.wantStatus || se.RetryAfter != tc.wantRetry {
				t.Errorf("got %s %s code %q status %d retry %v (%s), want %s %s code %q status %d retry %v",
					se.Source, se.Reason, se.Code, se.Status, se.RetryAfter, se.Message, tc.src, tc.wantReason, tc.wantCode, tc.wantStatus, tc.wantRetry)
			}
			if se.Message == "" {
				t.Error("no message for the tenant admin")
			}
		})
	}
}

func TestMoreThan650IDsRefused(t *testing.T) {
	e := newSimEnv(t, fullyConsented, 1)
	ids := make([]string, 651)
	for i := range ids {
		ids[i] = e.users[0].ID
	}
	_, err := e.client.Presences(context.Background(), tenantID, switchboard.SourceAccount1, ids)
	if se, ok := err.(*switchboard.SourceError); !ok || se.Reason != switchboard.SourceGraphError {
		t.Errorf("got %v, want a Graph error", err)
	}
	if n := e.sim.Stats().GraphRequests; n != 0 {
		t.Errorf("%d requests reached Graph", n)
	}
}

func TestResolveUser(t *testing.T) {
	e := newSimEnv(t, fullyConsented, 2)
	cases := []struct {
		name, key  string
		wantID     string
		wantReason switchboard.SourceReason
	}{
		{"by UPN", e.users[1].UPN, e.users[1].ID, ""},
		{"by UPN, other case", "AGENT2@CONTOSO.EXAMPLE", e.users[1].ID, ""},
		{"by object id", e.users[0].ID, e.users[0].ID, ""},
		{"no such user", "nobody@contoso.example", "", switchboard.SourceUserNotFound},
		{"a guest's UPN with #EXT#", "someone_fabrikam.example#EXT#@contoso.example", "", switchboard.SourceUserNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u, err := e.client.User(context.Background(), tenantID, switchboard.SourceAccount1, tc.key)
			if tc.wantReason != "" {
				if se, ok := err.(*switchboard.SourceError); !ok || se.Reason != tc.wantReason {
					t.Fatalf("got %v, want %s", err, tc.wantReason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.ID != tc.wantID || u.UserPrincipalName == "" || u.DisplayName == "" {
				t.Errorf("got %+v, want id %s", u, tc.wantID)
			}
		})
	}
}

func TestTokensAreCached(t *testing.T) {
	e := newSimEnv(t, fullyConsented, 5)
	for i := 0; i < 5; i++ {
		if _, err := e.client.Presences(context.Background(), tenantID, switchboard.SourceAccount1, e.ids()); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.sim.Stats().TokenRequests; n != 1 {
		t.Errorf("%d token requests for 5 reads, want 1", n)
	}
}

package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"switchboard/handler/internal/fakeclock"
	"testing"
	"time"

	"switchboard/handler/presence"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

const presenceTenant = "22222222-2222-2222-2222-222222222222"

type presenceClock = fakeclock.Clock

// stubGraph answers every user as Available, except through failing
// sources.
type stubGraph struct {
	fail map[switchboard.PresenceSource]*switchboard.SourceError
}

func (g *stubGraph) Presences(ctx context.Context, tenant string, src switchboard.PresenceSource, ids []string) ([]switchboard.PresenceReading, error) {
	if e := g.fail[src]; e != nil {
		return nil, e
	}
	out := make([]switchboard.PresenceReading, len(ids))
	for i, id := range ids {
		out[i] = switchboard.PresenceReading{UserID: id, Availability: switchboard.Busy, Activity: switchboard.ActivityInAMeeting}
	}
	return out, nil
}

func (g *stubGraph) User(ctx context.Context, tenant string, src switchboard.PresenceSource, upn string) (switchboard.DirectoryUser, error) {
	if e := g.fail[src]; e != nil {
		return switchboard.DirectoryUser{}, e
	}
	if upn == "nobody@contoso.example" {
		return switchboard.DirectoryUser{}, &switchboard.SourceError{Source: src, Reason: switchboard.SourceUserNotFound, Message: "no such user", Status: 404}
	}
	return switchboard.DirectoryUser{ID: "u-" + strings.SplitN(upn, "@", 2)[0], UserPrincipalName: upn, DisplayName: "Ada"}, nil
}

type stubTracked map[string][]string

func (s stubTracked) Tenants(context.Context) ([]string, error) {
	var out []string
	for t := range s {
		out = append(out, t)
	}
	return out, nil
}

func (s stubTracked) TrackedUsers(_ context.Context, t string) ([]string, error) { return s[t], nil }

type stubSettings bool

func (s stubSettings) TrackOverGuestAccounts(context.Context, string) (bool, error) {
	return bool(s), nil
}

type presenceEnv struct {
	clock  *presenceClock
	graph  *stubGraph
	poller *presence.Poller
	srv    *httptest.Server
}

func newPresenceEnv(t *testing.T, users []string) *presenceEnv {
	t.Helper()
	e := &presenceEnv{clock: fakeclock.New(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)), graph: &stubGraph{fail: map[switchboard.PresenceSource]*switchboard.SourceError{}}}
	ctx := context.Background()
	st, err := presence.NewStore(ctx, presence.StoreOptions{Tables: store.NewMemoryTables(), Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	common := struct{ a1, a2 string }{"presence1@switchboard.example", ""}
	e.poller, err = presence.NewPoller(presence.PollerOptions{
		Store: st, Graph: e.graph, Tracked: stubTracked{presenceTenant: users}, Settings: stubSettings(true),
		Account1UPN: common.a1, Account2UPN: common.a2, ApplicationConfigured: true, Now: e.clock.Now,
		Sleep: func(context.Context, time.Duration) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := presence.NewService(presence.ServiceOptions{
		Store: st, Graph: e.graph, Settings: stubSettings(true), Now: e.clock.Now, StaleAfter: 120 * time.Second,
		AuthorityHost: "https://login.microsoftonline.com/", ClientID: "app-id", ConsentRedirectURI: "https://switchboard.example/consented",
		Account1UPN: common.a1, Account2UPN: common.a2, ApplicationConfigured: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := NewRouter(slog.New(slog.DiscardHandler), nil)
	(&PresenceAPI{Service: svc}).Register(r)
	e.srv = httptest.NewServer(r)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *presenceEnv) poll(t *testing.T) {
	t.Helper()
	if _, err := e.poller.Poll(context.Background(), e.clock.Now().Add(25*time.Second)); err != nil {
		t.Fatal(err)
	}
}

func (e *presenceEnv) do(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s %s: %d, body not JSON: %s", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, m
}

func TestUserPresenceReportsStaleness(t *testing.T) {
	e := newPresenceEnv(t, []string{"u-1", "u-2"})
	e.poll(t)
	path := "/api/tenants/" + presenceTenant + "/users/u-1/presence"
	cases := []struct {
		name      string
		advance   time.Duration
		wantStale bool
		wantAge   float64
	}{
		{"just polled", 0, false, 0},
		{"two minutes without a poll: still within the limit", 120 * time.Second, false, 120},
		{"a second past the limit", time.Second, true, 121},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.clock.Advance(tc.advance)
			status, body := e.do(t, "GET", path, "")
			if status != http.StatusOK {
				t.Fatalf("status %d: %v", status, body)
			}
			if got := body["stale"]; got != tc.wantStale {
				t.Errorf("stale %v, want %v (%v)", got, tc.wantStale, body)
			}
			if got := body["ageSeconds"]; got != tc.wantAge {
				t.Errorf("ageSeconds %v, want %v", got, tc.wantAge)
			}
			if body["source"] != "account1" || body["extended"] != true || body["availability"] != "Busy" || body["staleAfterSeconds"] != 120.0 {
				t.Errorf("body %v", body)
			}
		})
	}
}

func TestUserPresenceErrors(t *testing.T) {
	e := newPresenceEnv(t, []string{"u-1"})
	e.poll(t)
	cases := []struct {
		name, path string
		want       int
		wantType   string
	}{
		{"never read", "/api/tenants/" + presenceTenant + "/users/u-9/presence", http.StatusNotFound, "not-found"},
		{"tenant not a GUID", "/api/tenants/contoso/users/u-1/presence", http.StatusBadRequest, "validation-error"},
		{"user id with a space", "/api/tenants/" + presenceTenant + "/users/" + url.PathEscape("a b") + "/presence", http.StatusBadRequest, "validation-error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := e.do(t, "GET", tc.path, "")
			if status != tc.want || body["type"] != tc.wantType {
				t.Errorf("got %d %v, want %d %s", status, body, tc.want, tc.wantType)
			}
		})
	}
}

func TestPresenceTracking(t *testing.T) {
	e := newPresenceEnv(t, []string{"u-1", "u-2", "u-3"})
	e.graph.fail[switchboard.SourceAccount1] = &switchboard.SourceError{Reason: switchboard.SourceMFARequired, Message: "the tenant requires MFA", Code: "AADSTS50076"}
	e.poll(t)
	status, body := e.do(t, "GET", "/api/tenants/"+presenceTenant+"/presence-tracking", "")
	if status != http.StatusOK {
		t.Fatalf("status %d: %v", status, body)
	}
	sources, _ := body["sources"].([]any)
	if len(sources) != 3 {
		t.Fatalf("sources %v", body["sources"])
	}
	byName := map[string]map[string]any{}
	for _, s := range sources {
		m := s.(map[string]any)
		byName[m["source"].(string)] = m
	}
	a1, a2, app := byName["account1"], byName["account2"], byName["application"]
	if a1["state"] != "failing" || a1["invitedAsGuest"] != true || a1["pausedUntil"] == nil {
		t.Errorf("account1 %v: want failing, invited, paused", a1)
	}
	if le, _ := a1["lastError"].(map[string]any); le["reason"] != "mfa-required" || le["code"] != "AADSTS50076" || le["message"] == "" {
		t.Errorf("account1 lastError %v", a1["lastError"])
	}
	if a2["state"] != "not-configured" || a2["configured"] != false {
		t.Errorf("account2 %v: want not-configured", a2)
	}
	if app["state"] != "ok" || app["permissionGranted"] != true || app["account"] != nil {
		t.Errorf("application %v: want ok", app)
	}
	poll, _ := body["lastPoll"].(map[string]any)
	if poll["users"] != 3.0 || poll["changed"] != 3.0 || poll["calls"] != 1.0 || poll["errors"] != 1.0 {
		t.Errorf("lastPoll %v: want 3 users, 3 changed, 1 Graph call (account 1 never got past its sign-in), 1 error", poll)
	}
	consent, _ := body["adminConsentUrl"].(string)
	u, err := url.Parse(consent)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Path != "/"+presenceTenant+"/v2.0/adminconsent" || q.Get("client_id") != "app-id" || q.Get("redirect_uri") != "https://switchboard.example/consented" ||
		q.Get("scope") != "https://graph.microsoft.com/Presence.Read.All https://graph.microsoft.com/User.Read https://graph.microsoft.com/User.ReadBasic.All" {
		t.Errorf("adminConsentUrl %s", consent)
	}
	if strings.Contains(consent, "+") {
		t.Errorf("adminConsentUrl %s encodes spaces as '+': use %%20", consent)
	}
}

func TestPresenceTrackingTest(t *testing.T) {
	e := newPresenceEnv(t, nil)
	path := "/api/tenants/" + presenceTenant + "/presence-tracking/test"
	cases := []struct {
		name       string
		fail       *switchboard.SourceError
		body       string
		wantStatus int
		wantOK     any
		wantReason string
		wantField  string
	}{
		{name: "account 1 reads the user", body: `{"upn":"ada@contoso.example","account":1}`, wantStatus: 200, wantOK: true},
		{name: "no such user", body: `{"upn":"nobody@contoso.example","account":1}`, wantStatus: 200, wantOK: false, wantReason: "user-not-found"},
		{name: "account 1 not invited", fail: &switchboard.SourceError{Reason: switchboard.SourceNotInvited, Message: "not a guest", Code: "AADSTS50020"},
			body: `{"upn":"ada@contoso.example","account":1}`, wantStatus: 200, wantOK: false, wantReason: "not-invited"},
		{name: "account 2 not configured", body: `{"upn":"ada@contoso.example","account":2}`, wantStatus: 400, wantField: "account"},
		{name: "account 3", body: `{"upn":"ada@contoso.example","account":3}`, wantStatus: 400, wantField: "account"},
		{name: "not a UPN", body: `{"upn":"ada","account":1}`, wantStatus: 400, wantField: "upn"},
		{name: "account as text", body: `{"upn":"ada@contoso.example","account":"1"}`, wantStatus: 400, wantField: "account"},
		{name: "unknown field", body: `{"upn":"ada@contoso.example","account":1,"password":"x"}`, wantStatus: 400, wantField: "password"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			delete(e.graph.fail, switchboard.SourceAccount1)
			if tc.fail != nil {
				e.graph.fail[switchboard.SourceAccount1] = tc.fail
			}
			status, body := e.do(t, "POST", path, tc.body)
			if status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %v", status, tc.wantStatus, body)
			}
			if tc.wantField != "" {
				if body["field"] != tc.wantField {
					t.Errorf("field %v, want %s (%v)", body["field"], tc.wantField, body)
				}
				return
			}
			if body["ok"] != tc.wantOK {
				t.Errorf("ok %v, want %v: %v", body["ok"], tc.wantOK, body)
			}
			if tc.wantOK == true {
				p, _ := body["presence"].(map[string]any)
				if p["availability"] != "Busy" || p["activity"] != "InAMeeting" || body["extended"] != true {
					t.Errorf("presence %v", body)
				}
				return
			}
			if errJSON, _ := body["error"].(map[string]any); errJSON["reason"] != tc.wantReason {
				t.Errorf("error %v, want reason %s", body["error"], tc.wantReason)
			}
		})
	}
	// The failing test left its mark on account 1's status.
	_, tr := e.do(t, "GET", "/api/tenants/"+presenceTenant+"/presence-tracking", "")
	a1 := tr["sources"].([]any)[0].(map[string]any)
	if a1["invitedAsGuest"] != false {
		t.Errorf("account1 after a not-invited test: %v", a1)
	}
}

func TestUserPresenceObjectIDAnyCase(t *testing.T) {
	const id = "3f2504e0-4f89-11d3-9a0c-0305e82c3301" // as routing stores members: lower case
	e := newPresenceEnv(t, []string{id})
	e.poll(t)
	cases := []struct{ name, user string }{
		{"lower case", id},
		{"upper case", strings.ToUpper(id)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := e.do(t, "GET", "/api/tenants/"+presenceTenant+"/users/"+tc.user+"/presence", "")
			if got, want := status, http.StatusOK; got != want {
				t.Fatalf("status %d, want %d (%v)", got, want, body)
			}
			if got, want := body["userId"], id; got != want {
				t.Errorf("userId %v, want %v", got, want)
			}
		})
	}
}

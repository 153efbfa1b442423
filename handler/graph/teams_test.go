package graph_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"switchboard/handler/dev/graphsim"
	"switchboard/handler/graph"
	"switchboard/handler/routing"
	"switchboard/handler/switchboard"
)

var _ routing.TeamDirectory = (*graph.Client)(nil)

// teamsGraph answers GET /v1.0/teams/{id}/members for a few teams, in
// pages, and remembers the Authorization headers it saw. Sign-in goes to
// the Graph simulator.
type teamsGraph struct {
	mu    sync.Mutex
	auths []string
	url   string
}

func (g *teamsGraph) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	g.auths = append(g.auths, r.Header.Get("Authorization"))
	g.mu.Unlock()
	fail := func(status int, code string) {
		w.Header().Set("Content-Type", "application/json")
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "7")
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": code, "message": code}})
	}
	member := func(userID string) map[string]any {
		return map[string]any{"@odata.type": "#microsoft.graph.aadUserConversationMember", "id": "m-" + userID, "roles": []string{}, "userId": userID}
	}
	reply := func(v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	switch {
	case r.Method != http.MethodGet:
		fail(http.StatusMethodNotAllowed, "BadRequest")
	case r.URL.Path == "/v1.0/teams/team-1/members" && r.URL.Query().Get("page") == "":
		reply(map[string]any{
			"value": []any{member("11111111-0000-4000-8000-000000000001"),
				map[string]any{"@odata.type": "#microsoft.graph.anonymousGuestConversationMember", "id": "anon", "roles": []string{}},
				member("11111111-0000-4000-8000-000000000002")},
			"@odata.nextLink": g.url + "/v1.0/teams/team-1/members?page=2",
		})
	case r.URL.Path == "/v1.0/teams/team-1/members" && r.URL.Query().Get("page") == "2":
		reply(map[string]any{"value": []any{member("11111111-0000-4000-8000-000000000003")}})
	case r.URL.Path == "/v1.0/teams/team-forbidden/members":
		fail(http.StatusForbidden, "Forbidden")
	case r.URL.Path == "/v1.0/teams/team-busy/members":
		fail(http.StatusTooManyRequests, "TooManyRequests")
	default:
		fail(http.StatusNotFound, "NotFound")
	}
}

func newTeamsEnv(t *testing.T, tenant graphsim.TenantOptions, secret string) (*graph.Client, *teamsGraph) {
	t.Helper()
	sim, err := graphsim.Start(graphsim.Options{Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	sim.AddApp(appID, appSecret, true)
	sim.AddTenant(tenantID, tenant)
	g := &teamsGraph{}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	g.url = srv.URL
	c, err := graph.New(graph.Options{
		BaseURL: srv.URL + "/v1.0", AuthorityHost: sim.AuthorityURL(), ClientID: appID, ClientSecret: secret,
		HTTPClient: sim.HTTPClient(), Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, g
}

func TestTeamMembers(t *testing.T) {
	c, g := newTeamsEnv(t, graphsim.TenantOptions{AppConsent: true}, appSecret)
	got, err := c.TeamMembers(context.Background(), tenantID, "team-1")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"11111111-0000-4000-8000-000000000001", "11111111-0000-4000-8000-000000000002", "11111111-0000-4000-8000-000000000003"}
	if !slices.Equal(got, want) {
		t.Errorf("members = %v, want %v (both pages, users only)", got, want)
	}
	for _, a := range g.auths {
		if !strings.HasPrefix(a, "Bearer ") {
			t.Errorf("request without a bearer token: %q", a)
		}
	}
}

// A team in a tenant Entra ID does not know (never consented, mistyped)
// is the caller's to fix: 403 naming the missing consent, not a retryable
// 503.
func TestTeamMembersInUnknownTenant(t *testing.T) {
	c, _ := newTeamsEnv(t, graphsim.TenantOptions{AppConsent: true}, appSecret)
	_, err := c.TeamMembers(context.Background(), "0d4e2f6a-0000-4000-8000-00000000abcd", "team-1")
	if got, want := switchboard.ErrorCode(err), switchboard.EFORBIDDEN; got != want {
		t.Fatalf("error code = %q (%v), want %q", got, err, want)
	}
	if msg := switchboard.ErrorMessage(err); !strings.Contains(msg, "admin consent") || !strings.Contains(msg, "TeamMember.Read.All") {
		t.Errorf("message = %q, want it to name the admin consent and TeamMember.Read.All", msg)
	}
}

func TestTeamMembersFailures(t *testing.T) {
	for _, tc := range []struct {
		name     string
		tenant   graphsim.TenantOptions
		secret   string
		team     string
		wantCode string
		wantMsg  string
	}{
		{"no such team", graphsim.TenantOptions{AppConsent: true}, appSecret, "team-nope", switchboard.ENOTFOUND, "no Microsoft Teams team team-nope"},
		{"permission not granted", graphsim.TenantOptions{AppConsent: true}, appSecret, "team-forbidden", switchboard.EFORBIDDEN, "TeamMember.Read.All"},
		{"throttled", graphsim.TenantOptions{AppConsent: true}, appSecret, "team-busy", switchboard.EUNAVAILABLE, "throttling"},
		{"no client secret", graphsim.TenantOptions{AppConsent: true}, "", "team-1", switchboard.EUNAVAILABLE, "secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newTeamsEnv(t, tc.tenant, tc.secret)
			_, err := c.TeamMembers(context.Background(), tenantID, tc.team)
			if got := switchboard.ErrorCode(err); got != tc.wantCode {
				t.Fatalf("error code = %q (%v), want %q", got, err, tc.wantCode)
			}
			if msg := switchboard.ErrorMessage(err); !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("message = %q, want it to mention %q", msg, tc.wantMsg)
			}
		})
	}
}

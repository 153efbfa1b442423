package routinge2e

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"switchboard/handler/dev/graphsim"
	"switchboard/handler/internal/e2e"
)

// teamsFront stands in front of the Graph simulator: it answers
// GET /v1.0/teams/{id}/members itself (the simulator has no teams) and
// passes every other request on to the simulator.
type teamsFront struct {
	mu    sync.Mutex
	teams map[string][]string
	proxy *httputil.ReverseProxy
}

func newTeamsFront(t *testing.T, sim *graphsim.Sim) (*teamsFront, *httptest.Server) {
	t.Helper()
	target, err := url.Parse(sim.GraphURL())
	if err != nil {
		t.Fatal(err)
	}
	f := &teamsFront{teams: map[string][]string{}}
	f.proxy = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host, r.Out.Host = target.Scheme, target.Host, target.Host
		},
		Transport: sim.HTTPClient().Transport,
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *teamsFront) set(team string, members ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.teams[team] = members
}

func (f *teamsFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1.0/teams/")
	if !ok {
		f.proxy.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	team, ok := strings.CutSuffix(rest, "/members")
	f.mu.Lock()
	members, known := f.teams[team]
	f.mu.Unlock()
	switch {
	case !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer "):
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":{"code":"InvalidAuthenticationToken","message":"no token"}}`))
	case !ok || !known:
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":{"code":"NotFound","message":"no such team"}}`))
	default:
		value := make([]map[string]any, len(members))
		for i, u := range members {
			value[i] = map[string]any{"@odata.type": "#microsoft.graph.aadUserConversationMember", "id": "m-" + u, "roles": []string{}, "userId": u}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"value": value})
	}
}

type serviceReply struct {
	Members []struct {
		UserID string `json:"userId"`
		Active bool   `json:"active"`
	} `json:"members"`
	TeamID       *string `json:"teamId"`
	LastTeamSync *string `json:"lastTeamSync"`
}

func (s serviceReply) flags() map[string]bool {
	out := map[string]bool{}
	for _, m := range s.Members {
		out[m.UserID] = m.Active
	}
	return out
}

// A service backed by a Teams team gets its members from Graph on PUT and
// on POST .../sync, keeps the active flags across syncs, and its members
// are polled for presence and routed like listed ones.
func TestTeamServiceEndToEnd(t *testing.T) {
	tn := e2e.NewTenant(t, e2e.TenantOptions{Sim: graphsim.Options{Seed: 12}, ID: tenant, App: appID, Secret: appSecret,
		Users: 4, Domain: "contoso.example"})
	users := tn.UserIDs()
	teams, front := newTeamsFront(t, tn.Sim)
	const team = "1e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b"
	teams.set(team, users[0], users[1], users[2])

	// Graph is the teams front, which passes all but team members on.
	env := tn.Start(t, e2e.Options{Env: map[string]string{"GRAPH_BASE_URL": front.URL + "/v1.0"}})
	path := "/api/tenants/" + tenant + "/services/team"
	decode := func(raw []byte) serviceReply {
		t.Helper()
		var s serviceReply
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatalf("service reply: %v: %s", err, raw)
		}
		return s
	}

	status, _, raw := env.Do(t, "PUT", path, map[string]any{"name": "Team", "teamId": team, "members": []map[string]any{{"userId": users[1], "active": false}}})
	if status != http.StatusCreated {
		t.Fatalf("PUT: %d %s", status, raw)
	}
	svc := decode(raw)
	if want := map[string]bool{users[0]: true, users[1]: false, users[2]: true}; !equalFlags(svc.flags(), want) || svc.LastTeamSync == nil {
		t.Fatalf("after PUT: members %v, lastTeamSync %v; want %v and a sync time", svc.flags(), svc.LastTeamSync, want)
	}

	teams.set(team, users[1], users[2], users[3])
	status, _, raw = env.Do(t, "POST", path+"/sync", nil)
	if status != http.StatusOK {
		t.Fatalf("sync: %d %s", status, raw)
	}
	if want := map[string]bool{users[1]: false, users[2]: true, users[3]: true}; !equalFlags(decode(raw).flags(), want) {
		t.Fatalf("after sync: members %v, want %v", decode(raw).flags(), want)
	}

	// The new member is tracked: the poll reads it, and it can be routed.
	env.Invoke(t, "PresencePoll")
	status, _, raw = env.Do(t, "POST", path+"/route", map[string]any{"conversationId": "c1"})
	if status != http.StatusOK {
		t.Fatalf("route: %d %s", status, raw)
	}
	var r routeReply
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	if got, want := r.reasons(), map[string]string{users[1]: "NotActive"}; !mapsEqual(got, want) {
		t.Errorf("reasons = %v, want %v", got, want)
	}
	var routed []string
	for _, a := range r.Agents {
		routed = append(routed, a.UserID)
	}
	for _, c := range r.Candidates {
		routed = append(routed, c.UserID)
	}
	slices.Sort(routed)
	want := []string{users[2], users[3]}
	slices.Sort(want)
	if !slices.Equal(routed, want) {
		t.Errorf("eligible = %v, want %v", routed, want)
	}

	status, _, raw = env.Do(t, "PUT", "/api/tenants/"+tenant+"/services/other", map[string]any{"name": "Other", "teamId": "00000000-0000-4000-8000-00000000dead"})
	if status != http.StatusBadRequest || !strings.Contains(string(raw), `"field":"teamId"`) {
		t.Errorf("PUT with an unknown team: %d %s, want 400 on teamId", status, raw)
	}
}

func equalFlags(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

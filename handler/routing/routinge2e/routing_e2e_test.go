// Package routinge2e tests routing end to end: the real handler behind the
// local runner, on Azurite, with presence polled from the Graph simulator.
package routinge2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"switchboard/handler/dev/graphsim"
	"switchboard/handler/internal/e2e"
	"switchboard/handler/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	tenant    = "6d5c4b3a-2f1e-4d0c-9b8a-7f6e5d4c3b2a"
	appID     = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
	appSecret = "e2e-app-secret"
)

type routeReply struct {
	ConversationID string `json:"conversationId"`
	Agents         []struct {
		UserID        string     `json:"userId"`
		HoldExpiresAt *time.Time `json:"holdExpiresAt"`
	} `json:"agents"`
	Candidates []struct {
		UserID   string `json:"userId"`
		Presence struct {
			Availability string `json:"availability"`
			Source       string `json:"source"`
			AgeSeconds   *int   `json:"ageSeconds"`
		} `json:"presence"`
	} `json:"candidates"`
	Excluded []struct {
		UserID  string `json:"userId"`
		Reason  string `json:"reason"`
		Message string `json:"message"`
	} `json:"excluded"`
}

func (r routeReply) reasons() map[string]string {
	out := map[string]string{}
	for _, x := range r.Excluded {
		out[x.UserID] = x.Reason
	}
	return out
}

type harness struct {
	t   *testing.T
	env *e2e.Env
	sim *graphsim.Sim
}

func (h *harness) route(service string, body map[string]any) routeReply {
	h.t.Helper()
	status, _, raw := h.env.Do(h.t, "POST", "/api/tenants/"+tenant+"/services/"+service+"/route", body)
	if status != http.StatusOK {
		h.t.Fatalf("route %v: %d %s", body, status, raw)
	}
	var r routeReply
	if err := json.Unmarshal(raw, &r); err != nil {
		h.t.Fatalf("route reply: %v: %s", err, raw)
	}
	return r
}

func (h *harness) release(conversation string) {
	h.t.Helper()
	if status, _, raw := h.env.Do(h.t, "DELETE", "/api/tenants/"+tenant+"/conversations/"+conversation, nil); status != http.StatusNoContent {
		h.t.Fatalf("release %s: %d %s", conversation, status, raw)
	}
}

// start runs the handler behind the local runner, with the Graph simulator
// as Graph and Entra, and a tenant of n Available users who are the members
// of service "support"; their presence is polled once.
func start(t *testing.T, n int) (*harness, []string) {
	t.Helper()
	tn := e2e.NewTenant(t, e2e.TenantOptions{Sim: graphsim.Options{Seed: 11}, ID: tenant, App: appID, Secret: appSecret,
		Users: n, Domain: "contoso.example"})
	users := tn.UserIDs()
	env := tn.Start(t, e2e.Options{})
	h := &harness{t: t, env: env, sim: tn.Sim}
	members := make([]map[string]any, len(users))
	for i, u := range users {
		members[i] = map[string]any{"userId": u, "active": true}
	}
	service := map[string]any{"name": "Support", "members": members, "distribution": map[string]any{"order": "LongestIdle", "holdSeconds": 300}}
	if status, _, raw := env.Do(t, "PUT", "/api/tenants/"+tenant+"/services/support", service); status != http.StatusCreated {
		t.Fatalf("PUT service: %d %s", status, raw)
	}
	env.Invoke(t, "PresencePoll")
	return h, users
}

// 50 concurrent reserving routes on a service of 20 eligible agents hold
// 20 distinct agents and find nobody for the other 30; released agents are
// eligible again and LongestIdle then prefers the one idle longest; a hold
// expires by itself.
func TestRoutingEndToEnd(t *testing.T) {
	h, users := start(t, 20)

	// Everyone is Available and free.
	first := h.route("support", map[string]any{"conversationId": "probe"})
	if len(first.Agents) != 1 || len(first.Candidates) != 19 || len(first.Excluded) != 0 {
		t.Fatalf("before any hold: %d agents, %d candidates, %d excluded (%v); want 1, 19, 0", len(first.Agents), len(first.Candidates), len(first.Excluded), first.reasons())
	}
	if c := first.Candidates[0]; c.Presence.Availability != "Available" || c.Presence.Source != "application" || c.Presence.AgeSeconds == nil {
		t.Errorf("candidate presence = %+v, want Available from the application source with an age", c.Presence)
	}

	// 50 concurrent reservations.
	replies := make([]routeReply, 50)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i] = h.route("support", map[string]any{"conversationId": fmt.Sprintf("c%02d", i), "reserve": true})
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	heldBy := map[string]string{} // agent → conversation
	none := 0
	for i, r := range replies {
		switch len(r.Agents) {
		case 0:
			none++
			for _, u := range users {
				if got := r.reasons()[u]; got != "InConversation" {
					t.Errorf("route %d without agent: %s excluded as %q, want InConversation", i, u, got)
					break
				}
			}
		case 1:
			a := r.Agents[0]
			if other, dup := heldBy[a.UserID]; dup {
				t.Errorf("agent %s held by both %s and %s", a.UserID, other, r.ConversationID)
			}
			heldBy[a.UserID] = r.ConversationID
			if a.HoldExpiresAt == nil || time.Until(*a.HoldExpiresAt) < 4*time.Minute {
				t.Errorf("route %d: hold expires at %v, want about 5 minutes from now", i, a.HoldExpiresAt)
			}
		default:
			t.Errorf("route %d: %d agents", i, len(r.Agents))
		}
	}
	if len(heldBy) != 20 || none != 30 {
		t.Fatalf("%d agents held, %d routes without agent; want 20 and 30", len(heldBy), none)
	}
	// Asked again, a conversation keeps its agent.
	for agent, c := range heldBy {
		again := h.route("support", map[string]any{"conversationId": c, "reserve": true})
		if len(again.Agents) != 1 || again.Agents[0].UserID != agent {
			t.Errorf("%s asked again: agents %v, want %s", c, again.Agents, agent)
		}
		break
	}

	// Release in reverse user order: the last user's agent has been idle
	// longest afterwards.
	order := slices.Clone(users)
	slices.Sort(order)
	slices.Reverse(order)
	for _, agent := range order {
		h.release(heldBy[agent])
		time.Sleep(5 * time.Millisecond) // distinct end times
	}
	r := h.route("support", map[string]any{"conversationId": "after-release"})
	if len(r.Agents) != 1 || r.Agents[0].UserID != order[0] {
		t.Fatalf("after release: agents %v, want %s (idle longest)", r.Agents, order[0])
	}
	if len(r.Candidates) != 19 {
		t.Errorf("after release: %d candidates, want the other 19", len(r.Candidates))
	}
	for i, c := range r.Candidates {
		if c.UserID != order[i+1] {
			t.Errorf("candidate %d = %s, want %s (ranked by idle time)", i, c.UserID, order[i+1])
		}
	}

	// A 5-second hold expires by itself.
	held := h.route("support", map[string]any{"conversationId": "short", "reserve": true, "holdSeconds": 5})
	if len(held.Agents) != 1 || held.Agents[0].UserID != order[0] {
		t.Fatalf("short hold: agents %v, want %s", held.Agents, order[0])
	}
	during := h.route("support", map[string]any{"conversationId": "probe-2"})
	if got := during.reasons()[order[0]]; got != "InConversation" {
		t.Fatalf("during the hold: %s is %q, want InConversation", order[0], got)
	}
	time.Sleep(time.Until(*held.Agents[0].HoldExpiresAt) + 200*time.Millisecond)
	after := h.route("support", map[string]any{"conversationId": "probe-3"})
	if got := after.reasons()[order[0]]; got != "" {
		t.Errorf("after the hold expired: %s is excluded (%s), want eligible", order[0], got)
	}
	if len(after.Agents) != 1 || after.Agents[0].UserID != order[1] {
		t.Errorf("after the hold expired: agents %v, want %s (the agent whose hold lapsed counts as idle since it expired)", after.Agents, order[1])
	}
}

// Presence and membership as the API reports them: a user who goes Do not
// disturb in Teams is excluded after the next poll, with the reason; a
// member who opts out is NotActive; a preferred user who is not a member
// is NotMember.
func TestRoutingReasonsEndToEnd(t *testing.T) {
	h, users := start(t, 3)
	h.sim.SetPresence(tenant, users[0], "DoNotDisturb", "Presenting", false)
	h.env.Invoke(t, "PresencePoll")
	members := []map[string]any{{"userId": users[0]}, {"userId": users[1], "active": false}, {"userId": users[2]}}
	if status, _, raw := h.env.Do(t, "PUT", "/api/tenants/"+tenant+"/services/support", map[string]any{"name": "Support", "members": members}); status != http.StatusOK {
		t.Fatalf("PUT: %d %s", status, raw)
	}
	stranger := "99999999-0000-4000-8000-000000000000"
	r := h.route("support", map[string]any{"preferredUsers": []string{stranger}})
	want := map[string]string{stranger: "NotMember", users[0]: "DoNotDisturb", users[1]: "NotActive"}
	if got := r.reasons(); !mapsEqual(got, want) {
		t.Errorf("reasons = %v, want %v", got, want)
	}
	if len(r.Agents) != 1 || r.Agents[0].UserID != users[2] {
		t.Errorf("agents = %v, want %s", r.Agents, users[2])
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

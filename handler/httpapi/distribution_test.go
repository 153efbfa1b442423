package httpapi

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"switchboard/handler/distribution"
	"switchboard/handler/internal/fakeclock"
	"switchboard/handler/routing"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

func newDistributionEnv(t *testing.T) (*routingEnv, *distribution.Service) {
	t.Helper()
	clock := fakeclock.New(routingT0)
	presence := &routingPresence{now: clock.Now, readings: map[string]switchboard.Presence{}}
	tables := store.NewMemoryTables()
	engine, err := routing.New(context.Background(), routing.Options{Tables: tables, Presence: presence, StaleAfter: 120 * time.Second, Now: clock.Now, StateRefresh: -1})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := distribution.New(context.Background(), distribution.Options{Tables: tables, Agents: engine, Presence: presence, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Wait)
	rt := NewRouter(slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	(&RoutingAPI{Engine: engine, Now: clock.Now, Conversations: svc}).Register(rt)
	(&DistributionAPI{Service: svc, Now: clock.Now}).Register(rt)
	return &routingEnv{t: t, h: rt, clock: clock, presence: presence}, svc
}

func TestDistributionAPI(t *testing.T) {
	e, svc := newDistributionEnv(t)
	for i := 1; i <= 2; i++ {
		e.presence.set(agentUser(i), switchboard.Available, switchboard.ActivityAvailable, true)
	}
	body := fmt.Sprintf(`{"name": "Support", "members": [{"userId": %q, "skills": {"german": 3}}, {"userId": %q}], "distribution": {"ringSeconds": 30}}`, agentUser(1), agentUser(2))
	if rec := e.call("PUT", servicePath, body, nil); rec.Code != http.StatusCreated {
		t.Fatalf("PUT: %d %s", rec.Code, rec.Body)
	}
	base := "/api/tenants/" + routingTenant
	var c conversationJSON
	rec := e.call("POST", servicePath+"/queue", `{"conversationId": "c-1", "priority": 70, "requiredSkills": [{"name": "german", "minLevel": 2}], "customer": {"displayName": "Ada", "phone": "+41 44 000 00 00"}}`, &c)
	if rec.Code != http.StatusAccepted || c.State != "Offered" || len(c.Offers) != 1 || c.Offers[0].UserID != agentUser(1) || c.Customer.Phone != "+41440000000" {
		t.Fatalf("enqueue: %d %s", rec.Code, rec.Body)
	}
	if rec := e.call("POST", servicePath+"/queue", `{"conversationId": "c-1"}`, nil); rec.Code != http.StatusOK {
		t.Errorf("the same id again: %d, want 200", rec.Code)
	}
	for _, tc := range []struct{ body, field string }{
		{`{"conversationId": "c-2", "priority": 100}`, "priority"},
		{`{"conversationId": "c-2", "requiredSkills": [{"name": "german", "minLevel": 0}]}`, "requiredSkills[0].minLevel"},
		{`{"conversationId": "c-2", "nope": 1}`, "nope"},
		{`{"conversationId": "c-2", "customer": {"phone": "x"}}`, "customer.phone"},
	} {
		var p problem
		if rec := e.call("POST", servicePath+"/queue", tc.body, &p); rec.Code != http.StatusBadRequest || p.Field != tc.field || !strings.Contains(rec.Header().Get("Content-Type"), "problem+json") {
			t.Errorf("%s: %d field %q, want 400 naming %s", tc.body, rec.Code, p.Field, tc.field)
		}
	}
	// The agent's state, then its accept (the caller as ?asUser with
	// API_AUTH=none), a second agent's accept refused.
	var a agentJSONView
	if rec := e.call("GET", base+"/agents/"+agentUser(1), "", &a); rec.Code != http.StatusOK || a.Offer == nil || a.Offer.ConversationID != "c-1" {
		t.Fatalf("agent state: %d %s", rec.Code, rec.Body)
	}
	var p problem
	if rec := e.call("POST", base+"/conversations/c-1/accept", fmt.Sprintf(`{"userId": %q}`, agentUser(2)), &p); rec.Code != http.StatusConflict || p.Type != "offer-not-pending" {
		t.Errorf("accept by an agent not offered: %d %+v, want 409 offer-not-pending", rec.Code, p)
	}
	if rec := e.call("POST", base+"/conversations/c-1/accept?asUser="+agentUser(1), "", &c); rec.Code != http.StatusOK || c.State != "Connected" || c.Agent == nil {
		t.Fatalf("accept: %d %s", rec.Code, rec.Body)
	}
	var q queueReplyJSON
	if rec := e.call("GET", servicePath+"/queue", "", &q); rec.Code != http.StatusOK || q.Waiting != 0 || q.Offered != 0 || q.AgentsEligible != 1 {
		t.Errorf("queue: %d %s", rec.Code, rec.Body)
	}
	if rec := e.call("DELETE", base+"/conversations/c-1", "", nil); rec.Code != http.StatusNoContent {
		t.Fatalf("release: %d %s", rec.Code, rec.Body)
	}
	if rec := e.call("GET", base+"/conversations/c-1", "", &c); rec.Code != http.StatusOK || c.State != "Ended" || c.EndedAt == nil {
		t.Errorf("after release: %d %s", rec.Code, rec.Body)
	}
	var list struct {
		Value []serviceSummaryJSON `json:"value"`
	}
	if rec := e.call("GET", base+"/services", "", &list); rec.Code != http.StatusOK || len(list.Value) != 1 || list.Value[0].MemberCount != 2 {
		t.Errorf("services: %d %s", rec.Code, rec.Body)
	}
	for _, path := range []string{"/agents/" + agentUser(1) + "/rona/reset", "/agents/" + agentUser(1) + "/after-call-work/end"} {
		if rec := e.call("POST", base+path, "", nil); rec.Code != http.StatusNoContent {
			t.Errorf("%s: %d", path, rec.Code)
		}
	}
	if rec := e.call("GET", base+"/agents/nope", "", &p); rec.Code != http.StatusBadRequest || p.Field != "userId" {
		t.Errorf("agent nope: %d %+v", rec.Code, p)
	}
	if rec := e.call("GET", base+"/conversations/unknown", "", nil); rec.Code != http.StatusNotFound {
		t.Errorf("unknown conversation: %d", rec.Code)
	}
	// The route API uses a queued conversation's skills.
	e.call("POST", servicePath+"/queue", `{"conversationId": "c-3", "requiredSkills": [{"name": "german", "minLevel": 5}]}`, nil)
	svc.Wait()
	var r routeJSON
	e.call("POST", servicePath+"/route", `{"conversationId": "c-3"}`, &r)
	reasons := map[string]string{}
	for _, x := range r.Excluded {
		reasons[x.UserID] = x.Reason
	}
	if reasons[agentUser(1)] != "SkillMismatch" || reasons[agentUser(2)] != "SkillMismatch" {
		t.Errorf("route for queued c-3 (german >= 5): %v, want SkillMismatch for both", reasons)
	}
}

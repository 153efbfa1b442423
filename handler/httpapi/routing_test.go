package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"switchboard/handler/internal/fakeclock"
	"sync"
	"testing"
	"time"

	"switchboard/handler/routing"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

const routingTenant = "3f6c2a4e-1b2d-4c3e-9f00-aaaaaaaaaaaa"

var routingT0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// routingPresence is a PresenceStore over a map; readings are confirmed
// ten seconds before the clock's time.
type routingPresence struct {
	mu       sync.Mutex
	now      func() time.Time
	readings map[string]switchboard.Presence
}

func (p *routingPresence) set(user, availability, activity string, extended bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.readings[user] = switchboard.Presence{UserID: user, Availability: availability, Activity: activity, Extended: extended, Source: switchboard.SourceAccount1}
}

func (p *routingPresence) Readings(ctx context.Context, tenantID string, userIDs []string) (map[string]switchboard.Presence, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]switchboard.Presence{}
	for _, u := range userIDs {
		if r, ok := p.readings[u]; ok {
			r.ConfirmedAt = p.now().Add(-10 * time.Second)
			out[u] = r
		}
	}
	return out, nil
}

type routingClock = fakeclock.Clock

type routingEnv struct {
	t        *testing.T
	h        http.Handler
	clock    *routingClock
	presence *routingPresence
}

func newRoutingEnv(t *testing.T) *routingEnv {
	t.Helper()
	clock := fakeclock.New(routingT0)
	presence := &routingPresence{now: clock.Now, readings: map[string]switchboard.Presence{}}
	engine, err := routing.New(context.Background(), routing.Options{Tables: store.NewMemoryTables(), Presence: presence, StaleAfter: 120 * time.Second, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	rt := NewRouter(slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	(&RoutingAPI{Engine: engine, Now: clock.Now}).Register(rt)
	return &routingEnv{t: t, h: rt, clock: clock, presence: presence}
}

// call sends a request and decodes a JSON reply into out (when not nil).
func (e *routingEnv) call(method, path, body string, out any, hdr ...string) *httptest.ResponseRecorder {
	e.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	if out != nil && rec.Body.Len() > 0 {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			e.t.Fatalf("%s %s: reply is not JSON: %v\n%s", method, path, err, rec.Body)
		}
	}
	return rec
}

func agentUser(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

const servicePath = "/api/tenants/" + routingTenant + "/services/support"

func TestServiceAPI(t *testing.T) {
	e := newRoutingEnv(t)
	body := fmt.Sprintf(`{"name": "Support", "members": [{"userId": %q, "active": true}, {"userId": %q, "active": false}],
		"teamId": null, "distribution": {"deliverWhileBusy": true, "deliverWhileAway": false, "order": "RoundRobin", "broadcastSize": 10, "holdSeconds": 45}}`,
		agentUser(2), agentUser(1))
	var created map[string]any
	rec := e.call("PUT", servicePath, body, &created)
	if rec.Code != http.StatusCreated {
		t.Fatalf("PUT: %d %s, want 201", rec.Code, rec.Body)
	}
	etag := rec.Header().Get("ETag")
	if etag == "" {
		t.Error("PUT: no ETag")
	}

	var got map[string]any
	rec = e.call("GET", servicePath, "", &got)
	if rec.Code != http.StatusOK || rec.Header().Get("ETag") != etag {
		t.Fatalf("GET: %d (ETag %q, want %q) %s", rec.Code, rec.Header().Get("ETag"), etag, rec.Body)
	}
	want := map[string]any{
		"id": "support", "name": "Support", "teamId": nil,
		"members": []any{
			map[string]any{"userId": agentUser(1), "active": false},
			map[string]any{"userId": agentUser(2), "active": true},
		},
		"distribution": map[string]any{"deliverWhileBusy": true, "deliverWhileAway": false, "order": "RoundRobin", "broadcastSize": 10.0, "holdSeconds": 45.0,
			// SPEC section 10's defaults.
			"ringSeconds": 20.0, "afterCallWorkSeconds": 0.0,
			"rona": map[string]any{"enabled": true, "resetSeconds": 600.0, "onDecline": false},
			"queue": map[string]any{"maxWaitSeconds": 1200.0, "maxLength": 50.0,
				"onTimeout":  map[string]any{"action": "Disconnect", "serviceId": nil},
				"onFull":     map[string]any{"action": "Disconnect", "serviceId": nil},
				"onNoAgents": map[string]any{"action": "Queue", "serviceId": nil}}},
		"memberCount": 2.0, "activeMemberCount": 1.0,
		"createdAt": "2026-11-22T12:00:00Z", "updatedAt": "2026-11-22T12:00:00Z",
		"lastTeamSync": nil, "lastTeamSyncError": nil,
	}
	if a, b := mustJSON(t, got), mustJSON(t, want); a != b {
		t.Errorf("GET body =\n%s\nwant\n%s", a, b)
	}

	// What GET returned can be PUT back (read-only fields ignored).
	e.clock.Advance(time.Minute)
	got["name"] = "Support 2"
	rec = e.call("PUT", servicePath, mustJSON(t, got), nil, "If-Match", etag)
	if rec.Code != http.StatusOK {
		t.Fatalf("PUT back: %d %s", rec.Code, rec.Body)
	}
	// The old ETag is stale now.
	rec = e.call("PUT", servicePath, body, nil, "If-Match", etag)
	if p := problemOf(t, rec); rec.Code != http.StatusPreconditionFailed || p.Type != "precondition-failed" {
		t.Errorf("stale If-Match: %d %+v, want 412", rec.Code, p)
	}

	rec = e.call("DELETE", servicePath, "", nil)
	if rec.Code != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", rec.Code, rec.Body)
	}
	rec = e.call("GET", servicePath, "", nil)
	if p := problemOf(t, rec); rec.Code != http.StatusNotFound || p.Type != "not-found" {
		t.Errorf("GET after DELETE: %d %+v", rec.Code, p)
	}
}

func TestServiceAPIValidation(t *testing.T) {
	e := newRoutingEnv(t)
	for _, tc := range []struct {
		name      string
		path      string
		body      string
		wantField string
	}{
		{"no name", servicePath, `{"members": []}`, "name"},
		{"order not in the enum", servicePath, `{"name": "S", "distribution": {"order": "Fastest"}}`, "distribution.order"},
		{"broadcast size over 50", servicePath, `{"name": "S", "distribution": {"broadcastSize": 51}}`, "distribution.broadcastSize"},
		{"hold under 5 s", servicePath, `{"name": "S", "distribution": {"holdSeconds": 1}}`, "distribution.holdSeconds"},
		{"hold of the wrong type", servicePath, `{"name": "S", "distribution": {"holdSeconds": "30"}}`, "distribution.holdSeconds"},
		{"member id not a GUID", servicePath, `{"name": "S", "members": [{"userId": "alice"}]}`, "members[0].userId"},
		{"unknown field", servicePath, `{"name": "S", "colour": "red"}`, "colour"},
		{"bad service id", "/api/tenants/" + routingTenant + "/services/a%20b", `{"name": "S"}`, "s"},
		{"bad tenant id", "/api/tenants/contoso/services/support", `{"name": "S"}`, "t"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := e.call("PUT", tc.path, tc.body, nil)
			p := problemOf(t, rec)
			if rec.Code != http.StatusBadRequest || p.Field != tc.wantField || p.Type != "validation-error" {
				t.Errorf("%d %+v, want 400 validation-error on %q", rec.Code, p, tc.wantField)
			}
		})
	}
	if rec := e.call("GET", servicePath, "", nil); rec.Code != http.StatusNotFound {
		t.Errorf("after refused PUTs, GET: %d, want 404", rec.Code)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type routingProblem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Field  string `json:"field"`
}

func problemOf(t *testing.T, rec *httptest.ResponseRecorder) routingProblem {
	t.Helper()
	var p routingProblem
	if rec.Code < 400 {
		return p
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Errorf("problem is not JSON: %s", rec.Body)
	}
	return p
}

// The route reply has exactly the shape of SPEC section 6.
func TestRouteAPI(t *testing.T) {
	e := newRoutingEnv(t)
	u1, u2, u3, u4 := agentUser(1), agentUser(2), agentUser(3), agentUser(4)
	body := fmt.Sprintf(`{"name": "Support", "members": [{"userId": %q}, {"userId": %q}, {"userId": %q}, {"userId": %q}]}`, u1, u2, u3, u4)
	if rec := e.call("PUT", servicePath, body, nil); rec.Code != http.StatusCreated {
		t.Fatalf("PUT: %d %s", rec.Code, rec.Body)
	}
	e.presence.set(u1, switchboard.Available, switchboard.ActivityAvailable, true)
	e.presence.set(u2, switchboard.Available, switchboard.ActivityAvailable, true)
	e.presence.set(u3, switchboard.Busy, switchboard.ActivityInACall, true)

	rec := e.call("POST", servicePath+"/route", `{"conversationId": "c-1", "reserve": true, "holdSeconds": 30}`, nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("route: %d %s", rec.Code, rec.Body)
	}
	want := fmt.Sprintf(`{"conversationId":"c-1",`+
		`"agents":[{"userId":%q,"holdExpiresAt":"2026-11-22T12:00:30Z"}],`+
		`"candidates":[{"userId":%q,"presence":{"availability":"Available","activity":"Available","source":"account1","ageSeconds":10}}],`+
		`"excluded":[{"userId":%q,"reason":"InACall","message":"Busy, in a call (Teams)","presence":{"availability":"Busy","activity":"InACall","source":"account1","ageSeconds":10}},`+
		`{"userId":%q,"reason":"PresenceUnknown","message":"no presence reading yet: the presence poll has not read this user","presence":{}}]}`+"\n",
		u1, u2, u3, u4)
	if got := rec.Body.String(); got != want {
		t.Errorf("route reply =\n%s\nwant\n%s", got, want)
	}

	// Asked again: the same hold.
	var again routeJSON
	e.clock.Advance(5 * time.Second)
	e.call("POST", servicePath+"/route", `{"conversationId": "c-1", "reserve": true}`, &again)
	if len(again.Agents) != 1 || again.Agents[0].UserID != u1 || !again.Agents[0].HoldExpiresAt.Equal(routingT0.Add(30*time.Second)) {
		t.Errorf("asked again: agents %+v, want %s until 12:00:30", again.Agents, u1)
	}

	// Without reserve, no hold time; a preferred non-member is NotMember.
	var peek routeJSON
	rec = e.call("POST", servicePath+"/route", fmt.Sprintf(`{"preferredUsers": [%q, %q]}`, agentUser(99), u2), &peek)
	if rec.Code != http.StatusOK || len(peek.Agents) != 1 || peek.Agents[0].UserID != u2 || peek.Agents[0].HoldExpiresAt != nil {
		t.Fatalf("peek: %d %s", rec.Code, rec.Body)
	}
	if x := peek.Excluded[0]; x.UserID != agentUser(99) || x.Reason != "NotMember" {
		t.Errorf("first exclusion = %+v, want user 99 NotMember", x)
	}
	if !strings.Contains(rec.Body.String(), `"holdExpiresAt":null`) {
		t.Errorf("an unreserved agent's holdExpiresAt is not null: %s", rec.Body)
	}

	// Release: u1 is free again.
	if rec := e.call("DELETE", "/api/tenants/"+routingTenant+"/conversations/c-1", "", nil); rec.Code != http.StatusNoContent {
		t.Fatalf("DELETE conversation: %d %s", rec.Code, rec.Body)
	}
	if rec := e.call("DELETE", "/api/tenants/"+routingTenant+"/conversations/c-1", "", nil); rec.Code != http.StatusNoContent {
		t.Errorf("second DELETE conversation: %d, want 204", rec.Code)
	}
	var after routeJSON
	e.call("POST", servicePath+"/route", `{"conversationId": "c-2", "reserve": true}`, &after)
	if len(after.Agents) != 1 || after.Agents[0].UserID != u2 {
		t.Errorf("after release: agents %+v, want %s (never routed, so idle longest)", after.Agents, u2)
	}
}

func TestRouteAPIValidation(t *testing.T) {
	e := newRoutingEnv(t)
	if rec := e.call("PUT", servicePath, `{"name": "S"}`, nil); rec.Code != http.StatusCreated {
		t.Fatalf("PUT: %d", rec.Code)
	}
	for _, tc := range []struct {
		name       string
		path       string
		body       string
		wantStatus int
		wantField  string
	}{
		{"hold under 5 s", servicePath + "/route", `{"conversationId": "c", "reserve": true, "holdSeconds": 4}`, 400, "holdSeconds"},
		{"hold over an hour", servicePath + "/route", `{"conversationId": "c", "reserve": true, "holdSeconds": 3601}`, 400, "holdSeconds"},
		{"reserve without conversation", servicePath + "/route", `{"reserve": true}`, 400, "conversationId"},
		{"conversation id too long", servicePath + "/route", `{"conversationId": "` + strings.Repeat("c", 129) + `"}`, 400, "conversationId"},
		{"reserve not a boolean", servicePath + "/route", `{"conversationId": "c", "reserve": "yes"}`, 400, "reserve"},
		{"empty body", servicePath + "/route", ``, 400, ""},
		{"unknown service", "/api/tenants/" + routingTenant + "/services/nope/route", `{"conversationId": "c"}`, 404, ""},
		{"bad conversation id on release", "/api/tenants/" + routingTenant + "/conversations/a%20b", ``, 400, "c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := "POST"
			if strings.Contains(tc.path, "/conversations/") {
				method = "DELETE"
			}
			rec := e.call(method, tc.path, tc.body, nil)
			p := problemOf(t, rec)
			if rec.Code != tc.wantStatus || p.Field != tc.wantField {
				t.Errorf("%d %+v, want %d on %q", rec.Code, p, tc.wantStatus, tc.wantField)
			}
		})
	}
}

func TestSyncWithoutTeam(t *testing.T) {
	e := newRoutingEnv(t)
	e.call("PUT", servicePath, `{"name": "S"}`, nil)
	rec := e.call("POST", servicePath+"/sync", "", nil)
	if p := problemOf(t, rec); rec.Code != http.StatusBadRequest || p.Field != "teamId" {
		t.Errorf("sync of a service without team: %d %+v", rec.Code, p)
	}
	rec = e.call("PUT", servicePath, `{"name": "S", "teamId": "11111111-2222-4333-8444-555555555555"}`, nil)
	if p := problemOf(t, rec); rec.Code != http.StatusServiceUnavailable || p.Field != "teamId" {
		t.Errorf("team service without Graph: %d %+v, want 503 on teamId", rec.Code, p)
	}
}

func TestOutboundTaskConversationsAreNotReachable(t *testing.T) {
	e := newRoutingEnv(t)
	body := fmt.Sprintf(`{"name": "Support", "members": [{"userId": %q, "active": true}]}`, agentUser(1))
	if rec := e.call("PUT", servicePath, body, nil); rec.Code != http.StatusCreated {
		t.Fatalf("PUT: %d %s", rec.Code, rec.Body)
	}
	for _, c := range []struct{ name, method, path, body, field string }{
		{"route", "POST", servicePath + "/route", `{"conversationId": "task:abc:1", "reserve": true}`, "conversationId"},
		{"route, upper case", "POST", servicePath + "/route", `{"conversationId": "TASK:abc:1", "reserve": true}`, "conversationId"},
		{"release", "DELETE", "/api/tenants/" + routingTenant + "/conversations/task:abc:1", "", "c"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var p struct {
				Type, Field string
			}
			rec := e.call(c.method, c.path, c.body, &p)
			if rec.Code != http.StatusBadRequest || p.Field != c.field {
				t.Errorf("%s %s: %d field %q, want 400 naming %q: %s", c.method, c.path, rec.Code, p.Field, c.field, rec.Body)
			}
		})
	}
	if rec := e.call("DELETE", "/api/tenants/"+routingTenant+"/conversations/tasks-review-1", "", nil); rec.Code != http.StatusNoContent {
		t.Errorf("an ordinary conversation id that merely starts with 'task': %d, want 204", rec.Code)
	}
}

package interact_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"switchboard/handler/auth"
	"switchboard/handler/httpapi"
	"switchboard/handler/interact"
	"switchboard/handler/internal/testenv"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

var service = map[string]any{"serviceId": "support", "customer": map[string]any{"displayName": "Ada", "email": "ada@example.com"}}

// The three checks, in their order, and each authorization mode with no
// token, an expired one, one signed by an unknown key, one of another
// tenant and a good one.
func TestWidgetChecks(t *testing.T) {
	t.Run("disabled first, whatever the key", func(t *testing.T) {
		e := newEnv(t)
		e.settings.set(tenant, func(s *interact.TenantConfig) { s.Enabled = false })
		for _, key := range []string{widgetKey, "wrong", ""} {
			r := e.do("POST", "/api/interact/"+tenant+"/sessions", service, "X-Widget-Key", key)
			if r.status != http.StatusForbidden || r.str("type") != "interact-disabled" {
				t.Errorf("key %q: %d %s, want 403 interact-disabled", key, r.status, r.body)
			}
		}
		r := e.do("GET", "/api/interact/"+other+"/sessions/"+"00000000-0000-4000-8000-000000000000", nil, "X-Widget-Key", widgetKey)
		if r.status != http.StatusForbidden || r.str("type") != "interact-disabled" {
			t.Errorf("tenant without settings: %d %s, want 403 interact-disabled", r.status, r.body)
		}
	})
	t.Run("widget key", func(t *testing.T) {
		e := newEnv(t)
		for name, key := range map[string]string{"missing": "", "wrong": "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633c", "another tenant's form": "not-a-guid"} {
			r := e.do("POST", "/api/interact/"+tenant+"/sessions", service, "X-Widget-Key", key)
			if r.status != http.StatusUnauthorized || r.str("type") != "invalid-widget-key" {
				t.Errorf("%s: %d %s, want 401 invalid-widget-key", name, r.status, r.body)
			}
		}
		if r := e.create(service); r.status != http.StatusCreated {
			t.Errorf("right key: %d %s", r.status, r.body)
		}
		if r := e.do("POST", "/api/interact/"+tenant+"/sessions", service, "X-Widget-Key", strings.ToUpper(widgetKey)); r.status != http.StatusCreated {
			t.Errorf("right key in upper case (a GUID): %d %s", r.status, r.body)
		}
	})
	for _, mode := range []string{switchboard.InteractAuthorizationVerifyToken, switchboard.InteractAuthorizationVerifyTokenAndTenant} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			e.settings.set(tenant, func(s *interact.TenantConfig) { s.Authorization = mode })
			now := e.clock.Now()
			otherTenant := http.StatusCreated
			otherType := ""
			if mode == switchboard.InteractAuthorizationVerifyTokenAndTenant {
				otherTenant, otherType = http.StatusForbidden, "token-tenant-mismatch"
			}
			cases := []struct {
				name      string
				token     string
				status    int
				typ       string
				titleHas  string
				noBearer  bool
				rawHeader string
			}{
				{name: "no token", noBearer: true, status: 401, typ: "invalid-token", titleHas: "Bearer"},
				{name: "expired", token: e.idp.token(t, tenant, now.Add(-3*time.Hour), false, nil), status: 401, typ: "invalid-token", titleHas: "expired"},
				{name: "unknown key", token: e.idp.token(t, tenant, now, true, nil), status: 401, typ: "invalid-token", titleHas: "signing key"},
				{name: "wrong audience", token: e.idp.token(t, tenant, now, false, map[string]any{"aud": "api://other"}), status: 401, typ: "invalid-token", titleHas: "audience"},
				{name: "another tenant", token: e.idp.token(t, other, now, false, nil), status: otherTenant, typ: otherType},
				{name: "good", token: e.idp.token(t, tenant, now, false, nil), status: 201},
			}
			for _, c := range cases {
				hdr := []string{}
				if !c.noBearer {
					hdr = append(hdr, "Authorization", "Bearer "+c.token)
				}
				r := e.create(service, hdr...)
				if r.status != c.status || r.str("type") != c.typ {
					t.Errorf("%s: %d %s, want %d %q", c.name, r.status, r.body, c.status, c.typ)
				}
				if c.titleHas != "" && !strings.Contains(r.str("title"), c.titleHas) {
					t.Errorf("%s: title %q does not say %q", c.name, r.str("title"), c.titleHas)
				}
			}
			// The checks guard every widget route, not only creation.
			good := e.idp.token(t, tenant, now, false, nil)
			r := e.create(service, "Authorization", "Bearer "+good)
			p := "/api/interact/" + tenant + "/sessions/" + r.str("sessionId")
			if r := e.do("GET", p, nil, "X-Widget-Key", widgetKey, "X-Resume-Token", r.str("resumeToken")); r.status != 401 || r.str("type") != "invalid-token" {
				t.Errorf("GET without a token: %d %s, want 401 invalid-token", r.status, r.body)
			}
			if r := e.do("GET", p, nil, "X-Widget-Key", widgetKey, "X-Resume-Token", r.str("resumeToken"), "Authorization", "Bearer "+good); r.status != 200 {
				t.Errorf("GET with the token: %d %s, want 200", r.status, r.body)
			}
		})
	}
	t.Run("None checks no token", func(t *testing.T) {
		e := newEnv(t)
		if r := e.create(service, "Authorization", "Bearer garbage"); r.status != http.StatusCreated {
			t.Errorf("None with a garbage token: %d %s, want 201", r.status, r.body)
		}
	})
}

// A created session answers as section 12 says, and nothing secret is
// logged.
func TestCreate(t *testing.T) {
	e := newEnv(t)
	r := e.create(service)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id := r.str("sessionId")
	if got, want := r.str("state"), "Waiting"; got != want {
		t.Errorf("state = %q, want %q", got, want)
	}
	if got, want := r.str("conversationId"), "interact:"+id; got != want {
		t.Errorf("conversationId = %q, want %q", got, want)
	}
	if r.v["recoveryTimeoutSeconds"] != float64(20) || r.v["position"] != float64(1) {
		t.Errorf("recoveryTimeoutSeconds, position = %v, %v; want 20, 1", r.v["recoveryTimeoutSeconds"], r.v["position"])
	}
	for _, f := range [][]string{{"resumeToken"}, {"acs", "endpoint"}, {"acs", "userId"}, {"acs", "token"}, {"acs", "expiresOn"}, {"meeting", "id"}, {"meeting", "joinUrl"}} {
		if r.str(f...) == "" {
			t.Errorf("%s missing in %s", strings.Join(f, "."), r.body)
		}
	}
	if got, want := r.header.Get("Location"), "/api/interact/"+tenant+"/sessions/"+id; got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
	ctxt := e.dist.contextOf("interact:" + id)
	if ctxt["interact.sessionId"] != id || ctxt["interact.meetingJoinUrl"] != r.str("meeting", "joinUrl") || ctxt["interact.acsUserId"] != r.str("acs", "userId") {
		t.Errorf("conversation context %v lacks the session, meeting and ACS user", ctxt)
	}
	if got := e.meetings.organizers; len(got) != 1 || got[0] != organizer {
		t.Errorf("meetings organised by %v, want [%s]", got, organizer)
	}
	if logs := e.logs.String(); strings.Contains(logs, r.str("acs", "token")) || strings.Contains(logs, r.str("resumeToken")) {
		t.Errorf("a token was logged: %s", logs)
	}
}

// Waiting → offered → accepted → Connected; the customer leaves and comes
// back within the recovery time (same agent, same meeting, a new token for
// the same ACS identity); then leaves for good: Ended when the time runs
// out, the agent released into after-call work.
func TestServiceSessionLifecycle(t *testing.T) {
	testenv.Backends(t, testServiceSessionLifecycle)
}

func testServiceSessionLifecycle(t *testing.T, tables store.Tables) {
	e := newEnvOn(t, tables)
	s := e.newSession(service)
	e.wantState(s, "Waiting")
	if err := e.dist.accept("interact:"+s.id, agentA); err != nil {
		t.Fatal(err)
	}
	r := e.wantState(s, "Connected")
	if got := r.str("agent", "userId"); got != agentA {
		t.Fatalf("agent = %q, want %q", got, agentA)
	}

	r = e.customer("POST", s, "leave")
	if r.status != 200 || r.str("state") != "Suspended" || r.str("suspendedParty") != "customer" {
		t.Fatalf("leave: %d %s", r.status, r.body)
	}
	if got, want := r.str("suspendedUntil"), t0.Add(20*time.Second).Format(time.RFC3339); got != want {
		t.Errorf("suspendedUntil = %s, want %s", got, want)
	}
	if got := e.timers.due; len(got) != 1 || !got[0].at.Equal(t0.Add(20*time.Second)) {
		t.Fatalf("timer messages %v, want one at the end of the recovery time", got)
	}
	e.advance(19 * time.Second)
	r = e.customer("POST", s, "rejoin")
	if r.status != 200 || r.str("state") != "Connected" || r.str("agent", "userId") != agentA {
		t.Fatalf("rejoin: %d %s", r.status, r.body)
	}
	if r.str("meeting", "joinUrl") != s.meeting || r.str("acs", "userId") != s.acsUser {
		t.Errorf("rejoin: meeting %q, ACS user %q; want the same %q, %q", r.str("meeting", "joinUrl"), r.str("acs", "userId"), s.meeting, s.acsUser)
	}
	if tok := r.str("acs", "token"); tok == "" || tok == s.token {
		t.Errorf("rejoin token %q, want a fresh one (not %q)", tok, s.token)
	}
	e.advance(5 * time.Second) // the first leave's timer fires: the customer is back, nothing happens
	e.wantState(s, "Connected")

	e.customer("POST", s, "leave")
	e.advance(19 * time.Second)
	e.wantState(s, "Suspended")
	if strings.Contains(e.dist.log(), "released") {
		t.Fatalf("agent released before the recovery time ran out: %s", e.dist.log())
	}
	e.advance(time.Second)
	r = e.wantState(s, "Ended")
	if r.str("outcome") != "customerLeft" {
		t.Errorf("outcome = %q, want customerLeft", r.str("outcome"))
	}
	if got, want := e.dist.log(), "released "+agentA+" interact:"+s.id+" acw=true"; got != want {
		t.Errorf("distribution saw %q, want %q", got, want)
	}
	if got, want := strings.Join(e.events.types("interact-sessions/"+s.id), " "), "started/1 suspended/2 resumed/3 suspended/4 ended/5"; got != want {
		t.Errorf("events %q, want %q", got, want)
	}
	for _, ev := range e.events.events {
		if strings.Contains(string(ev.Data), s.resume) || strings.Contains(string(ev.Data), s.token) {
			t.Errorf("an event carries a token: %s", ev.Data)
		}
	}
	if r := e.customer("POST", s, "rejoin"); r.status != http.StatusGone || r.str("type") != "session-ended" {
		t.Errorf("rejoin after the time: %d %s, want 410 session-ended", r.status, r.body)
	}
	// Ended sessions answer GET for 24 hours, then reveal nothing.
	e.clock.Advance(23 * time.Hour)
	e.wantState(s, "Ended")
	e.clock.Advance(2 * time.Hour)
	if r := e.customer("GET", s, ""); r.status != http.StatusUnauthorized {
		t.Errorf("GET 25 h after the end: %d %s, want 401", r.status, r.body)
	}
}

// The recovery time acts even when its message is late: the next read (or
// housekeeping) applies it.
func TestRecoveryWithoutTimerMessage(t *testing.T) {
	e := newEnv(t)
	s := e.newSession(service)
	e.dist.accept("interact:"+s.id, agentA)
	e.customer("POST", s, "leave")
	e.timers.due = nil // the message is lost
	e.clock.Advance(26 * time.Second)
	if rep, err := e.svc.Housekeep(t.Context()); err != nil || !strings.Contains(rep, "acted on 1") {
		t.Fatalf("housekeeping: %q, %v", rep, err)
	}
	e.wantState(s, "Ended")
	if !strings.Contains(e.dist.log(), "released "+agentA) {
		t.Errorf("agent not released: %s", e.dist.log())
	}
}

// The agent leaves a service session and does not come back: the
// conversation is back in the queue at its original place, offered to
// another agent (not the one who left), and the customer's session id and
// resume token still work.
func TestAgentLeavesServiceSession(t *testing.T) {
	testenv.Backends(t, testAgentLeavesServiceSession)
}

func testAgentLeavesServiceSession(t *testing.T, tables store.Tables) {
	e := newEnvOn(t, tables)
	first := e.newSession(service)
	e.clock.Advance(time.Second)
	second := e.newSession(service)
	e.dist.accept("interact:"+first.id, agentA)
	e.wantState(first, "Connected")
	if r := e.customer("GET", second, ""); r.v["position"] != float64(1) {
		t.Fatalf("second session's position %v, want 1 while the first is connected", r.v["position"])
	}

	r := e.agentSide(first, "agent-left")
	if r.status != 200 || r.str("state") != "Suspended" || r.str("suspendedParty") != "agent" {
		t.Fatalf("agent-left: %d %s", r.status, r.body)
	}
	e.advance(20 * time.Second)
	r = e.wantState(first, "Waiting")
	if r.v["position"] != float64(1) || r.v["agent"] != nil {
		t.Errorf("back in the queue: position %v, agent %v; want 1, null", r.v["position"], r.v["agent"])
	}
	if got := e.dist.line("support"); len(got) != 2 || got[0] != "interact:"+first.id {
		t.Errorf("queue %v, want the first session back at the head", got)
	}
	if !strings.Contains(e.dist.log(), "released "+agentA+" interact:"+first.id+" acw=false") {
		t.Errorf("the agent who left was not released: %s", e.dist.log())
	}
	if err := e.dist.accept("interact:"+first.id, agentA); err == nil {
		t.Errorf("offered again to the agent who left")
	}
	if err := e.dist.accept("interact:"+first.id, agentB); err != nil {
		t.Fatal(err)
	}
	r = e.wantState(first, "Connected")
	if got := r.str("agent", "userId"); got != agentB {
		t.Errorf("agent = %q, want %q", got, agentB)
	}
	if r.str("meeting", "joinUrl") != first.meeting {
		t.Errorf("meeting changed: %q, want %q", r.str("meeting", "joinUrl"), first.meeting)
	}
	if r := e.customer("POST", first, "rejoin"); r.status != 200 || r.str("acs", "userId") != first.acsUser {
		t.Errorf("the customer's resume token after the requeue: %d %s", r.status, r.body)
	}
}

// The same case on a direct session ends it.
func TestAgentLeavesDirectSession(t *testing.T) {
	e := newEnv(t)
	s := e.newSession(map[string]any{"userId": agentA})
	e.dist.accept("interact:"+s.id, agentA)
	e.wantState(s, "Connected")
	e.agentSide(s, "agent-left")
	e.advance(19 * time.Second)
	e.wantState(s, "Suspended")
	e.advance(time.Second)
	r := e.wantState(s, "Ended")
	if r.str("outcome") != "agentLeft" {
		t.Errorf("outcome %q, want agentLeft", r.str("outcome"))
	}
	if strings.Contains(e.dist.log(), "requeued") {
		t.Errorf("a direct conversation was put back in a queue: %s", e.dist.log())
	}
}

// The agent leaves and comes back within the time: the session continues.
func TestAgentRejoinsWithinTime(t *testing.T) {
	for _, body := range []map[string]any{service, {"userId": agentA}} {
		e := newEnv(t)
		s := e.newSession(body)
		e.dist.accept("interact:"+s.id, agentA)
		e.wantState(s, "Connected")
		e.agentSide(s, "agent-left")
		e.advance(10 * time.Second)
		if r := e.agentSide(s, "agent-rejoined"); r.status != 200 || r.str("state") != "Connected" {
			t.Fatalf("agent-rejoined: %d %s", r.status, r.body)
		}
		e.advance(30 * time.Second)
		r := e.wantState(s, "Connected")
		if r.str("agent", "userId") != agentA || e.dist.log() != "" {
			t.Errorf("%v: agent %q, distribution %q; want %s and nothing", body, r.str("agent", "userId"), e.dist.log(), agentA)
		}
		if r := e.agentSide(s, "end"); r.status != 200 || r.str("state") != "Ended" {
			t.Errorf("end: %d %s", r.status, r.body)
		}
		if !strings.Contains(e.dist.log(), "released "+agentA) {
			t.Errorf("end did not release the agent: %s", e.dist.log())
		}
	}
}

// The agent side before an agent joined.
func TestAgentLeftWithoutAgent(t *testing.T) {
	e := newEnv(t)
	s := e.newSession(service)
	if r := e.agentSide(s, "agent-left"); r.status != http.StatusConflict || r.str("type") != "no-agent" {
		t.Errorf("agent-left while waiting: %d %s, want 409 no-agent", r.status, r.body)
	}
	if r := e.do("POST", "/api/tenants/"+tenant+"/interact/sessions/00000000-0000-4000-8000-000000000000/end", nil); r.status != http.StatusNotFound {
		t.Errorf("end of an unknown session: %d %s, want 404", r.status, r.body)
	}
}

// A wrong resume token, none, or an unknown session: one 401 that says
// nothing about the session.
func TestWrongResumeToken(t *testing.T) {
	e := newEnv(t)
	s := e.newSession(service)
	e.dist.accept("interact:"+s.id, agentA)
	var bodies []string
	for name, c := range map[string]session{
		"wrong token":     {id: s.id, resume: s.resume[:len(s.resume)-1] + "x"},
		"no token":        {id: s.id},
		"unknown session": {id: "00000000-0000-4000-8000-000000000000", resume: s.resume},
		"not an id":       {id: "x", resume: s.resume},
	} {
		for _, action := range []string{"", "leave", "rejoin"} {
			method := "POST"
			if action == "" {
				method = "GET"
			}
			r := e.customer(method, c, action)
			if r.status != http.StatusUnauthorized || r.str("type") != "invalid-resume-token" {
				t.Errorf("%s %s: %d %s, want 401 invalid-resume-token", name, action, r.status, r.body)
			}
			for _, leak := range []string{"Connected", agentA, s.meeting, s.acsUser} {
				if strings.Contains(string(r.body), leak) {
					t.Errorf("%s %s: reply reveals %q: %s", name, action, leak, r.body)
				}
			}
			bodies = append(bodies, strings.ReplaceAll(r.str("title"), c.id, ""))
		}
	}
	for _, b := range bodies[1:] {
		if b != bodies[0] {
			t.Errorf("titles differ: %q vs %q", b, bodies[0])
		}
	}
	e.wantState(s, "Connected") // nothing changed
}

// 200 open sessions per tenant; the 201st is 429 with Retry-After; an
// ended session gives its place back. 20 new per minute per address.
func TestLimits(t *testing.T) {
	testenv.Backends(t, testLimits)
}

func testLimits(t *testing.T, tables store.Tables) {
	e := newEnvOn(t, tables)
	var first session
	for i := range 200 {
		r := e.create(service, "X-Forwarded-For", "203.0.113."+strconv.Itoa(i/20)+", 10.0.0.1")
		if r.status != http.StatusCreated {
			t.Fatalf("session %d: %d %s", i+1, r.status, r.body)
		}
		if i == 0 {
			first = session{id: r.str("sessionId"), resume: r.str("resumeToken")}
		}
	}
	r := e.create(service, "X-Forwarded-For", "198.51.100.1")
	if r.status != http.StatusTooManyRequests || r.str("type") != "too-many-sessions" || r.header.Get("Retry-After") == "" {
		t.Fatalf("201st session: %d %s (Retry-After %q), want 429 with Retry-After", r.status, r.body, r.header.Get("Retry-After"))
	}
	e.dist.accept("interact:"+first.id, agentA)
	e.agentSide(first, "end")
	if r := e.create(service, "X-Forwarded-For", "198.51.100.1"); r.status != http.StatusCreated {
		t.Errorf("after one ended: %d %s, want 201", r.status, r.body)
	}
}

// 20 new sessions per minute per client address, then 429 with a
// Retry-After that ends the minute.
func TestRatePerAddress(t *testing.T) {
	testenv.Backends(t, testRatePerAddress)
}

func testRatePerAddress(t *testing.T, tables store.Tables) {
	e2 := newEnvOn(t, tables)
	for i := range 20 {
		if r := e2.create(service, "X-Forwarded-For", "203.0.113.7"); r.status != http.StatusCreated {
			t.Fatalf("session %d from one address: %d %s", i+1, r.status, r.body)
		}
	}
	r := e2.create(service, "X-Forwarded-For", "203.0.113.7")
	retry, _ := strconv.Atoi(r.header.Get("Retry-After"))
	if r.status != http.StatusTooManyRequests || retry < 1 || retry > 60 {
		t.Fatalf("21st from one address: %d %s (Retry-After %q), want 429 within a minute", r.status, r.body, r.header.Get("Retry-After"))
	}
	if r := e2.create(service); r.status != http.StatusCreated {
		t.Errorf("another address (the peer): %d %s, want 201", r.status, r.body)
	}
	e2.clock.Advance(time.Duration(retry) * time.Second)
	if r := e2.create(service, "X-Forwarded-For", "203.0.113.7"); r.status != http.StatusCreated {
		t.Errorf("after Retry-After: %d %s, want 201", r.status, r.body)
	}
}

// A missing o365UserId or connection string is 409 naming the field;
// a bad body names its field.
func TestNotConfiguredAndBadInput(t *testing.T) {
	e := newEnv(t)
	e.settings.set(tenant, func(s *interact.TenantConfig) { s.O365UserID = "" })
	if r := e.create(service); r.status != http.StatusConflict || r.str("type") != "interact-not-configured" || r.str("field") != "interact.o365UserId" {
		t.Errorf("no o365UserId: %d %s", r.status, r.body)
	}
	e.settings.set(tenant, func(s *interact.TenantConfig) { s.O365UserID = organizer; s.ACSConnectionString = "" })
	if r := e.create(service); r.status != http.StatusConflict || r.str("field") != "interact.acsConnectionString" {
		t.Errorf("no connection string: %d %s", r.status, r.body)
	}
	e.settings.set(tenant, func(s *interact.TenantConfig) { s.ACSConnectionString = acsString })
	for name, c := range map[string]struct {
		body  map[string]any
		field string
	}{
		"neither":      {map[string]any{}, "serviceId"},
		"both":         {map[string]any{"serviceId": "support", "userId": agentA}, "userId"},
		"bad user":     {map[string]any{"userId": "bob"}, "userId"},
		"long name":    {map[string]any{"serviceId": "support", "customer": map[string]any{"displayName": strings.Repeat("a", 201)}}, "customer.displayName"},
		"bad email":    {map[string]any{"serviceId": "support", "customer": map[string]any{"email": "nope"}}, "customer.email"},
		"unknown":      {map[string]any{"serviceId": "support", "color": "red"}, "color"},
		"context type": {map[string]any{"serviceId": "support", "context": map[string]any{"a": 1}}, "context"},
		"our key":      {map[string]any{"serviceId": "support", "context": map[string]any{"interact.sessionId": "x"}}, "context.interact.sessionId"},
	} {
		if r := e.create(c.body); r.status != http.StatusBadRequest || r.str("field") != c.field {
			t.Errorf("%s: %d %s, want 400 naming %s", name, r.status, r.body, c.field)
		}
	}
	if r := e.create(map[string]any{"serviceId": "no-such-service"}); r.status != http.StatusNotFound {
		t.Errorf("unknown service: %d %s, want 404", r.status, r.body)
	}
	// The failed session gave its place back.
	for range 20 {
		e.create(service, "X-Forwarded-For", "203.0.113.9")
	}
}

// Assistant: the tenant's own ACS or the deployment's, as the setting
// says; the same user keeps the same ACS identity per resource.
func TestAssistantToken(t *testing.T) {
	e := newEnv(t)
	path := "/api/tenants/" + tenant + "/assistant/token?asUser=" + agentA
	r1 := e.do("POST", path, nil)
	r2 := e.do("POST", path, nil)
	if r1.status != 200 || r2.status != 200 {
		t.Fatalf("tokens: %d %s; %d %s", r1.status, r1.body, r2.status, r2.body)
	}
	if got, want := r1.str("acs", "endpoint"), "https://operator.communication.azure.com/"; got != want {
		t.Errorf("endpoint = %q, want the deployment's %q", got, want)
	}
	if r1.str("acs", "userId") != r2.str("acs", "userId") || r1.str("acs", "token") == r2.str("acs", "token") {
		t.Errorf("same user twice: identities %q, %q (want equal), tokens %q, %q (want different)", r1.str("acs", "userId"), r2.str("acs", "userId"), r1.str("acs", "token"), r2.str("acs", "token"))
	}
	if rb := e.do("POST", "/api/tenants/"+tenant+"/assistant/token?asUser="+agentB, nil); rb.str("acs", "userId") == r1.str("acs", "userId") {
		t.Errorf("another user got the same identity")
	}

	e.settings.set(tenant, func(s *interact.TenantConfig) {
		s.AssistantOwnACS = true
		s.AssistantACSConnectionString = acsString
	})
	own := e.do("POST", path, nil)
	if got, want := own.str("acs", "endpoint"), "https://contoso.communication.azure.com/"; own.status != 200 || got != want {
		t.Fatalf("own ACS: %d %s, want endpoint %s", own.status, own.body, want)
	}
	if own.str("acs", "userId") == r1.str("acs", "userId") {
		t.Errorf("the identity of another ACS resource was reused")
	}
	if again := e.do("POST", path, nil); again.str("acs", "userId") != own.str("acs", "userId") {
		t.Errorf("own ACS twice: %q then %q", own.str("acs", "userId"), again.str("acs", "userId"))
	}
	if r := e.do("POST", "/api/tenants/"+tenant+"/assistant/token", nil); r.status != 400 || r.str("field") != "asUser" {
		t.Errorf("no caller: %d %s", r.status, r.body)
	}
}

func TestAssistantNotConfigured(t *testing.T) {
	e := newEnvWithout(t)
	r := e.do("POST", "/api/tenants/"+tenant+"/assistant/token?asUser="+agentA, nil)
	if r.status != http.StatusConflict || r.str("type") != "assistant-not-configured" {
		t.Errorf("no deployment ACS: %d %s, want 409 assistant-not-configured", r.status, r.body)
	}
}

// The widget's routes answer browsers on the customer's site: a preflight,
// and the CORS headers on every reply, refusals included.
func TestCrossOrigin(t *testing.T) {
	e := newEnv(t)
	r := e.do("OPTIONS", "/api/interact/"+tenant+"/sessions", nil, "Origin", "https://shop.example", "Access-Control-Request-Method", "POST")
	if r.status != http.StatusNoContent || r.header.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "X-Widget-Key") {
		t.Errorf("preflight: %d %v", r.status, r.header)
	}
	for _, r := range []reply{e.create(service), e.do("POST", "/api/interact/"+tenant+"/sessions", service, "X-Widget-Key", "wrong")} {
		if r.header.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "Retry-After") {
			t.Errorf("%d reply without CORS headers: %v", r.status, r.header)
		}
	}
}

// The per-address rate holds under concurrency, on both table layers: of
// 40 sessions asked for at once from one address, exactly 20 are created.
func TestRateUnderConcurrency(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		e := newEnvOn(t, tables)
		var wg sync.WaitGroup
		var mu sync.Mutex
		counts := map[int]int{}
		for range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := e.create(service, "X-Forwarded-For", "192.0.2.55")
				mu.Lock()
				counts[r.status]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		if counts[http.StatusCreated] != 20 || counts[http.StatusTooManyRequests] != 20 {
			t.Errorf("replies %v, want 20 created and 20 refused with 429", counts)
		}
	})
}

// A user's first Assistant calls at once still end with one identity.
func TestAssistantIdentityUnderConcurrency(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		e := newEnvOn(t, tables)
		var wg sync.WaitGroup
		ids := make([]string, 8)
		for i := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := e.do("POST", "/api/tenants/"+tenant+"/assistant/token?asUser="+agentA, nil)
				ids[i] = r.str("acs", "userId")
			}()
		}
		wg.Wait()
		for _, id := range ids {
			if id == "" || id != ids[0] {
				t.Fatalf("identities %v, want one", ids)
			}
		}
		if r := e.do("POST", "/api/tenants/"+tenant+"/assistant/token?asUser="+agentA, nil); r.str("acs", "userId") != ids[0] {
			t.Errorf("a later call got %q, want %q", r.str("acs", "userId"), ids[0])
		}
	})
}

// A widget that never says goodbye: when its conversation ends elsewhere
// (timed out in the queue, released by a supervisor), housekeeping ends
// the session and its place in the tenant's limit comes back.
func TestHousekeepingFollowsConversations(t *testing.T) {
	e := newEnv(t)
	s := e.newSession(service)
	if err := e.dist.End(t.Context(), tenant, "interact:"+s.id); err != nil {
		t.Fatal(err)
	}
	if rep, err := e.svc.Housekeep(t.Context()); err != nil || !strings.Contains(rep, "acted on 1") {
		t.Fatalf("housekeeping: %q, %v", rep, err)
	}
	r := e.wantState(s, "Ended")
	if r.str("outcome") != "Abandoned" {
		t.Errorf("outcome %q, want the conversation's Abandoned", r.str("outcome"))
	}
	if rep, _ := e.svc.Housekeep(t.Context()); !strings.Contains(rep, "acted on 0") {
		t.Errorf("second housekeeping: %q, want nothing to do", rep)
	}
}

// The agent side as an Agent: only the session's own agent; a flow may
// act on any session.
func TestAgentSideOwnSession(t *testing.T) {
	e := newEnv(t)
	v, err := auth.New(t.Context(), auth.Options{AuthorityHost: e.idp.srv.URL + "/", Audience: audience, HTTPClient: e.idp.srv.Client(), Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	rt := httpapi.NewRouter(slog.New(slog.DiscardHandler), v)
	(&httpapi.InteractAPI{Sessions: e.svc, Verifier: v}).Register(rt)
	s := e.newSession(service)
	e.dist.accept("interact:"+s.id, agentA)
	e.wantState(s, "Connected")
	call := func(action, oid, role string) int {
		tok := e.idp.token(t, tenant, e.clock.Now(), false, map[string]any{"oid": oid, "roles": []string{role}})
		req := httptest.NewRequest("POST", "/api/tenants/"+tenant+"/interact/sessions/"+s.id+"/"+action, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		rt.ServeHTTP(rec, req)
		return rec.Code
	}
	if got := call("agent-left", agentB, "Switchboard.Agent"); got != http.StatusForbidden {
		t.Errorf("another agent: %d, want 403", got)
	}
	if got := call("agent-left", agentA, "Switchboard.Agent"); got != http.StatusOK {
		t.Errorf("the session's agent: %d, want 200", got)
	}
	if got := call("agent-rejoined", agentB, "Switchboard.Flow"); got != http.StatusOK {
		t.Errorf("a flow: %d, want 200", got)
	}
	if got := call("end", agentA, "Switchboard.Supervisor"); got != http.StatusForbidden {
		t.Errorf("a supervisor: %d, want 403", got)
	}
}

// A direct session for a user distribution could never offer anything is
// refused before an ACS identity or a meeting is made for it.
func TestDirectSessionForStrangerRefusedFirst(t *testing.T) {
	e := newEnv(t)
	r := e.create(map[string]any{"userId": stranger})
	if r.status != http.StatusBadRequest || r.str("field") != "userId" {
		t.Fatalf("create for a user in no service: %d %s, want 400 naming userId", r.status, r.body)
	}
	if n, m := len(e.acs.identities), e.meetings.n; n != 0 || m != 0 {
		t.Errorf("%d ACS identities and %d meetings made for a refused session, want none", n, m)
	}
	if r := e.create(map[string]any{"userId": agentA}); r.status != http.StatusCreated {
		t.Errorf("then for an agent: %d %s, want 201", r.status, r.body)
	}
}

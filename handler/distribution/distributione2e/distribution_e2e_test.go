// Package distributione2e tests the waiting lines (SPEC section 10) end to
// end: the real handler behind the local runner (its in-process queue
// delivering the Distributor's scheduled messages), on Azurite, with
// presence polled from the Graph simulator.
package distributione2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"switchboard/handler/dev/graphsim"
	"switchboard/handler/internal/e2e"
	"switchboard/handler/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	tenant    = "6d5c4b3a-2f1e-4d0c-9b8a-7f6e5d4c3b2b"
	appID     = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4e"
	appSecret = "e2e-app-secret"
)

type offer struct {
	UserID    string    `json:"userId"`
	OfferedAt time.Time `json:"offeredAt"`
	ExpiresAt time.Time `json:"expiresAt"`
	State     string    `json:"state"`
}

type event struct {
	At     time.Time `json:"at"`
	Event  string    `json:"event"`
	UserID *string   `json:"userId"`
}

type conversation struct {
	ConversationID string    `json:"conversationId"`
	ServiceID      string    `json:"serviceId"`
	State          string    `json:"state"`
	Priority       int       `json:"priority"`
	QueuedAt       time.Time `json:"queuedAt"`
	RequiredSkills []struct {
		Name     string `json:"name"`
		MinLevel int    `json:"minLevel"`
	} `json:"requiredSkills"`
	Offers []offer `json:"offers"`
	Agent  *struct {
		UserID string `json:"userId"`
	} `json:"agent"`
	Outcome        *string  `json:"outcome"`
	OutcomeReason  *string  `json:"outcomeReason"`
	ForwardedFrom  []string `json:"forwardedFrom"`
	CallbackTaskID *string  `json:"callbackTaskId"`
	History        []event  `json:"history"`
}

func (c conversation) ringing() []string {
	var out []string
	for _, o := range c.Offers {
		if o.State == "Ringing" {
			out = append(out, o.UserID)
		}
	}
	return out
}

type agentState struct {
	UserID string `json:"userId"`
	Offer  *struct {
		ConversationID string    `json:"conversationId"`
		ExpiresAt      time.Time `json:"expiresAt"`
	} `json:"offer"`
	Conversation *struct {
		ConversationID string `json:"conversationId"`
	} `json:"conversation"`
	Rona *struct {
		Until time.Time `json:"until"`
	} `json:"rona"`
	AfterCallWork *struct {
		Until time.Time `json:"until"`
	} `json:"afterCallWork"`
	IdleSince *time.Time `json:"idleSince"`
}

type harness struct {
	t     *testing.T
	envs  []*e2e.Env
	sim   *graphsim.Sim
	users []string
}

// start runs instances handlers sharing one Azurite, with n Available
// users in the simulator, polled once by each.
func start(t *testing.T, n, instances int) *harness { return startWith(t, n, instances, false) }

// startWith is start, with the timers (presence poll, housekeeping) on
// their schedules when timers is set.
func startWith(t *testing.T, n, instances int, timers bool) *harness {
	t.Helper()
	tn := e2e.NewTenant(t, e2e.TenantOptions{Sim: graphsim.Options{Seed: 17}, ID: tenant, App: appID, Secret: appSecret,
		Users: n, Domain: "contoso.example", Available: true})
	h := &harness{t: t, sim: tn.Sim, users: tn.UserIDs()}
	tables := ""
	for range instances {
		env := tn.Start(t, e2e.Options{Tables: tables, Timers: timers})
		tables = env.Tables
		h.envs = append(h.envs, env)
	}
	return h
}

func (h *harness) env() *e2e.Env { return h.envs[rand.IntN(len(h.envs))] }

func (h *harness) poll() {
	h.t.Helper()
	for _, e := range h.envs {
		e.Invoke(h.t, "PresencePoll")
	}
}

func (h *harness) service(id string, members []string, dist map[string]any) {
	h.t.Helper()
	ms := make([]map[string]any, len(members))
	for i, u := range members {
		ms[i] = map[string]any{"userId": u}
	}
	h.serviceMembers(id, ms, dist)
}

func (h *harness) serviceMembers(id string, members []map[string]any, dist map[string]any) {
	h.t.Helper()
	body := map[string]any{"name": id, "members": members, "distribution": dist}
	if status, _, raw := h.envs[0].Do(h.t, "PUT", "/api/tenants/"+tenant+"/services/"+id, body); status != http.StatusCreated {
		h.t.Fatalf("PUT service %s: %d %s", id, status, raw)
	}
}

func (h *harness) do(method, path string, body any, want int) []byte {
	h.t.Helper()
	status, _, raw := h.env().Do(h.t, method, "/api/tenants/"+tenant+path, body)
	if status != want {
		h.t.Fatalf("%s %s: %d %s, want %d", method, path, status, raw, want)
	}
	return raw
}

// call is do for the test's other goroutines (agents, callers), which
// must not end the test: it retries a request that could not be sent or
// was answered 502, 503 or 504 (storage busy: the reply says to retry),
// as a client does, logging each; any other status than want fails the
// test, with the reply. ok says the reply had one of the wanted statuses.
func (h *harness) call(method, path string, body any, want ...int) (int, []byte, bool) {
	for attempt := 1; ; attempt++ {
		status, _, raw, err := h.env().Request(method, "/api/tenants/"+tenant+path, body)
		switch {
		case err == nil && slices.Contains(want, status):
			return status, raw, true
		case attempt < 5 && (err != nil || status == http.StatusBadGateway || status == http.StatusServiceUnavailable ||
			status == http.StatusGatewayTimeout):
			h.t.Logf("%s %s: %d %v %s (attempt %d; retrying)", method, path, status, err, raw, attempt)
			time.Sleep(time.Duration(attempt) * 200 * time.Millisecond)
		default:
			h.t.Errorf("%s %s: %d %v %s, want %v", method, path, status, err, raw, want)
			return status, raw, false
		}
	}
}

func (h *harness) enqueue(service string, body map[string]any) conversation {
	h.t.Helper()
	var c conversation
	decode(h.t, h.do("POST", "/services/"+service+"/queue", body, http.StatusAccepted), &c)
	return c
}

func (h *harness) get(id string) conversation {
	h.t.Helper()
	var c conversation
	decode(h.t, h.do("GET", "/conversations/"+id, nil, http.StatusOK), &c)
	return c
}

func (h *harness) agent(u string) agentState {
	h.t.Helper()
	var a agentState
	decode(h.t, h.do("GET", "/agents/"+u, nil, http.StatusOK), &a)
	return a
}

func (h *harness) accept(c, u string) {
	h.t.Helper()
	h.do("POST", "/conversations/"+c+"/accept", map[string]any{"userId": u}, http.StatusOK)
}

// reason returns the route API's reason for u in service s ("" when
// eligible).
func (h *harness) reason(s, u string) string {
	h.t.Helper()
	var r struct {
		Excluded []struct {
			UserID, Reason string
		} `json:"excluded"`
	}
	decode(h.t, h.do("POST", "/services/"+s+"/route", map[string]any{}, http.StatusOK), &r)
	for _, x := range r.Excluded {
		if x.UserID == u {
			return x.Reason
		}
	}
	return ""
}

// wait polls cond until it holds or within is over; it returns when it
// held.
func (h *harness) wait(what string, within time.Duration, cond func() bool) time.Time {
	h.t.Helper()
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return time.Now()
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func decode(t *testing.T, raw []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
}

func sortedUsers(us []string) []string {
	out := slices.Clone(us)
	sort.Strings(out)
	return out
}

// within2s fails unless at is within 2 s of due.
func within2s(t *testing.T, what string, at, due time.Time) {
	t.Helper()
	if d := at.Sub(due); d < -200*time.Millisecond || d > 2*time.Second {
		t.Errorf("%s happened %v after its due time, want within 2 s", what, d)
	}
}

// Accept → Connected; release → after-call work for exactly its time, then
// the agent is offered again, idle from the end of after-call work.
func TestAfterCallWorkEndToEnd(t *testing.T) {
	h := start(t, 1, 1)
	a := h.users[0]
	h.service("solo", []string{a}, map[string]any{"afterCallWorkSeconds": 3, "ringSeconds": 30})
	h.poll()
	c := h.enqueue("solo", map[string]any{"conversationId": "acw-1"})
	if c.State != "Offered" || !slices.Equal(c.ringing(), []string{a}) {
		t.Fatalf("enqueued: %s ringing %v, want Offered to the only agent", c.State, c.ringing())
	}
	h.accept("acw-1", a)
	if got := h.get("acw-1"); got.State != "Connected" || got.Agent == nil || got.Agent.UserID != a {
		t.Fatalf("after accept: %+v", got)
	}
	// The next conversation waits while the agent is busy and in
	// after-call work.
	if c2 := h.enqueue("solo", map[string]any{"conversationId": "acw-2"}); c2.State != "Queued" {
		t.Fatalf("second conversation while the agent is connected: %s", c2.State)
	}
	h.do("DELETE", "/conversations/acw-1", nil, http.StatusNoContent)
	st := h.agent(a)
	if st.AfterCallWork == nil {
		t.Fatalf("after release: no after-call work: %+v", st)
	}
	if r := h.reason("solo", a); r != "AfterCallWork" {
		t.Errorf("route reason during after-call work: %q", r)
	}
	until := st.AfterCallWork.Until
	offered := h.wait("acw-2 offered after after-call work", 10*time.Second, func() bool {
		return slices.Equal(h.get("acw-2").ringing(), []string{a})
	})
	within2s(t, "the offer after after-call work", offered, until)
	if st := h.agent(a); st.IdleSince == nil || st.IdleSince.Sub(until).Abs() > 2*time.Second {
		t.Errorf("idle since %v, want the end of after-call work %v", st.IdleSince, until)
	}
	if got := h.get("acw-1"); got.State != "Ended" {
		t.Errorf("released conversation: %s, want Ended", got.State)
	}
}

// Ring, no answer: the offer lapses after ringSeconds, the agent is in
// RONA and the next agent is offered; RONA ends by time, by reset and by
// an Offline reading.
func TestRingNoAnswerEndToEnd(t *testing.T) {
	h := start(t, 3, 1)
	a, b := sortedUsers(h.users[:2])[0], sortedUsers(h.users[:2])[1]
	solo := h.users[2]
	h.service("pair", []string{a, b}, map[string]any{"ringSeconds": 5, "rona": map[string]any{"resetSeconds": 10}})
	h.service("solo", []string{solo}, map[string]any{"ringSeconds": 5, "rona": map[string]any{"resetSeconds": 10}})
	h.poll()

	c := h.enqueue("pair", map[string]any{"conversationId": "rona-1"})
	if !slices.Equal(c.ringing(), []string{a}) {
		t.Fatalf("offered to %v, want %s", c.ringing(), a)
	}
	lapsed := h.wait("rona-1 offered to the next agent", 10*time.Second, func() bool {
		return slices.Equal(h.get("rona-1").ringing(), []string{b})
	})
	within2s(t, "the lapse", lapsed, c.Offers[0].ExpiresAt)
	if r := h.reason("pair", a); r != "Rona" {
		t.Errorf("lapsed agent's reason %q, want Rona", r)
	}
	if st := h.agent(a); st.Rona == nil {
		t.Errorf("agent state shows no RONA: %+v", st)
	}

	// RONA ends by time: the waiting conversation is offered again at once.
	r := h.enqueue("solo", map[string]any{"conversationId": "rona-2"})
	if !slices.Equal(r.ringing(), []string{solo}) {
		t.Fatalf("rona-2 offered to %v", r.ringing())
	}
	h.wait("rona-2 lapses", 10*time.Second, func() bool { return h.agent(solo).Rona != nil })
	until := h.agent(solo).Rona.Until
	again := h.wait("rona-2 offered again when RONA ends", 15*time.Second, func() bool {
		return slices.Equal(h.get("rona-2").ringing(), []string{solo})
	})
	within2s(t, "the end of RONA", again, until)

	// RONA ends by reset.
	h.wait("rona-2 lapses again", 10*time.Second, func() bool { return h.agent(solo).Rona != nil })
	h.do("POST", "/agents/"+solo+"/rona/reset", nil, http.StatusNoContent)
	h.wait("rona-2 offered after the reset", 3*time.Second, func() bool {
		return slices.Equal(h.get("rona-2").ringing(), []string{solo})
	})

	// RONA ends with an Offline reading.
	h.wait("rona-2 lapses a third time", 10*time.Second, func() bool { return h.agent(solo).Rona != nil })
	h.sim.SetPresence(tenant, solo, "Offline", "Offline", false)
	h.poll()
	h.wait("RONA ended by Offline", 5*time.Second, func() bool { return h.agent(solo).Rona == nil })
	if r := h.reason("solo", solo); r != "Offline" {
		t.Errorf("offline agent after RONA: %q, want Offline", r)
	}
	// Back online: a presence change the poll writes offers it at once.
	h.sim.SetPresence(tenant, solo, "Available", "Available", false)
	h.poll()
	h.wait("rona-2 offered when the agent is back", 5*time.Second, func() bool {
		return slices.Equal(h.get("rona-2").ringing(), []string{solo})
	})
}

// Broadcast to 5: 5 offers at once, the first accept wins, 4 rescinded,
// nobody in RONA. An agent freed while a broadcast rings (its presence
// polled Available) is offered it too, until the broadcast's ring ends.
func TestBroadcastEndToEnd(t *testing.T) {
	h := start(t, 6, 1)
	h.service("bc", h.users, map[string]any{"order": "Broadcast", "broadcastSize": 5, "ringSeconds": 60})
	h.poll()
	c := h.enqueue("bc", map[string]any{"conversationId": "bc-1"})
	if len(c.ringing()) != 5 {
		t.Fatalf("broadcast offers: %v, want 5", c.ringing())
	}
	winner := c.ringing()[2]
	h.accept("bc-1", winner)
	status, _, raw := h.env().Do(t, "POST", "/api/tenants/"+tenant+"/conversations/bc-1/accept", map[string]any{"userId": c.ringing()[0]})
	if status != http.StatusConflict || !strings.Contains(string(raw), "offer-not-pending") {
		t.Errorf("second accept: %d %s, want 409 offer-not-pending", status, raw)
	}
	got := h.get("bc-1")
	n := map[string]int{}
	for _, o := range got.Offers {
		n[o.State]++
	}
	if got.State != "Connected" || n["Accepted"] != 1 || n["Rescinded"] != 4 {
		t.Fatalf("after accept: %s %v", got.State, n)
	}
	for _, u := range h.users {
		if u == winner {
			continue
		}
		if r := h.reason("bc", u); r != "" {
			t.Errorf("%s after the broadcast: %q, want free (no RONA)", u, r)
		}
	}

	var others []string
	for _, u := range h.users {
		if u != winner {
			others = append(others, u)
		}
	}
	h.sim.SetPresence(tenant, others[0], "Busy", "InACall", false)
	h.sim.SetPresence(tenant, others[1], "Busy", "InACall", false)
	h.poll()
	c = h.enqueue("bc", map[string]any{"conversationId": "bc-2"})
	if got := sortedUsers(c.ringing()); !slices.Equal(got, sortedUsers(others[2:])) {
		t.Fatalf("bc-2 with 3 agents free: ringing %v, want %v", got, others[2:])
	}
	end := c.Offers[0].ExpiresAt
	h.sim.SetPresence(tenant, others[0], "Available", "Available", false)
	h.poll()
	h.wait("the freed agent offered the ringing broadcast", 10*time.Second, func() bool { return len(h.get("bc-2").ringing()) == 4 })
	got = h.get("bc-2")
	added := got.Offers[len(got.Offers)-1]
	// It rings until the broadcast's end (the hold's expiry, taken a few
	// milliseconds after the ring time left was).
	if d := added.ExpiresAt.Sub(end).Abs(); added.UserID != others[0] || d > time.Second {
		t.Fatalf("added offer %+v, want %s's until the broadcast's end %v", added, others[0], end)
	}
	h.accept("bc-2", others[0])
	got = h.get("bc-2")
	n = map[string]int{}
	for _, o := range got.Offers {
		n[o.State]++
	}
	if got.State != "Connected" || got.Agent == nil || got.Agent.UserID != others[0] || n["Rescinded"] != 3 {
		t.Fatalf("bc-2 after the added agent accepted: %s %v", got.State, n)
	}
}

// A conversation requiring german ≥ 2 is offered only to such members.
func TestSkillsEndToEnd(t *testing.T) {
	h := start(t, 3, 1)
	us := sortedUsers(h.users)
	h.serviceMembers("skills", []map[string]any{
		{"userId": us[0], "skills": map[string]int{"german": 1}},
		{"userId": us[1]},
		{"userId": us[2], "skills": map[string]int{"german": 4, "billing": 2}},
	}, map[string]any{})
	h.poll()
	c := h.enqueue("skills", map[string]any{"conversationId": "de-1", "requiredSkills": []map[string]any{{"name": "german", "minLevel": 2}}})
	if !slices.Equal(c.ringing(), []string{us[2]}) {
		t.Fatalf("german conversation offered to %v, want %s", c.ringing(), us[2])
	}
	var r struct {
		Excluded []struct{ UserID, Reason string } `json:"excluded"`
	}
	decode(t, h.do("POST", "/services/skills/route", map[string]any{"conversationId": "de-1"}, http.StatusOK), &r)
	reasons := map[string]string{}
	for _, x := range r.Excluded {
		reasons[x.UserID] = x.Reason
	}
	if reasons[us[0]] != "SkillMismatch" || reasons[us[1]] != "SkillMismatch" || reasons[us[2]] != "OfferPending" {
		t.Errorf("route for the queued conversation's id: %v, want SkillMismatch, SkillMismatch, OfferPending", reasons)
	}
}

// Timeouts and overflow: Disconnect, Forward, Callback (and the cap
// refusing it), a full queue, nobody signed in.
func TestTimeoutsEndToEnd(t *testing.T) {
	h := start(t, 2, 1)
	busy, off := h.users[0], h.users[1]
	h.sim.SetPresence(tenant, busy, "Busy", "InACall", false)
	h.sim.SetPresence(tenant, off, "Offline", "Offline", false)
	wait := func(action string, extra map[string]any) map[string]any {
		q := map[string]any{"maxWaitSeconds": 10, "onTimeout": map[string]any{"action": action}}
		for k, v := range extra {
			q[k] = v
		}
		return map[string]any{"queue": q}
	}
	h.service("disc", []string{busy}, wait("Disconnect", nil))
	h.service("target", []string{busy}, map[string]any{})
	h.service("fwd", []string{busy}, map[string]any{"queue": map[string]any{"maxWaitSeconds": 10, "onTimeout": map[string]any{"action": "Forward", "serviceId": "target"}}})
	h.service("cb", []string{busy}, wait("Callback", nil))
	h.service("cbfull", []string{busy}, wait("Callback", nil))
	h.service("full", []string{busy}, map[string]any{"queue": map[string]any{"maxLength": 1, "onFull": map[string]any{"action": "Forward", "serviceId": "target"}}})
	h.service("nobody", []string{off}, map[string]any{"queue": map[string]any{"onNoAgents": map[string]any{"action": "Disconnect"}}})
	h.poll()
	// The cap of 1 is taken in cbfull by a task due in an hour.
	h.do("PATCH", "/settings", map[string]any{"outbound": map[string]any{"maxScheduledTasksPerService": 1}}, http.StatusOK)
	h.do("POST", "/services/cbfull/outbound-tasks", map[string]any{"destination": "+41440000001", "dueDateTimeUtc": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}, http.StatusAccepted)

	phone := map[string]any{"displayName": "Ada", "phone": "+41440000000"}
	start := time.Now()
	for _, s := range []string{"disc", "fwd", "cb", "cbfull"} {
		if c := h.enqueue(s, map[string]any{"conversationId": s + "-1", "customer": phone, "context": map[string]any{"case": "42"}}); c.State != "Queued" {
			t.Fatalf("%s: %s, want Queued", s, c.State)
		}
	}
	h.enqueue("full", map[string]any{"conversationId": "full-1"})
	if c := h.enqueue("full", map[string]any{"conversationId": "full-2"}); c.State != "Queued" || c.ServiceID != "target" || !slices.Equal(c.ForwardedFrom, []string{"full"}) {
		t.Errorf("into a full queue: %s in %s from %v, want Queued in target", c.State, c.ServiceID, c.ForwardedFrom)
	}
	if c := h.enqueue("nobody", map[string]any{"conversationId": "nobody-1"}); c.State != "Rejected" {
		t.Errorf("nobody signed in: %s, want Rejected", c.State)
	}

	h.wait("disc-1 times out", 15*time.Second, func() bool { return h.get("disc-1").State == "TimedOut" })
	within2s(t, "the timeout", time.Now(), start.Add(10*time.Second))
	h.wait("fwd-1 forwarded", 5*time.Second, func() bool { return h.get("fwd-1").ServiceID == "target" })
	var q struct {
		Conversations []conversation `json:"conversations"`
	}
	decode(t, h.do("GET", "/services/target/queue", nil, http.StatusOK), &q)
	var ids []string
	for _, c := range q.Conversations {
		ids = append(ids, c.ConversationID)
	}
	if !slices.Contains(ids, "fwd-1") {
		t.Errorf("target queue %v does not list the forwarded conversation", ids)
	}
	h.wait("cb-1 called back", 5*time.Second, func() bool { return h.get("cb-1").State == "CallbackScheduled" })
	cb := h.get("cb-1")
	var task struct {
		ReferenceID string            `json:"referenceId"`
		Destination string            `json:"destination"`
		Context     map[string]string `json:"context"`
	}
	decode(t, h.do("GET", "/services/cb/outbound-tasks/"+*cb.CallbackTaskID, nil, http.StatusOK), &task)
	if task.ReferenceID != "callback:cb-1" || task.Destination != "+41440000000" || task.Context["case"] != "42" {
		t.Errorf("callback task %+v", task)
	}
	h.wait("cbfull-1 ends", 5*time.Second, func() bool { return h.get("cbfull-1").State != "Queued" })
	if c := h.get("cbfull-1"); c.State != "TimedOut" || c.OutcomeReason == nil || !strings.Contains(*c.OutcomeReason, "limit") {
		t.Errorf("callback refused by the cap: %s %v, want TimedOut with the reason", c.State, c.OutcomeReason)
	}
}

// A redelivered or duplicated Distributor message changes nothing twice;
// a message for an offer that was accepted is a no-op.
func TestRedeliveredMessagesEndToEnd(t *testing.T) {
	h := start(t, 3, 1)
	h.service("dup", h.users, map[string]any{"ringSeconds": 5})
	h.poll()
	c := h.enqueue("dup", map[string]any{"conversationId": "dup-1"})
	first := c.Offers[0]
	lapse := fmt.Sprintf(`{"kind":"offerLapse","tenantId":%q,"conversationId":"dup-1","ref":%q,"due":%q}`,
		tenant, first.OfferedAt.Format(time.RFC3339Nano), first.ExpiresAt.Format(time.RFC3339Nano))
	h.wait("dup-1 goes to the next agent", 10*time.Second, func() bool {
		return len(h.get("dup-1").Offers) == 2
	})
	before := h.get("dup-1")
	for range 2 {
		out := h.envs[0].InvokeWith(t, "Distributor", lapse)
		if !out.Succeeded {
			t.Fatalf("Distributor: %+v", out)
		}
		h.envs[0].Send(t, "distribution", lapse)
	}
	time.Sleep(time.Second)
	after := h.get("dup-1")
	if len(after.Offers) != len(before.Offers) || !slices.Equal(after.ringing(), before.ringing()) || len(after.History) != len(before.History) {
		t.Fatalf("duplicated lapse changed the conversation: %+v → %+v", before.Offers, after.Offers)
	}
	// Accepted, then its own lapse message (the real one, when it is due,
	// and a copy now): nothing changes.
	second := after.Offers[1]
	h.accept("dup-1", second.UserID)
	own := fmt.Sprintf(`{"kind":"offerLapse","tenantId":%q,"conversationId":"dup-1","ref":%q,"due":%q}`,
		tenant, second.OfferedAt.Format(time.RFC3339Nano), second.OfferedAt.Format(time.RFC3339Nano))
	if out := h.envs[0].InvokeWith(t, "Distributor", own); !out.Succeeded {
		t.Fatalf("Distributor: %+v", out)
	}
	time.Sleep(time.Until(second.ExpiresAt) + 1500*time.Millisecond)
	if got := h.get("dup-1"); got.State != "Connected" || got.Agent.UserID != second.UserID {
		t.Errorf("after the accepted offer's lapse messages: %s %v", got.State, got.Agent)
	}
	if r := h.reason("dup", second.UserID); r != "InConversation" {
		t.Errorf("accepted agent: %q, want InConversation", r)
	}
}

// 200 conversations enqueued concurrently on 2 instances sharing Azurite,
// 50 agents accepting at random: every conversation connected exactly
// once, every offer's end in the history, no agent ever with two offers or
// an offer while connected, german conversations only with german agents,
// queue order by priority then arrival (checkHolds, checkOrder).
func TestConcurrentLineEndToEnd(t *testing.T) {
	// The timers run as in Azure: housekeeping catches a due time whose
	// message failed on every delivery (storage timing out under load).
	h := startWith(t, 50, 2, true)
	// One conversation in five needs german, which 10 agents speak: the
	// line must give those agents to the german conversations ahead of
	// others behind them, not lose them to whichever offer is quicker.
	german := map[string]bool{}
	members := make([]map[string]any, len(h.users))
	for i, u := range h.users {
		members[i] = map[string]any{"userId": u}
		if i < 10 {
			german[u] = true
			members[i]["skills"] = map[string]int{"german": 2}
		}
	}
	h.serviceMembers("line", members, map[string]any{"ringSeconds": 20, "queue": map[string]any{"maxLength": 200, "maxWaitSeconds": 600}})
	h.poll()
	const n = 200
	priorities := []int{10, 50, 90}
	needsGerman := func(i int) bool { return i%5 == 0 }
	// answered is when each enqueue was answered: from then on the
	// conversation is in the line (its queuedAt is when the request came,
	// which under a burst of 200 on a busy machine can be seconds before).
	answered := make([]time.Time, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := map[string]any{"conversationId": fmt.Sprintf("l-%03d", i), "priority": priorities[i%3]}
			if needsGerman(i) {
				body["requiredSkills"] = []map[string]any{{"name": "german", "minLevel": 2}}
			}
			if _, _, ok := h.call("POST", "/services/line/queue", body, http.StatusAccepted); ok {
				answered[i] = time.Now()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// Agents: each looks at its state, accepts a ringing offer (now or a
	// little later, at random, or declines one in ten), talks briefly and
	// releases.
	done := make(chan struct{})
	var agents sync.WaitGroup
	for _, u := range h.users {
		agents.Add(1)
		go func() {
			defer agents.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				var st agentState
				_, raw, ok := h.call("GET", "/agents/"+u, nil, http.StatusOK)
				if !ok || json.Unmarshal(raw, &st) != nil || st.Offer == nil {
					// An agent's client looks about once a second (each look
					// reads storage twice: on this shared 2-core machine
					// 50 agents looking faster saturate Azurite).
					time.Sleep(time.Duration(700+rand.IntN(600)) * time.Millisecond)
					continue
				}
				time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
				c := st.Offer.ConversationID
				if rand.IntN(10) == 0 {
					h.call("POST", "/conversations/"+c+"/decline", map[string]any{"userId": u}, http.StatusOK, http.StatusConflict)
					continue
				}
				if status, _, _ := h.call("POST", "/conversations/"+c+"/accept", map[string]any{"userId": u}, http.StatusOK, http.StatusConflict); status != http.StatusOK {
					continue // too late (409: lapsed), or failed
				}
				time.Sleep(time.Duration(rand.IntN(200)) * time.Millisecond)
				h.call("DELETE", "/conversations/"+c, nil, http.StatusNoContent)
			}
		}()
	}
	convs := make([]conversation, n)
	allEnded := func() bool {
		for i := range n {
			if convs[i].State != "Ended" {
				convs[i] = h.get(fmt.Sprintf("l-%03d", i))
			}
			if convs[i].State != "Ended" {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(3 * time.Minute)
	for !allEnded() && time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
	}
	close(done) // the agents stop before the test can end
	agents.Wait()
	if !allEnded() {
		var left []string
		for i := range convs { // allEnded stops at the first one not ended
			if convs[i].State != "Ended" {
				convs[i] = h.get(fmt.Sprintf("l-%03d", i))
			}
		}
		for _, c := range convs {
			if c.State != "Ended" {
				left = append(left, c.ConversationID+" "+c.State)
			}
		}
		for _, c := range convs {
			if c.State != "Ended" {
				raw, _ := json.Marshal(c)
				t.Logf("left: %s", raw)
			}
		}
		t.Fatalf("not every conversation connected and ended within 3 minutes: %v", left)
	}

	for _, c := range convs {
		connected := 0
		for _, e := range c.History {
			if e.Event == "connected" {
				connected++
			}
		}
		if connected != 1 {
			t.Errorf("%s connected %d times", c.ConversationID, connected)
		}
	}
	for _, c := range convs {
		if len(c.RequiredSkills) > 0 && !german[c.Agent.UserID] {
			t.Errorf("%s (german) connected to %s, who speaks none", c.ConversationID, c.Agent.UserID)
		}
	}
	checkHolds(t, convs)
	checkOrder(t, convs, answered, func(c conversation, u string) bool { return len(c.RequiredSkills) == 0 || german[u] })
}

// offerEnds are the history events that end an agent's offer.
var offerEnds = map[string]bool{"offerDeclined": true, "offerLapsed": true, "offerRescinded": true, "connected": true}

// checkHolds checks, from the ended conversations' histories, that every
// offer's end is recorded and that no agent ever had two offers, or an
// offer while connected: an agent's spans (offers, from offered to their
// recorded end or expiry, whichever is first; connected, from connected
// to ended) never overlap, except an offer ending where its own
// conversation's connected span starts.
func checkHolds(t *testing.T, convs []conversation) {
	t.Helper()
	type span struct {
		from, to time.Time
		conv     string
		what     string
	}
	spans := map[string][]span{}
	for _, c := range convs {
		expires := map[string]time.Time{}
		for _, o := range c.Offers {
			expires[o.UserID+"|"+o.OfferedAt.Format(time.RFC3339Nano)] = o.ExpiresAt
		}
		open := map[string]time.Time{} // user → offered at, of the offer that rings
		var connAt time.Time
		for _, e := range c.History {
			if e.UserID == nil {
				continue
			}
			u := *e.UserID
			switch {
			case e.Event == "offered":
				if _, ok := open[u]; ok {
					t.Errorf("%s offered to %s again while its offer rang", c.ConversationID, u)
				}
				open[u] = e.At
			case offerEnds[e.Event]:
				at, ok := open[u]
				if !ok {
					t.Errorf("%s: %s of %s without an offer", c.ConversationID, e.Event, u)
					continue
				}
				delete(open, u)
				exp, ok := expires[u+"|"+at.Format(time.RFC3339Nano)]
				if !ok {
					t.Errorf("%s: the history's offer to %s at %v is not among the offers", c.ConversationID, u, at)
				}
				end := e.At
				if ok && exp.Before(end) {
					end = exp // the hold lapsed by itself then
				}
				spans[u] = append(spans[u], span{at, end, c.ConversationID, "offered"})
				if e.Event == "connected" {
					connAt = e.At
				}
			case e.Event == "ended":
				spans[u] = append(spans[u], span{connAt, e.At, c.ConversationID, "connected"})
			}
		}
		for u, at := range open {
			t.Errorf("%s ended with no recorded end of its offer to %s at %v", c.ConversationID, u, at)
		}
		for _, o := range c.Offers {
			if o.State == "Ringing" {
				t.Errorf("%s ended with its offer to %s Ringing", c.ConversationID, o.UserID)
			}
		}
	}
	overlaps := 0
	for u, ss := range spans {
		sort.Slice(ss, func(i, j int) bool { return ss[i].from.Before(ss[j].from) })
		for i := 1; i < len(ss); i++ {
			if ss[i].from.Before(ss[i-1].to) && ss[i].conv != ss[i-1].conv {
				if overlaps++; overlaps < 5 {
					t.Errorf("agent %s: %s %s (%v–%v) overlaps %s %s (%v–%v)", u, ss[i].conv, ss[i].what, ss[i].from, ss[i].to,
						ss[i-1].conv, ss[i-1].what, ss[i-1].from, ss[i-1].to)
				}
			}
		}
	}
	if overlaps > 0 {
		t.Errorf("%d overlapping offers or conversations", overlaps)
	}
}

// inFlight is how many offers the two instances' passes can have under
// way at once (offersInFlight each).
const inFlight = 16

// checkOrder checks the queue order (priority, then arrival) from the
// order of the histories' events, not from how long anything took. An
// offer of conversation X to agent a is out of order when a better
// conversation Y that a could take (ahead in the order, not declined by a)
// waited un-offered from before a was freed (a's release, decline or
// rescinded offer before the offer) and went on waiting while more than
// inFlight further offers were made. A pass reads the free agents before
// the line, so its reading has every conversation that waited before the
// agents it gives out were freed; Y may still lose a to what was in flight
// (Y offered in the same round, or by the other instance, to another
// agent), and that has ended Y's wait within inFlight offers. A
// conversation's first wait starts when its enqueue was answered (it is in
// the line from then on; queuedAt is when the request came).
func checkOrder(t *testing.T, convs []conversation, answered []time.Time, canTake func(c conversation, user string) bool) {
	t.Helper()
	type offerAt struct {
		at   time.Time
		conv int
		user string
	}
	type wait struct{ from, to time.Time }
	var offers []offerAt
	waits := make([][]wait, len(convs))
	declined := make([]map[string]time.Time, len(convs))
	freed := map[string][]time.Time{} // agent → when it was freed
	for i, c := range convs {
		declined[i] = map[string]time.Time{}
		ringing := map[string]bool{}
		var w *wait
		for _, e := range c.History {
			u := ""
			if e.UserID != nil {
				u = *e.UserID
			}
			switch {
			case e.Event == "queued":
				w = &wait{from: e.At}
				if answered[i].After(w.from) {
					w.from = answered[i]
				}
			case e.Event == "offered":
				offers = append(offers, offerAt{e.At, i, u})
				ringing[u] = true
			case offerEnds[e.Event]:
				delete(ringing, u)
				if e.Event == "offerDeclined" {
					declined[i][u] = e.At
				}
				if e.Event == "offerDeclined" || e.Event == "offerRescinded" {
					freed[u] = append(freed[u], e.At)
				}
				if e.Event != "connected" && len(ringing) == 0 {
					w = &wait{from: e.At}
				}
			case e.Event == "ended":
				freed[u] = append(freed[u], e.At)
			}
			if w != nil && (len(ringing) > 0 || e.Event == "connected") {
				w.to = e.At
				waits[i] = append(waits[i], *w)
				w = nil
			}
		}
	}
	sort.Slice(offers, func(i, j int) bool { return offers[i].at.Before(offers[j].at) })
	better := func(a, b conversation) bool {
		if a.Priority != b.Priority {
			return a.Priority > b.Priority
		}
		if !a.QueuedAt.Equal(b.QueuedAt) {
			return a.QueuedAt.Before(b.QueuedAt)
		}
		return a.ConversationID < b.ConversationID
	}
	out, worst, worstWhat := 0, 0, ""
	for k, o := range offers {
		var free time.Time // when o.user was last freed before the offer (zero: free from the start)
		for _, f := range freed[o.user] {
			if f.Before(o.at) && f.After(free) {
				free = f
			}
		}
		if free.IsZero() {
			continue
		}
		for y := range convs {
			if y == o.conv || !better(convs[y], convs[o.conv]) || !canTake(convs[y], o.user) {
				continue
			}
			if at, ok := declined[y][o.user]; ok && at.Before(o.at) {
				continue
			}
			for _, w := range waits[y] {
				if !w.from.Before(free) || !w.from.Before(o.at) || !o.at.Before(w.to) {
					continue
				}
				later := sort.Search(len(offers), func(i int) bool { return !offers[i].at.Before(w.to) }) - k - 1
				if later > worst {
					worst = later
					worstWhat = fmt.Sprintf("%s (priority %d, %d skills) passed over for %s (priority %d) at %v", convs[y].ConversationID,
						convs[y].Priority, len(convs[y].RequiredSkills), convs[o.conv].ConversationID, convs[o.conv].Priority, o.at)
				}
				if later > inFlight {
					if out++; out <= 5 {
						t.Errorf("%s (priority %d) offered to %s at %v while %s (priority %d) waited un-offered from %v, before the agent was "+
							"freed at %v, until %v, %d offers later", convs[o.conv].ConversationID, convs[o.conv].Priority, o.user, o.at,
							convs[y].ConversationID, convs[y].Priority, w.from, free, w.to, later)
					}
				}
			}
		}
	}
	t.Logf("queue order: %d offers; a conversation passed over went on waiting for at most %d further offers (allowed %d): %s", len(offers), worst,
		inFlight, worstWhat)
	if out > 0 {
		t.Errorf("%d offers out of queue order", out)
	}
}

// Queue order when many agents come free at once, through the handler:
// each freed agent gets the first conversation in the order it can take.
// Five german conversations (priority 90) come first and three of the ten
// agents speak german: those three get the first three german
// conversations, the other seven the first seven of the rest (priority
// 50); the last two german ones wait (nobody left can take them) without
// blocking the line. Decided by which conversations ring, not by times.
func TestLineOrderWhenAgentsComeFreeEndToEnd(t *testing.T) {
	h := start(t, 10, 1)
	german := map[string]bool{}
	members := make([]map[string]any, len(h.users))
	for i, u := range h.users {
		members[i] = map[string]any{"userId": u}
		if i < 3 {
			german[u] = true
			members[i]["skills"] = map[string]int{"german": 2}
		}
		h.sim.SetPresence(tenant, u, "Busy", "InACall", false)
	}
	h.serviceMembers("order", members, map[string]any{"ringSeconds": 120})
	h.poll()
	var ids []string
	for i := range 5 {
		id := fmt.Sprintf("de-%d", i)
		h.enqueue("order", map[string]any{"conversationId": id, "priority": 90, "requiredSkills": []map[string]any{{"name": "german", "minLevel": 2}}})
		ids = append(ids, id)
	}
	for i := range 10 {
		id := fmt.Sprintf("any-%d", i)
		h.enqueue("order", map[string]any{"conversationId": id, "priority": 50})
		ids = append(ids, id)
	}
	for _, u := range h.users {
		h.sim.SetPresence(tenant, u, "Available", "Available", false)
	}
	h.poll()
	h.wait("every freed agent offered a conversation", 20*time.Second, func() bool {
		for _, u := range h.users {
			if h.agent(u).Offer == nil {
				return false
			}
		}
		return true
	})
	want := map[string]bool{"de-0": true, "de-1": true, "de-2": true}
	for i := range 7 {
		want[fmt.Sprintf("any-%d", i)] = true
	}
	for _, id := range ids {
		c := h.get(id)
		r := c.ringing()
		if want[id] != (len(r) == 1) {
			t.Errorf("%s: ringing %v, want offered %v", id, r, want[id])
		}
		if strings.HasPrefix(id, "de-") && len(r) == 1 && !german[r[0]] {
			t.Errorf("%s (german) offered to %s, who speaks none", id, r[0])
		}
	}
}

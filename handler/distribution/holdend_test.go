package distribution

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"switchboard/handler/internal/fakes"
	"switchboard/handler/routing"
	"switchboard/handler/store"
	sb "switchboard/handler/switchboard"
)

// holdEndMessages returns the pending holdEnd messages, oldest first.
func (f *fixture) holdEndMessages() []sb.Message {
	f.t.Helper()
	f.queue.mu.Lock()
	defer f.queue.mu.Unlock()
	var out []sb.Message
	for _, m := range f.queue.msgs {
		var d message
		if err := json.Unmarshal(m.Body, &d); err != nil {
			f.t.Fatal(err)
		}
		if d.Kind == kindHoldEnd {
			out = append(out, m)
		}
	}
	return out
}

// routeHold reserves one agent of service for conv through the route API
// for hold, and waits for the hold's due-time message to be sent.
func (f *fixture) routeHold(service, conv string, hold time.Duration) sb.Assignment {
	f.t.Helper()
	d, err := f.engine.Route(ctx, tenant, service, sb.RouteRequest{ConversationID: conv, Reserve: true, Hold: hold, MaxAgents: 1})
	if err != nil || len(d.Agents) != 1 {
		f.t.Fatalf("route %s: %+v %v, want one agent held", conv, d, err)
	}
	f.svc.Wait()
	return d.Agents[0]
}

func (f *fixture) handle(m sb.Message) Outcome {
	f.t.Helper()
	out, err := f.svc.Handle(ctx, m.Body)
	if err != nil {
		f.t.Fatalf("Handle: %v", err)
	}
	f.svc.Wait()
	return out
}

// A route API hold (holdSeconds) that simply runs out frees its agent: the
// conversation waiting for it is offered at the hold's end (its due-time
// message), not at the next housekeeping tick; the message redelivered
// changes nothing.
func TestRouteHoldThatRunsOutGivesTheAgentItsNextItem(t *testing.T) {
	f := newFixture(t)
	f.service("support", 1, routing.DistributionInput{}, nil)
	a := f.routeHold("support", "own-queue-1", 30*time.Second)
	if a.UserID != user(1) || !a.HoldExpiresAt.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("held %+v, want user(1) until %v", a, t0.Add(30*time.Second))
	}
	msgs := f.holdEndMessages()
	if len(msgs) != 1 || !msgs[0].ScheduledAt.Equal(a.HoldExpiresAt) {
		t.Fatalf("holdEnd messages %+v, want one scheduled at the hold's end", msgs)
	}
	if c := f.enqueue("support", "c-1", EnqueueInput{}); c.State != StateQueued {
		t.Fatalf("enqueued while the agent is held: %s, want Queued", c.State)
	}
	f.advance(29 * time.Second)
	if r := ringing(f.get("c-1")); len(r) != 0 {
		t.Fatalf("1 s before the hold ends c-1 rings at %v", r)
	}
	f.advance(time.Second)
	if r := ringing(f.get("c-1")); !slices.Equal(r, []string{user(1)}) {
		t.Fatalf("at the hold's end c-1 rings at %v, want user(1)", r)
	}

	if out := f.handle(msgs[0]); out.Action != "noop" {
		t.Errorf("redelivered: %s, want noop (the agent has the offer now)", out)
	}
	if c := f.get("c-1"); len(c.Offers) != 1 {
		t.Errorf("after the redelivery c-1 has offers %+v, want the one", c.Offers)
	}
}

// The message of a hold that ended otherwise changes nothing: delivered a
// little early it comes back at its time; for an agent released early and
// held by another conversation, or held again by the same conversation
// with a new end, it is a no-op (that hold has its own message).
func TestRouteHoldEndMessageEarlyOrOvertaken(t *testing.T) {
	f := newFixture(t)
	f.service("support", 1, routing.DistributionInput{}, nil)
	f.routeHold("support", "own-1", 30*time.Second)
	first := f.holdEndMessages()[0]

	f.clock.Advance(29*time.Second + 500*time.Millisecond)
	if out := f.handle(first); out.Action != "early" {
		t.Fatalf("half a second before the end: %s, want early", out)
	}
	if again := f.holdEndMessages(); len(again) != 2 || !again[1].ScheduledAt.Equal(first.ScheduledAt) {
		t.Fatalf("after the early delivery: %+v, want it scheduled again at its time", again)
	}

	// Held again by the same conversation with a new end: the old message
	// is a no-op, not rescheduled over and over.
	f.clock.Advance(time.Second)
	f.routeHold("support", "own-1", 30*time.Second)
	if out := f.handle(first); out.Action != "noop" {
		t.Errorf("after the same conversation was held again: %s, want noop", out)
	}

	// Released early and taken by another conversation.
	if err := f.engine.Release(ctx, tenant, "own-1"); err != nil {
		t.Fatal(err)
	}
	released := f.holdEndMessages()
	second := released[len(released)-1]
	if _, err := f.engine.Route(ctx, tenant, "support", sb.RouteRequest{ConversationID: "own-2", Reserve: true, UntilReleased: true}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(31 * time.Second)
	if out := f.handle(second); out.Action != "noop" || !strings.Contains(out.Detail, "other work") {
		t.Errorf("agent held by another conversation: %s, want noop", out)
	}
	if got := f.holdEndMessages(); len(got) != len(released) {
		t.Errorf("an until-released hold scheduled a holdEnd message: %d, want %d", len(got), len(released))
	}

	for name, body := range map[string]string{
		"no agents":   `{"kind":"holdEnd","tenantId":"` + tenant + `","conversationId":"own-1","ref":"2026-11-22T12:00:30Z","due":"2026-11-22T12:00:30Z"}`,
		"bad agent":   `{"kind":"holdEnd","tenantId":"` + tenant + `","conversationId":"own-1","userIds":["x"],"ref":"2026-11-22T12:00:30Z","due":"2026-11-22T12:00:30Z"}`,
		"bad conv id": `{"kind":"holdEnd","tenantId":"` + tenant + `","conversationId":"a b","userIds":["` + user(1) + `"],"ref":"2026-11-22T12:00:30Z","due":"2026-11-22T12:00:30Z"}`,
	} {
		if out := f.handle(sb.Message{Body: []byte(body)}); out.Action != "dropped" {
			t.Errorf("%s: %s, want dropped", name, out)
		}
	}
}

// A route API hold of several agents (Broadcast) is one message; when it
// runs out, the waiting conversation is offered to all of them at once.
func TestBroadcastRouteHoldRunsOut(t *testing.T) {
	f := newFixture(t)
	f.service("support", 3, routing.DistributionInput{Order: ptr(sb.OrderBroadcast), BroadcastSize: ptr(3)}, nil)
	d, err := f.engine.Route(ctx, tenant, "support", sb.RouteRequest{ConversationID: "own-1", Reserve: true, Hold: 10 * time.Second})
	if err != nil || len(d.Agents) != 3 {
		t.Fatalf("route: %+v %v, want three agents held", d, err)
	}
	f.svc.Wait()
	if msgs := f.holdEndMessages(); len(msgs) != 1 {
		t.Fatalf("%d holdEnd messages, want one for the three agents", len(msgs))
	}
	f.enqueue("support", "c-1", EnqueueInput{})
	f.advance(10 * time.Second)
	if r := ringing(f.get("c-1")); !slices.Equal(r, []string{user(1), user(2), user(3)}) {
		t.Fatalf("at the hold's end c-1 rings at %v, want all three", r)
	}
}

// An Offline reading that ends an agent's RONA distributes its services:
// the agent's next reading (back Available) may have been told while the
// agent was still in RONA (the two notifications run side by side), and
// nothing else would offer it the waiting conversation.
func TestOfflineEndingRonaDistributes(t *testing.T) {
	f := newFixture(t)
	f.service("support", 1, routing.DistributionInput{}, nil)
	f.enqueue("support", "c-1", EnqueueInput{})
	f.advance(20 * time.Second) // user(1) lets it ring: RONA
	if v := f.agent(user(1)); v.Rona == nil {
		t.Fatalf("after the lapse: %+v, want RONA", v)
	}
	// The Available reading was written (and told, and found the agent in
	// RONA) before the Offline reading's notification ended the RONA.
	f.svc.PresenceChanged(ctx, tenant, []sb.Presence{{UserID: user(1), Availability: sb.Available, Activity: sb.Available}})
	f.svc.Wait()
	if r := ringing(f.get("c-1")); len(r) != 0 {
		t.Fatalf("c-1 rings at %v while the agent is in RONA", r)
	}
	f.svc.PresenceChanged(ctx, tenant, []sb.Presence{{UserID: user(1), Availability: sb.Offline, Activity: sb.Offline}})
	f.svc.Wait()
	if r := ringing(f.get("c-1")); !slices.Equal(r, []string{user(1)}) {
		t.Fatalf("after the Offline reading ended RONA (the agent reads Available now): c-1 rings at %v, want user(1)", r)
	}
}

// TestRingNoAnswerEndToEnd's flake: the agent let an offer ring out and
// its presence read Offline at once. The Offline reading's notification
// read the rung-out offer's row; the lapse, on an instance whose presence
// copy still read Available, wrote the RONA over it; the notification's
// delete then failed on its ETag and the agent stayed in RONA for the
// whole reset time. Back Available (the next poll), it was offered
// nothing until the RONA's time. Now the RONA written in between ends
// too, and the waiting conversation is offered as soon as the agent reads
// Available.
func TestOfflineRacingTheLapseStillEndsRona(t *testing.T) {
	race := &fakes.DeleteRace{Tables: store.NewMemoryTables(), TableName: routing.StateTable,
		Match: func(rk string) bool { return strings.HasSuffix(rk, "|"+user(1)) }}
	f := newFixtureOn(t, race)
	f.service("support", 1, routing.DistributionInput{RingSeconds: ptr(20), Rona: &routing.RonaInput{ResetSeconds: ptr(600)}}, nil)
	if c := f.enqueue("support", "c-1", EnqueueInput{}); !slices.Equal(ringing(c), []string{user(1)}) {
		t.Fatalf("c-1 offered to %v, want user(1)", ringing(c))
	}
	f.clock.Advance(20*time.Second + 200*time.Millisecond) // rung out; the lapse message not handled yet

	lagging := &fakePresence{clock: f.clock, readings: map[string]sb.Presence{}}
	lagging.set(user(1), sb.Available)
	e, err := routing.New(ctx, routing.Options{Tables: f.tables, Presence: lagging, StaleAfter: 120 * time.Second, Now: f.clock.Now, StateRefresh: -1})
	if err != nil {
		t.Fatal(err)
	}
	other, err := New(ctx, Options{Tables: f.tables, Agents: e, Presence: lagging, Queue: f.queue, QueueName: "distribution", Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Wait)
	lapsed := 0
	race.Race = func() {
		for _, m := range f.queue.due(f.clock.Now()) {
			if o, err := other.Handle(ctx, m.Body); err != nil {
				t.Errorf("Handle: %v", err)
			} else if o.Action == "acted" {
				lapsed++
			}
		}
		other.Wait()
	}

	f.presence.set(user(1), sb.Offline)
	f.svc.PresenceChanged(ctx, tenant, []sb.Presence{{UserID: user(1), Availability: sb.Offline, Activity: sb.Offline}})
	f.svc.Wait()
	if lapsed != 1 {
		t.Fatalf("%d lapses handled while the Offline reading was ending RONA, want 1", lapsed)
	}
	if h, err := f.engine.Agent(ctx, tenant, user(1)); err != nil || h.Kind != "" {
		t.Fatalf("after the Offline reading the agent's hold is %q (%v), want none: its presence read Offline", h.Kind, err)
	}
	f.presence.set(user(1), sb.Available)
	lagging.set(user(1), sb.Available)
	f.svc.PresenceChanged(ctx, tenant, []sb.Presence{{UserID: user(1), Availability: sb.Available, Activity: sb.Available}})
	f.svc.Wait()
	if r := ringing(f.get("c-1")); !slices.Equal(r, []string{user(1)}) {
		t.Fatalf("back Available: c-1 rings at %v, want user(1) at once", r)
	}
}

// An agent whose presence reads Offline while its offer rings lets it ring
// out: the Offline reading came first, so nothing would end the RONA; it
// ends at the lapse, and the agent signing back in is offered the waiting
// conversation at once rather than held out for the reset time.
func TestRingOutWhileOfflineLeavesNoRona(t *testing.T) {
	f := newFixture(t)
	f.service("support", 1, routing.DistributionInput{RingSeconds: ptr(20), Rona: &routing.RonaInput{ResetSeconds: ptr(600)}}, nil)
	f.enqueue("support", "c-1", EnqueueInput{})
	f.presence.set(user(1), sb.Offline)
	f.svc.PresenceChanged(ctx, tenant, []sb.Presence{{UserID: user(1), Availability: sb.Offline, Activity: sb.Offline}})
	f.svc.Wait()
	f.advance(20 * time.Second) // the lapse
	c := f.get("c-1")
	if len(c.Offers) != 1 || c.Offers[0].State != OfferLapsed {
		t.Fatalf("c-1 offers %+v, want the one lapsed", c.Offers)
	}
	if h, err := f.engine.Agent(ctx, tenant, user(1)); err != nil || h.Kind != "" {
		t.Fatalf("after the ring-out the agent's hold is %q (%v), want none: it read Offline", h.Kind, err)
	}
	f.presence.set(user(1), sb.Available)
	f.svc.PresenceChanged(ctx, tenant, []sb.Presence{{UserID: user(1), Availability: sb.Available, Activity: sb.Available}})
	f.svc.Wait()
	if r := ringing(f.get("c-1")); !slices.Equal(r, []string{user(1)}) {
		t.Fatalf("signed back in: c-1 rings at %v, want user(1) at once", r)
	}
}

package distribution

import (
	"slices"
	"strings"
	"testing"
	"time"

	"switchboard/handler/outbox"
	"switchboard/handler/routing"
	sb "switchboard/handler/switchboard"
)

// direct is the agent of the direct conversations in these tests: a
// member of no service.
var direct = user(9)

// desk makes users members of a service "desk", inactive (they take no
// service conversations there), so that their presence is followed.
func (f *fixture) desk(users ...string) {
	f.t.Helper()
	in := routing.ServiceInput{Name: ptr("desk")}
	for _, u := range users {
		in.Members = append(in.Members, routing.MemberInput{UserID: u, Active: ptr(false)})
	}
	if _, _, err := f.engine.PutService(ctx, tenant, "desk", in, ""); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) offerDirect(id, agent string) Conversation {
	f.t.Helper()
	c, created, err := f.svc.OfferDirect(ctx, tenant, agent, EnqueueInput{ConversationID: id, Customer: Customer{DisplayName: "Ada"}})
	if err != nil || !created {
		f.t.Fatalf("offer %s directly to %s: created %v, %v", id, agent, created, err)
	}
	f.svc.Wait()
	return c
}

func (f *fixture) position(id string) int {
	f.t.Helper()
	p, err := f.svc.Get(ctx, tenant, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return p.Position
}

// A free agent is offered the conversation at once, through the same hold
// as a service's offer; accepted, it is Connected; released, the agent is
// free (the service defaults: no after-call work).
func TestDirectOfferAcceptRelease(t *testing.T) {
	f := newFixture(t)
	f.desk(direct, user(8))
	f.presence.set(direct, sb.Available)
	c := f.offerDirect("interact:s-1", direct)
	if c.State != StateOffered || !slices.Equal(ringing(c), []string{direct}) || c.ServiceID != "" || c.DirectUserID != direct {
		t.Fatalf("offered: state %s ringing %v service %q direct %q", c.State, ringing(c), c.ServiceID, c.DirectUserID)
	}
	if want := t0.Add(20 * time.Second); !c.Offers[0].ExpiresAt.Equal(want) {
		t.Errorf("offer expires %v, want the default ring time (%v)", c.Offers[0].ExpiresAt, want)
	}
	if p := f.position("interact:s-1"); p != 1 {
		t.Errorf("position %d, want 1", p)
	}
	if v := f.agent(direct); v.Offer == nil || v.Offer.ConversationID != "interact:s-1" {
		t.Errorf("agent view offer = %+v", v.Offer)
	}
	// The agent's one offer also keeps it from a service's conversation.
	in := routing.ServiceInput{Name: ptr("support"), Members: []routing.MemberInput{{UserID: direct}}}
	if _, _, err := f.engine.PutService(ctx, tenant, "support", in, ""); err != nil {
		t.Fatal(err)
	}
	if got := f.reason("support", direct); got != sb.ReasonOfferPending {
		t.Errorf("agent with a ringing direct offer: %q in a service, want OfferPending", got)
	}
	if svcConv := f.enqueue("support", "c-1", EnqueueInput{}); len(ringing(svcConv)) != 0 {
		t.Fatalf("a service's conversation rang for an agent with a direct offer: %v", ringing(svcConv))
	}
	f.clock.Advance(5 * time.Second)
	got, err := f.svc.Accept(ctx, tenant, "interact:s-1", direct)
	if err != nil || got.State != StateConnected || got.Agent != direct {
		t.Fatalf("accept: %+v, %v", got, err)
	}
	if v := f.agent(direct); v.Conversation == nil || v.Conversation.ConversationID != "interact:s-1" {
		t.Errorf("agent view conversation = %+v", v.Conversation)
	}
	if ok, err := f.svc.End(ctx, tenant, "interact:s-1"); !ok || err != nil {
		t.Fatalf("end: %v %v", ok, err)
	}
	f.svc.Wait()
	if c := f.get("interact:s-1"); c.State != StateEnded {
		t.Errorf("after release: %s", c.State)
	}
	// Freed, the agent gets the service's waiting conversation at once.
	if got := ringing(f.get("c-1")); !slices.Equal(got, []string{direct}) {
		t.Errorf("after the direct conversation ended, c-1 rings for %v, want %s", got, direct)
	}
	if v := f.agent(direct); v.AfterCallWork != nil {
		t.Errorf("after-call work %v after a direct conversation, want none (the service defaults)", v.AfterCallWork)
	}
}

// A busy agent: direct conversations wait for it in their order, and the
// first is offered the moment the agent is free; a decline ends it
// (Rejected: there is no other agent) and frees the agent for the next.
func TestDirectWaitsForBusyAgentThenDecline(t *testing.T) {
	f := newFixture(t)
	f.service("support", 1, routing.DistributionInput{}, nil)
	busy := user(1)
	f.enqueue("support", "c-1", EnqueueInput{})
	if _, err := f.svc.Accept(ctx, tenant, "c-1", busy); err != nil {
		t.Fatal(err)
	}
	first := f.offerDirect("interact:s-1", busy)
	f.clock.Advance(time.Second)
	second := f.offerDirect("interact:s-2", busy)
	if first.State != StateQueued || second.State != StateQueued || len(first.Offers)+len(second.Offers) != 0 {
		t.Fatalf("for a busy agent: %s %v, %s %v; want both Queued, not offered", first.State, first.Offers, second.State, second.Offers)
	}
	if p1, p2 := f.position("interact:s-1"), f.position("interact:s-2"); p1 != 1 || p2 != 2 {
		t.Errorf("positions %d, %d; want 1, 2 in the agent's line", p1, p2)
	}
	if _, err := f.svc.End(ctx, tenant, "c-1"); err != nil {
		t.Fatal(err)
	}
	f.svc.Wait()
	if got := ringing(f.get("interact:s-1")); !slices.Equal(got, []string{busy}) {
		t.Fatalf("agent freed: s-1 rings for %v, want %s", got, busy)
	}
	if got := f.get("interact:s-2"); got.State != StateQueued {
		t.Errorf("s-2 %s while s-1 rings, want Queued", got.State)
	}
	if _, err := f.svc.Decline(ctx, tenant, "interact:s-1", busy); err != nil {
		t.Fatal(err)
	}
	f.svc.Wait()
	c := f.get("interact:s-1")
	if c.State != StateRejected || !strings.Contains(c.OutcomeDetail, "declined") {
		t.Errorf("declined: %s (%s), want Rejected saying it was declined", c.State, c.OutcomeDetail)
	}
	if got := ringing(f.get("interact:s-2")); !slices.Equal(got, []string{busy}) {
		t.Errorf("after the decline s-2 rings for %v, want %s", got, busy)
	}
	if v := f.agent(busy); v.Rona != nil {
		t.Errorf("a decline put the agent into RONA (%+v); the defaults have rona.onDecline off", v.Rona)
	}
}

// Ring, no answer: at the ring time (a due-time message) the agent goes
// into RONA for the default 600 s and the conversation ends TimedOut.
func TestDirectRingNoAnswer(t *testing.T) {
	f := newFixture(t)
	f.desk(direct, user(8))
	f.presence.set(direct, sb.Available)
	f.offerDirect("interact:s-1", direct)
	f.advance(19 * time.Second)
	if got := f.get("interact:s-1"); got.State != StateOffered {
		t.Fatalf("19 s into a 20 s ring: %s", got.State)
	}
	f.advance(time.Second)
	c := f.get("interact:s-1")
	if c.State != StateTimedOut || c.Offers[0].State != OfferLapsed || !strings.Contains(c.OutcomeDetail, "did not answer") {
		t.Fatalf("rang out: %s, offer %s (%s); want TimedOut, Lapsed", c.State, c.Offers[0].State, c.OutcomeDetail)
	}
	v := f.agent(direct)
	if v.Rona == nil || v.Rona.ConversationID != "interact:s-1" || !v.Rona.Until.Equal(t0.Add(620*time.Second)) {
		t.Errorf("agent's RONA %+v, want until %v", v.Rona, t0.Add(620*time.Second))
	}
	// In RONA the agent is busy: the next direct conversation waits, and is
	// offered when RONA ends.
	if c := f.offerDirect("interact:s-2", direct); c.State != StateQueued {
		t.Fatalf("for an agent in RONA: %s, want Queued", c.State)
	}
	f.advance(600 * time.Second)
	if got := ringing(f.get("interact:s-2")); !slices.Equal(got, []string{direct}) {
		t.Errorf("RONA over: s-2 rings for %v, want %s", got, direct)
	}
}

// An agent who is not signed in is offered nothing: Rejected at once,
// saying why, and no hold is left behind.
func TestDirectAgentNotSignedIn(t *testing.T) {
	for name, set := range map[string]func(f *fixture){
		"offline":    func(f *fixture) { f.presence.set(direct, sb.Offline) },
		"no reading": func(f *fixture) {},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			f.desk(direct)
			set(f)
			c := f.offerDirect("interact:s-1", direct)
			if c.State != StateRejected || !strings.Contains(c.OutcomeDetail, "not signed in") {
				t.Errorf("%s: %s (%s), want Rejected, not signed in", name, c.State, c.OutcomeDetail)
			}
			if v := f.agent(direct); v.Offer != nil || v.Conversation != nil {
				t.Errorf("agent holds %+v %+v", v.Offer, v.Conversation)
			}
		})
	}
}

// A direct conversation waits at most the default 1,200 s for its agent.
func TestDirectWaitLimit(t *testing.T) {
	f := newFixture(t)
	f.service("support", 1, routing.DistributionInput{}, nil)
	f.enqueue("support", "c-1", EnqueueInput{})
	if _, err := f.svc.Accept(ctx, tenant, "c-1", user(1)); err != nil {
		t.Fatal(err)
	}
	f.offerDirect("interact:s-1", user(1))
	f.advance(1199 * time.Second)
	if got := f.get("interact:s-1"); got.State != StateQueued {
		t.Fatalf("1 s before the wait limit: %s", got.State)
	}
	f.advance(time.Second)
	if got := f.get("interact:s-1"); got.State != StateTimedOut {
		t.Errorf("at the wait limit: %s, want TimedOut", got.State)
	}
}

// The same id again is the same conversation; for another agent or known
// in a service it is a conflict; a direct conversation cannot be requeued.
func TestDirectIdempotentAndConflicts(t *testing.T) {
	f := newFixture(t)
	f.desk(direct, user(8))
	f.presence.set(direct, sb.Available)
	f.offerDirect("interact:s-1", direct)
	again, created, err := f.svc.OfferDirect(ctx, tenant, direct, EnqueueInput{ConversationID: "interact:s-1"})
	if err != nil || created || again.State != StateOffered || len(again.Offers) != 1 {
		t.Errorf("again: %s %d offers, created %v, %v; want as it was", again.State, len(again.Offers), created, err)
	}
	if _, _, err := f.svc.OfferDirect(ctx, tenant, user(8), EnqueueInput{ConversationID: "interact:s-1"}); !sb.IsCode(err, sb.ECONFLICT) {
		t.Errorf("for another agent: %v, want ECONFLICT", err)
	}
	f.service("support", 1, routing.DistributionInput{}, nil)
	f.enqueue("support", "c-1", EnqueueInput{})
	if _, _, err := f.svc.OfferDirect(ctx, tenant, direct, EnqueueInput{ConversationID: "c-1"}); !sb.IsCode(err, sb.ECONFLICT) {
		t.Errorf("known in a service: %v, want ECONFLICT", err)
	}
	if _, _, err := f.svc.OfferDirect(ctx, tenant, "not-a-guid", EnqueueInput{ConversationID: "interact:s-2"}); !sb.IsCode(err, sb.EINVALID) {
		t.Errorf("a malformed user: %v, want EINVALID", err)
	}
	// Presence is followed for services' members only: anyone else could
	// never be known to be signed in.
	f.presence.set(user(7), sb.Available)
	_, _, err = f.svc.OfferDirect(ctx, tenant, user(7), EnqueueInput{ConversationID: "interact:s-3"})
	if e, ok := err.(*sb.Error); !ok || e.Code != sb.EINVALID || e.Field != "userId" || !strings.Contains(e.Message, "member of none") {
		t.Errorf("a user in no service: %v, want EINVALID naming userId", err)
	}
	if _, err := f.svc.Accept(ctx, tenant, "interact:s-1", direct); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Requeue(ctx, tenant, "interact:s-1"); !sb.IsCode(err, sb.ECONFLICT) {
		t.Errorf("requeue a direct conversation: %v, want ECONFLICT", err)
	}
}

// Housekeeping does what a missed event or message left: a lapse whose
// message was lost, an agent freed without distribution being told, an
// agent gone Offline while its conversation waited.
func TestDirectHousekeeping(t *testing.T) {
	f := newFixture(t)
	f.desk(direct, user(8))
	f.presence.set(direct, sb.Available)
	f.offerDirect("interact:s-1", direct)
	f.queue.due(t0.Add(time.Hour)) // every message lost
	f.clock.Advance(26 * time.Second)
	if _, err := f.svc.Housekeep(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.get("interact:s-1"); got.State != StateTimedOut {
		t.Fatalf("lapse message lost, after housekeeping: %s, want TimedOut", got.State)
	}
	// The agent is in RONA: s-2 waits. RONA ended without distribution
	// hearing of it (another instance's reset, say): housekeeping offers it.
	f.offerDirect("interact:s-2", direct)
	if _, err := f.engine.EndAgentHold(ctx, tenant, direct, sb.HoldRona, time.Time{}, sb.HoldEndEarly); err != nil {
		t.Fatal(err)
	}
	if got := f.get("interact:s-2"); got.State != StateQueued {
		t.Fatalf("before housekeeping: %s", got.State)
	}
	if _, err := f.svc.Housekeep(ctx); err != nil {
		t.Fatal(err)
	}
	f.svc.Wait()
	if got := ringing(f.get("interact:s-2")); !slices.Equal(got, []string{direct}) {
		t.Fatalf("after housekeeping s-2 rings for %v, want %s", got, direct)
	}
	if _, err := f.svc.Accept(ctx, tenant, "interact:s-2", direct); err != nil {
		t.Fatal(err)
	}
	f.offerDirect("interact:s-3", direct)
	f.presence.set(direct, sb.Offline)
	if _, err := f.svc.Housekeep(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.get("interact:s-3"); got.State != StateQueued {
		t.Errorf("agent Offline but still holding s-2: s-3 %s, want Queued (busy comes before presence)", got.State)
	}
	if _, err := f.svc.End(ctx, tenant, "interact:s-2"); err != nil {
		t.Fatal(err)
	}
	f.svc.Wait()
	if got := f.get("interact:s-3"); got.State != StateRejected {
		t.Errorf("agent freed while Offline: s-3 %s, want Rejected", got.State)
	}
}

// outboxBySequence returns the events written to the outbox, in sequence
// order (receivers order by it; the fake clock gives every event the same
// time, by which the outbox orders its rows).
func (f *fixture) outboxBySequence() []outbox.Pending {
	f.t.Helper()
	table, _ := f.tables.Table(ctx, TableName)
	rows, err := outbox.Read(ctx, table, tenant)
	if err != nil {
		f.t.Fatal(err)
	}
	slices.SortFunc(rows, func(a, b outbox.Pending) int { return int(a.Event.Sequence - b.Event.Sequence) })
	return rows
}

// A direct conversation's changes are events as any conversation's, with
// no service.
func TestDirectEvents(t *testing.T) {
	f := newFixture(t)
	s, err := New(ctx, Options{Tables: f.tables, Agents: f.engine, Presence: f.presence, Queue: f.queue, QueueName: "distribution", Now: f.clock.Now, Events: &fakeOutbox{}})
	if err != nil {
		t.Fatal(err)
	}
	f.svc = s
	t.Cleanup(s.Wait)
	f.desk(direct)
	f.presence.set(direct, sb.Available)
	f.offerDirect("interact:s-1", direct)
	if _, err := s.Accept(ctx, tenant, "interact:s-1", direct); err != nil {
		t.Fatal(err)
	}
	if _, err := s.End(ctx, tenant, "interact:s-1"); err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, r := range f.outboxBySequence() {
		types = append(types, strings.TrimPrefix(r.Event.Type, "switchboard.conversation."))
		if r.Event.Subject != "conversations/interact:s-1" || r.Event.ServiceID != "" {
			t.Errorf("event %s: subject %s, service %q", r.Event.Type, r.Event.Subject, r.Event.ServiceID)
		}
	}
	if want := []string{"queued", "offered", "connected", "ended"}; !slices.Equal(types, want) {
		t.Errorf("events %v, want %v", types, want)
	}
}

// An agent whose presence the poll reads Offline is not signed in: the
// direct conversations waiting for it end Rejected at once (not at the
// next event or housekeeping), while its offer of another one rings out
// (that one lapses at its time) or while it is in RONA (which the Offline
// reading ends first).
func TestDirectAgentGoesOfflineRejectsItsWaitingConversations(t *testing.T) {
	for name, rona := range map[string]bool{"busy with an offer": false, "in RONA": true} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			f.desk(direct)
			f.presence.set(direct, sb.Available)
			f.offerDirect("interact:s-1", direct)
			if rona {
				f.advance(20 * time.Second) // s-1 rings out: RONA
				if v := f.agent(direct); v.Rona == nil {
					t.Fatalf("after the ring time: %+v, want RONA", v)
				}
			}
			f.clock.Advance(time.Second)
			if c := f.offerDirect("interact:s-2", direct); c.State != StateQueued {
				t.Fatalf("s-2 for a busy agent: %s, want Queued", c.State)
			}
			f.clock.Advance(time.Second)
			f.presence.set(direct, sb.Offline)
			f.svc.PresenceChanged(ctx, tenant, []sb.Presence{{UserID: direct, Availability: sb.Offline, Activity: sb.Offline}})
			f.svc.Wait()
			c := f.get("interact:s-2")
			if c.State != StateRejected || !strings.Contains(c.OutcomeDetail, "not signed in") {
				t.Fatalf("after the Offline reading s-2 is %s (%s), want Rejected: not signed in", c.State, c.OutcomeDetail)
			}
			if !c.EndedAt.Equal(f.clock.Now()) {
				t.Errorf("s-2 ended at %v, want at the reading (%v)", c.EndedAt, f.clock.Now())
			}
			if v := f.agent(direct); v.Rona != nil {
				t.Errorf("RONA %+v after the Offline reading, want ended", v.Rona)
			}
			if !rona {
				if got := f.get("interact:s-1"); got.State != StateOffered {
					t.Errorf("the ringing s-1 is %s, want still Offered (it lapses at its time)", got.State)
				}
			}
		})
	}
}

package distribution

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"switchboard/handler/outbox"
	"switchboard/handler/routing"
	sb "switchboard/handler/switchboard"
)

// withEvents gives the fixture's app, and returns another instance of it
// on the same tables, the agent and conversation events of ob.
func (f *fixture) withEvents(ob *fakeOutbox) (*routing.Engine, *Service) {
	f.t.Helper()
	build := func() (*routing.Engine, *Service) {
		e, err := routing.New(ctx, routing.Options{Tables: f.tables, Presence: f.presence, StaleAfter: 120 * time.Second, Now: f.clock.Now, StateRefresh: -1, Events: ob})
		if err != nil {
			f.t.Fatal(err)
		}
		s, err := New(ctx, Options{Tables: f.tables, Agents: e, Presence: f.presence, Outbound: f.outbound, Queue: f.queue, QueueName: "distribution",
			Now: f.clock.Now, Events: ob})
		if err != nil {
			f.t.Fatal(err)
		}
		f.t.Cleanup(s.Wait)
		return e, s
	}
	f.engine, f.svc = build()
	return build()
}

// ronaEvents returns the agent's ronaStarted and ronaEnded events in the
// routing outbox, in order.
func (f *fixture) ronaEvents(u string) []string {
	f.t.Helper()
	table, _ := f.tables.Table(ctx, routing.StateTable)
	rows, err := outbox.Read(ctx, table, tenant)
	if err != nil {
		f.t.Fatal(err)
	}
	slices.SortFunc(rows, func(a, b outbox.Pending) int { return int(a.Event.Sequence - b.Event.Sequence) })
	var out []string
	for _, r := range rows {
		var d struct{ UserID, ConversationID string }
		_ = json.Unmarshal(r.Event.Data, &d)
		if d.UserID == u && (r.Event.Type == routing.AgentRonaStarted || r.Event.Type == routing.AgentRonaEnded) {
			out = append(out, r.Event.Type[len("switchboard.agent."):]+" "+d.ConversationID)
		}
	}
	return out
}

// The defect this guards against: an offer's hold ends at its ring time,
// its lapse message runs a moment later; a conversation arriving in
// between (on another instance) found the agent free, took it, and the
// lapse then found another hold: the agent let a call ring out and never
// went into RONA. Now the rung-out offer is the agent's RONA from the end
// of the ring, on every instance, and the lapse (or housekeeping) writes
// it once, with one ronaStarted however often it runs.
func TestRingOutIsRonaBeforeTheLapseRuns(t *testing.T) {
	f := newFixture(t)
	ob := &fakeOutbox{}
	_, other := f.withEvents(ob)
	f.service("support", 1, routing.DistributionInput{RingSeconds: ptr(20), Rona: &routing.RonaInput{ResetSeconds: ptr(600)}}, nil)
	u := user(1)
	if c := f.enqueue("support", "c-1", EnqueueInput{}); !slices.Equal(ringing(c), []string{u}) {
		t.Fatalf("c-1 offered to %v, want %s", ringing(c), u)
	}
	ringEnd := t0.Add(20 * time.Second)

	// The ring is over; its lapse message has not run yet.
	f.clock.Advance(20*time.Second + 500*time.Millisecond)
	c2, _, err := other.Enqueue(ctx, tenant, "support", EnqueueInput{ConversationID: "c-2"})
	if err != nil {
		t.Fatal(err)
	}
	other.Wait()
	if c2.State != StateQueued || len(c2.Offers) != 0 {
		t.Fatalf("c-2 arriving in the gap: %s with offers %+v; want Queued, offered to nobody", c2.State, c2.Offers)
	}
	if r := f.reason("support", u); r != sb.ReasonRona {
		t.Errorf("route reply in the gap: %s for the agent, want Rona", r)
	}
	if v := f.agent(u); v.Offer != nil || v.Rona == nil || v.Rona.ConversationID != "c-1" || !v.Rona.Since.Equal(ringEnd) ||
		!v.Rona.Until.Equal(ringEnd.Add(600*time.Second)) {
		t.Errorf("agent view in the gap: offer %+v, rona %+v; want RONA of c-1 from %s for 600 s", v.Offer, v.Rona, ringEnd)
	}
	if _, err := other.Decline(ctx, tenant, "c-1", u); !sb.IsCode(err, sb.ECONFLICT) {
		t.Errorf("a decline after the ring: %v, want offer-not-pending", err)
	}
	if got := f.ronaEvents(u); len(got) != 0 {
		t.Errorf("RONA events before anything wrote the RONA: %v", got)
	}

	// The lapse runs (and is redelivered), housekeeping runs too.
	lapses := f.queue.due(f.clock.Now())
	if len(lapses) != 1 {
		t.Fatalf("%d due messages, want the lapse", len(lapses))
	}
	for _, s := range []*Service{f.svc, other, f.svc} {
		if _, err := s.Handle(ctx, lapses[0].Body); err != nil {
			t.Fatal(err)
		}
		s.Wait()
	}
	f.clock.Advance(10 * time.Second)
	if _, err := f.engine.Housekeep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Housekeep(ctx); err != nil {
		t.Fatal(err)
	}
	f.svc.Wait()
	c1 := f.get("c-1")
	if c1.State != StateQueued || c1.Offers[0].State != OfferLapsed {
		t.Errorf("c-1 after its lapse: %s, offer %s; want Queued, Lapsed", c1.State, c1.Offers[0].State)
	}
	if got := ringing(f.get("c-2")); len(got) != 0 {
		t.Errorf("c-2 offered to %v while its only agent is in RONA", got)
	}
	if r := f.reason("support", u); r != sb.ReasonRona {
		t.Errorf("route reply after the lapse: %s, want Rona", r)
	}
	if got := f.ronaEvents(u); !slices.Equal(got, []string{"ronaStarted c-1"}) {
		t.Errorf("RONA events %v, want exactly one ronaStarted", got)
	}

	// The RONA ends at its time (from the ring's end); c-1, first in the
	// queue, goes to the agent.
	f.advance(ringEnd.Add(600 * time.Second).Sub(f.clock.Now()))
	if got := ringing(f.get("c-1")); !slices.Equal(got, []string{u}) {
		t.Errorf("after the RONA: c-1 ringing %v, want %s", got, u)
	}
	if got := f.ronaEvents(u); !slices.Equal(got, []string{"ronaStarted c-1", "ronaEnded c-1"}) {
		t.Errorf("RONA events %v, want one ronaStarted, one ronaEnded", got)
	}
}

// A broadcast offer that rings out puts nobody into RONA, in the gap
// before its lapse too: an agent freed by the end of the ring takes the
// next conversation at once.
func TestBroadcastRingOutIsNoRona(t *testing.T) {
	f := newFixture(t)
	f.service("support", 2, routing.DistributionInput{Order: ptr(routing.OrderBroadcast), BroadcastSize: ptr(2), RingSeconds: ptr(20)}, nil)
	if c := f.enqueue("support", "c-1", EnqueueInput{}); len(ringing(c)) != 2 {
		t.Fatalf("c-1 ringing %v, want both agents", ringing(c))
	}
	f.clock.Advance(20*time.Second + 500*time.Millisecond)
	if r := f.reason("support", user(1)); r != "" {
		t.Errorf("a rung-out broadcast agent in the gap: %s, want free", r)
	}
	f.advance(0)
	for _, u := range []string{user(1), user(2)} {
		if v := f.agent(u); v.Rona != nil {
			t.Errorf("%s in RONA after a broadcast ring-out: %+v", u, v.Rona)
		}
	}
}

// Housekeeping serves a ringing Broadcast that has room: an agent freed
// without distribution being told (its presence change missed) is added
// to it within a tick; a full one is left alone.
func TestHousekeepingServesRingingBroadcastWithRoom(t *testing.T) {
	f := newFixture(t)
	f.service("support", 3, routing.DistributionInput{Order: ptr(routing.OrderBroadcast), BroadcastSize: ptr(3), RingSeconds: ptr(30)}, nil)
	f.presence.set(user(2), sb.Busy)
	f.presence.set(user(3), sb.Busy)
	if c := f.enqueue("support", "c-1", EnqueueInput{}); !slices.Equal(ringing(c), []string{user(1)}) {
		t.Fatalf("c-1 ringing %v, want %s alone", ringing(c), user(1))
	}
	housekeep := func() HousekeepingReport {
		t.Helper()
		rep, err := f.svc.Housekeep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		f.svc.Wait()
		return rep
	}
	f.clock.Advance(5 * time.Second)
	f.presence.set(user(2), sb.Available) // no event tells distribution
	if rep := housekeep(); rep.Served != 1 {
		t.Errorf("housekeeping served %d lines, want the ringing broadcast with room", rep.Served)
	}
	if got := sortedCopy(ringing(f.get("c-1"))); !slices.Equal(got, []string{user(1), user(2)}) {
		t.Fatalf("after housekeeping: ringing %v, want users 1 and 2", got)
	}
	f.presence.set(user(3), sb.Available)
	housekeep()
	if got := ringing(f.get("c-1")); len(got) != 3 {
		t.Fatalf("after housekeeping: ringing %v, want all 3", got)
	}
	if rep := housekeep(); rep.Served != 0 {
		t.Errorf("housekeeping served %d lines with the broadcast full, want 0", rep.Served)
	}
}

// A caller hanging up between the ring-out and its lapse: the offer rang
// out (Lapsed, not Rescinded) and its agent is in RONA, which ends at its
// time by its due message.
func TestHangUpAfterRingOutIsALapse(t *testing.T) {
	f := newFixture(t)
	f.service("support", 1, routing.DistributionInput{RingSeconds: ptr(20), Rona: &routing.RonaInput{ResetSeconds: ptr(60)}}, nil)
	u := user(1)
	f.enqueue("support", "c-1", EnqueueInput{})
	f.clock.Advance(20*time.Second + 200*time.Millisecond)
	if _, err := f.svc.End(ctx, tenant, "c-1"); err != nil {
		t.Fatal(err)
	}
	f.svc.Wait()
	c := f.get("c-1")
	if c.State != StateAbandoned || c.Offers[0].State != OfferLapsed {
		t.Fatalf("after the hang-up: %s, offer %s; want Abandoned, the offer Lapsed", c.State, c.Offers[0].State)
	}
	if v := f.agent(u); v.Rona == nil || !v.Rona.Until.Equal(t0.Add(80*time.Second)) {
		t.Fatalf("agent's RONA %+v, want until the ring's end + 60 s", v.Rona)
	}
	f.enqueue("support", "c-2", EnqueueInput{})
	f.advance(t0.Add(80 * time.Second).Sub(f.clock.Now()))
	if v := f.agent(u); v.Rona != nil {
		t.Errorf("RONA after its time: %+v", v.Rona)
	}
	if got := ringing(f.get("c-2")); !slices.Equal(got, []string{u}) {
		t.Errorf("c-2 ringing %v once the RONA ended, want %s", got, u)
	}
}

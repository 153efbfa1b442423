package routing

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"switchboard/handler/egress"
	"switchboard/handler/events"
	"switchboard/handler/internal/testenv"
	"switchboard/handler/outbox"
	"switchboard/handler/secrets"
	"switchboard/handler/store"
	sb "switchboard/handler/switchboard"
)

// The agent events are written in the transaction of the hold change,
// delivered through the real events capability to a receiver on loopback.

// eventQueue is the events capability's queue: pump hands the due
// messages to EventDelivery.
type eventQueue struct {
	mu   sync.Mutex
	msgs []sb.Message
}

func (q *eventQueue) Send(_ context.Context, _ string, m sb.Message) (int64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.msgs = append(q.msgs, m)
	return int64(len(q.msgs)), nil
}

func (q *eventQueue) Cancel(context.Context, string, int64) error { return nil }

func (q *eventQueue) take() []sb.Message {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.msgs
	q.msgs = nil
	return out
}

// relay is the events capability as routing sees it, with Flush either
// waited for (flushed) or never called (crash: the process died between
// its batch and Flush).
type relay struct {
	*events.Service
	mu      sync.Mutex
	crash   bool
	flushes chan struct{}
}

func (r *relay) Flush(ctx context.Context, table, pk string) {
	r.mu.Lock()
	crash := r.crash
	r.mu.Unlock()
	if crash {
		return
	}
	r.Service.Flush(ctx, table, pk)
	r.flushes <- struct{}{}
}

func (r *relay) setCrash(v bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.crash = v
}

// deliveredEvent is one delivered agent event.
type deliveredEvent struct {
	ID, Type, Subject string
	Data              agentEventData
}

type agentEventsFixture struct {
	*fixture
	t      *testing.T
	relay  *relay
	q      *eventQueue
	mu     sync.Mutex
	got    []deliveredEvent
	engine *Engine
}

func newAgentEventsFixture(t *testing.T, tables store.Tables) *agentEventsFixture {
	t.Helper()
	f := &agentEventsFixture{fixture: newFixture(t, tables), t: t, q: &eventQueue{}}
	keys, err := secrets.New(secrets.GenerateKey(), "")
	if err != nil {
		t.Fatal(err)
	}
	svc, err := events.New(ctx, events.Options{Tables: f.tables, Queue: f.q, QueueName: "events", Secrets: keys, Now: f.clock.Now,
		Guard: egress.Guard{AllowPrivate: true, Dial: loopbackOnly(t)}})
	if err != nil {
		t.Fatal(err)
	}
	f.relay = &relay{Service: svc, flushes: make(chan struct{}, 100)}
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var ce struct {
			ID, Type, Subject string
			Data              agentEventData
		}
		if err := json.Unmarshal(body, &ce); err != nil {
			t.Errorf("delivery is not a CloudEvent: %s", body)
		}
		f.mu.Lock()
		f.got = append(f.got, deliveredEvent(ce))
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rcv.Close)
	if _, err := svc.Create(ctx, tenant, events.NewSubscription{URL: rcv.URL, Events: []string{"*"}}); err != nil {
		t.Fatal(err)
	}
	f.engine = f.instance()
	return f
}

// instance returns another instance of the app, with events.
func (f *agentEventsFixture) instance() *Engine {
	f.t.Helper()
	e, err := New(ctx, Options{Tables: f.tables, Presence: f.presence, StaleAfter: staleAfter, Now: f.clock.Now, Events: f.relay})
	if err != nil {
		f.t.Fatal(err)
	}
	return e
}

// loopbackOnly fails the test on a dial outside 127.0.0.0/8.
func loopbackOnly(t *testing.T) egress.DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(addr)
		if a, err := netip.ParseAddr(host); err != nil || !a.IsLoopback() {
			t.Errorf("dial to %s: tests dial only loopback", addr)
			return nil, fmt.Errorf("refused by the test")
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
}

// waitFlush waits for the Flush the last change started (it runs in the
// background of the change).
func (f *agentEventsFixture) waitFlush() {
	f.t.Helper()
	select {
	case <-f.relay.flushes:
	case <-time.After(30 * time.Second):
		f.t.Fatal("no Flush after the hold change")
	}
}

// pump delivers every queued event message and returns what the receiver
// has got so far.
func (f *agentEventsFixture) pump() []deliveredEvent {
	f.t.Helper()
	for range 100 {
		msgs := f.q.take()
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			if _, err := f.relay.Handle(ctx, m.Body); err != nil {
				f.t.Fatalf("EventDelivery: %v", err)
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]deliveredEvent(nil), f.got...)
}

func (f *agentEventsFixture) outboxRows() []outbox.Pending {
	f.t.Helper()
	tbl, _ := f.tables.Table(ctx, StateTable)
	rows, err := outbox.Read(ctx, tbl, tenant)
	if err != nil {
		f.t.Fatal(err)
	}
	return rows
}

// offer offers conversation conv to the service's next agent, its
// ring-out into no RONA, and returns who got it.
func (f *agentEventsFixture) offer(conv string) string {
	f.t.Helper()
	return f.offerRona(conv, 0)
}

func TestAgentEventIsCommittedIffTheHoldChangeIs(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		f := newAgentEventsFixture(t, tables)
		f.service("support", DistributionInput{}, user(1))
		f.available(user(1))
		u := f.offer("c-1")
		stale, err := f.engine.state.getHold(ctx, tenant, u)
		if err != nil {
			t.Fatal(err)
		}

		// The offer is accepted elsewhere: a RONA written over the hold as
		// read before fails on its ETag, and no event is stored either.
		if err := f.instance().AcceptOffer(ctx, tenant, u, "c-1"); err != nil {
			t.Fatal(err)
		}
		next := hold{UserID: u, ConversationID: "c-1", ServiceID: "support", HeldAt: f.clock.Now(), ExpiresAt: f.clock.Now().Add(time.Minute), Kind: sb.HoldRona}
		if _, err := f.engine.updateHold(ctx, tenant, stale, next, startedEvent(tenant, stale, next, f.clock.Now())); !sb.IsCode(err, sb.EPRECONDITION) {
			t.Fatalf("RONA over a stale hold: %v, want EPRECONDITION", err)
		}
		if rows := f.outboxRows(); len(rows) != 0 {
			t.Fatalf("an event was stored for a hold change that failed: %+v", rows)
		}
		if _, err := f.relay.SweepOutbox(ctx, func() bool { return false }); err != nil {
			t.Fatal(err)
		}
		if got := f.pump(); len(got) != 0 {
			t.Fatalf("delivered for a failed hold change: %+v", got)
		}
		if h, _ := f.engine.state.getHold(ctx, tenant, u); h.Kind != sb.HoldConversation {
			t.Fatalf("the hold is %q, want the accepted conversation", h.Kind)
		}

		// Released into after-call work: the hold and its event together.
		until, changed, err := f.engine.ReleaseAgent(ctx, tenant, u, "c-1", 30*time.Second)
		if err != nil || !changed {
			t.Fatalf("ReleaseAgent: %v, %v", changed, err)
		}
		f.waitFlush()
		got := f.pump()
		if len(got) != 1 || got[0].Type != AgentAfterCallWorkStarted || got[0].Subject != "agents/"+u {
			t.Fatalf("delivered %+v, want one afterCallWorkStarted for agents/%s", got, u)
		}
		if d := got[0].Data; d.UserID != u || d.ServiceID != "support" || d.ConversationID != "c-1" || !d.Until.Equal(until) ||
			d.State != "AfterCallWork" || d.PreviousState != "Conversation" {
			t.Errorf("event data %+v, want after-call work of c-1 until %s", d, until)
		}
		if rows := f.outboxRows(); len(rows) != 0 {
			t.Errorf("outbox rows left after Flush: %d", len(rows))
		}

		// The process dies between the change and Flush: the hold has
		// changed, and the sweep delivers its event.
		f.relay.setCrash(true)
		ended, err := f.engine.EndAgentHold(ctx, tenant, u, sb.HoldAfterCallWork, time.Time{}, sb.HoldEndEarly)
		if err != nil || !ended {
			t.Fatalf("EndAgentHold: %v, %v", ended, err)
		}
		if _, err := f.engine.state.getHold(ctx, tenant, u); !sb.IsCode(err, sb.ENOTFOUND) {
			t.Fatalf("after-call work still held: %v", err)
		}
		if got := f.pump(); len(got) != 1 {
			t.Fatalf("delivered without a Flush: %+v", got)
		}
		if rows := f.outboxRows(); len(rows) != 1 {
			t.Fatalf("%d outbox rows after the crash, want the event's 1", len(rows))
		}
		if n, err := f.relay.SweepOutbox(ctx, func() bool { return false }); err != nil || n != 1 {
			t.Fatalf("SweepOutbox = %d, %v; want 1 event handed over", n, err)
		}
		got = f.pump()
		if len(got) != 2 || got[1].Type != AgentAfterCallWorkEnded || got[1].Data.Reason != sb.HoldEndEarly || got[1].Data.EndedAt == nil {
			t.Fatalf("after the sweep: %+v, want afterCallWorkEnded (EndedEarly)", got)
		}
	})
}

// agentEnds counts the delivered ...Ended events per agent.
func agentEnds(got []deliveredEvent, typ string) map[string]int {
	out := map[string]int{}
	for _, ev := range got {
		if ev.Type == typ {
			out[ev.Data.UserID]++
		}
	}
	return out
}

// A RONA or after-call work that routing's expiry sweep ends has its
// ended event, and only one whether its due message, the sweep or a new
// offer over the expired row ends it, even when they race.
func TestExpiredRonaAndAfterCallWorkEndOnceWithTheirEvent(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		const n = 12
		f := newAgentEventsFixture(t, tables)
		us := users(1, n)
		f.service("support", DistributionInput{}, us...)
		f.available(us...)
		untils := map[string]time.Time{}
		for i := range n {
			conv := fmt.Sprintf("c-%d", i)
			u := f.offer(conv)
			var until time.Time
			var err error
			if i%2 == 0 {
				until, _, err = f.engine.EndOffer(ctx, tenant, u, conv, sb.OfferEnd{Rona: time.Minute})
			} else {
				if err = f.engine.AcceptOffer(ctx, tenant, u, conv); err == nil {
					until, _, err = f.engine.ReleaseAgent(ctx, tenant, u, conv, time.Minute)
				}
			}
			if err != nil || until.IsZero() {
				t.Fatalf("agent %s: %v, %v", u, until, err)
			}
			untils[u] = until
			f.waitFlush()
		}
		f.clock.Advance(time.Minute + time.Second)

		// The last agent's expired row is taken by a new offer before
		// anything ended it (the others are away); then the due messages
		// and the sweep race, on two instances.
		last := us[n-1]
		for _, u := range us[:n-1] {
			f.presence.Set(u, sb.Away, sb.Away)
		}
		if got := f.offer("c-new"); got != last {
			t.Fatalf("c-new offered to %s, want %s", got, last)
		}
		other := f.instance()
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := other.Housekeep(ctx); err != nil {
				t.Errorf("Housekeep: %v", err)
			}
		}()
		go func() {
			defer wg.Done()
			for i, u := range us {
				kind := sb.HoldRona
				if i%2 == 1 {
					kind = sb.HoldAfterCallWork
				}
				if _, err := f.engine.EndAgentHold(ctx, tenant, u, kind, untils[u], sb.HoldEndTime); err != nil {
					t.Errorf("EndAgentHold(%s): %v", u, err)
				}
			}
		}()
		wg.Wait()
		// One transaction, so one Flush, per agent that ended: waiting for
		// n of them leaves nothing in flight.
		for range n {
			f.waitFlush()
		}
		if _, err := f.relay.SweepOutbox(ctx, func() bool { return false }); err != nil {
			t.Fatal(err)
		}
		got := f.pump()
		rona, acw := agentEnds(got, AgentRonaEnded), agentEnds(got, AgentAfterCallWorkEnded)
		for i, u := range us {
			want, other := rona, acw
			if i%2 == 1 {
				want, other = acw, rona
			}
			if want[u] != 1 || other[u] != 0 {
				t.Errorf("agent %d: %d ended events of its kind, %d of the other; want exactly 1", i+1, want[u], other[u])
			}
		}
		for _, ev := range got {
			if (ev.Type == AgentRonaEnded || ev.Type == AgentAfterCallWorkEnded) &&
				(ev.Data.Reason != sb.HoldEndTime || ev.Data.EndedAt == nil || !ev.Data.EndedAt.Equal(untils[ev.Data.UserID])) {
				t.Errorf("%s of %s: reason %q, ended at %v; want %s at %s", ev.Type, ev.Data.UserID, ev.Data.Reason, ev.Data.EndedAt,
					sb.HoldEndTime, untils[ev.Data.UserID])
			}
		}
		// Nothing is left to end, and nothing ends twice.
		if rep, err := f.engine.Housekeep(ctx); err != nil || rep.HoldsExpired != 0 {
			t.Errorf("second housekeeping: %+v, %v", rep, err)
		}
		f.relay.setCrash(true) // a stray change would now stay in the outbox
		if ended, err := f.engine.EndAgentHold(ctx, tenant, last, sb.HoldAfterCallWork, untils[last], sb.HoldEndTime); err != nil || ended {
			t.Errorf("a late due message ended %v (%v)", ended, err)
		}
		if rows := f.outboxRows(); len(rows) != 0 {
			t.Errorf("%d events written after everything ended", len(rows))
		}
		if h, err := f.engine.state.getHold(ctx, tenant, last); err != nil || h.ConversationID != "c-new" {
			t.Errorf("the last agent's hold %+v, %v; want the offer of c-new", h, err)
		}
	})
}

// A new offer over an expired RONA that nobody ended yet ends it, with its
// event: once replaced, neither its message nor the sweep would.
func TestAnOfferOverAnExpiredRonaEndsIt(t *testing.T) {
	f := newAgentEventsFixture(t, nil)
	f.service("support", DistributionInput{}, user(1))
	f.available(user(1))
	u := f.offer("c-1")
	until, _, err := f.engine.EndOffer(ctx, tenant, u, "c-1", sb.OfferEnd{Rona: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	f.waitFlush()
	f.clock.Advance(2 * time.Minute)
	if got := f.offer("c-2"); got != u {
		t.Fatalf("c-2 offered to %s, want %s", got, u)
	}
	f.waitFlush()
	if ended, err := f.engine.EndAgentHold(ctx, tenant, u, sb.HoldRona, until, sb.HoldEndTime); err != nil || ended {
		t.Errorf("the RONA's late message ended %v (%v)", ended, err)
	}
	if rep, err := f.engine.Housekeep(ctx); err != nil || rep.HoldsExpired != 0 {
		t.Errorf("housekeeping: %+v, %v; want the offer left alone", rep, err)
	}
	got := f.pump()
	if ends := agentEnds(got, AgentRonaEnded); len(got) != 2 || ends[u] != 1 {
		t.Fatalf("delivered %+v, want ronaStarted and one ronaEnded", got)
	}
	if h, err := f.engine.state.getHold(ctx, tenant, u); err != nil || h.Kind != sb.HoldOffer || h.ConversationID != "c-2" {
		t.Errorf("hold %+v, %v; want the offer of c-2", h, err)
	}
}

// offerRona offers conv to the service's next agent with a ring-out RONA
// of rona and returns who got it.
func (f *agentEventsFixture) offerRona(conv string, rona time.Duration) string {
	f.t.Helper()
	d := f.route(f.engine, "support", sb.RouteRequest{ConversationID: conv, Reserve: true, Offer: true, Hold: 20 * time.Second, MaxAgents: 1, Rona: rona})
	if len(d.Agents) != 1 {
		f.t.Fatalf("offer of %s: agents %v", conv, d.Agents)
	}
	return d.Agents[0].UserID
}

// An offer that rings out is the agent's RONA from the end of its ring, on
// every instance, before anything handles the lapse: the gap between the
// ring's end and the lapse message gives the agent nothing else. The
// lapse (redelivered, on two instances) and the expiry sweep racing it
// write that RONA once, with one ronaStarted; its end has one ronaEnded.
func TestRingOutIsRonaBeforeItsLapseAndStartsOnce(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		f := newAgentEventsFixture(t, tables)
		u := user(1)
		f.service("support", DistributionInput{}, u)
		f.available(u)
		if got := f.offerRona("c-1", time.Minute); got != u {
			t.Fatalf("c-1 offered to %s", got)
		}
		ringEnd := f.clock.Now().Add(20 * time.Second)
		f.clock.Advance(20*time.Second + 300*time.Millisecond)

		// The gap: the ring is over, its lapse not handled. Another
		// instance's route sees the agent in RONA and takes nobody.
		other := f.instance()
		d := f.route(other, "support", sb.RouteRequest{ConversationID: "c-2", Reserve: true, Offer: true, Hold: 20 * time.Second, Rona: time.Minute})
		if len(d.Agents) != 0 || reasons(d)[u] != sb.ReasonRona {
			t.Fatalf("c-2 in the gap: agents %v, reasons %v; want nobody, %s Rona", d.Agents, reasons(d), u)
		}
		if h, err := other.Agent(ctx, tenant, u); err != nil || h.Kind != sb.HoldRona || h.ConversationID != "c-1" ||
			!h.HeldAt.Equal(ringEnd) || !h.ExpiresAt.Equal(ringEnd.Add(time.Minute)) {
			t.Fatalf("agent in the gap: %+v, %v; want RONA of c-1 from %s for a minute", h, err, ringEnd)
		}
		if err := other.AcceptOffer(ctx, tenant, u, "c-1"); !sb.IsCode(err, sb.ECONFLICT) {
			t.Errorf("accept after the ring: %v, want offer-not-pending", err)
		}
		if rows := f.outboxRows(); len(rows) != 0 {
			t.Fatalf("events written by reading: %d", len(rows))
		}

		// The lapse, delivered twice on two instances, and the sweep race.
		var wg sync.WaitGroup
		untils := make([]time.Time, 3)
		wg.Add(4)
		for i, e := range []*Engine{f.engine, other, f.engine} {
			go func() {
				defer wg.Done()
				until, _, err := e.EndOffer(ctx, tenant, u, "c-1", sb.OfferEnd{Rona: time.Minute, Idle: true})
				if err != nil {
					t.Errorf("EndOffer: %v", err)
				}
				untils[i] = until
			}()
		}
		go func() {
			defer wg.Done()
			if _, err := f.instance().Housekeep(ctx); err != nil {
				t.Errorf("Housekeep: %v", err)
			}
		}()
		wg.Wait()
		f.waitFlush() // one transaction wrote the RONA
		for i, until := range untils {
			if !until.Equal(ringEnd.Add(time.Minute)) {
				t.Errorf("lapse %d: RONA until %s, want %s (every delivery learns it, to schedule its end)", i, until, ringEnd.Add(time.Minute))
			}
		}
		h, err := f.engine.state.getHold(ctx, tenant, u)
		if err != nil || h.Kind != sb.HoldRona || !h.HeldAt.Equal(ringEnd) || !h.ExpiresAt.Equal(ringEnd.Add(time.Minute)) {
			t.Fatalf("stored hold %+v, %v; want the RONA from the ring's end", h, err)
		}
		got := f.pump()
		if len(got) != 1 || got[0].Type != AgentRonaStarted || got[0].Data.PreviousState != "Offered" || got[0].Data.ConversationID != "c-1" ||
			!got[0].Data.Since.Equal(ringEnd) || !got[0].Data.Until.Equal(ringEnd.Add(time.Minute)) {
			t.Fatalf("delivered %+v, want one ronaStarted of c-1 from %s", got, ringEnd)
		}

		// Its end: the due message and the sweep race, one ronaEnded.
		f.clock.Advance(time.Minute)
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := other.EndAgentHold(ctx, tenant, u, sb.HoldRona, ringEnd.Add(time.Minute), sb.HoldEndTime); err != nil {
				t.Errorf("EndAgentHold: %v", err)
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := f.engine.Housekeep(ctx); err != nil {
				t.Errorf("Housekeep: %v", err)
			}
		}()
		wg.Wait()
		f.waitFlush()
		got = f.pump()
		if len(got) != 2 || agentEnds(got, AgentRonaEnded)[u] != 1 {
			t.Fatalf("delivered %+v, want ronaStarted then one ronaEnded", got)
		}
		if d := f.route(other, "support", sb.RouteRequest{}); len(d.Agents) != 1 {
			t.Errorf("after the RONA: %+v, want the agent free", d)
		}
	})
}

// A ring-out's RONA that nothing wrote ends with both its events, once:
// by an Offline reading, by a reset, or by a new offer taking the row once
// that RONA too is over. A broadcast offer (no RONA) rings out free.
func TestRingOutRonaNobodyWroteEndsWithBothEvents(t *testing.T) {
	f := newAgentEventsFixture(t, nil)
	us := users(1, 4)
	f.service("support", DistributionInput{}, us...)
	f.available(us...)
	offered := map[string]string{}
	for _, conv := range []string{"c-1", "c-2", "c-3"} {
		offered[conv] = f.offerRona(conv, time.Minute)
	}
	broadcast := f.offerRona("c-4", 0)
	f.clock.Advance(21 * time.Second)

	ended, err := f.instance().EndRonaIfHeld(ctx, tenant, []string{offered["c-1"], broadcast}, sb.HoldEndOffline)
	if err != nil || len(ended) != 1 || ended[0] != offered["c-1"] {
		t.Fatalf("EndRonaIfHeld = %v, %v; want the ring-out of c-1 only", ended, err)
	}
	f.waitFlush()
	if ok, err := f.engine.EndAgentHold(ctx, tenant, offered["c-2"], sb.HoldRona, time.Time{}, sb.HoldEndEarly); err != nil || !ok {
		t.Fatalf("reset: %v, %v", ok, err)
	}
	f.waitFlush()
	// c-3's RONA runs out unwritten; a new offer takes the row (the others
	// are away).
	f.clock.Advance(time.Minute)
	for _, u := range us {
		if u != offered["c-3"] {
			f.presence.Set(u, sb.Away, sb.Away)
		}
	}
	if got := f.offerRona("c-5", time.Minute); got != offered["c-3"] {
		t.Fatalf("c-5 offered to %s, want %s", got, offered["c-3"])
	}
	f.waitFlush()
	if rep, err := f.engine.Housekeep(ctx); err != nil || rep.HoldsExpired != 1 {
		t.Errorf("housekeeping: %+v, %v; want the broadcast offer's expired hold swept, nothing else", rep, err)
	}
	got := f.pump()
	starts, ends := agentEnds(got, AgentRonaStarted), agentEnds(got, AgentRonaEnded)
	for conv, u := range offered {
		if starts[u] != 1 || ends[u] != 1 {
			t.Errorf("agent of %s: %d ronaStarted, %d ronaEnded; want one each", conv, starts[u], ends[u])
		}
	}
	if starts[broadcast]+ends[broadcast] != 0 {
		t.Errorf("the broadcast offer's agent has RONA events: %+v", got)
	}
	want := map[string]string{offered["c-1"]: sb.HoldEndOffline, offered["c-2"]: sb.HoldEndEarly, offered["c-3"]: sb.HoldEndTime}
	for i, ev := range got {
		if ev.Type != AgentRonaEnded {
			continue
		}
		if ev.Data.Reason != want[ev.Data.UserID] {
			t.Errorf("ronaEnded of %s: reason %s, want %s", ev.Data.UserID, ev.Data.Reason, want[ev.Data.UserID])
		}
		if i == 0 || got[i-1].Type != AgentRonaStarted || got[i-1].Data.UserID != ev.Data.UserID {
			t.Errorf("ronaEnded of %s not right after its ronaStarted: %+v", ev.Data.UserID, got)
		}
	}
}

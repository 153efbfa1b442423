package distribution

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"switchboard/handler/outbox"

	"switchboard/handler/routing"
	sb "switchboard/handler/switchboard"
)

var ctx = context.Background()

func TestOfferAcceptReleaseAfterCallWork(t *testing.T) {
	f := newFixture(t)
	f.service("support", 3, routing.DistributionInput{AfterCallWorkSeconds: ptr(30)}, nil)

	c := f.enqueue("support", "c-1", EnqueueInput{})
	if c.State != StateOffered || !slices.Equal(ringing(c), []string{user(1)}) {
		t.Fatalf("enqueued: state %s ringing %v, want Offered to %s", c.State, ringing(c), user(1))
	}
	if got := f.reason("support", user(1)); got != sb.ReasonOfferPending {
		t.Errorf("agent with a ringing offer: reason %q, want OfferPending", got)
	}
	if v := f.agent(user(1)); v.Offer == nil || v.Offer.ConversationID != "c-1" {
		t.Errorf("agent view offer = %+v", v.Offer)
	}
	f.clock.Advance(3 * time.Second)
	got, err := f.svc.Accept(ctx, tenant, "c-1", user(1))
	if err != nil || got.State != StateConnected || got.Agent != user(1) {
		t.Fatalf("accept: %+v, %v", got, err)
	}
	if again, err := f.svc.Accept(ctx, tenant, "c-1", user(1)); err != nil || again.State != StateConnected {
		t.Errorf("accept again: %v, %v; want Connected, no error", again.State, err)
	}
	if r := f.reason("support", user(1)); r != sb.ReasonInConversation {
		t.Errorf("connected agent: reason %q, want InConversation", r)
	}
	f.clock.Advance(60 * time.Second)
	if ok, err := f.svc.End(ctx, tenant, "c-1"); !ok || err != nil {
		t.Fatalf("end: %v %v", ok, err)
	}
	releasedAt := f.clock.Now()
	if got := f.get("c-1"); got.State != StateEnded {
		t.Errorf("after release: %s, want Ended", got.State)
	}
	if r := f.reason("support", user(1)); r != sb.ReasonAfterCallWork {
		t.Errorf("released agent: reason %q, want AfterCallWork", r)
	}
	if v := f.agent(user(1)); v.AfterCallWork == nil || !v.AfterCallWork.Equal(releasedAt.Add(30*time.Second)) {
		t.Errorf("agent view afterCallWork = %v, want until %v", v.AfterCallWork, releasedAt.Add(30*time.Second))
	}
	// During after-call work the next conversation goes to someone else.
	c2 := f.enqueue("support", "c-2", EnqueueInput{})
	if slices.Contains(ringing(c2), user(1)) {
		t.Fatalf("agent in after-call work was offered c-2")
	}
	f.advance(29 * time.Second)
	if r := f.reason("support", user(1)); r != sb.ReasonAfterCallWork {
		t.Errorf("29 s into 30 s of after-call work: reason %q", r)
	}
	f.advance(time.Second)
	if r := f.reason("support", user(1)); r != "" {
		t.Errorf("after-call work over: reason %q, want eligible", r)
	}
	v := f.agent(user(1))
	if !v.IdleSince.Equal(releasedAt.Add(30 * time.Second)) {
		t.Errorf("idle since %v, want the end of after-call work %v", v.IdleSince, releasedAt.Add(30*time.Second))
	}
	// Offered again: c-2 rang out on user(2) (now in RONA) and rings for
	// user(3); the next conversation is user(1)'s.
	if c3 := f.enqueue("support", "c-3", EnqueueInput{}); !slices.Equal(ringing(c3), []string{user(1)}) {
		t.Errorf("c-3 offered to %v, want %s again after after-call work", ringing(c3), user(1))
	}
}

func TestRingNoAnswer(t *testing.T) {
	for _, end := range []string{"time", "reset", "offline"} {
		t.Run("rona ends by "+end, func(t *testing.T) {
			f := newFixture(t)
			f.service("support", 2, routing.DistributionInput{RingSeconds: ptr(20), Rona: &routing.RonaInput{ResetSeconds: ptr(600)}}, nil)
			c := f.enqueue("support", "c-1", EnqueueInput{})
			if !slices.Equal(ringing(c), []string{user(1)}) {
				t.Fatalf("offered to %v", ringing(c))
			}
			f.advance(19 * time.Second)
			if got := ringing(f.get("c-1")); !slices.Equal(got, []string{user(1)}) {
				t.Fatalf("19 s into a 20 s ring: ringing %v", got)
			}
			f.advance(time.Second)
			c = f.get("c-1")
			if !slices.Equal(ringing(c), []string{user(2)}) {
				t.Fatalf("after the lapse: ringing %v, want the next agent %s", ringing(c), user(2))
			}
			if c.Offers[0].State != OfferLapsed || c.History[len(c.History)-2].Event != EventOfferLapsed {
				t.Errorf("first offer %s; history %+v", c.Offers[0].State, c.History)
			}
			if r := f.reason("support", user(1)); r != sb.ReasonRona {
				t.Fatalf("lapsed agent: reason %q, want Rona", r)
			}
			if v := f.agent(user(1)); v.Rona == nil || v.Rona.ConversationID != "c-1" || !v.Rona.Until.Equal(t0.Add(620*time.Second)) {
				t.Errorf("agent view rona = %+v", v.Rona)
			}
			switch end {
			case "time":
				f.advance(599 * time.Second)
				if r := f.reason("support", user(1)); r != sb.ReasonRona {
					t.Errorf("1 s before RONA ends: %q", r)
				}
				f.advance(time.Second)
			case "reset":
				if err := f.svc.ResetRona(ctx, tenant, user(1)); err != nil {
					t.Fatal(err)
				}
				f.svc.Wait()
			case "offline":
				f.presence.set(user(1), sb.Offline)
				if r := f.reason("support", user(1)); r != sb.ReasonOffline {
					t.Errorf("RONA agent reading Offline: %q, want Offline", r)
				}
				f.svc.PresenceChanged(ctx, tenant, []sb.Presence{{UserID: user(1), Availability: sb.Offline}})
				f.presence.set(user(1), sb.Available)
				f.svc.PresenceChanged(ctx, tenant, []sb.Presence{{UserID: user(1), Availability: sb.Available}})
				f.svc.Wait()
			}
			if r := f.reason("support", user(1)); r != "" && r != sb.ReasonOfferPending {
				t.Errorf("RONA over: reason %q", r)
			}
			if v := f.agent(user(1)); v.Rona != nil {
				t.Errorf("agent view still shows RONA: %+v", v.Rona)
			}
		})
	}
}

func TestBroadcastFirstAcceptWins(t *testing.T) {
	f := newFixture(t)
	f.service("support", 6, routing.DistributionInput{Order: ptr("Broadcast"), BroadcastSize: ptr(5)}, nil)
	c := f.enqueue("support", "c-1", EnqueueInput{})
	if got := ringing(c); len(got) != 5 {
		t.Fatalf("broadcast to 5: ringing %v", got)
	}
	if _, err := f.svc.Accept(ctx, tenant, "c-1", user(3)); err != nil {
		t.Fatal(err)
	}
	f.svc.Wait()
	_, err := f.svc.Accept(ctx, tenant, "c-1", user(1))
	if sb.ErrorType(err) != routing.OfferNotPending {
		t.Errorf("second accept: %v, want offer-not-pending", err)
	}
	c = f.get("c-1")
	rescinded := 0
	for _, o := range c.Offers {
		if o.State == OfferRescinded {
			rescinded++
		}
	}
	if c.State != StateConnected || c.Agent != user(3) || rescinded != 4 {
		t.Fatalf("state %s agent %s, %d rescinded; want Connected to %s, 4 rescinded", c.State, c.Agent, rescinded, user(3))
	}
	for i := 1; i <= 6; i++ {
		if i == 3 {
			continue
		}
		if r := f.reason("support", user(i)); r != "" {
			t.Errorf("%s after the broadcast: reason %q, want free", user(i), r)
		}
	}
	// A lapsed broadcast puts nobody into RONA.
	f.enqueue("support", "c-2", EnqueueInput{})
	f.advance(20 * time.Second)
	for i := 1; i <= 6; i++ {
		if r := f.reason("support", user(i)); r == sb.ReasonRona {
			t.Errorf("%s in RONA after a lapsed broadcast offer", user(i))
		}
	}
}

func TestDeclineGoesToNextAndNotBack(t *testing.T) {
	f := newFixture(t)
	f.service("support", 2, routing.DistributionInput{}, nil)
	f.enqueue("support", "c-1", EnqueueInput{})
	c, err := f.svc.Decline(ctx, tenant, "c-1", user(1))
	if err != nil {
		t.Fatal(err)
	}
	f.svc.Wait()
	c = f.get("c-1")
	if !slices.Equal(ringing(c), []string{user(2)}) {
		t.Fatalf("after decline: ringing %v, want %s", ringing(c), user(2))
	}
	if r := f.reason("support", user(1)); r != "" {
		t.Errorf("decliner (onDecline off): reason %q, want free", r)
	}
	if _, err := f.svc.Decline(ctx, tenant, "c-1", user(2)); err != nil {
		t.Fatal(err)
	}
	f.svc.Wait()
	if c = f.get("c-1"); c.State != StateQueued || len(ringing(c)) != 0 {
		t.Errorf("declined by everyone: %s ringing %v, want Queued, not offered again", c.State, ringing(c))
	}
	if _, err := f.svc.Accept(ctx, tenant, "c-1", user(1)); sb.ErrorType(err) != routing.OfferNotPending {
		t.Errorf("accept after decline: %v", err)
	}
}

func TestQueueOrderAndNoHeadOfLineBlocking(t *testing.T) {
	f := newFixture(t)
	f.service("support", 2, routing.DistributionInput{}, map[int]map[string]int{2: {"german": 3}})
	f.presence.set(user(1), sb.Busy)
	f.presence.set(user(2), sb.Busy)
	f.enqueue("support", "a", EnqueueInput{Priority: ptr(50)})
	f.clock.Advance(time.Second)
	f.enqueue("support", "b", EnqueueInput{Priority: ptr(90)})
	f.clock.Advance(time.Second)
	f.enqueue("support", "g", EnqueueInput{Priority: ptr(10), RequiredSkills: []sb.Skill{{Name: "german", MinLevel: 2}}})
	f.clock.Advance(time.Second)
	f.enqueue("support", "c", EnqueueInput{Priority: ptr(50)})
	q, err := f.svc.Queue(ctx, tenant, "support")
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, c := range q.Conversations {
		order = append(order, c.ID)
	}
	if want := []string{"b", "a", "c", "g"}; !slices.Equal(order, want) || q.Waiting != 4 {
		t.Fatalf("queue order %v (waiting %d), want %v", order, q.Waiting, want)
	}
	// user(1) becomes free: gets b (priority 90).
	f.presence.set(user(1), sb.Available)
	f.svc.PresenceChanged(ctx, tenant, []sb.Presence{{UserID: user(1), Availability: sb.Available}})
	f.svc.Wait()
	if got := ringing(f.get("b")); !slices.Equal(got, []string{user(1)}) {
		t.Fatalf("b offered to %v, want %s", got, user(1))
	}
	// user(2) (german) becomes free: a comes before g but... a is first in
	// order and user(2) is eligible for it, so a.
	f.presence.set(user(2), sb.Available)
	f.svc.PresenceChanged(ctx, tenant, []sb.Presence{{UserID: user(2), Availability: sb.Available}})
	f.svc.Wait()
	if got := ringing(f.get("a")); !slices.Equal(got, []string{user(2)}) {
		t.Fatalf("a offered to %v, want %s", got, user(2))
	}
	// user(1) declines b; b goes nowhere (user(2) rings); user(1) is free
	// again and is not blocked by g (german): it gets c... a's offer rings
	// for user(2), b was declined by user(1), so user(1) takes c.
	if _, err := f.svc.Decline(ctx, tenant, "b", user(1)); err != nil {
		t.Fatal(err)
	}
	f.svc.Wait()
	if got := ringing(f.get("c")); !slices.Equal(got, []string{user(1)}) {
		t.Fatalf("c offered to %v, want %s (no head-of-line blocking by b or g)", got, user(1))
	}
}

func TestSkills(t *testing.T) {
	f := newFixture(t)
	f.service("support", 4, routing.DistributionInput{}, map[int]map[string]int{1: {"german": 1}, 3: {"german": 2}, 4: {"german": 5}})
	need := []sb.Skill{{Name: "german", MinLevel: 2}}
	d, err := f.engine.Route(ctx, tenant, "support", sb.RouteRequest{RequiredSkills: need})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{}
	for _, x := range d.Excluded {
		reasons[x.UserID] = x.Reason
	}
	if reasons[user(1)] != sb.ReasonSkillMismatch || reasons[user(2)] != sb.ReasonSkillMismatch || len(d.Agents)+len(d.Candidates) != 2 {
		t.Fatalf("route with german>=2: excluded %v, agents %v candidates %v", reasons, d.Agents, d.Candidates)
	}
	for i, want := range []string{user(3), user(4)} {
		c := f.enqueue("support", "g-"+string(rune('1'+i)), EnqueueInput{RequiredSkills: need})
		if !slices.Equal(ringing(c), []string{want}) {
			t.Errorf("german conversation %d offered to %v, want %s", i, ringing(c), want)
		}
	}
	// Nobody with german >= 2 is left: the next one waits.
	if c := f.enqueue("support", "g-3", EnqueueInput{RequiredSkills: need}); c.State != StateQueued {
		t.Errorf("g-3: %s, want Queued", c.State)
	}
}

func TestRedeliveredMessagesChangeNothingTwice(t *testing.T) {
	f := newFixture(t)
	f.service("support", 3, routing.DistributionInput{}, nil)
	f.enqueue("support", "c-1", EnqueueInput{})
	f.clock.Advance(20 * time.Second)
	due := f.queue.due(f.clock.Now())
	var lapse []byte
	for _, m := range due {
		if strings.Contains(string(m.Body), kindOfferLapse) {
			lapse = m.Body
		}
	}
	if lapse == nil {
		t.Fatalf("no lapse message among %d due", len(due))
	}
	for i := range 3 {
		out, err := f.svc.Handle(ctx, lapse)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]string{true: "acted", false: "noop"}[i == 0]; out.Action != want {
			t.Errorf("delivery %d: %s, want %s", i+1, out, want)
		}
		f.svc.Wait()
	}
	c := f.get("c-1")
	if n := len(c.Offers); n != 2 || !slices.Equal(ringing(c), []string{user(2)}) {
		t.Fatalf("offers after 3 deliveries: %+v", c.Offers)
	}
	// Accepted, then its lapse message comes: nothing changes.
	if _, err := f.svc.Accept(ctx, tenant, "c-1", user(2)); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(20 * time.Second)
	for _, m := range f.queue.due(f.clock.Now()) {
		if !strings.Contains(string(m.Body), kindOfferLapse) {
			continue
		}
		out, err := f.svc.Handle(ctx, m.Body)
		if err != nil || out.Action != "noop" {
			t.Errorf("lapse of an accepted offer: %s, %v; want noop", out, err)
		}
	}
	if c := f.get("c-1"); c.State != StateConnected || c.Agent != user(2) {
		t.Errorf("after the stale lapse: %s %s", c.State, c.Agent)
	}
	if r := f.reason("support", user(2)); r != sb.ReasonInConversation {
		t.Errorf("accepted agent after a stale lapse: %q", r)
	}
	for _, body := range []string{`{`, `{"kind":"nope","tenantId":"` + tenant + `","ref":"2026-01-01T00:00:00Z"}`, `{"kind":"offerLapse"}`} {
		if out, err := f.svc.Handle(ctx, []byte(body)); err != nil || out.Action != "dropped" {
			t.Errorf("Handle(%s) = %s, %v; want dropped", body, out, err)
		}
	}
}

func TestTimeoutsAndOverflow(t *testing.T) {
	busy := func(f *fixture, n int) {
		for i := 1; i <= n; i++ {
			f.presence.set(user(i), sb.Busy)
		}
	}
	t.Run("disconnect", func(t *testing.T) {
		f := newFixture(t)
		f.service("support", 1, routing.DistributionInput{Queue: &routing.QueueInput{MaxWaitSeconds: ptr(60)}}, nil)
		busy(f, 1)
		f.enqueue("support", "c-1", EnqueueInput{})
		f.advance(59 * time.Second)
		if c := f.get("c-1"); c.State != StateQueued {
			t.Fatalf("before the timeout: %s", c.State)
		}
		f.advance(time.Second)
		if c := f.get("c-1"); c.State != StateTimedOut {
			t.Errorf("after maxWaitSeconds: %s, want TimedOut", c.State)
		}
	})
	t.Run("forward", func(t *testing.T) {
		f := newFixture(t)
		f.service("support", 1, routing.DistributionInput{Queue: &routing.QueueInput{MaxWaitSeconds: ptr(60), OnTimeout: &routing.OverflowInput{Action: ptr("Forward"), ServiceID: ptr("overflow")}}}, nil)
		f.service("overflow", 1, routing.DistributionInput{Queue: &routing.QueueInput{MaxWaitSeconds: ptr(30), OnTimeout: &routing.OverflowInput{Action: ptr("Forward"), ServiceID: ptr("support")}}}, nil)
		busy(f, 1)
		f.enqueue("support", "c-1", EnqueueInput{Priority: ptr(70), Customer: Customer{Phone: "+41 44 000 00 00"}})
		f.advance(60 * time.Second)
		c := f.get("c-1")
		if c.State != StateQueued || c.ServiceID != "overflow" || !slices.Equal(c.ForwardedFrom, []string{"support"}) || c.Priority != 70 {
			t.Fatalf("after the timeout: %s in %s from %v priority %d", c.State, c.ServiceID, c.ForwardedFrom, c.Priority)
		}
		q, _ := f.svc.Queue(ctx, tenant, "overflow")
		if len(q.Conversations) != 1 || q.Conversations[0].ID != "c-1" {
			t.Errorf("overflow queue %+v", q.Conversations)
		}
		if q, _ := f.svc.Queue(ctx, tenant, "support"); len(q.Conversations) != 0 {
			t.Errorf("support queue still lists %+v", q.Conversations)
		}
		// Ping-pong: forward 3 times, then TimedOut.
		f.advance(30 * time.Second)
		f.advance(60 * time.Second)
		if c := f.get("c-1"); c.State != StateQueued || len(c.ForwardedFrom) != 3 {
			t.Fatalf("after 3 forwards: %s %v", c.State, c.ForwardedFrom)
		}
		f.advance(30 * time.Second)
		if c := f.get("c-1"); c.State != StateTimedOut || !strings.Contains(c.OutcomeDetail, "forwarded 3 times") {
			t.Errorf("a fourth forward: %s (%s), want TimedOut", c.State, c.OutcomeDetail)
		}
	})
	t.Run("callback", func(t *testing.T) {
		f := newFixture(t)
		f.service("support", 1, routing.DistributionInput{Queue: &routing.QueueInput{MaxWaitSeconds: ptr(60), OnTimeout: &routing.OverflowInput{Action: ptr("Callback")}}}, nil)
		busy(f, 1)
		f.enqueue("support", "c-1", EnqueueInput{Customer: Customer{Phone: "+41440000000"}, Context: map[string]string{"case": "42"}})
		f.enqueue("support", "c-2", EnqueueInput{})
		f.outbound.mu.Lock()
		f.outbound.mu.Unlock()
		f.advance(60 * time.Second)
		c := f.get("c-1")
		if c.State != StateCallbackScheduled || c.CallbackTaskID != "task-callback:c-1" {
			t.Fatalf("callback: %s task %q", c.State, c.CallbackTaskID)
		}
		cb := f.outbound.callbacks[0]
		if cb.Destination != "+41440000000" || cb.ReferenceID != "callback:c-1" || cb.Context["case"] != "42" {
			t.Errorf("callback task %+v", cb)
		}
		if c := f.get("c-2"); c.State != StateTimedOut || !strings.Contains(c.OutcomeDetail, "phone") {
			t.Errorf("callback without a phone: %s (%s), want disconnected", c.State, c.OutcomeDetail)
		}
	})
	t.Run("callback refused by the cap", func(t *testing.T) {
		f := newFixture(t)
		f.service("support", 1, routing.DistributionInput{Queue: &routing.QueueInput{MaxWaitSeconds: ptr(60), OnTimeout: &routing.OverflowInput{Action: ptr("Callback")}}}, nil)
		busy(f, 1)
		f.outbound.refuse = true
		f.enqueue("support", "c-1", EnqueueInput{Customer: Customer{Phone: "+41440000000"}})
		f.advance(60 * time.Second)
		if c := f.get("c-1"); c.State != StateTimedOut || !strings.Contains(c.OutcomeDetail, "outbound task limit") {
			t.Errorf("cap refused the callback: %s (%s), want TimedOut saying why", c.State, c.OutcomeDetail)
		}
	})
	t.Run("full queue", func(t *testing.T) {
		f := newFixture(t)
		f.service("support", 1, routing.DistributionInput{Queue: &routing.QueueInput{MaxLength: ptr(2), OnFull: &routing.OverflowInput{Action: ptr("Forward"), ServiceID: ptr("overflow")}}}, nil)
		f.service("overflow", 1, routing.DistributionInput{}, nil)
		busy(f, 1)
		f.enqueue("support", "c-1", EnqueueInput{})
		f.enqueue("support", "c-2", EnqueueInput{})
		c := f.enqueue("support", "c-3", EnqueueInput{})
		if c.ServiceID != "overflow" || c.State != StateQueued {
			t.Errorf("third into a queue of 2: %s in %s, want Queued in overflow", c.State, c.ServiceID)
		}
	})
	t.Run("no agents", func(t *testing.T) {
		f := newFixture(t)
		f.service("support", 2, routing.DistributionInput{Queue: &routing.QueueInput{OnNoAgents: &routing.OverflowInput{Action: ptr("Disconnect")}}}, nil)
		f.presence.set(user(1), sb.Offline)
		f.presence.set(user(2), sb.Offline)
		if c := f.enqueue("support", "c-1", EnqueueInput{}); c.State != StateRejected {
			t.Errorf("nobody signed in: %s, want Rejected", c.State)
		}
		f.presence.set(user(2), sb.Busy) // signed in, busy: the queue applies
		if c := f.enqueue("support", "c-2", EnqueueInput{}); c.State != StateQueued {
			t.Errorf("a busy agent signed in: %s, want Queued", c.State)
		}
	})
}

func TestEnqueueIdempotentAndConflicts(t *testing.T) {
	f := newFixture(t)
	f.service("support", 1, routing.DistributionInput{}, nil)
	f.service("sales", 1, routing.DistributionInput{}, nil)
	f.enqueue("support", "c-1", EnqueueInput{})
	c, created, err := f.svc.Enqueue(ctx, tenant, "support", EnqueueInput{ConversationID: "c-1"})
	if err != nil || created || c.State != StateOffered {
		t.Errorf("same id again: %s created %v %v", c.State, created, err)
	}
	if _, _, err := f.svc.Enqueue(ctx, tenant, "sales", EnqueueInput{ConversationID: "c-1"}); !sb.IsCode(err, sb.ECONFLICT) {
		t.Errorf("same id in another service: %v, want conflict", err)
	}
	for _, tc := range []struct {
		in    EnqueueInput
		field string
	}{
		{EnqueueInput{}, "conversationId"},
		{EnqueueInput{ConversationID: "x", Priority: ptr(100)}, "priority"},
		{EnqueueInput{ConversationID: "x", Priority: ptr(0)}, "priority"},
		{EnqueueInput{ConversationID: "x", RequiredSkills: []sb.Skill{{Name: "German", MinLevel: 1}}}, "requiredSkills[0].name"},
		{EnqueueInput{ConversationID: "x", RequiredSkills: []sb.Skill{{Name: "german", MinLevel: 11}}}, "requiredSkills[0].minLevel"},
		{EnqueueInput{ConversationID: "x", PreferredUsers: []string{"nope"}}, "preferredUsers[0]"},
		{EnqueueInput{ConversationID: "x", Customer: Customer{Phone: "12"}}, "customer.phone"},
		{EnqueueInput{ConversationID: "task:1:1"}, "conversationId"},
	} {
		if _, _, err := f.svc.Enqueue(ctx, tenant, "support", tc.in); sb.ErrorField(err) != tc.field {
			t.Errorf("%+v: %v, want field %s", tc.in, err, tc.field)
		}
	}
	if _, _, err := f.svc.Enqueue(ctx, tenant, "nope", EnqueueInput{ConversationID: "x"}); !sb.IsCode(err, sb.ENOTFOUND) {
		t.Errorf("unknown service: %v", err)
	}
}

func TestAbandonRescindsOffers(t *testing.T) {
	f := newFixture(t)
	f.service("support", 3, routing.DistributionInput{Order: ptr("Broadcast")}, nil)
	f.enqueue("support", "c-1", EnqueueInput{})
	if ok, err := f.svc.End(ctx, tenant, "c-1"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	f.svc.Wait()
	c := f.get("c-1")
	if c.State != StateAbandoned || len(ringing(c)) != 0 {
		t.Fatalf("abandoned: %s ringing %v", c.State, ringing(c))
	}
	for i := 1; i <= 3; i++ {
		if r := f.reason("support", user(i)); r != "" {
			t.Errorf("%s after abandon: %q", user(i), r)
		}
	}
	if ok, err := f.svc.End(ctx, tenant, "unknown"); ok || err != nil {
		t.Errorf("unknown conversation: %v %v, want false (routing's release)", ok, err)
	}
}

func TestOutboundTasksInTheSameLine(t *testing.T) {
	f := newFixture(t)
	f.service("support", 1, routing.DistributionInput{}, nil)
	f.presence.set(user(1), sb.Busy)
	f.enqueue("support", "low", EnqueueInput{Priority: ptr(20)})
	f.outbound.waiting["support"] = []WaitingTask{{ID: "t-high", Priority: 60, QueuedAt: t0}}
	var got []string
	f.outbound.assign = func(service, task string, _, _ []string) string {
		// The fake assigns by taking the agent through the engine as the
		// outbound worker does.
		d, err := f.engine.Route(ctx, tenant, service, sb.RouteRequest{ConversationID: "task:" + task + ":1", Reserve: true, UntilReleased: true, MaxAgents: 1})
		if err != nil || len(d.Agents) == 0 {
			return ""
		}
		got = append(got, task)
		return d.Agents[0].UserID
	}
	f.presence.set(user(1), sb.Available)
	f.svc.PresenceChanged(ctx, tenant, []sb.Presence{{UserID: user(1), Availability: sb.Available}})
	f.svc.Wait()
	if !slices.Equal(got, []string{"t-high"}) {
		t.Fatalf("outbound assigned %v, want the higher-priority task first", got)
	}
	if c := f.get("low"); c.State != StateQueued {
		t.Errorf("lower-priority conversation %s, want still Queued", c.State)
	}
}

// A conversation or offer whose message was lost still times out within a
// housekeeping tick; ended conversations are kept 7 days, then deleted.
func TestHousekeepingActsOnLostMessages(t *testing.T) {
	f := newFixture(t)
	f.service("support", 2, routing.DistributionInput{Queue: &routing.QueueInput{MaxWaitSeconds: ptr(60)}}, nil)
	f.enqueue("support", "offered", EnqueueInput{})
	f.presence.set(user(2), sb.Busy)
	f.enqueue("support", "waiting", EnqueueInput{})
	f.queue.due(t0.Add(24 * time.Hour)) // every message lost

	f.clock.Advance(20*time.Second + 6*time.Second) // ring time and grace over
	rep, err := f.svc.Housekeep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.svc.Wait()
	if rep.OffersLapsed != 1 {
		t.Errorf("report %s, want 1 lapsed", rep)
	}
	if c := f.get("offered"); c.Offers[0].State != OfferLapsed {
		t.Errorf("offer whose message was lost: %s, want Lapsed", c.Offers[0].State)
	}
	f.clock.Advance(40 * time.Second) // past both deadlines and the grace
	if rep, err = f.svc.Housekeep(ctx); err != nil || rep.TimedOut != 2 {
		t.Fatalf("report %s, %v; want 2 timed out", rep, err)
	}
	for _, id := range []string{"offered", "waiting"} {
		if c := f.get(id); c.State != StateTimedOut {
			t.Errorf("%s: %s, want TimedOut", id, c.State)
		}
	}
	f.clock.Advance(7*24*time.Hour - time.Minute)
	if rep, _ = f.svc.Housekeep(ctx); rep.Deleted != 0 {
		t.Errorf("deleted %d before 7 days", rep.Deleted)
	}
	f.clock.Advance(2 * time.Minute)
	if rep, _ = f.svc.Housekeep(ctx); rep.Deleted != 2 {
		t.Errorf("deleted %d after 7 days, want 2", rep.Deleted)
	}
	if _, err := f.svc.Get(ctx, tenant, "waiting"); !sb.IsCode(err, sb.ENOTFOUND) {
		t.Errorf("after retention: %v, want not found", err)
	}
}

// A member change (an agent opting in) distributes the service at once.
func TestMemberChangeDistributes(t *testing.T) {
	f := newFixture(t)
	f.service("support", 1, routing.DistributionInput{}, nil)
	in := routing.ServiceInput{Name: ptr("support"), Members: []routing.MemberInput{{UserID: user(1), Active: ptr(false)}}}
	if _, _, err := f.engine.PutService(ctx, tenant, "support", in, ""); err != nil {
		t.Fatal(err)
	}
	if c := f.enqueue("support", "c-1", EnqueueInput{}); c.State != StateQueued {
		t.Fatalf("nobody active: %s, want Queued", c.State)
	}
	in.Members[0].Active = ptr(true)
	if _, _, err := f.engine.PutService(ctx, tenant, "support", in, ""); err != nil {
		t.Fatal(err)
	}
	f.svc.ServiceChanged(tenant, "support")
	f.svc.Wait()
	if got := ringing(f.get("c-1")); !slices.Equal(got, []string{user(1)}) {
		t.Errorf("after the agent opted in: ringing %v, want %s", got, user(1))
	}
}

// fakeOutbox records Prepare and Flush calls.
type fakeOutbox struct {
	mu                sync.Mutex
	prepared, flushed int
}

func (o *fakeOutbox) Prepare(ctx context.Context, table, pk string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.prepared++
	return nil
}

func (o *fakeOutbox) Flush(ctx context.Context, table, pk string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.flushed++
}

// Each change of a conversation is written with its events (SPEC section
// 11) in the same batch: types from the history, increasing sequence,
// the conversation with its previous state as data.
func TestConversationEventsInTheOutbox(t *testing.T) {
	f := newFixture(t)
	ob := &fakeOutbox{}
	s, err := New(ctx, Options{Tables: f.tables, Agents: f.engine, Presence: f.presence, Queue: f.queue, QueueName: "distribution", Now: f.clock.Now, Events: ob})
	if err != nil {
		t.Fatal(err)
	}
	f.svc = s
	t.Cleanup(s.Wait)
	f.service("support", 2, routing.DistributionInput{}, nil)
	f.enqueue("support", "c-1", EnqueueInput{})
	if _, err := s.Decline(ctx, tenant, "c-1", user(1)); err != nil {
		t.Fatal(err)
	}
	s.Wait()
	if _, err := s.Accept(ctx, tenant, "c-1", user(2)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.End(ctx, tenant, "c-1"); err != nil {
		t.Fatal(err)
	}
	var types []string
	var seq int64
	for _, r := range f.outboxBySequence() {
		ev := r.Event
		types = append(types, strings.TrimPrefix(ev.Type, "switchboard.conversation."))
		if ev.Sequence != seq+1 || ev.Subject != "conversations/c-1" || ev.ServiceID != "support" {
			t.Errorf("event %s: sequence %d (after %d), subject %s, service %s", ev.Type, ev.Sequence, seq, ev.Subject, ev.ServiceID)
		}
		seq = ev.Sequence
		var data struct {
			State         string  `json:"state"`
			PreviousState *string `json:"previousState"`
		}
		if err := json.Unmarshal(ev.Data, &data); err != nil || data.State == "" {
			t.Errorf("event %s data %s: %v", ev.Type, ev.Data, err)
		}
	}
	want := []string{"queued", "offered", "offerDeclined", "offered", "connected", "ended"}
	if !slices.Equal(types, want) {
		t.Errorf("events %v, want %v", types, want)
	}
	if ob.prepared == 0 {
		t.Error("outbox never prepared")
	}
}

// RONA and after-call work starting and ending are agent events, written
// by routing with the agent's hold (in routing's table), with why they
// ended.
func TestAgentEventsInTheOutbox(t *testing.T) {
	f := newFixture(t)
	ob := &fakeOutbox{}
	engine, err := routing.New(ctx, routing.Options{Tables: f.tables, Presence: f.presence, StaleAfter: 120 * time.Second, Now: f.clock.Now, StateRefresh: -1, Events: ob})
	if err != nil {
		t.Fatal(err)
	}
	f.engine = engine
	s, err := New(ctx, Options{Tables: f.tables, Agents: engine, Presence: f.presence, Queue: f.queue, QueueName: "distribution", Now: f.clock.Now, Events: ob})
	if err != nil {
		t.Fatal(err)
	}
	f.svc = s
	t.Cleanup(s.Wait)
	f.service("support", 2, routing.DistributionInput{AfterCallWorkSeconds: ptr(30)}, nil)
	f.enqueue("support", "c-1", EnqueueInput{})
	f.advance(20 * time.Second) // user(1) lets it ring: RONA; user(2) is offered
	if _, err := s.Accept(ctx, tenant, "c-1", user(2)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.End(ctx, tenant, "c-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.ResetRona(ctx, tenant, user(1)); err != nil {
		t.Fatal(err)
	}
	f.advance(30 * time.Second) // after-call work of user(2) ends
	table, _ := f.tables.Table(ctx, routing.StateTable)
	rows, err := outbox.Read(ctx, table, tenant)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rows {
		var data struct{ Reason string }
		_ = json.Unmarshal(r.Event.Data, &data)
		got[strings.TrimPrefix(r.Event.Type, "switchboard.agent.")] = r.Event.Subject + " " + data.Reason
	}
	want := map[string]string{"ronaStarted": "agents/" + user(1) + " ", "ronaEnded": "agents/" + user(1) + " " + sb.HoldEndEarly,
		"afterCallWorkStarted": "agents/" + user(2) + " ", "afterCallWorkEnded": "agents/" + user(2) + " " + sb.HoldEndTime}
	if len(got) != len(want) {
		t.Errorf("agent events %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("agent event %s: %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	if dist, _ := f.tables.Table(ctx, TableName); dist != nil {
		rows, _ := outbox.Read(ctx, dist, tenant)
		for _, r := range rows {
			if strings.HasPrefix(r.Event.Type, "switchboard.agent.") {
				t.Errorf("agent event %s in distribution's table: written apart from the hold", r.Event.Type)
			}
		}
	}
}

// A conversation never released is ended once its agent's hold is gone
// (13 hours), and the agent is free.
func TestHousekeepingEndsLeakedConnections(t *testing.T) {
	f := newFixture(t)
	f.service("support", 1, routing.DistributionInput{}, nil)
	f.enqueue("support", "c-1", EnqueueInput{})
	if _, err := f.svc.Accept(ctx, tenant, "c-1", user(1)); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(12 * time.Hour)
	if rep, err := f.svc.Housekeep(ctx); err != nil || rep.Leaked != 0 {
		t.Fatalf("after 12 h: %s, %v", rep, err)
	}
	f.clock.Advance(time.Hour + time.Minute)
	rep, err := f.svc.Housekeep(ctx)
	if err != nil || rep.Leaked != 1 {
		t.Fatalf("after 13 h: %s, %v", rep, err)
	}
	if c := f.get("c-1"); c.State != StateEnded || !strings.Contains(c.OutcomeDetail, "not released") {
		t.Errorf("leaked conversation: %s (%s)", c.State, c.OutcomeDetail)
	}
	if r := f.reason("support", user(1)); r != "" {
		t.Errorf("its agent: %q, want free", r)
	}
}

// The line sorts by priority, then arrival, then id, for lines long
// enough that the sort is not a simple insertion sort.
func TestLineOrderLongLine(t *testing.T) {
	var es []entry
	for i := range 300 {
		es = append(es, entry{ID: fmt.Sprintf("c-%03d", i), Priority: []int{10, 50, 90}[i%3], QueuedAt: t0.Add(time.Duration(i%7) * time.Second)})
	}
	sortEntries(es)
	for i := 1; i < len(es); i++ {
		a, b := es[i-1], es[i]
		if before(b.Priority, b.QueuedAt, b.ID, a.Priority, a.QueuedAt, a.ID) {
			t.Fatalf("entry %d (%+v) before %d (%+v)", i-1, a, i, b)
		}
	}
}

// A pass gives each free agent the first conversation in queue order that
// it is eligible for, even when a conversation behind could take it too:
// a (german, only user(2) can take it) comes first and gets user(2); b
// prefers user(2) but comes second and gets user(1). (Offers made
// concurrently without matching let b's route take user(2) first.)
func TestPassMatchesAgentsInQueueOrder(t *testing.T) {
	for range 10 {
		f := newFixture(t)
		f.service("support", 2, routing.DistributionInput{}, map[int]map[string]int{2: {"german": 3}})
		f.presence.set(user(1), sb.Busy)
		f.presence.set(user(2), sb.Busy)
		f.enqueue("support", "a", EnqueueInput{Priority: ptr(90), RequiredSkills: []sb.Skill{{Name: "german", MinLevel: 2}}})
		f.clock.Advance(time.Second)
		f.enqueue("support", "b", EnqueueInput{Priority: ptr(50), PreferredUsers: []string{user(2)}})
		f.presence.set(user(1), sb.Available)
		f.presence.set(user(2), sb.Available)
		f.svc.PresenceChanged(ctx, tenant, []sb.Presence{{UserID: user(1), Availability: sb.Available}, {UserID: user(2), Availability: sb.Available}})
		f.svc.Wait()
		if a, b := ringing(f.get("a")), ringing(f.get("b")); !slices.Equal(a, []string{user(2)}) || !slices.Equal(b, []string{user(1)}) {
			t.Fatalf("a offered to %v, b to %v; want a to %s (first in order, only it can), b to %s", a, b, user(2), user(1))
		}
	}
}

// An agent freed while a Broadcast rings is offered it too, ringing until
// the broadcast's ring time ends (not once that is nearly over); the first
// accept still wins, and the added offers' lapses put nobody into RONA.
func TestBroadcastTakesAgentsFreedWhileItRings(t *testing.T) {
	f := newFixture(t)
	f.service("support", 6, routing.DistributionInput{Order: ptr("Broadcast"), BroadcastSize: ptr(5)}, nil)
	for i := 4; i <= 6; i++ {
		f.presence.set(user(i), sb.Busy)
	}
	free := func(us ...string) {
		var ps []sb.Presence
		for _, u := range us {
			f.presence.set(u, sb.Available)
			ps = append(ps, sb.Presence{UserID: u, Availability: sb.Available})
		}
		f.svc.PresenceChanged(ctx, tenant, ps)
		f.svc.Wait()
	}
	c := f.enqueue("support", "c-1", EnqueueInput{})
	if got := sortedCopy(ringing(c)); !slices.Equal(got, []string{user(1), user(2), user(3)}) {
		t.Fatalf("broadcast with 3 agents free: ringing %v", got)
	}
	end := c.Offers[0].ExpiresAt
	f.clock.Advance(5 * time.Second)
	free(user(4))
	c = f.get("c-1")
	if got := sortedCopy(ringing(c)); !slices.Equal(got, []string{user(1), user(2), user(3), user(4)}) {
		t.Fatalf("after user(4) was freed: ringing %v, want users 1-4", got)
	}
	added := c.Offers[len(c.Offers)-1]
	if added.UserID != user(4) || !added.ExpiresAt.Equal(end) || !added.OfferedAt.Equal(t0.Add(5*time.Second)) {
		t.Fatalf("added offer %+v, want user(4)'s, offered at +5 s, ringing until the broadcast's end %v", added, end)
	}
	if a := f.agent(user(4)); a.Offer == nil || !a.Offer.ExpiresAt.Equal(end) {
		t.Fatalf("user(4)'s hold: %+v, want the offer until %v", a.Offer, end)
	}
	// With less than minAddedRing left, a freed agent is not added.
	f.clock.Advance(end.Sub(f.clock.Now()) - 2*time.Second)
	free(user(5))
	if got := ringing(f.get("c-1")); len(got) != 4 {
		t.Fatalf("2 s before the broadcast ends: ringing %v, want the 4 as before", got)
	}
	if _, err := f.svc.Accept(ctx, tenant, "c-1", user(4)); err != nil {
		t.Fatalf("accept by the added agent: %v", err)
	}
	f.svc.Wait()
	c = f.get("c-1")
	n := map[string]int{}
	for _, o := range c.Offers {
		n[o.State]++
	}
	if c.State != StateConnected || c.Agent != user(4) || n[OfferRescinded] != 3 || n[OfferAccepted] != 1 {
		t.Fatalf("after the added agent accepted: %s to %s, offers %v; want Connected to %s, 3 rescinded", c.State, c.Agent, n, user(4))
	}
	assertOffersEnded(t, c)

	// The added offers lapse with the broadcast, into no RONA.
	f.presence.set(user(1), sb.Busy)
	f.presence.set(user(2), sb.Busy)
	c = f.enqueue("support", "c-2", EnqueueInput{})
	if got := sortedCopy(ringing(c)); !slices.Equal(got, []string{user(3), user(5)}) {
		t.Fatalf("c-2: ringing %v, want users 3 and 5", got)
	}
	f.clock.Advance(10 * time.Second)
	free(user(1), user(2))
	if got := ringing(f.get("c-2")); len(got) != 4 {
		t.Fatalf("c-2 after users 1 and 2 were freed: ringing %v, want 4", got)
	}
	f.advance(11 * time.Second)
	c = f.get("c-2")
	lapsed := 0
	for _, e := range c.History {
		if e.Event == EventOfferLapsed {
			lapsed++
		}
	}
	if lapsed != 4 {
		t.Errorf("c-2: %d offers lapsed, want 4: %+v", lapsed, c.History)
	}
	for _, i := range []int{1, 2, 3, 5} {
		if r := f.reason("support", user(i)); r == sb.ReasonRona {
			t.Errorf("%s in RONA after a lapsed broadcast offer", user(i))
		}
	}
}

func sortedCopy(us []string) []string {
	out := slices.Clone(us)
	slices.Sort(out)
	return out
}

package distribution

import (
	"testing"
	"time"

	"switchboard/handler/routing"
	sb "switchboard/handler/switchboard"
)

// laggingInstance is another instance of the app on the same tables whose
// copy of the agents' state is loaded now and then followed only every
// minute (real time): what another instance wrote since is not in it.
func (f *fixture) laggingInstance() (*routing.Engine, *Service) {
	f.t.Helper()
	e, err := routing.New(ctx, routing.Options{Tables: f.tables, Presence: f.presence, StaleAfter: 120 * time.Second, Now: f.clock.Now, StateRefresh: time.Minute})
	if err != nil {
		f.t.Fatal(err)
	}
	s, err := New(ctx, Options{Tables: f.tables, Agents: e, Presence: f.presence, Queue: f.queue, QueueName: "distribution", Now: f.clock.Now})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(s.Wait)
	if _, err := e.Route(ctx, tenant, "support", sb.RouteRequest{Preview: true}); err != nil { // loads its copy
		f.t.Fatal(err)
	}
	return e, s
}

// An agent put into RONA by one instance a moment ago leaves it when its
// presence reads Offline on another, whose copy of the holds has not seen
// the RONA yet: the decision is storage's.
func TestOfflineEndsRonaSetByAnotherInstance(t *testing.T) {
	f := newFixture(t)
	f.service("support", 2, routing.DistributionInput{}, nil)
	_, other := f.laggingInstance()
	f.enqueue("support", "c-1", EnqueueInput{})
	f.advance(20 * time.Second) // user(1) lets it ring: RONA, on the first instance
	if v := f.agent(user(1)); v.Rona == nil {
		t.Fatalf("user(1) after its offer lapsed: %+v, want RONA", v)
	}
	f.presence.set(user(1), sb.Offline)
	other.PresenceChanged(ctx, tenant, []sb.Presence{{UserID: user(1), Availability: sb.Offline, Activity: sb.Offline}})
	h, err := f.engine.Agent(ctx, tenant, user(1))
	if err != nil {
		t.Fatal(err)
	}
	if h.Kind != "" {
		t.Errorf("after Offline on the other instance the agent's hold is %q, want none (RONA ended)", h.Kind)
	}
}

// The agent state read on another instance right after a change shows the
// change (the other instance's copy has not seen it): the offer, the
// conversation, after-call work, and once after-call work ended elsewhere,
// free with the idle time from that end, not the copy's older one.
func TestAgentStateOnAnotherInstanceRightAfterAChange(t *testing.T) {
	f := newFixture(t)
	f.service("support", 1, routing.DistributionInput{AfterCallWorkSeconds: ptr(60), RingSeconds: ptr(20)}, nil)
	_, other := f.laggingInstance()
	view := func() AgentView {
		t.Helper()
		v, err := other.Agent(ctx, tenant, user(1))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	f.enqueue("support", "c-1", EnqueueInput{})
	if v := view(); v.Offer == nil || v.Offer.ConversationID != "c-1" || v.Conversation != nil {
		t.Fatalf("while offered: %+v", v)
	}
	f.clock.Advance(time.Second)
	if _, err := f.svc.Accept(ctx, tenant, "c-1", user(1)); err != nil {
		t.Fatal(err)
	}
	if v := view(); v.Conversation == nil || v.Conversation.ConversationID != "c-1" || v.Offer != nil {
		t.Fatalf("while connected: %+v", v)
	}
	f.clock.Advance(time.Second)
	if _, err := f.svc.End(ctx, tenant, "c-1"); err != nil {
		t.Fatal(err)
	}
	f.svc.Wait()
	v := view()
	if v.AfterCallWork == nil || !v.AfterCallWork.Equal(f.clock.Now().Add(time.Minute)) || v.Conversation != nil {
		t.Fatalf("in after-call work: %+v, want until %s", v, f.clock.Now().Add(time.Minute))
	}
	// An instance whose copy has the after-call work: it ends elsewhere.
	_, other = f.laggingInstance()
	f.clock.Advance(10 * time.Second)
	endedAt := f.clock.Now()
	if err := f.svc.EndAfterCallWork(ctx, tenant, user(1)); err != nil {
		t.Fatal(err)
	}
	v = view()
	if v.AfterCallWork != nil || v.Rona != nil || v.Offer != nil || v.Conversation != nil {
		t.Fatalf("after after-call work ended: %+v, want free", v)
	}
	if !v.IdleSince.Equal(endedAt) {
		t.Errorf("idle since %s, want the end of after-call work %s", v.IdleSince, endedAt)
	}
}

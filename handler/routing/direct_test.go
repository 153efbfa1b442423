package routing

import (
	"fmt"
	"sync"
	"testing"
	"time"

	sb "switchboard/handler/switchboard"
)

// Direct offers take the agent's one hold row: concurrent direct offers
// and service routes on two instances give the agent to exactly one of
// them, and the agent's state then excludes it from the others with the
// section 4 reasons.
func TestOfferDirectOneHoldAcrossInstances(t *testing.T) {
	f := newFixture(t, nil)
	u := user(1)
	f.service("support", DistributionInput{}, u)
	f.available(u)
	instances := []*Engine{f.engine, f.newEngine()}
	var wg sync.WaitGroup
	got := make([]int, 20)
	errs := make([]error, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conv := fmt.Sprintf("c%02d", i)
			var d sb.RouteDecision
			if i%4 == 3 {
				d, errs[i] = instances[i%2].Route(ctx, tenant, "support", sb.RouteRequest{ConversationID: conv, Reserve: true})
			} else {
				d, errs[i] = instances[i%2].OfferDirect(ctx, tenant, u, conv, 20*time.Second, time.Minute)
			}
			got[i] = len(d.Agents)
		}()
	}
	wg.Wait()
	held := 0
	for i := range got {
		if errs[i] != nil {
			t.Fatalf("%d: %v", i, errs[i])
		}
		held += got[i]
	}
	if held != 1 {
		t.Fatalf("the agent was given to %d requests, want exactly 1", held)
	}
}

func TestOfferDirectVerdicts(t *testing.T) {
	f := newFixture(t, nil)
	u := user(1)
	f.service("support", DistributionInput{}, u)
	offer := func(conv string) sb.RouteDecision {
		t.Helper()
		d, err := f.engine.OfferDirect(ctx, tenant, u, conv, 20*time.Second, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	reason := func(d sb.RouteDecision) string {
		if len(d.Excluded) != 1 {
			return fmt.Sprintf("%d agents, %d excluded", len(d.Agents), len(d.Excluded))
		}
		return d.Excluded[0].Reason
	}
	if r := reason(offer("c1")); r != sb.ReasonPresenceUnknown {
		t.Errorf("never read: %s, want PresenceUnknown", r)
	}
	f.presence.Set(u, sb.Offline, sb.ActivityOffline)
	if r := reason(offer("c1")); r != sb.ReasonOffline {
		t.Errorf("Offline: %s, want Offline", r)
	}
	f.available(u)
	d := offer("c1")
	if len(d.Agents) != 1 || !d.Agents[0].HoldExpiresAt.Equal(t0.Add(20*time.Second)) {
		t.Fatalf("free: %+v, want the agent with a 20 s offer", d)
	}
	if r := reason(offer("c2")); r != sb.ReasonOfferPending {
		t.Errorf("with a ringing offer: %s, want OfferPending", r)
	}
	if h, err := f.engine.Agent(ctx, tenant, u); err != nil || h.Kind != sb.HoldOffer || h.ConversationID != "c1" || h.ServiceID != "" {
		t.Errorf("the agent's hold: %+v, %v; want the direct offer of c1, no service", h, err)
	}
	f.clock.Advance(20 * time.Second)
	if r := reason(offer("c2")); r != sb.ReasonRona {
		t.Errorf("after the offer rang out (its lapse not handled yet): %s, want Rona", r)
	}
	if h, err := f.engine.Agent(ctx, tenant, u); err != nil || h.Kind != sb.HoldRona || h.ConversationID != "c1" ||
		!h.HeldAt.Equal(t0.Add(20*time.Second)) || !h.ExpiresAt.Equal(t0.Add(80*time.Second)) {
		t.Errorf("the agent's hold after the ring-out: %+v, %v; want RONA for c1 from the ring's end for a minute", h, err)
	}
	f.clock.Advance(time.Minute)
	if d := offer("c2"); len(d.Agents) != 1 {
		t.Errorf("after the RONA ended: %+v, want the agent", d)
	}
	if _, err := f.engine.OfferDirect(ctx, tenant, "nobody", "c3", time.Second, 0); !sb.IsCode(err, sb.EINVALID) {
		t.Errorf("a malformed user: %v, want EINVALID", err)
	}
}

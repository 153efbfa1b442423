package routing

import (
	"testing"
	"time"

	"switchboard/handler/internal/fakes"
	"switchboard/handler/internal/testenv"
	"switchboard/handler/store"
	sb "switchboard/handler/switchboard"
)

// SPEC section 10: RONA ends when the agent's presence reads Offline. These
// tests cover that reading and the ring-out that writes the RONA arriving in
// either order, and racing.

// The defect behind TestRingNoAnswerEndToEnd's flake: the Offline
// reading's EndRonaIfHeld read the agent's rung-out offer row, the lapse
// (on an instance whose presence copy still read Available) wrote the
// RONA over it before the delete, the delete failed on its ETag and the
// agent stayed in RONA for the whole reset time, though its presence had
// read Offline: back Available, it was offered nothing. The RONA written
// in between is ended too, with one ronaStarted and one ronaEnded.
func TestOfflineEndsRonaTheLapseWroteWhileItWasRead(t *testing.T) {
	race := &fakes.DeleteRace{Tables: store.NewMemoryTables(), TableName: StateTable,
		Match: func(rk string) bool { return rk == holdPrefix+user(1) }}
	f := newAgentEventsFixture(t, race)
	u := user(1)
	f.service("support", DistributionInput{}, u)
	f.available(u)
	if got := f.offerRona("c-1", time.Minute); got != u {
		t.Fatalf("c-1 offered to %s", got)
	}
	f.clock.Advance(20*time.Second + 100*time.Millisecond) // rung out; the lapse not handled yet

	// The lapse's instance has not seen the Offline reading yet.
	lagging := fakes.NewPresenceStore(tenant, f.clock.Now)
	lagging.Set(u, sb.Available, sb.ActivityAvailable)
	lapser, err := New(ctx, Options{Tables: f.tables, Presence: lagging, StaleAfter: staleAfter, Now: f.clock.Now, Events: f.relay})
	if err != nil {
		t.Fatal(err)
	}
	until := time.Time{}
	race.Race = func() {
		var err error
		if until, _, err = lapser.EndOffer(ctx, tenant, u, "c-1", sb.OfferEnd{Rona: time.Minute, Idle: true}); err != nil {
			t.Errorf("lapse: %v", err)
		}
		f.waitFlush()
		f.clock.Advance(10 * time.Millisecond) // the delete comes a moment later
	}
	f.presence.Set(u, sb.Offline, sb.Offline)
	ended, err := f.engine.EndRonaIfHeld(ctx, tenant, []string{u}, sb.HoldEndOffline)
	if err != nil {
		t.Fatal(err)
	}
	if !race.Raced() || until.IsZero() {
		t.Fatalf("the lapse did not write the RONA in between (raced %v, until %v)", race.Raced(), until)
	}
	if len(ended) != 1 || ended[0] != u {
		t.Fatalf("EndRonaIfHeld ended %v, want %s: its RONA was written while it was read", ended, u)
	}
	f.waitFlush()
	if _, err := f.engine.state.getHold(ctx, tenant, u); !sb.IsCode(err, sb.ENOTFOUND) {
		t.Fatalf("hold after the Offline reading: %v, want none", err)
	}
	// The instance that ended it does not see the agent held either,
	// though its copy had the offer's row, not the RONA's: back
	// Available, it is free here at once, not after the copy's refresh.
	f.presence.Set(u, sb.Available, sb.ActivityAvailable)
	if d := f.route(f.engine, "support", sb.RouteRequest{}); len(d.Agents) != 1 {
		t.Fatalf("back Available, on the instance that ended the RONA: %+v, want the agent free", d)
	}
	f.presence.Set(u, sb.Offline, sb.Offline)
	// The RONA's due message, later, changes nothing.
	f.clock.Advance(time.Minute)
	if ok, err := lapser.EndAgentHold(ctx, tenant, u, sb.HoldRona, until, sb.HoldEndTime); err != nil || ok {
		t.Errorf("the RONA's due message ended %v (%v), want nothing left to end", ok, err)
	}
	got := f.pump()
	if len(got) != 2 || got[0].Type != AgentRonaStarted || got[1].Type != AgentRonaEnded || got[1].Data.Reason != sb.HoldEndOffline {
		t.Fatalf("delivered %+v, want ronaStarted then ronaEnded (Offline)", got)
	}
	f.presence.Set(u, sb.Available, sb.ActivityAvailable)
	if d := f.route(f.engine, "support", sb.RouteRequest{}); len(d.Agents) != 1 {
		t.Errorf("back Available: %+v, want the agent free", d)
	}
}

// An offer that rings out while the agent's presence already reads
// Offline puts it into no RONA that outlasts the reading: the Offline
// reading came first, so nothing would end it before its time, and the
// agent signing back in would be held out. The ring-out's RONA ends at
// once, with its ronaStarted and ronaEnded (Offline) in one change,
// whichever writes it: the lapse (delivered twice), the expiry sweep, or
// an early lapse or declined offer that would start a RONA now.
func TestRingOutOfAnAgentReadingOfflineLeavesNoRona(t *testing.T) {
	for _, tc := range []struct {
		name string
		// end ends the offer (rung out when ringOut) as its lapse, decline
		// or the sweep would.
		end     func(f *agentEventsFixture, u string)
		ringOut bool
	}{
		{"lapse", func(f *agentEventsFixture, u string) {
			for range 2 { // redelivered
				until, _, err := f.engine.EndOffer(ctx, tenant, u, "c-1", sb.OfferEnd{Rona: time.Minute, Idle: true})
				if err != nil || !until.IsZero() {
					f.t.Fatalf("lapse: RONA until %v (%v), want none", until, err)
				}
			}
		}, true},
		{"sweep", func(f *agentEventsFixture, u string) {
			if _, err := f.instance().Housekeep(ctx); err != nil {
				f.t.Fatal(err)
			}
			if until, _, err := f.engine.EndOffer(ctx, tenant, u, "c-1", sb.OfferEnd{Rona: time.Minute, Idle: true}); err != nil || !until.IsZero() {
				f.t.Fatalf("lapse after the sweep: RONA until %v (%v), want none", until, err)
			}
		}, true},
		{"declined or lapsing early, into RONA", func(f *agentEventsFixture, u string) {
			until, changed, err := f.engine.EndOffer(ctx, tenant, u, "c-1", sb.OfferEnd{Rona: time.Minute, Idle: true})
			if err != nil || !until.IsZero() || !changed {
				f.t.Fatalf("declined into RONA: until %v, changed %v (%v); want no RONA, the agent freed", until, changed, err)
			}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testenv.Backends(t, func(t *testing.T, tables store.Tables) {
				ringOutWhileOffline(t, tables, tc.end, tc.ringOut)
			})
		})
	}
}

// ringOutWhileOffline offers c-1 to the one agent, which then reads
// Offline, lets it ring (out, when ringOut), ends it with end and checks
// that no RONA is left, with its two events once.
func ringOutWhileOffline(t *testing.T, tables store.Tables, end func(f *agentEventsFixture, u string), ringOut bool) {
	f := newAgentEventsFixture(t, tables)
	u := user(1)
	f.service("support", DistributionInput{}, u)
	f.available(u)
	if got := f.offerRona("c-1", time.Minute); got != u {
		t.Fatalf("c-1 offered to %s", got)
	}
	f.presence.Set(u, sb.Offline, sb.Offline)
	if ringOut {
		f.clock.Advance(20*time.Second + 500*time.Millisecond)
	} else {
		f.clock.Advance(5 * time.Second)
	}
	end(f, u)
	f.waitFlush()
	if _, err := f.engine.state.getHold(ctx, tenant, u); !sb.IsCode(err, sb.ENOTFOUND) {
		t.Fatalf("hold of the agent reading Offline: %v, want none (no RONA)", err)
	}
	if rep, err := f.engine.Housekeep(ctx); err != nil || rep.HoldsExpired != 0 {
		t.Errorf("housekeeping afterwards: %+v, %v; want nothing left", rep, err)
	}
	got := f.pump()
	if len(got) != 2 || got[0].Type != AgentRonaStarted || got[1].Type != AgentRonaEnded ||
		got[1].Data.Reason != sb.HoldEndOffline || got[1].Data.EndedAt == nil || got[0].Data.ConversationID != "c-1" {
		t.Fatalf("delivered %+v, want one ronaStarted of c-1 and one ronaEnded (Offline)", got)
	}
	if ringOut && !got[0].Data.Since.Equal(t0.Add(20*time.Second)) {
		t.Errorf("ronaStarted since %s, want the ring's end %s", got[0].Data.Since, t0.Add(20*time.Second))
	}
	// Signing back in, the agent is free at once (as storage has it:
	// the sweep ran on another instance).
	f.presence.Set(u, sb.Available, sb.ActivityAvailable)
	if d := f.route(f.instance(), "support", sb.RouteRequest{}); len(d.Agents) != 1 {
		t.Errorf("back Available: %+v, want the agent free (not in RONA)", d)
	}
}

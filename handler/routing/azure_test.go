package routing

import (
	"slices"
	"testing"
	"time"

	"switchboard/handler/internal/testenv"
	sb "switchboard/handler/switchboard"
)

// The reservation guarantees rest on Table Storage's ETags: the same
// properties hold on Azurite as on the in-memory table.

func TestConcurrentReservationsAzurite(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Azurite")
	}
	testConcurrentReservations(t, testenv.Tables(t))
}

func TestRouteSameConversationConcurrentlyAzurite(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Azurite")
	}
	testSameConversationConcurrently(t, testenv.Tables(t))
}

func TestRouteReleaseAzurite(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Azurite")
	}
	f := newFixture(t, testenv.Tables(t))
	us := users(1, 3)
	f.service("support", DistributionInput{HoldSeconds: ptr(30)}, us...)
	f.available(us...)
	for i, c := range []string{"c1", "c2", "c3"} {
		d := f.route(f.engine, "support", sb.RouteRequest{ConversationID: c, Reserve: true})
		if got, want := agentIDs(d), []string{us[i]}; !slices.Equal(got, want) {
			t.Fatalf("%s: agents = %v, want %v", c, got, want)
		}
		if again := f.route(f.newEngine(), "support", sb.RouteRequest{ConversationID: c, Reserve: true}); !slices.Equal(again.Agents, d.Agents) {
			t.Fatalf("%s asked again: %+v, want %+v", c, again.Agents, d.Agents)
		}
	}
	for _, c := range []string{"c2", "c3", "c1"} {
		f.clock.Advance(time.Second)
		f.release(c)
	}
	d := f.route(f.engine, "support", sb.RouteRequest{ConversationID: "c4", Reserve: true})
	if got, want := agentIDs(d), []string{us[1]}; !slices.Equal(got, want) {
		t.Errorf("agents = %v, want %v (idle longest)", got, want)
	}
	f.clock.Advance(31 * time.Second)
	rep, err := f.engine.Housekeep(ctx)
	if err != nil || rep.HoldsExpired != 1 || rep.ConversationsExpired != 1 {
		t.Errorf("housekeeping: %+v, %v; want c4's hold and conversation expired", rep, err)
	}
}

package routing

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"switchboard/handler/store"
	sb "switchboard/handler/switchboard"
)

// Another instance's hold that this instance's cache does not show yet
// costs a lost race, never a double booking: the route moves on and reports
// the agent as taken.
func TestStaleCacheLosesTheRaceNotTheHold(t *testing.T) {
	f := newFixture(t, nil)
	us := users(1, 2)
	f.service("support", DistributionInput{}, us...)
	f.available(us...)
	other := f.newEngine()
	f.route(other, "support", sb.RouteRequest{}) // other's cache: nobody holds anything

	d := f.route(f.engine, "support", sb.RouteRequest{ConversationID: "c1", Reserve: true})
	if got, want := agentIDs(d), []string{us[0]}; !slices.Equal(got, want) {
		t.Fatalf("first instance: agents = %v, want %v", got, want)
	}
	d = f.route(other, "support", sb.RouteRequest{ConversationID: "c2", Reserve: true})
	if got, want := agentIDs(d), []string{us[1]}; !slices.Equal(got, want) {
		t.Fatalf("second instance: agents = %v, want %v", got, want)
	}
	if got := reasons(d)[us[0]]; got != sb.ReasonInConversation {
		t.Errorf("u1 reason = %q, want InConversation (lost the race)", got)
	}
}

// A cache older than its maximum lag is read again before a route uses it;
// one older than the refresh age is read again in the background.
func TestStateCacheFollowsStorage(t *testing.T) {
	f := newFixture(t, nil)
	us := users(1, 1)
	f.service("support", DistributionInput{}, us...)
	f.available(us...)
	mono := newClock(time.Unix(1000, 0))
	other := f.newEngine()
	other.agents.Clock = mono.Now

	f.route(f.engine, "support", sb.RouteRequest{ConversationID: "c1", Reserve: true})
	d := f.route(other, "support", sb.RouteRequest{})
	if len(d.Agents) != 0 {
		t.Fatalf("other instance, first read: agents = %v, want none (u1 holds c1)", agentIDs(d))
	}
	f.release("c1")
	d = f.route(other, "support", sb.RouteRequest{})
	if len(d.Agents) != 0 {
		t.Fatalf("other instance within the refresh age: agents = %v, want none (the release is not seen yet)", agentIDs(d))
	}
	mono.Advance(other.agents.MaxLag + time.Millisecond)
	d = f.route(other, "support", sb.RouteRequest{})
	if got, want := agentIDs(d), us; !slices.Equal(got, want) {
		t.Errorf("other instance past the maximum lag: agents = %v, want %v", got, want)
	}
}

// blockingTable holds a Query's answer until released, so that a write can
// land while a load is under way.
type blockingTable struct {
	store.Table
	read    chan struct{}
	release chan struct{}
}

func (b *blockingTable) Query(ctx context.Context, q store.Query) (store.Page, error) {
	p, err := b.Table.Query(ctx, q)
	b.read <- struct{}{}
	<-b.release
	return p, err
}

// A hold this process takes while a load is reading is not lost when the
// load, which read storage before the hold, publishes what it read.
func TestStateCacheReplaysWritesOverALoad(t *testing.T) {
	bt := &blockingTable{Table: store.NewMemory(), read: make(chan struct{}), release: make(chan struct{})}
	c := newStateCache(&stateStore{t: bt}, -1, 0, slog.New(slog.DiscardHandler))
	done := make(chan error)
	go func() {
		_, _, _, err := c.read(ctx, tenant, t0)
		done <- err
	}()
	<-bt.read
	h := hold{UserID: user(1), ConversationID: "c1", HeldAt: t0, ExpiresAt: t0.Add(time.Minute), ETag: "e1"}
	c.held(tenant, h)
	close(bt.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	c.RefreshEvery, c.MaxLag = time.Hour, time.Hour // serve from the cache from now on
	states, holds, _, err := c.read(ctx, tenant, t0)
	if err != nil {
		t.Fatal(err)
	}
	if !states[user(1)].Holding(t0) || holds[user(1)].ETag != "e1" {
		t.Errorf("after the load: state %+v, hold %+v; want the hold taken during the load", states[user(1)], holds[user(1)])
	}
}

package routing

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"switchboard/handler/store"
	sb "switchboard/handler/switchboard"
)

var ctx = context.Background()

func TestRouteLongestIdle(t *testing.T) {
	f := newFixture(t, nil)
	us := users(1, 3)
	f.service("support", DistributionInput{}, us...)
	f.available(us...)

	// Never-routed agents rank first, by id; each release starts the
	// agent's idle time.
	for i, c := range []string{"c1", "c2", "c3"} {
		d := f.route(f.engine, "support", sb.RouteRequest{ConversationID: c, Reserve: true})
		if got, want := agentIDs(d), []string{us[i]}; !slices.Equal(got, want) {
			t.Fatalf("%s: agents = %v, want %v", c, got, want)
		}
	}
	// u3 ends first, then u1, then u2.
	for _, c := range []string{"c3", "c1", "c2"} {
		f.clock.Advance(10 * time.Second)
		f.release(c)
	}
	f.clock.Advance(time.Minute)
	d := f.route(f.engine, "support", sb.RouteRequest{ConversationID: "c4"})
	if got, want := agentIDs(d), []string{us[2]}; !slices.Equal(got, want) {
		t.Errorf("agents = %v, want %v (idle longest)", got, want)
	}
	if got, want := candidateIDs(d), []string{us[0], us[1]}; !slices.Equal(got, want) {
		t.Errorf("candidates = %v, want %v (ranked by idle time)", got, want)
	}
}

func TestRouteReserveHoldsAndExpires(t *testing.T) {
	f := newFixture(t, nil)
	us := users(1, 2)
	f.service("support", DistributionInput{HoldSeconds: ptr(30)}, us...)
	f.available(us...)

	d := f.route(f.engine, "support", sb.RouteRequest{ConversationID: "c1", Reserve: true})
	if len(d.Agents) != 1 || d.Agents[0].UserID != us[0] {
		t.Fatalf("agents = %+v, want %s", d.Agents, us[0])
	}
	if got, want := d.Agents[0].HoldExpiresAt, t0.Add(30*time.Second); !got.Equal(want) {
		t.Errorf("holdExpiresAt = %v, want %v (the service's hold time)", got, want)
	}

	f.clock.Advance(29 * time.Second)
	d = f.route(f.engine, "support", sb.RouteRequest{ConversationID: "c2", Reserve: true, Hold: 5 * time.Second})
	if got, want := agentIDs(d), []string{us[1]}; !slices.Equal(got, want) {
		t.Fatalf("while u1 holds c1: agents = %v, want %v", got, want)
	}
	if got := reasons(d)[us[0]]; got != sb.ReasonInConversation {
		t.Errorf("u1 reason = %q, want InConversation", got)
	}
	if got, want := d.Agents[0].HoldExpiresAt, t0.Add(34*time.Second); !got.Equal(want) {
		t.Errorf("holdExpiresAt = %v, want %v (the request's hold time)", got, want)
	}

	f.clock.Advance(time.Second) // c1's hold expires at exactly 30 s
	d = f.route(f.engine, "support", sb.RouteRequest{ConversationID: "c3", Reserve: true})
	if got, want := agentIDs(d), []string{us[0]}; !slices.Equal(got, want) {
		t.Fatalf("after c1 expired: agents = %v, want %v", got, want)
	}
	// c1 asked again now that its hold expired and u1 went to c3: a new
	// route, and nobody is free.
	d = f.route(f.engine, "support", sb.RouteRequest{ConversationID: "c1", Reserve: true})
	if len(d.Agents) != 0 {
		t.Errorf("c1 after expiry: agents = %v, want none (u1 holds c3, u2 holds c2)", agentIDs(d))
	}
}

func TestRouteIdempotent(t *testing.T) {
	f := newFixture(t, nil)
	us := users(1, 3)
	f.service("support", DistributionInput{}, us...)
	f.available(us...)
	first := f.route(f.engine, "support", sb.RouteRequest{ConversationID: "c1", Reserve: true})
	f.clock.Advance(10 * time.Second)
	for _, e := range []*Engine{f.engine, f.newEngine()} {
		again := f.route(e, "support", sb.RouteRequest{ConversationID: "c1", Reserve: true})
		if !slices.Equal(again.Agents, first.Agents) {
			t.Errorf("asked again: agents = %+v, want %+v", again.Agents, first.Agents)
		}
		if got := reasons(again)[first.Agents[0].UserID]; got != "" {
			t.Errorf("the held agent is also excluded (%s)", got)
		}
		if got, want := candidateIDs(again), us[1:]; !slices.Equal(got, want) {
			t.Errorf("candidates = %v, want %v", got, want)
		}
	}
	// Without reserve, the conversation's hold is reported too.
	peek := f.route(f.engine, "support", sb.RouteRequest{ConversationID: "c1"})
	if !slices.Equal(peek.Agents, first.Agents) {
		t.Errorf("without reserve: agents = %+v, want %+v", peek.Agents, first.Agents)
	}
	// Only one agent is held.
	other := f.route(f.engine, "support", sb.RouteRequest{ConversationID: "c2", Reserve: true})
	if got, want := agentIDs(other), []string{us[1]}; !slices.Equal(got, want) {
		t.Errorf("next conversation: agents = %v, want %v", got, want)
	}
}

// The same new conversation asked concurrently gets one hold, and the
// agents the losing requests took meanwhile are given back.
func TestRouteSameConversationConcurrentlyMemory(t *testing.T) {
	testSameConversationConcurrently(t, store.NewMemoryTables())
}

func testSameConversationConcurrently(t *testing.T, tables store.Tables) {
	f := newFixture(t, tables)
	us := users(1, 10)
	f.service("support", DistributionInput{}, us...)
	f.available(us...)
	instances := []*Engine{f.engine, f.newEngine()}
	var wg sync.WaitGroup
	got := make([][]string, 10)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := instances[i%2].Route(ctx, tenant, "support", sb.RouteRequest{ConversationID: "c1", Reserve: true})
			if err != nil && sb.ErrorCode(err) != sb.ECONFLICT {
				t.Errorf("route %d: %v", i, err)
			}
			got[i] = agentIDs(d)
		}()
	}
	wg.Wait()
	var winner []string
	for i, a := range got {
		if len(a) == 0 {
			continue // told to retry (conflict)
		}
		if winner == nil {
			winner = a
		}
		if !slices.Equal(a, winner) {
			t.Errorf("route %d got %v, another %v", i, a, winner)
		}
	}
	if len(winner) != 1 {
		t.Fatalf("no route got the conversation's agent: %v", got)
	}
	holds, err := f.engine.state.holds(ctx, tenant)
	if err != nil {
		t.Fatal(err)
	}
	if len(holds) != 1 || holds[0].UserID != winner[0] {
		t.Errorf("holds left = %+v, want only %s's", holds, winner[0])
	}
}

// Replacing an expired conversation index row that housekeeping removed
// meanwhile inserts it afresh.
func TestPutConversationAfterSweep(t *testing.T) {
	st := &stateStore{t: store.NewMemory()}
	c := conversation{ID: "c1", ServiceID: "s", Agents: []sb.Assignment{{UserID: user(1)}}, HeldAt: t0, ExpiresAt: t0.Add(time.Second)}
	etag, err := st.putConversation(ctx, tenant, c, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.deleteConversation(ctx, tenant, conversation{ID: "c1", ETag: etag}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.putConversation(ctx, tenant, c, etag); err != nil {
		t.Fatalf("replace after the sweep: %v", err)
	}
	got, err := st.getConversation(ctx, tenant, "c1")
	if err != nil || len(got.Agents) != 1 {
		t.Errorf("index row = %+v, %v", got, err)
	}
	if _, err := st.putConversation(ctx, tenant, c, etag); sb.ErrorCode(err) != sb.EPRECONDITION {
		t.Errorf("replace with a stale ETag: %v, want precondition", err)
	}
}

func TestRouteConversationOfAnotherService(t *testing.T) {
	f := newFixture(t, nil)
	f.service("a", DistributionInput{}, user(1))
	f.service("b", DistributionInput{}, user(2))
	f.available(user(1), user(2))
	f.route(f.engine, "a", sb.RouteRequest{ConversationID: "c1", Reserve: true})
	_, err := f.engine.Route(ctx, tenant, "b", sb.RouteRequest{ConversationID: "c1", Reserve: true})
	if got := sb.ErrorCode(err); got != sb.ECONFLICT {
		t.Errorf("error code = %q (%v), want conflict", got, err)
	}
}

func TestRouteValidation(t *testing.T) {
	f := newFixture(t, nil)
	f.service("support", DistributionInput{}, user(1))
	for _, tc := range []struct {
		name      string
		service   string
		req       sb.RouteRequest
		wantCode  string
		wantField string
	}{
		{"unknown service", "nope", sb.RouteRequest{ConversationID: "c1"}, sb.ENOTFOUND, ""},
		{"reserve without a conversation", "support", sb.RouteRequest{Reserve: true}, sb.EINVALID, "conversationId"},
		{"conversation id with a slash", "support", sb.RouteRequest{ConversationID: "a/b"}, sb.EINVALID, "conversationId"},
		{"negative hold", "support", sb.RouteRequest{ConversationID: "c1", Hold: -time.Second}, sb.EINVALID, "holdSeconds"},
		{"too many preferred users", "support", sb.RouteRequest{ConversationID: "c1", PreferredUsers: users(1, 11)}, sb.EINVALID, "preferredUsers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.engine.Route(ctx, tenant, tc.service, tc.req)
			if got := sb.ErrorCode(err); got != tc.wantCode {
				t.Fatalf("error code = %q (%v), want %q", got, err, tc.wantCode)
			}
			if got := sb.ErrorField(err); got != tc.wantField {
				t.Errorf("field = %q, want %q", got, tc.wantField)
			}
		})
	}
}

func TestRoutePreferredUsers(t *testing.T) {
	f := newFixture(t, nil)
	us := users(1, 4)
	f.service("support", DistributionInput{}, us...)
	f.available(us...)
	f.presence.Set(us[2], sb.DoNotDisturb, sb.ActivityPresenting)
	stranger := user(99)
	d := f.route(f.engine, "support", sb.RouteRequest{ConversationID: "c1", PreferredUsers: []string{stranger, us[2], us[3]}})
	if got, want := agentIDs(d), []string{us[3]}; !slices.Equal(got, want) {
		t.Errorf("agents = %v, want %v (the first eligible preferred user)", got, want)
	}
	r := reasons(d)
	if r[stranger] != sb.ReasonNotMember || r[us[2]] != sb.ReasonDoNotDisturb {
		t.Errorf("reasons = %v, want %s NotMember and %s DoNotDisturb", r, stranger, us[2])
	}
}

func TestRouteRoundRobinAcrossInstances(t *testing.T) {
	f := newFixture(t, nil)
	us := users(1, 3)
	f.service("rr", DistributionInput{Order: ptr(OrderRoundRobin)}, us...)
	f.available(us...)
	instances := []*Engine{f.engine, f.newEngine()}
	var got []string
	for i := range 7 {
		d := f.route(instances[i%2], "rr", sb.RouteRequest{ConversationID: fmt.Sprintf("c%d", i)})
		got = append(got, agentIDs(d)...)
	}
	want := []string{us[0], us[1], us[2], us[0], us[1], us[2], us[0]}
	if !slices.Equal(got, want) {
		t.Errorf("turns = %v, want %v", got, want)
	}
	// A member who cannot take it is skipped; the turn passes on.
	f.presence.Set(us[1], sb.Offline, sb.ActivityOffline)
	d := f.route(f.engine, "rr", sb.RouteRequest{ConversationID: "c7", Reserve: true})
	if got, want := agentIDs(d), []string{us[2]}; !slices.Equal(got, want) {
		t.Errorf("with u2 offline: agents = %v, want %v", got, want)
	}
	d = f.route(f.newEngine(), "rr", sb.RouteRequest{ConversationID: "c8", Reserve: true})
	if got, want := agentIDs(d), []string{us[0]}; !slices.Equal(got, want) {
		t.Errorf("next turn (u3 held): agents = %v, want %v", got, want)
	}
}

// The web page polls "who can take a conversation now" every 5 s: a
// preview must not take the turn from the agent whose turn it is.
func TestRoutePreviewLeavesTheRoundRobinTurn(t *testing.T) {
	f := newFixture(t, nil)
	us := users(1, 3)
	f.service("rr", DistributionInput{Order: ptr(OrderRoundRobin)}, us...)
	f.available(us...)
	f.route(f.engine, "rr", sb.RouteRequest{ConversationID: "c0"}) // u1's turn taken
	for range 3 {
		d := f.route(f.engine, "rr", sb.RouteRequest{Preview: true})
		if got, want := agentIDs(d), []string{us[1]}; !slices.Equal(got, want) {
			t.Fatalf("preview: agents = %v, want %v (the next turn, shown, not taken)", got, want)
		}
	}
	d := f.route(f.newEngine(), "rr", sb.RouteRequest{ConversationID: "c1", Reserve: true})
	if got, want := agentIDs(d), []string{us[1]}; !slices.Equal(got, want) {
		t.Errorf("after previews: agents = %v, want %v", got, want)
	}
	if _, err := f.engine.Route(context.Background(), tenant, "rr", sb.RouteRequest{ConversationID: "c2", Reserve: true, Preview: true}); sb.ErrorField(err) != "preview" {
		t.Errorf("preview with reserve: err = %v, want field preview", err)
	}
}

func TestRouteBroadcast(t *testing.T) {
	f := newFixture(t, nil)
	us := users(1, 6)
	f.service("bc", DistributionInput{Order: ptr(OrderBroadcast), BroadcastSize: ptr(3)}, us...)
	f.service("warm", DistributionInput{}, us...)
	f.available(us...)
	// Give every agent an idle time through another service (idle time is
	// the agent's, whatever the service): u6 oldest, u1 newest.
	for i := 5; i >= 0; i-- {
		c := fmt.Sprintf("warm%d", i)
		f.route(f.engine, "warm", sb.RouteRequest{ConversationID: c, Reserve: true, PreferredUsers: []string{us[i]}})
		f.clock.Advance(time.Second)
		f.release(c)
	}
	d := f.route(f.engine, "bc", sb.RouteRequest{ConversationID: "c1", Reserve: true})
	if got, want := agentIDs(d), []string{us[5], us[4], us[3]}; !slices.Equal(got, want) {
		t.Fatalf("agents = %v, want %v (the 3 longest idle)", got, want)
	}
	for _, a := range d.Agents {
		if a.HoldExpiresAt.IsZero() {
			t.Errorf("%s: no hold expiry", a.UserID)
		}
	}
	d = f.route(f.engine, "bc", sb.RouteRequest{ConversationID: "c2", Reserve: true})
	if got, want := agentIDs(d), []string{us[2], us[1], us[0]}; !slices.Equal(got, want) {
		t.Errorf("second broadcast: agents = %v, want %v", got, want)
	}
	f.release("c1")
	d = f.route(f.engine, "bc", sb.RouteRequest{ConversationID: "c3", Reserve: true})
	if got := len(d.Agents); got != 3 {
		t.Errorf("after releasing c1: %d agents, want 3", got)
	}
	f.release("c3")
	// An outbound task needs one agent, even on a Broadcast service: the
	// others stay free and are ranked as candidates.
	d = f.route(f.engine, "bc", sb.RouteRequest{ConversationID: "task:1:1", Reserve: true, UntilReleased: true, MaxAgents: 1})
	if got := len(d.Agents); got != 1 {
		t.Fatalf("with MaxAgents 1: %d agents held, want 1", got)
	}
	if got := len(d.Candidates); got != 2 {
		t.Errorf("with MaxAgents 1: %d candidates, want the 2 others", got)
	}
	d = f.route(f.engine, "bc", sb.RouteRequest{ConversationID: "c4", Reserve: true})
	if got := len(d.Agents); got != 2 {
		t.Errorf("after a one-agent task: %d agents free for a broadcast, want 2", got)
	}
}

func TestRouteUntilReleased(t *testing.T) {
	f := newFixture(t, nil)
	f.service("out", DistributionInput{}, user(1))
	f.available(user(1))
	d := f.route(f.engine, "out", sb.RouteRequest{ConversationID: "task:1", Reserve: true, UntilReleased: true})
	if len(d.Agents) != 1 || !d.Agents[0].HoldExpiresAt.IsZero() {
		t.Fatalf("agents = %+v, want user 1 held without expiry", d.Agents)
	}
	f.clock.Advance(2 * time.Hour)
	d = f.route(f.engine, "out", sb.RouteRequest{ConversationID: "c2", Reserve: true})
	if len(d.Agents) != 0 || reasons(d)[user(1)] != sb.ReasonInConversation {
		t.Fatalf("two hours into the task: agents = %v, reasons %v; want none, InConversation", agentIDs(d), reasons(d))
	}
	if rep, err := f.engine.Housekeep(ctx); err != nil || rep.HoldsExpired != 0 {
		t.Fatalf("housekeeping: %+v, %v; want the task's hold kept", rep, err)
	}
	f.release("task:1")
	d = f.route(f.engine, "out", sb.RouteRequest{ConversationID: "c2", Reserve: true})
	if got, want := agentIDs(d), []string{user(1)}; !slices.Equal(got, want) {
		t.Errorf("after release: agents = %v, want %v", got, want)
	}
}

func TestReleaseIsIdempotent(t *testing.T) {
	f := newFixture(t, nil)
	f.service("support", DistributionInput{}, user(1))
	f.available(user(1))
	f.release("never-routed")
	f.route(f.engine, "support", sb.RouteRequest{ConversationID: "c1", Reserve: true})
	f.release("c1")
	f.release("c1")
	if err := f.engine.Release(ctx, tenant, "bad/id"); sb.ErrorCode(err) != sb.EINVALID {
		t.Errorf("release of a malformed id: %v, want invalid", err)
	}
}

// Release tells Options.Freed of the agents it let go (distribution gives
// them their next items), once per release that freed someone.
func TestReleaseTellsWhoItFreed(t *testing.T) {
	f := newFixture(t, nil)
	var freed [][]string
	e, err := New(ctx, Options{Tables: f.tables, Presence: f.presence, StaleAfter: staleAfter, Now: f.clock.Now,
		Freed: func(tenant string, users []string) { freed = append(freed, append([]string{tenant}, users...)) }})
	if err != nil {
		t.Fatal(err)
	}
	us := users(1, 3)
	f.service("support", DistributionInput{Order: ptr(sb.OrderBroadcast), BroadcastSize: ptr(2)}, us...)
	f.available(us...)
	d := f.route(e, "support", sb.RouteRequest{ConversationID: "c1", Reserve: true})
	held := agentIDs(d)
	slices.Sort(held)
	if len(held) != 2 {
		t.Fatalf("broadcast held %v, want 2 agents", held)
	}
	for _, conv := range []string{"c1", "c1", "never-routed"} {
		if err := e.Release(ctx, tenant, conv); err != nil {
			t.Fatal(err)
		}
	}
	if want := [][]string{append([]string{tenant}, held...)}; !slices.EqualFunc(freed, want, slices.Equal) {
		t.Errorf("Freed told %v, want %v once (nothing for a second release or an unknown conversation)", freed, want)
	}
}

// A reservation with a hold time tells Options.Expiring once, when it is
// stored, of its agents and its end (distribution schedules the end as a
// due time); nothing else does: a hold until released, a dry route, the
// same conversation asked again while held, an offer.
func TestReservationTellsWhenItExpires(t *testing.T) {
	f := newFixture(t, nil)
	type told struct {
		conv    string
		users   []string
		expires time.Time
	}
	var got []told
	e, err := New(ctx, Options{Tables: f.tables, Presence: f.presence, StaleAfter: staleAfter, Now: f.clock.Now,
		Expiring: func(tn, conv string, users []string, expires time.Time) {
			if tn != tenant {
				t.Errorf("Expiring for tenant %s", tn)
			}
			got = append(got, told{conv, slices.Clone(users), expires})
		}})
	if err != nil {
		t.Fatal(err)
	}
	us := users(1, 4)
	f.service("support", DistributionInput{Order: ptr(sb.OrderBroadcast), BroadcastSize: ptr(2), HoldSeconds: ptr(30)}, us...)
	f.available(us...)
	d := f.route(e, "support", sb.RouteRequest{ConversationID: "c1", Reserve: true})
	held := agentIDs(d)
	f.route(e, "support", sb.RouteRequest{ConversationID: "c1", Reserve: true}) // the same hold again
	f.route(e, "support", sb.RouteRequest{ConversationID: "c1"})
	f.route(e, "support", sb.RouteRequest{})
	f.route(e, "support", sb.RouteRequest{ConversationID: "c2", Reserve: true, UntilReleased: true, MaxAgents: 1})
	f.route(e, "support", sb.RouteRequest{ConversationID: "c3", Reserve: true, Offer: true, Hold: 20 * time.Second, MaxAgents: 1})
	if want := []told{{"c1", held, t0.Add(30 * time.Second)}}; !slices.EqualFunc(got, want, func(a, b told) bool {
		return a.conv == b.conv && slices.Equal(a.users, b.users) && a.expires.Equal(b.expires)
	}) {
		t.Errorf("Expiring told %+v, want %+v once", got, want)
	}
	f.clock.Advance(31 * time.Second)
	got = nil
	d = f.route(e, "support", sb.RouteRequest{ConversationID: "c1", Reserve: true, Hold: 10 * time.Second, MaxAgents: 1})
	if len(got) != 1 || !slices.Equal(got[0].users, agentIDs(d)) || !got[0].expires.Equal(t0.Add(41*time.Second)) {
		t.Errorf("the expired conversation held anew: Expiring told %+v, want its new agents until %v", got, t0.Add(41*time.Second))
	}
}

// After a hold expires unreleased, the agent's idle time counts from the
// expiry (an offer not taken is not a rest), whether housekeeping swept it
// or not.
func TestExpiredHoldStartsIdleTime(t *testing.T) {
	for _, sweep := range []bool{false, true} {
		t.Run(fmt.Sprintf("swept=%v", sweep), func(t *testing.T) {
			f := newFixture(t, nil)
			us := users(1, 2)
			f.service("support", DistributionInput{HoldSeconds: ptr(10)}, us...)
			f.available(us...)
			f.route(f.engine, "support", sb.RouteRequest{ConversationID: "c1", Reserve: true, PreferredUsers: []string{us[1]}})
			f.clock.Advance(time.Second)
			f.release("c1") // u2 idle since t0+1s
			f.route(f.engine, "support", sb.RouteRequest{ConversationID: "c2", Reserve: true, PreferredUsers: []string{us[0]}})
			f.clock.Advance(time.Minute) // u1's hold expired at t0+11s, unreleased
			if sweep {
				rep, err := f.engine.Housekeep(ctx)
				if err != nil || rep.HoldsExpired != 1 || rep.ConversationsExpired != 1 {
					t.Fatalf("housekeeping: %+v, %v; want 1 hold and 1 conversation expired", rep, err)
				}
			}
			d := f.route(f.engine, "support", sb.RouteRequest{ConversationID: "c3"})
			if got, want := agentIDs(d), []string{us[1]}; !slices.Equal(got, want) {
				t.Errorf("agents = %v, want %v (u2 idle since 1 s, u1 since its hold expired at 11 s)", got, want)
			}
		})
	}
}

func TestConcurrentReservationsMemory(t *testing.T) {
	testConcurrentReservations(t, store.NewMemoryTables())
}

// testConcurrentReservations: 50 concurrent reserving routes, spread over
// two instances, on a service of 20 eligible agents hold 20 distinct agents
// and find nobody for the other 30.
func testConcurrentReservations(t *testing.T, tables store.Tables) {
	f := newFixture(t, tables)
	us := users(1, 20)
	f.service("support", DistributionInput{}, us...)
	f.available(us...)
	instances := []*Engine{f.engine, f.newEngine()}
	var wg sync.WaitGroup
	decisions := make([]sb.RouteDecision, 50)
	errs := make([]error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			decisions[i], errs[i] = instances[i%2].Route(ctx, tenant, "support", sb.RouteRequest{ConversationID: fmt.Sprintf("c%02d", i), Reserve: true})
		}()
	}
	wg.Wait()
	held := map[string]string{}
	none := 0
	for i, d := range decisions {
		if errs[i] != nil {
			t.Fatalf("route %d: %v", i, errs[i])
		}
		switch len(d.Agents) {
		case 0:
			none++
		case 1:
			u := d.Agents[0].UserID
			if other, dup := held[u]; dup {
				t.Errorf("agent %s held by both %s and %s", u, other, d.ConversationID)
			}
			held[u] = d.ConversationID
		default:
			t.Errorf("route %d: %d agents", i, len(d.Agents))
		}
	}
	if len(held) != 20 || none != 30 {
		t.Errorf("%d agents held, %d routes without agent; want 20 and 30", len(held), none)
	}
}

func TestTrackedUsers(t *testing.T) {
	f := newFixture(t, nil)
	f.service("a", DistributionInput{}, user(3), user(1))
	f.service("b", DistributionInput{}, user(2), user(3))
	got, err := f.engine.TrackedUsers(ctx, tenant)
	if err != nil {
		t.Fatal(err)
	}
	if want := users(1, 3); !slices.Equal(got, want) {
		t.Errorf("tracked = %v, want %v", got, want)
	}
	tenants, err := f.engine.Tenants(ctx)
	if err != nil || !slices.Equal(tenants, []string{tenant}) {
		t.Errorf("tenants = %v, %v; want [%s]", tenants, err, tenant)
	}
}

package presence

import (
	"context"
	"slices"
	"testing"
	"time"

	"switchboard/handler/internal/fakes"
	"switchboard/handler/internal/testenv"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

func TestPollPacksCallsOf650(t *testing.T) {
	cases := []struct {
		name  string
		users int
		want  []int // ids per call
	}{
		{"one user", 1, []int{1}},
		{"exactly 650", 650, []int{650}},
		{"651 users", 651, []int{650, 1}},
		{"1,300 users over four shards", 1300, []int{650, 650}},
		{"3,000 users over eight shards", 3000, []int{650, 650, 650, 650, 400}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, store.NewMemoryTables(), true)
			ids := userIDs(tc.users)
			e.tracked.set(tenantA, ids)
			for _, id := range ids {
				e.graph.set(id, switchboard.Busy, switchboard.ActivityInAMeeting)
			}
			sum := e.poll(t)
			var got []int
			for _, c := range e.graph.callLog() {
				got = append(got, c.ids)
			}
			slices.Sort(got)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("ids per call %v, want %v", got, want)
			}
			if n := len(e.readings(t, ids)); n != tc.users {
				t.Errorf("%d readings, want %d", n, tc.users)
			}
			if fig := sum.Tenants[tenantA]; fig.Calls != len(tc.want) || fig.Users != tc.users {
				t.Errorf("figures %+v: want %d calls for %d users", fig, len(tc.want), tc.users)
			}
		})
	}
}

func TestPollWritesOnlyChanges(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		e := newEnv(t, tables, true)
		ids := userIDs(1000)
		e.tracked.set(tenantA, ids)
		for _, id := range ids {
			e.graph.set(id, switchboard.Available, switchboard.ActivityAvailable)
		}
		e.poll(t)
		if got := e.tables.Writes(presenceTableName); got != len(ids) {
			t.Fatalf("first poll: %d presence writes, want %d", got, len(ids))
		}
		first := e.readings(t, ids[:1])[ids[0]]

		e.tables.Reset()
		e.clock.Advance(30 * time.Second)
		sum := e.poll(t)
		if got := e.tables.Writes(presenceTableName); got != 0 {
			t.Errorf("unchanged poll: %d presence writes, want 0", got)
		}
		if fig := sum.Tenants[tenantA]; fig.Changed != 0 || fig.ShardsConfirmed != fig.Shards {
			t.Errorf("unchanged poll figures %+v", fig)
		}
		again := e.readings(t, ids[:1])[ids[0]]
		if !again.ChangedAt.Equal(first.ChangedAt) || !again.ConfirmedAt.Equal(e.clock.Now()) {
			t.Errorf("unchanged reading: changed %v confirmed %v; want changed %v (kept) and confirmed %v (this poll)", again.ChangedAt, again.ConfirmedAt, first.ChangedAt, e.clock.Now())
		}

		e.tables.Reset()
		e.clock.Advance(30 * time.Second)
		changed := []string{ids[3], ids[500], ids[999]}
		for _, id := range changed {
			e.graph.set(id, switchboard.Busy, switchboard.ActivityInACall)
		}
		e.poll(t)
		if got := e.tables.Writes(presenceTableName); got != len(changed) {
			t.Errorf("poll with %d changes: %d presence writes", len(changed), got)
		}
		for id, p := range e.readings(t, changed) {
			if p.Activity != switchboard.ActivityInACall || !p.ChangedAt.Equal(e.clock.Now()) {
				t.Errorf("%s: %+v, want InACall changed now", id, p)
			}
		}
	})
}

func TestPollSurvivesThrottling(t *testing.T) {
	cases := []struct {
		name          string
		throttle      int
		wantConfirmed bool
	}{
		{"a few 429s are waited out", 3, true},
		{"a 429 storm beyond the waits leaves the shard unconfirmed", 100, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, store.NewMemoryTables(), true, func(o *PollerOptions) { o.MaxThrottleWaits = 4; o.MaxCallsPerTenant = 1000 })
			ids := userIDs(10)
			e.tracked.set(tenantA, ids)
			for _, id := range ids {
				e.graph.set(id, switchboard.Away, switchboard.ActivityAway)
			}
			e.graph.throttle, e.graph.retryAfter = tc.throttle, 2*time.Second
			start := e.clock.Now()
			sum := e.poll(t)
			fig := sum.Tenants[tenantA]
			if got := fig.ShardsConfirmed == fig.Shards; got != tc.wantConfirmed {
				t.Fatalf("confirmed %v, want %v (figures %+v)", got, tc.wantConfirmed, fig)
			}
			if tc.wantConfirmed {
				if fig.Throttled != tc.throttle || fig.Calls != tc.throttle+1 {
					t.Errorf("figures %+v: want %d throttled and %d calls", fig, tc.throttle, tc.throttle+1)
				}
				if waited := e.clock.Now().Sub(start); waited < time.Duration(tc.throttle)*2*time.Second {
					t.Errorf("waited %v, want at least Retry-After x %d", waited, tc.throttle)
				}
			}
			snap, _ := e.store.Status(context.Background(), tenantA)
			if st := snap.Sources[switchboard.SourceAccount1]; !st.RetryAt.IsZero() {
				t.Errorf("throttling paused account 1 (%+v): it is not the account's fault", st)
			}
		})
	}
}

func TestPollFailingCallKeepsTheRest(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		e := newEnv(t, tables, true)
		ids := userIDs(1300)
		e.tracked.set(tenantA, ids)
		for _, id := range ids {
			e.graph.set(id, switchboard.Available, switchboard.ActivityAvailable)
		}
		bad := ids[7]
		e.graph.failIf = func(src switchboard.PresenceSource, call []string) error {
			if slices.Contains(call, bad) {
				return errGraphFailed
			}
			return nil
		}
		sum := e.poll(t)
		fig := sum.Tenants[tenantA]
		got := e.readings(t, ids)
		if len(got) != 650 {
			t.Errorf("%d readings, want the 650 of the call that worked", len(got))
		}
		if _, ok := got[bad]; ok {
			t.Errorf("a reading for %s, whose call failed on every source", bad)
		}
		if fig.ShardsConfirmed == 0 || fig.ShardsConfirmed == fig.Shards || fig.ShardsLeft == 0 {
			t.Errorf("figures %+v: want some shards confirmed and some left", fig)
		}
		// Each source got two tries at the failing call; none was dropped for it.
		snap, _ := e.store.Status(context.Background(), tenantA)
		if st := snap.Sources[switchboard.SourceAccount1]; !st.RetryAt.IsZero() {
			t.Errorf("a Graph error paused account 1: %+v", st)
		}
	})
}

func TestPollRemovesUsersNoLongerTracked(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		e := newEnv(t, tables, true)
		ids := userIDs(30)
		e.tracked.set(tenantA, ids)
		for _, id := range ids {
			e.graph.set(id, switchboard.Available, switchboard.ActivityAvailable)
		}
		e.poll(t)
		e.tracked.set(tenantA, ids[:20])
		e.clock.Advance(30 * time.Second)
		e.poll(t)
		got := e.readings(t, ids)
		if len(got) != 20 {
			t.Errorf("%d readings after 10 users left the services, want 20", len(got))
		}
		for _, id := range ids[20:] {
			if _, ok := got[id]; ok {
				t.Errorf("%s is no longer tracked but still has a reading (which the shard's confirmation would keep fresh)", id)
			}
		}
	})
}

func TestPollUnreportedUserIsUnknown(t *testing.T) {
	e := newEnv(t, store.NewMemoryTables(), true)
	ids := userIDs(3)
	e.tracked.set(tenantA, ids)
	e.graph.set(ids[0], switchboard.Available, switchboard.ActivityAvailable)
	e.poll(t)
	got := e.readings(t, ids)
	if p := got[ids[1]]; p.Availability != switchboard.PresenceUnknown {
		t.Errorf("a user Graph did not report reads %+v, want PresenceUnknown", p)
	}
}

func TestReadingsGoStaleWhenPollsFail(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		e := newEnv(t, tables, true)
		ids := userIDs(5)
		e.tracked.set(tenantA, ids)
		for _, id := range ids {
			e.graph.set(id, switchboard.Available, switchboard.ActivityAvailable)
		}
		e.poll(t)
		polled := e.clock.Now()
		e.graph.fail = map[switchboard.PresenceSource]*switchboard.SourceError{switchboard.SourceAccount1: errGraphFailed, switchboard.SourceAccount2: errGraphFailed, switchboard.SourceApplication: errGraphFailed}
		for i := 0; i < 5; i++ {
			e.clock.Advance(30 * time.Second)
			e.poll(t)
		}
		now := e.clock.Now()
		for id, p := range e.readings(t, ids) {
			if !p.ConfirmedAt.Equal(polled) {
				t.Errorf("%s confirmed at %v, want %v (the last poll that read it)", id, p.ConfirmedAt, polled)
			}
			if !p.Stale(now, 120*time.Second) {
				t.Errorf("%s is %v old and not stale", id, p.Age(now))
			}
		}
	})
}

func TestRelayoutAsTheTenantGrows(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		e := newEnv(t, tables, true)
		ids := userIDs(2000)
		for _, id := range ids {
			e.graph.set(id, switchboard.Available, switchboard.ActivityAvailable)
		}
		e.tracked.set(tenantA, ids[:10])
		e.poll(t)
		e.tracked.set(tenantA, ids)
		e.clock.Advance(30 * time.Second)
		e.poll(t)
		snap, err := e.store.Status(context.Background(), tenantA)
		if err != nil {
			t.Fatal(err)
		}
		if want := shardsFor(2000, 400); snap.Shards != want {
			t.Fatalf("%d shards after growing to 2,000 users, want %d", snap.Shards, want)
		}
		got := e.readings(t, ids)
		if len(got) != len(ids) {
			t.Errorf("%d readings after the relayout, want %d", len(got), len(ids))
		}
		// The first layout's partition is gone.
		old, _ := tables.Table(context.Background(), presenceTableName)
		page, err := old.Query(context.Background(), store.Query{PartitionKey: partitionKey(tenantA, 1, 0)})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Entities) != 0 {
			t.Errorf("%d rows left in the retired layout's partition", len(page.Entities))
		}
		// Another process sees the new layout too.
		other, err := NewStore(context.Background(), StoreOptions{Tables: tables, Now: e.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		m, err := other.Readings(context.Background(), tenantA, ids)
		if err != nil {
			t.Fatal(err)
		}
		if len(m) != len(ids) {
			t.Errorf("another process reads %d readings, want %d", len(m), len(ids))
		}
	})
}

func TestStoreFollowsAnotherWriter(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		e := newEnv(t, tables, true)
		ids := userIDs(100)
		e.tracked.set(tenantA, ids)
		for _, id := range ids {
			e.graph.set(id, switchboard.Available, switchboard.ActivityAvailable)
		}
		e.poll(t)

		reader, err := NewStore(context.Background(), StoreOptions{Tables: tables, Now: e.clock.Now, RefreshEvery: time.Second, MaxLag: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if p := mustReadings(t, reader, ids[:1])[ids[0]]; p.Availability != switchboard.Available {
			t.Fatalf("reader sees %+v", p)
		}
		e.graph.set(ids[0], switchboard.DoNotDisturb, switchboard.ActivityPresenting)
		e.clock.Advance(30 * time.Second)
		e.poll(t)
		// Past MaxLag the reader refreshes before it answers.
		if p := mustReadings(t, reader, ids[:1])[ids[0]]; p.Availability != switchboard.DoNotDisturb || !p.ConfirmedAt.Equal(e.clock.Now()) {
			t.Errorf("reader sees %+v after the change, want DoNotDisturb confirmed %v", p, e.clock.Now())
		}
		// An unchanged poll moves the confirmation without a reload.
		e.clock.Advance(30 * time.Second)
		e.poll(t)
		if p := mustReadings(t, reader, ids[1:2])[ids[1]]; !p.ConfirmedAt.Equal(e.clock.Now()) {
			t.Errorf("reader's confirmation %v, want %v", p.ConfirmedAt, e.clock.Now())
		}
	})
}

func mustReadings(t *testing.T, s *Store, ids []string) map[string]switchboard.Presence {
	t.Helper()
	m, err := s.Readings(context.Background(), tenantA, ids)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// brokenState fails every read of the state table once broken is set.
type brokenState struct {
	store.Tables
	broken *bool
}

func (b brokenState) Table(ctx context.Context, name string) (store.Table, error) {
	t, err := b.Tables.Table(ctx, name)
	if err != nil || name != stateTableName {
		return t, err
	}
	return brokenTable{t, b.broken}, nil
}

type brokenTable struct {
	store.Table
	broken *bool
}

func (t brokenTable) Query(ctx context.Context, q store.Query) (store.Page, error) {
	if *t.broken {
		return store.Page{}, switchboard.Errorf(switchboard.EUNAVAILABLE, "test", "storage is down")
	}
	return t.Table.Query(ctx, q)
}

func TestPollHonoursRetryAfterBeyondThePoll(t *testing.T) {
	const retryAfter = 60 * time.Second
	cases := []struct {
		name  string
		queue bool
	}{
		{"the next poll waits out a Retry-After longer than the poll", false},
		{"shards a Retry-After leaves over are fanned out no earlier than it", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var opts []envOption
			if tc.queue {
				opts = append(opts, func(o *PollerOptions) { o.Queue, o.QueueName = fakes.NewQueue(o.Now), "presence-poll" })
			}
			e := newEnv(t, store.NewMemoryTables(), true, opts...)
			ids := userIDs(10)
			e.tracked.set(tenantA, ids)
			for _, id := range ids {
				e.graph.set(id, switchboard.Available, switchboard.ActivityAvailable)
			}
			e.graph.throttle, e.graph.retryAfter = 1, retryAfter
			throttledAt := e.clock.Now()
			fig := e.poll(t).Tenants[tenantA]
			if fig.ShardsConfirmed != 0 {
				t.Fatalf("confirmed %d shards through a 429 with Retry-After %v, want 0", fig.ShardsConfirmed, retryAfter)
			}
			allowed := throttledAt.Add(retryAfter)
			if tc.queue {
				for _, m := range e.queue.Messages() {
					if got := m.Msg.ScheduledAt; got.Before(allowed) {
						t.Errorf("fan-out message scheduled at %v, want not before %v (Retry-After)", got, allowed)
					}
				}
				return
			}
			e.graph.resetCalls()
			e.clock.Set(throttledAt.Add(30 * time.Second))
			e.poll(t)
			if got, want := len(e.graph.callLog()), 0; got != want {
				t.Errorf("Graph calls %v after a %v Retry-After: %d, want %d", 30*time.Second, retryAfter, got, want)
			}
			e.clock.Set(allowed.Add(time.Second))
			fig = e.poll(t).Tenants[tenantA]
			if got, want := fig.ShardsConfirmed, fig.Shards; got != want || want == 0 {
				t.Errorf("after the Retry-After: %d shards confirmed, want %d", got, want)
			}
		})
	}
}

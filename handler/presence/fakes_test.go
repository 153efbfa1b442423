package presence

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"switchboard/handler/internal/fakeclock"
	"sync"
	"testing"
	"time"

	"switchboard/handler/internal/fakes"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

const tenantA = "11111111-1111-1111-1111-111111111111"

type clock = fakeclock.Clock

func newClock() *clock { return fakeclock.New(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)) }

// fakeGraph is an in-memory Graph.
type fakeGraph struct {
	mu       sync.Mutex
	presence map[string]switchboard.PresenceReading
	users    map[string]switchboard.DirectoryUser // by UPN
	// fail makes every call through a source fail.
	fail map[switchboard.PresenceSource]*switchboard.SourceError
	// failIf fails a call when it returns non-nil (after fail).
	failIf func(src switchboard.PresenceSource, ids []string) error
	// throttle answers the first n calls with 429.
	throttle   int
	retryAfter time.Duration
	// latency advances the clock per call.
	clock   *clock
	latency time.Duration
	calls   []fakeCall
}

type fakeCall struct {
	src switchboard.PresenceSource
	ids int
	set []string
}

func newFakeGraph() *fakeGraph {
	return &fakeGraph{presence: map[string]switchboard.PresenceReading{}, users: map[string]switchboard.DirectoryUser{}, fail: map[switchboard.PresenceSource]*switchboard.SourceError{}}
}

func (g *fakeGraph) set(id, availability, activity string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.presence[id] = switchboard.PresenceReading{UserID: id, Availability: availability, Activity: activity}
}

func (g *fakeGraph) Presences(ctx context.Context, tenant string, src switchboard.PresenceSource, ids []string) ([]switchboard.PresenceReading, error) {
	g.mu.Lock()
	g.calls = append(g.calls, fakeCall{src, len(ids), slices.Clone(ids)})
	if g.clock != nil && g.latency > 0 {
		g.clock.Advance(g.latency)
	}
	if len(ids) > switchboard.MaxPresenceIDsPerCall {
		g.mu.Unlock()
		return nil, &switchboard.SourceError{Source: src, Reason: switchboard.SourceGraphError, Message: "too many ids", Status: 400}
	}
	if g.throttle > 0 {
		g.throttle--
		g.mu.Unlock()
		return nil, &switchboard.SourceError{Source: src, Reason: switchboard.SourceThrottled, Message: "throttled", Status: 429, RetryAfter: g.retryAfter}
	}
	if e := g.fail[src]; e != nil {
		g.mu.Unlock()
		return nil, e
	}
	failIf := g.failIf
	var out []switchboard.PresenceReading
	for _, id := range ids {
		if r, ok := g.presence[id]; ok {
			out = append(out, r)
		}
	}
	g.mu.Unlock()
	if failIf != nil {
		if err := failIf(src, ids); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (g *fakeGraph) User(ctx context.Context, tenant string, src switchboard.PresenceSource, upn string) (switchboard.DirectoryUser, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if e := g.fail[src]; e != nil {
		return switchboard.DirectoryUser{}, e
	}
	u, ok := g.users[upn]
	if !ok {
		return switchboard.DirectoryUser{}, &switchboard.SourceError{Source: src, Reason: switchboard.SourceUserNotFound, Message: "no such user", Status: 404}
	}
	return u, nil
}

func (g *fakeGraph) callLog() []fakeCall {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.calls)
}

func (g *fakeGraph) resetCalls() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls = nil
}

// fakeTracked is an in-memory TrackedUsers.
type fakeTracked struct {
	mu    sync.Mutex
	users map[string][]string
}

func (f *fakeTracked) Tenants(ctx context.Context) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for t := range f.users {
		out = append(out, t)
	}
	sort.Strings(out)
	return out, nil
}

func (f *fakeTracked) TrackedUsers(ctx context.Context, tenant string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.users[tenant]), nil
}

func (f *fakeTracked) set(tenant string, users []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.users == nil {
		f.users = map[string][]string{}
	}
	f.users[tenant] = users
}

type fakeSettings struct{ guest bool }

func (f fakeSettings) TrackOverGuestAccounts(ctx context.Context, tenant string) (bool, error) {
	return f.guest, nil
}

// countingTables counts the entity operations written per table.
type countingTables struct {
	store.Tables
	mu     sync.Mutex
	writes map[string]int
	reads  map[string]int
}

func newCountingTables(t store.Tables) *countingTables {
	return &countingTables{Tables: t, writes: map[string]int{}, reads: map[string]int{}}
}

func (c *countingTables) Table(ctx context.Context, name string) (store.Table, error) {
	t, err := c.Tables.Table(ctx, name)
	if err != nil {
		return nil, err
	}
	return &countingTable{Table: t, name: name, c: c}, nil
}

func (c *countingTables) add(m map[string]int, name string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m[name] += n
}

func (c *countingTables) Writes(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes[name]
}

func (c *countingTables) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes, c.reads = map[string]int{}, map[string]int{}
}

type countingTable struct {
	store.Table
	name string
	c    *countingTables
}

func (t *countingTable) Upsert(ctx context.Context, e store.Entity) (string, error) {
	t.c.add(t.c.writes, t.name, 1)
	return t.Table.Upsert(ctx, e)
}

func (t *countingTable) Update(ctx context.Context, e store.Entity, ifMatch string) (string, error) {
	t.c.add(t.c.writes, t.name, 1)
	return t.Table.Update(ctx, e, ifMatch)
}

func (t *countingTable) Insert(ctx context.Context, e store.Entity) (string, error) {
	t.c.add(t.c.writes, t.name, 1)
	return t.Table.Insert(ctx, e)
}

func (t *countingTable) Delete(ctx context.Context, pk, rk, ifMatch string) error {
	t.c.add(t.c.writes, t.name, 1)
	return t.Table.Delete(ctx, pk, rk, ifMatch)
}

func (t *countingTable) Batch(ctx context.Context, ops []store.Op) error {
	t.c.add(t.c.writes, t.name, len(ops))
	return t.Table.Batch(ctx, ops)
}

func (t *countingTable) Query(ctx context.Context, q store.Query) (store.Page, error) {
	t.c.add(t.c.reads, t.name, 1)
	return t.Table.Query(ctx, q)
}

// userIDs returns n user ids that look like Entra object ids.
func userIDs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
	}
	return out
}

// env is a poller over memory tables and fakes.
type env struct {
	clock   *clock
	graph   *fakeGraph
	tracked *fakeTracked
	tables  *countingTables
	store   *Store
	poller  *Poller
	queue   *fakes.Queue
}

type envOption func(*PollerOptions)

func newEnv(t testing.TB, tables store.Tables, guest bool, opts ...envOption) *env {
	t.Helper()
	e := &env{clock: newClock(), graph: newFakeGraph(), tracked: &fakeTracked{}, tables: newCountingTables(tables)}
	e.graph.clock = e.clock
	var err error
	e.store, err = NewStore(context.Background(), StoreOptions{Tables: e.tables, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	o := PollerOptions{
		Store: e.store, Graph: e.graph, Tracked: e.tracked, Settings: fakeSettings{guest: guest},
		Account1UPN: "presence1@switchboard.example", Account2UPN: "presence2@switchboard.example", ApplicationConfigured: true,
		Now: e.clock.Now, Sleep: e.clock.Sleep,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.Queue != nil {
		e.queue, _ = o.Queue.(*fakes.Queue)
	}
	e.poller, err = NewPoller(o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) poll(t testing.TB) Summary {
	t.Helper()
	sum, err := e.poller.Poll(context.Background(), e.clock.Now().Add(25*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func (e *env) readings(t *testing.T, ids []string) map[string]switchboard.Presence {
	t.Helper()
	m, err := e.store.Readings(context.Background(), tenantA, ids)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sourcesOf(calls []fakeCall) string {
	var parts []string
	for _, c := range calls {
		parts = append(parts, string(c.src))
	}
	return strings.Join(parts, ",")
}

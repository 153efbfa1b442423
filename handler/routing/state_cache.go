package routing

import (
	"context"
	"log/slog"
	"maps"
	"sync"
	"time"

	"switchboard/handler/switchboard"
)

// stateCache keeps each tenant's agent state (holds and idle ledger) in
// process, so that a route reads no agent rows: reading the hold and ledger
// rows of a 1,000-agent tenant from Azurite takes longer than the whole
// latency budget of a route.
//
// It follows storage: this process's own writes go through it at once, and
// what other instances wrote is read again in the background once the
// cache is refreshEvery old (a route waits for a load only when the cache
// is older than maxLag, or was never loaded). Storage stays the authority
// for reservations: a hold is taken with an ETag-guarded write, so a cache
// that missed another instance's hold only costs a lost race (the route
// moves on to the next candidate, and the agent is read again). What the
// lag can cost is bounded by refreshEvery: an agent another instance
// released is offered here that much later, and idle times from other
// instances rank that much later.
type stateCache struct {
	store        *stateStore
	refreshEvery time.Duration // < 0: no cache, every read loads
	maxLag       time.Duration
	clock        func() time.Time // monotonic time of the process
	log          *slog.Logger

	mu      sync.Mutex
	tenants map[string]*tenantState
}

type tenantState struct {
	load sync.Mutex // one load at a time

	mu         sync.Mutex
	loaded     bool
	loadedAt   time.Time // when the load that filled it started
	refreshing bool
	holds      map[string]hold
	idle       map[string]time.Time
	// journal collects this process's writes while a load is under way,
	// to replay them over what the load read (which may predate them).
	journaling bool
	journal    []func(*tenantState)
}

func newStateCache(s *stateStore, refreshEvery, maxLag time.Duration, log *slog.Logger) *stateCache {
	if refreshEvery == 0 {
		refreshEvery = time.Second
	}
	if maxLag < refreshEvery {
		maxLag = max(10*time.Second, refreshEvery)
	}
	return &stateCache{store: s, refreshEvery: refreshEvery, maxLag: maxLag, clock: time.Now, log: log, tenants: map[string]*tenantState{}}
}

func (c *stateCache) tenant(id string) *tenantState {
	c.mu.Lock()
	defer c.mu.Unlock()
	ts, ok := c.tenants[id]
	if !ok {
		ts = &tenantState{}
		c.tenants[id] = ts
	}
	return ts
}

// read returns the states of the tenant's agents with hold rows at now, a
// copy of those rows (for their ETags) and the idle ledger, loading or
// refreshing as the cache's age says. The ledger is shared: it is replaced,
// never modified, by writers (copy on write), so do not modify it.
func (c *stateCache) read(ctx context.Context, tenant string, now time.Time) (map[string]AgentState, map[string]hold, map[string]time.Time, error) {
	ts := c.tenant(tenant)
	ts.mu.Lock()
	age := c.clock().Sub(ts.loadedAt)
	if !ts.loaded || c.refreshEvery < 0 || age > c.maxLag {
		ts.mu.Unlock()
		if err := c.load(ctx, tenant, ts); err != nil {
			return nil, nil, nil, err
		}
		ts.mu.Lock()
	} else if age > c.refreshEvery && !ts.refreshing {
		ts.refreshing = true
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := c.load(ctx, tenant, ts); err != nil {
				c.log.Warn("agent state refresh failed; serving the cached state", "tenant", tenant, "err", err)
			}
		}()
	}
	defer ts.mu.Unlock()
	return holdStates(ts.holds, now), maps.Clone(ts.holds), ts.idle, nil
}

// load reads the tenant's state from storage, unless another load
// finished meanwhile (while this one waited for the lock).
func (c *stateCache) load(ctx context.Context, tenant string, ts *tenantState) error {
	ts.load.Lock()
	defer ts.load.Unlock()
	defer func() {
		ts.mu.Lock()
		ts.refreshing = false
		ts.mu.Unlock()
	}()
	start := c.clock()
	ts.mu.Lock()
	if ts.loaded && c.refreshEvery >= 0 && start.Sub(ts.loadedAt) <= c.refreshEvery {
		ts.mu.Unlock()
		return nil
	}
	ts.journaling, ts.journal = true, nil
	ts.mu.Unlock()

	snap, err := c.store.snapshot(ctx, tenant)

	ts.mu.Lock()
	defer ts.mu.Unlock()
	journal := ts.journal
	ts.journaling, ts.journal = false, nil
	if err != nil {
		return err
	}
	ts.holds, ts.idle = snap.holds, snap.idle
	for _, apply := range journal {
		apply(ts)
	}
	ts.loaded, ts.loadedAt = true, start
	return nil
}

// update applies one of this process's writes to the cached state, and
// journals it when a load is under way.
func (c *stateCache) update(tenant string, apply func(*tenantState)) {
	ts := c.tenant(tenant)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.holds == nil {
		ts.holds, ts.idle = map[string]hold{}, map[string]time.Time{}
	}
	apply(ts)
	if ts.journaling {
		ts.journal = append(ts.journal, apply)
	}
}

// held records a hold this process took.
func (c *stateCache) held(tenant string, h hold) {
	c.update(tenant, func(ts *tenantState) { ts.holds[h.UserID] = h })
}

// dropped records that this process deleted the hold row with etag.
func (c *stateCache) dropped(tenant, user, etag string) {
	c.update(tenant, func(ts *tenantState) {
		if cur, ok := ts.holds[user]; ok && cur.ETag == etag {
			delete(ts.holds, user)
		}
	})
}

// idled records ledger entries this process wrote.
func (c *stateCache) idled(tenant string, ends map[string]time.Time) {
	if len(ends) == 0 {
		return
	}
	c.update(tenant, func(ts *tenantState) {
		idle := maps.Clone(ts.idle) // readers may hold the current map
		for u, t := range ends {
			t = t.UTC().Truncate(time.Millisecond)
			if t.After(idle[u]) {
				idle[u] = t
			}
		}
		ts.idle = idle
	})
}

// reread reads one agent's hold row again after this process lost a race
// for it, so that later routes here see who holds it. It runs in the
// background: the route that lost has moved on.
func (c *stateCache) reread(tenant, user string) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		h, err := c.store.getHold(ctx, tenant, user)
		switch {
		case err == nil:
			c.update(tenant, func(ts *tenantState) { ts.holds[user] = h })
		case switchboard.IsCode(err, switchboard.ENOTFOUND):
			c.update(tenant, func(ts *tenantState) { delete(ts.holds, user) })
		default:
			c.log.Warn("agent hold not re-read after a lost race", "tenant", tenant, "user", user, "err", err)
		}
	}()
}

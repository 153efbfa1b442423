package routing

import (
	"context"
	"log/slog"
	"maps"
	"time"

	"switchboard/handler/internal/follow"
	"switchboard/handler/switchboard"
)

// stateCache keeps each tenant's agent state (holds and idle ledger) in
// process, so that a route reads no agent rows: reading the hold and ledger
// rows of a 1,000-agent tenant from Azurite takes longer than the whole
// latency budget of a route.
//
// It follows storage (follow.Cache): this process's own writes go through
// it at once, and what other instances wrote is read again in the
// background once the cache is RefreshEvery old (a route waits for a load
// only when the cache is older than MaxLag, or was never loaded). Storage
// stays the authority for reservations: a hold is taken with an
// ETag-guarded write, so a cache that missed another instance's hold only
// costs a lost race (the route moves on to the next candidate, and the
// agent is read again). What the lag can cost is bounded by RefreshEvery:
// an agent another instance released is offered here that much later, and
// idle times from other instances rank that much later.
//
// A snapshot in the cache is never modified: writes replace its maps
// (copy on write), so a reader may keep what it got.
type stateCache struct {
	*follow.Cache[string, snapshot] // key: tenant
	store                           *stateStore
	log                             *slog.Logger
}

func newStateCache(s *stateStore, refreshEvery, maxLag time.Duration, log *slog.Logger) *stateCache {
	if refreshEvery == 0 {
		refreshEvery = time.Second
	}
	if maxLag < refreshEvery {
		maxLag = max(10*time.Second, refreshEvery)
	}
	c := &stateCache{store: s, log: log}
	c.Cache = follow.New(follow.Options[string, snapshot]{
		Load: func(ctx context.Context, tenant string, _ snapshot) (snapshot, error) {
			return s.snapshot(ctx, tenant)
		},
		RefreshEvery: refreshEvery, MaxLag: maxLag, RefreshTimeout: 30 * time.Second,
		RefreshFailed: func(tenant string, err error) {
			log.Warn("agent state refresh failed; serving the cached state", "tenant", tenant, "err", err)
		},
	})
	return c
}

// read returns the states of the tenant's agents with hold rows at now, a
// copy of those rows (for their ETags) and the idle ledger, loading or
// refreshing as the cache's age says. The ledger is shared: do not modify
// it.
func (c *stateCache) read(ctx context.Context, tenant string, now time.Time) (map[string]AgentState, map[string]hold, map[string]time.Time, error) {
	snap, err := c.Get(ctx, tenant)
	if err != nil {
		return nil, nil, nil, err
	}
	return holdStates(snap.holds, now), maps.Clone(snap.holds), snap.idle, nil
}

// update applies one of this process's writes to the cached state (and
// over a load under way). change gets maps it may modify: copies.
func (c *stateCache) update(tenant string, change func(holds map[string]hold, idle map[string]time.Time) (map[string]hold, map[string]time.Time)) {
	c.Update(tenant, func(s snapshot) snapshot {
		holds, idle := change(s.holds, s.idle)
		return snapshot{holds: holds, idle: idle}
	})
}

// withHolds returns a copy of holds changed by fn.
func withHolds(holds map[string]hold, fn func(map[string]hold)) map[string]hold {
	out := make(map[string]hold, len(holds)+1)
	maps.Copy(out, holds)
	fn(out)
	return out
}

// held records a hold this process took.
func (c *stateCache) held(tenant string, h hold) {
	c.update(tenant, func(holds map[string]hold, idle map[string]time.Time) (map[string]hold, map[string]time.Time) {
		return withHolds(holds, func(m map[string]hold) { m[h.UserID] = h }), idle
	})
}

// dropped records that this process deleted the hold row with etag. It
// reports false when the copy held another version of the row (left as
// it is: it may be newer than the deletion).
func (c *stateCache) dropped(tenant, user, etag string) bool {
	known := true
	c.update(tenant, func(holds map[string]hold, idle map[string]time.Time) (map[string]hold, map[string]time.Time) {
		cur, ok := holds[user]
		if !ok {
			return holds, idle
		}
		if cur.ETag != etag {
			known = false
			return holds, idle
		}
		return withHolds(holds, func(m map[string]hold) { delete(m, user) }), idle
	})
	return known
}

// idled records ledger entries this process wrote.
func (c *stateCache) idled(tenant string, ends map[string]time.Time) {
	if len(ends) == 0 {
		return
	}
	c.update(tenant, func(holds map[string]hold, idle map[string]time.Time) (map[string]hold, map[string]time.Time) {
		next := make(map[string]time.Time, len(idle)+len(ends))
		maps.Copy(next, idle)
		for u, t := range ends {
			t = t.UTC().Truncate(time.Millisecond)
			if t.After(next[u]) {
				next[u] = t
			}
		}
		return holds, next
	})
}

// stored records one agent's rows as just read from storage: its hold row
// (none when !found) and its ledger entry (zero: none).
func (c *stateCache) stored(tenant, user string, h hold, found bool, idle time.Time) {
	c.update(tenant, func(holds map[string]hold, cur map[string]time.Time) (map[string]hold, map[string]time.Time) {
		holds = withHolds(holds, func(m map[string]hold) {
			if found {
				m[user] = h
			} else {
				delete(m, user)
			}
		})
		return holds, cur
	})
	if !idle.IsZero() {
		c.idled(tenant, map[string]time.Time{user: idle})
	}
}

// reread reads one agent's hold row again after this process lost a race
// for it, so that later routes here see who holds it. It runs in the
// background: the route that lost has moved on.
func (c *stateCache) reread(tenant, user string) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c.rereadNow(ctx, tenant, user)
	}()
}

// rereadNow reads one agent's hold row again and records it.
func (c *stateCache) rereadNow(ctx context.Context, tenant, user string) {
	h, err := c.store.getHold(ctx, tenant, user)
	switch {
	case err == nil:
		c.held(tenant, h)
	case switchboard.IsCode(err, switchboard.ENOTFOUND):
		c.update(tenant, func(holds map[string]hold, idle map[string]time.Time) (map[string]hold, map[string]time.Time) {
			return withHolds(holds, func(m map[string]hold) { delete(m, user) }), idle
		})
	default:
		c.log.Warn("agent hold not re-read", "tenant", tenant, "user", user, "err", err)
	}
}

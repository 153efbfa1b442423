package presence

import (
	"context"
	"fmt"
	"time"

	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// subscriptions returns the tenant's subscription rows as last synced
// (syncFirst reads the state partition before answering).
func (s *Store) subscriptions(ctx context.Context, tenant string, syncFirst bool) (map[switchboard.PresenceSource]subState, error) {
	tc := s.cache(tenant)
	if syncFirst {
		tc.load.Lock()
		err := s.syncState(ctx, tenant, tc)
		tc.load.Unlock()
		if err != nil {
			return nil, err
		}
	}
	tc.mu.RLock()
	defer tc.mu.RUnlock()
	out := make(map[switchboard.PresenceSource]subState, len(tc.cov.subs))
	for k, v := range tc.cov.subs {
		out[k] = v
	}
	return out, nil
}

// saveSubscription writes a subscription row whole.
func (s *Store) saveSubscription(ctx context.Context, tenant string, sub subState) error {
	e := sub.entity(tenant)
	e.ETag = ""
	etag, err := s.state.Upsert(ctx, e)
	if err != nil {
		return err
	}
	sub.ETag = etag
	s.putSubscription(tenant, sub)
	return nil
}

// mergeSubscription changes some properties of a subscription row (so
// that a notification and housekeeping do not overwrite each other's
// fields), and applies apply to the cached row.
func (s *Store) mergeSubscription(ctx context.Context, tenant string, src switchboard.PresenceSource, props map[string]any, apply func(*subState)) error {
	if _, err := store.WriteBatched(ctx, s.state, []store.Op{mergeOp(tenant, subRowKey(src), props)}); err != nil {
		return err
	}
	tc := s.cache(tenant)
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if sub, ok := tc.cov.subs[src]; ok {
		apply(&sub)
		subs := make(map[switchboard.PresenceSource]subState, len(tc.cov.subs))
		for k, v := range tc.cov.subs {
			subs[k] = v
		}
		subs[src] = sub
		tc.cov = newCoverage(subs)
	}
	return nil
}

// deleteSubscription removes a subscription row.
func (s *Store) deleteSubscription(ctx context.Context, tenant string, src switchboard.PresenceSource) error {
	err := s.state.Delete(ctx, tenant, subRowKey(src), "*")
	if err != nil && !switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return err
	}
	tc := s.cache(tenant)
	tc.mu.Lock()
	defer tc.mu.Unlock()
	subs := map[switchboard.PresenceSource]subState{}
	for k, v := range tc.cov.subs {
		if k != src {
			subs[k] = v
		}
	}
	tc.cov = newCoverage(subs)
	return nil
}

func (s *Store) putSubscription(tenant string, sub subState) {
	tc := s.cache(tenant)
	tc.mu.Lock()
	defer tc.mu.Unlock()
	subs := map[switchboard.PresenceSource]subState{}
	for k, v := range tc.cov.subs {
		subs[k] = v
	}
	subs[sub.Source] = sub
	tc.cov = newCoverage(subs)
}

// NotifiedReading is a reading Graph pushed, with the time it arrived.
type NotifiedReading struct {
	switchboard.PresenceReading
	Source switchboard.PresenceSource `json:"source"`
	At     time.Time                  `json:"at"`
}

// writeNotified writes changed readings of one tenant at once, in every
// generation readers or a relayout use, so routing sees them at once. A
// reading older than the stored one (a queued notification arriving after
// a newer one or a poll) is dropped. Returns how many were written.
func (s *Store) writeNotified(ctx context.Context, tenant string, readings []NotifiedReading) (int, error) {
	tc := s.cache(tenant)
	tc.load.Lock()
	err := s.syncState(ctx, tenant, tc)
	var gens []int64
	if err == nil {
		tc.mu.RLock()
		lay := tc.lay
		tc.mu.RUnlock()
		for _, gen := range []int64{lay.Gen, lay.NextGen} {
			n := lay.shardsOf(gen)
			if gen == 0 || n == 0 {
				continue
			}
			var shards []int
			for _, r := range readings {
				shards = append(shards, shardOf(r.UserID, n))
			}
			if err = s.loadShards(ctx, tenant, tc, gen, shards); err != nil {
				break
			}
			gens = append(gens, gen)
		}
	}
	tc.load.Unlock()
	if err != nil {
		return 0, err
	}
	if len(gens) == 0 {
		return 0, nil // never polled: the first poll reads everyone
	}
	written := 0
	for _, gen := range gens {
		tc.mu.RLock()
		g := tc.gens[gen]
		byShard := map[int]*shardWrite{}
		for _, r := range readings {
			sh := shardOf(r.UserID, len(g.shards))
			if old, ok := g.shards[sh].readings[r.UserID]; ok && old.ChangedAt.After(r.At) {
				continue
			}
			w := byShard[sh]
			if w == nil {
				w = &shardWrite{shard: sh, readings: map[string]sourcedReading{}}
				byShard[sh] = w
			}
			w.readings[r.UserID] = sourcedReading{PresenceReading: r.PresenceReading, Source: r.Source, At: r.At}
		}
		tc.mu.RUnlock()
		var writes []shardWrite
		for _, w := range byShard {
			writes = append(writes, *w)
		}
		if len(writes) == 0 {
			continue
		}
		stats, err := s.commit(ctx, tenant, gen, writes)
		if err != nil {
			return written, err
		}
		if stats.Failed > 0 {
			return written, fmt.Errorf("presence: %d shard writes failed", stats.Failed)
		}
		if gen == gens[0] {
			written += stats.Changed
		}
	}
	return written, nil
}

// trustedUsers returns the users a trusted subscription vouches for at
// now, as last synced (prepare syncs the state first).
func (s *Store) trustedUsers(tenant string, now time.Time) map[string]bool {
	tc := s.cache(tenant)
	tc.mu.RLock()
	defer tc.mu.RUnlock()
	return tc.cov.trustedUsers(now)
}

// cachedSubscription returns the subscription id names if this process
// knows the tenant and the subscription, without creating anything (the
// notification endpoint is public: unknown tenants must cost nothing).
func (s *Store) cachedSubscription(tenant, id string) (subState, bool) {
	s.mu.Lock()
	tc, ok := s.tenants[tenant]
	s.mu.Unlock()
	if !ok || id == "" {
		return subState{}, false
	}
	tc.mu.RLock()
	defer tc.mu.RUnlock()
	for _, sub := range tc.cov.subs {
		if sub.ID == id {
			return sub, true
		}
	}
	return subState{}, false
}

// storedSubscription reads the tenant's two subscription rows from
// storage (another instance may have made the subscription) and, when one
// is id's, syncs the tenant's state into the cache.
func (s *Store) storedSubscription(ctx context.Context, tenant, id string) (subState, bool, error) {
	for _, src := range []switchboard.PresenceSource{switchboard.SourceAccount1, switchboard.SourceAccount2} {
		e, err := s.state.Get(ctx, tenant, subRowKey(src))
		if switchboard.IsCode(err, switchboard.ENOTFOUND) {
			continue
		}
		if err != nil {
			return subState{}, false, err
		}
		if sub := subStateFromEntity(src, e); sub.ID != "" && sub.ID == id {
			if _, err := s.subscriptions(ctx, tenant, true); err != nil {
				return subState{}, false, err
			}
			return sub, true, nil
		}
	}
	return subState{}, false, nil
}

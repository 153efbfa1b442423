package presence

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"switchboard/handler/store"

	"switchboard/handler/switchboard"
)

// sourcedReading is a reading with the source and time it was taken.
type sourcedReading struct {
	switchboard.PresenceReading
	Source switchboard.PresenceSource
	At     time.Time
}

// shardWrite is what one poll learned about one shard.
type shardWrite struct {
	shard int
	// users are the shard's tracked users at this poll.
	users []string
	// readings holds what was read; a complete shard has every user.
	readings map[string]sourcedReading
	// complete: every user was read, so the shard is confirmed at readAt
	// through source, and stored users no longer tracked are removed.
	complete bool
	readAt   time.Time
	source   switchboard.PresenceSource
}

// commitStats counts what a commit wrote.
type commitStats struct {
	Changed   int // readings written or removed
	Batches   int
	Confirmed []int // shards confirmed
	Failed    int   // shards whose writes failed
	Switched  bool  // a relayout was completed
}

// prepare syncs the tenant's state and makes sure the generation polls
// write to can hold users users: it starts a relayout when allowed and
// the size calls for one. It then loads the shards only names of that
// generation (every shard when only is nil). It returns the layout.
func (s *Store) prepare(ctx context.Context, tenant string, users, target int, only []int, allowRelayout bool) (layout, error) {
	tc := s.cache(tenant)
	tc.load.Lock()
	defer tc.load.Unlock()
	if err := s.syncState(ctx, tenant, tc); err != nil {
		return layout{}, err
	}
	tc.mu.RLock()
	lay := tc.lay
	tc.mu.RUnlock()
	gen, shards := lay.target()
	if allowRelayout && !(users == 0 && shards == 0) && needsRelayout(users, shards, target) {
		next := lay
		next.Garbage = slices.Clone(lay.Garbage)
		if next.NextGen != 0 {
			next.Garbage = append(next.Garbage, genShards{Gen: next.NextGen, Shards: next.NextShards})
		}
		next.MaxGen++
		if lay.Shards == 0 {
			// Nothing for readers to keep meanwhile: the new layout is
			// theirs at once, and shards show up as they are polled.
			next.Gen, next.Shards, next.NextGen, next.NextShards = next.MaxGen, shardsFor(users, target), 0, 0
		} else {
			next.NextGen, next.NextShards = next.MaxGen, shardsFor(users, target)
		}
		if _, err := s.state.Upsert(ctx, next.entity(tenant)); err != nil {
			return layout{}, err
		}
		newGen, newShards := next.target()
		s.log.Info("presence layout started", "tenant", tenant, "users", users, "fromShards", lay.Shards, "toShards", newShards, "gen", newGen)
		tc.mu.Lock()
		tc.lay = next
		tc.gens[newGen] = newGenCache(newShards)
		tc.mu.Unlock()
		lay = next
		gen, shards = lay.target()
	}
	if shards == 0 {
		return lay, nil
	}
	if only == nil {
		only = make([]int, shards)
		for i := range only {
			only[i] = i
		}
	}
	// A fan-out message names a shard of its own generation, which may have
	// had more shards than the one polls write to now.
	only = slices.DeleteFunc(slices.Clone(only), func(i int) bool { return i < 0 || i >= shards })
	return lay, s.loadShards(ctx, tenant, tc, gen, only)
}

// shardStates returns the shard rows of generation gen as last synced.
func (s *Store) shardStates(tenant string, gen int64) map[int]shardState {
	tc := s.cache(tenant)
	tc.mu.RLock()
	defer tc.mu.RUnlock()
	out := map[int]shardState{}
	if g, ok := tc.gens[gen]; ok {
		for k, v := range g.states {
			out[k] = v
		}
	}
	return out
}

// sourceStatuses returns the source statuses as last synced.
func (s *Store) sourceStatuses(tenant string) map[switchboard.PresenceSource]SourceStatus {
	tc := s.cache(tenant)
	tc.mu.RLock()
	defer tc.mu.RUnlock()
	out := make(map[switchboard.PresenceSource]SourceStatus, len(tc.sources))
	for k, v := range tc.sources {
		out[k] = v
	}
	return out
}

// commit writes what a poll learned about shards of generation gen: the
// changed readings (and removals of users no longer tracked) in batches
// per partition, then the shard rows that confirm them, and completes a
// relayout once every shard of the new generation was confirmed.
//
// Order matters for readers: a shard row is marked Pending before its
// readings change, and gets its new version and confirmation only after
// they are written. A shard whose writes fail stays Pending (readers and
// the next poll read it again) and is not confirmed.
//
// Four phases: changes, writeReadings, confirm, cacheWritten.
func (s *Store) commit(ctx context.Context, tenant string, gen int64, writes []shardWrite) (commitStats, error) {
	var stats commitStats
	tc := s.cache(tenant)
	tc.load.Lock()
	defer tc.load.Unlock()
	tc.mu.RLock()
	g, ok := tc.gens[gen]
	lay := tc.lay
	tc.mu.RUnlock()
	if !ok {
		return stats, fmt.Errorf("presence: generation %d of tenant %s is not in the layout", gen, tenant)
	}
	t0 := time.Now()
	defer func() {
		s.log.Debug("presence commit", "tenant", tenant, "shards", len(writes), "changed", stats.Changed, "batches", stats.Batches, "took", time.Since(t0))
	}()

	ops := changes(tc, g, tenant, gen, writes)
	version := newVersion()
	failed, err := s.writeReadings(ctx, tenant, gen, writes, ops, version, &stats)
	if err != nil {
		return stats, err
	}
	states, next, err := s.confirm(ctx, tc, g, lay, tenant, gen, writes, ops, failed, version, &stats)
	if err != nil {
		return stats, err
	}
	s.cacheWritten(tc, g, tenant, writes, ops, failed, version, states, next, stats.Switched)
	s.notify(tenant, changedReadings(ops, failed))
	return stats, nil
}

// changes returns, per shard write, the operations that bring storage to
// what the poll read: against what the cache holds (prepare loaded it at
// the version storage holds), the readings that differ and, for a
// complete shard, the removal of users no longer tracked.
func changes(tc *tenantCache, g *genCache, tenant string, gen int64, writes []shardWrite) [][]store.Op {
	ops := make([][]store.Op, len(writes))
	tc.mu.RLock()
	defer tc.mu.RUnlock()
	for w, sw := range writes {
		sc := g.shards[sw.shard]
		pk := partitionKey(tenant, gen, partitionOf(sw.shard))
		ids := make([]string, 0, len(sw.readings))
		for id := range sw.readings {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			r := sw.readings[id]
			if old, ok := sc.readings[id]; ok && (!old.differs(r.PresenceReading, r.Source) || old.ChangedAt.After(r.At)) {
				// Unchanged, or older than what is stored: a notification
				// that arrived while this read was under way wins.
				continue
			}
			st := stored{Availability: r.Availability, Activity: r.Activity, OutOfOffice: r.OutOfOffice, Source: r.Source, ChangedAt: r.At}
			// Insert-or-merge with every property: the same row as a
			// replace, and far cheaper in Azurite, which re-indexes a
			// replaced row across the whole table.
			ops[w] = append(ops[w], store.Op{Kind: store.OpMerge, Entity: st.entity(pk, id)})
		}
		if sw.complete {
			tracked := make(map[string]bool, len(sw.users))
			for _, id := range sw.users {
				tracked[id] = true
			}
			var gone []string
			for id := range sc.readings {
				if !tracked[id] {
					gone = append(gone, id)
				}
			}
			slices.Sort(gone)
			for _, id := range gone {
				ops[w] = append(ops[w], store.Op{Kind: store.OpDelete, Entity: store.Entity{PartitionKey: pk, RowKey: id}, IfMatch: "*"})
			}
		}
	}
	return ops
}

// writeReadings marks the shards that change Pending (at version), then
// writes their operations with one WriteBatched per partition, the shards
// of a partition together, partitions side by side. It returns which
// writes failed; the error is the pending marks' (nothing was written).
func (s *Store) writeReadings(ctx context.Context, tenant string, gen int64, writes []shardWrite, ops [][]store.Op, version string,
	stats *commitStats) ([]bool, error) {
	var pending []store.Op
	for w, sw := range writes {
		if len(ops[w]) > 0 {
			pending = append(pending, mergeOp(tenant, shardRowKey(gen, sw.shard), map[string]any{"Pending": version}))
		}
	}
	if len(pending) > 0 {
		n, err := store.WriteBatched(ctx, s.state, pending)
		stats.Batches += n
		if err != nil {
			return nil, fmt.Errorf("marking shards pending: %w", err)
		}
	}
	failed := make([]bool, len(writes))
	var mu sync.Mutex
	byPartition := map[int][]int{}
	var partitions []int
	for w, sw := range writes {
		if len(ops[w]) == 0 {
			continue
		}
		p := partitionOf(sw.shard)
		if _, ok := byPartition[p]; !ok {
			partitions = append(partitions, p)
		}
		byPartition[p] = append(byPartition[p], w)
	}
	_ = s.forEach(ctx, partitions, func(ctx context.Context, p int) error {
		var all []store.Op
		for _, w := range byPartition[p] {
			all = append(all, ops[w]...)
		}
		n, err := store.WriteBatched(ctx, s.presence, all)
		mu.Lock()
		defer mu.Unlock()
		stats.Batches += n
		if err != nil {
			for _, w := range byPartition[p] {
				failed[w] = true
			}
			s.log.Warn("presence partition write failed", "tenant", tenant, "gen", gen, "partition", p, "err", err)
		}
		return nil
	})
	return failed, nil
}

// confirm writes the shard rows of the writes that did not fail (new
// version, and for a complete shard its confirmation), and the layout
// switch when this completed a relayout. It returns the shard states and
// layout as written. When the rows cannot be written, the changed shards
// are made to be read again rather than trusted.
func (s *Store) confirm(ctx context.Context, tc *tenantCache, g *genCache, lay layout, tenant string, gen int64, writes []shardWrite, ops [][]store.Op,
	failed []bool, version string, stats *commitStats) (map[int]shardState, layout, error) {
	states := make(map[int]shardState, len(g.states))
	tc.mu.RLock()
	for k, v := range g.states {
		states[k] = v
	}
	tc.mu.RUnlock()
	var final []store.Op
	for w, sw := range writes {
		if failed[w] {
			stats.Failed++
			continue
		}
		props := map[string]any{}
		st := states[sw.shard]
		if len(ops[w]) > 0 {
			props["Version"], props["Pending"] = version, ""
			st.Version, st.Pending = version, ""
			stats.Changed += len(ops[w])
		}
		if sw.complete {
			props["ConfirmedAt"], props["Source"], props["Users"] = sw.readAt.UTC(), string(sw.source), int64(len(sw.users))
			st.ConfirmedAt, st.Source, st.Users = sw.readAt, sw.source, len(sw.users)
			stats.Confirmed = append(stats.Confirmed, sw.shard)
		}
		if len(props) > 0 {
			final = append(final, mergeOp(tenant, shardRowKey(gen, sw.shard), props))
			states[sw.shard] = st
		}
	}
	next := lay
	if gen == lay.NextGen && lay.NextGen != 0 && allConfirmed(states, lay.NextShards) {
		next.Garbage = slices.Clone(lay.Garbage)
		if lay.Shards > 0 {
			next.Garbage = append(next.Garbage, genShards{Gen: lay.Gen, Shards: lay.Shards})
		}
		next.Gen, next.Shards, next.NextGen, next.NextShards = lay.NextGen, lay.NextShards, 0, 0
		final = append(final, store.Op{Kind: store.OpUpsert, Entity: next.entity(tenant)})
		stats.Switched = true
	}
	if len(final) == 0 {
		return states, next, nil
	}
	n, err := store.WriteBatched(ctx, s.state, final)
	stats.Batches += n
	if err != nil {
		// Readings were written but not confirmed: make this process read
		// the shards again rather than trust what it holds.
		tc.mu.Lock()
		for w, sw := range writes {
			if len(ops[w]) > 0 {
				g.shards[sw.shard].version = ""
			}
		}
		tc.mu.Unlock()
		return nil, layout{}, fmt.Errorf("confirming shards: %w", err)
	}
	return states, next, nil
}

// allConfirmed reports whether shards 0 to n-1 were all confirmed.
func allConfirmed(states map[int]shardState, n int) bool {
	for i := 0; i < n; i++ {
		if states[i].ConfirmedAt.IsZero() {
			return false
		}
	}
	return true
}

// cacheWritten makes the cache hold what was written: the changed
// readings at their new version, confirmations, the shard states, and the
// new layout when a relayout was completed. Shards whose writes failed are
// read again.
func (s *Store) cacheWritten(tc *tenantCache, g *genCache, tenant string, writes []shardWrite, ops [][]store.Op, failed []bool, version string,
	states map[int]shardState, next layout, switched bool) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	for w, sw := range writes {
		sc := g.shards[sw.shard]
		if failed[w] {
			sc.version = ""
			continue
		}
		if len(ops[w]) > 0 {
			readings := make(map[string]stored, len(sc.readings)+len(ops[w]))
			for k, v := range sc.readings {
				readings[k] = v
			}
			for _, o := range ops[w] {
				if o.Kind == store.OpDelete {
					delete(readings, o.Entity.RowKey)
				} else {
					readings[o.Entity.RowKey] = storedFromEntity(o.Entity)
				}
			}
			sc.readings, sc.version = readings, version
		}
		if sw.complete {
			sc.confirmedAt, sc.source = sw.readAt, sw.source
		}
	}
	g.states = states
	if switched {
		tc.lay = next
		for k := range tc.gens {
			if k != next.Gen {
				delete(tc.gens, k)
			}
		}
		s.log.Info("presence relayout completed", "tenant", tenant, "shards", next.Shards, "gen", next.Gen)
	}
}

// markFannedOut records that shards of generation gen were handed to
// other instances until until, so that polls before then leave them be.
func (s *Store) markFannedOut(ctx context.Context, tenant string, gen int64, shards []int, until time.Time) error {
	var ops []store.Op
	for _, sh := range shards {
		ops = append(ops, mergeOp(tenant, shardRowKey(gen, sh), map[string]any{"FannedOutUntil": until.UTC()}))
	}
	if len(ops) == 0 {
		return nil
	}
	if _, err := store.WriteBatched(ctx, s.state, ops); err != nil {
		return err
	}
	tc := s.cache(tenant)
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if g, ok := tc.gens[gen]; ok {
		for _, sh := range shards {
			st := g.states[sh]
			st.FannedOutUntil = until
			g.states[sh] = st
		}
	}
	return nil
}

func mergeOp(pk, rk string, props map[string]any) store.Op {
	return store.Op{Kind: store.OpMerge, Entity: store.Entity{PartitionKey: pk, RowKey: rk, Props: props}}
}

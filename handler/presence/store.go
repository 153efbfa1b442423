package presence

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"switchboard/handler/internal/follow"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// StoreOptions configures a Store.
type StoreOptions struct {
	Tables store.Tables
	Now    func() time.Time
	Log    *slog.Logger
	// RefreshEvery is how often Readings looks at storage for what other
	// instances wrote (default 1 s); the refresh runs in the background.
	RefreshEvery time.Duration
	// MaxLag is how old the cache may get before Readings waits for a
	// refresh instead of answering from it (default 10 s).
	MaxLag time.Duration
	// Parallel bounds concurrent partition reads and writes (default 16).
	Parallel int
	// PollMargin is how long after a subscription stopped vouching for
	// its users a poll's shard confirmation is still not taken for theirs:
	// a poll that read the state before then skipped them (default 1 min,
	// longer than a poll runs).
	PollMargin time.Duration
	// Events, when set, receives switchboard.presenceSource.stateChanged
	// when a source turns ok or failing, in the same batch as the status.
	Events switchboard.EventOutbox
}

// Store keeps presence readings in Table Storage and serves them from an
// in-process cache. The cache follows storage through the tenant's state
// partition: one small query tells which shards changed (their version),
// and only those are read again. Each shard's confirmation is published
// together with the readings it confirms, so ConfirmedAt stays truthful
// however far the cache lags behind storage.
type Store struct {
	presence   store.Table
	state      store.Table
	now        func() time.Time
	log        *slog.Logger
	parallel   int
	pollMargin time.Duration
	events     switchboard.EventOutbox // nil: no events
	// fresh decides, per tenant, when the cache is read again from
	// storage; what it holds is the tenant's *tenantCache, which refresh
	// fills in place.
	fresh *follow.Cache[string, *tenantCache]

	mu       sync.Mutex
	tenants  map[string]*tenantCache
	onChange ChangeFunc
}

var _ switchboard.PresenceStore = (*Store)(nil)

// NewStore opens the presence tables.
func NewStore(ctx context.Context, opts StoreOptions) (*Store, error) {
	const op = "presence.NewStore"
	if opts.Tables == nil {
		return nil, switchboard.Errorf(switchboard.EINTERNAL, op, "no tables")
	}
	p, err := opts.Tables.Table(ctx, presenceTableName)
	if err != nil {
		return nil, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	}
	st, err := opts.Tables.Table(ctx, stateTableName)
	if err != nil {
		return nil, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	}
	s := &Store{presence: p, state: st, now: opts.Now, log: opts.Log, parallel: opts.Parallel, events: opts.Events, tenants: map[string]*tenantCache{}}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	refreshEvery, maxLag := opts.RefreshEvery, opts.MaxLag
	if refreshEvery <= 0 {
		refreshEvery = time.Second
	}
	if maxLag <= 0 {
		maxLag = 10 * time.Second
	}
	s.fresh = follow.New(follow.Options[string, *tenantCache]{
		// A refresh in the background reloads the shards loaded already.
		Load: func(ctx context.Context, tenant string, _ *tenantCache) (*tenantCache, error) {
			tc := s.cache(tenant)
			return tc, s.refresh(ctx, tenant, tc, nil)
		},
		RefreshEvery: refreshEvery, MaxLag: maxLag, Clock: s.now, RefreshTimeout: 30 * time.Second,
		RefreshFailed: func(tenant string, err error) {
			s.log.Warn("presence cache refresh failed", "tenant", tenant, "err", err)
		},
	})
	if s.parallel <= 0 {
		s.parallel = 16
	}
	s.pollMargin = opts.PollMargin
	if s.pollMargin <= 0 {
		s.pollMargin = time.Minute
	}
	return s, nil
}

// tenantCache is what the process knows of one tenant's readings.
type tenantCache struct {
	// load serializes everything that reads storage into the cache or
	// writes through it, so a slow refresh never publishes over a newer
	// write.
	load sync.Mutex

	mu      sync.RWMutex
	known   bool // the state partition was read at least once
	lay     layout
	gens    map[int64]*genCache // the readers' generation and the one a relayout fills
	sources map[switchboard.PresenceSource]SourceStatus
	figures PollFigures
	// shardFigures are those of the last fanned-out shard.
	shardFigures PollFigures
	// cov: the subscription rows (notifications), by account and user.
	cov coverage
}

// genCache is one generation of a tenant's shards.
type genCache struct {
	shards []*shardCache
	states map[int]shardState // shard rows as last read or written
}

type shardCache struct {
	loaded bool
	// version of the readings held; "" forces a reload.
	version     string
	confirmedAt time.Time
	source      switchboard.PresenceSource
	readings    map[string]stored
}

func newGenCache(shards int) *genCache {
	g := &genCache{shards: make([]*shardCache, shards), states: map[int]shardState{}}
	for i := range g.shards {
		g.shards[i] = &shardCache{}
	}
	return g
}

func (s *Store) cache(tenant string) *tenantCache {
	s.mu.Lock()
	defer s.mu.Unlock()
	tc, ok := s.tenants[tenant]
	if !ok {
		tc = &tenantCache{gens: map[int64]*genCache{}, sources: map[switchboard.PresenceSource]SourceStatus{}, cov: newCoverage(nil)}
		s.tenants[tenant] = tc
	}
	return tc
}

// readers returns the generation readers use. Callers hold tc.mu.
func (tc *tenantCache) readers() *genCache {
	if g, ok := tc.gens[tc.lay.Gen]; ok && tc.lay.Shards > 0 {
		return g
	}
	return nil
}

// Readings implements switchboard.PresenceStore.
func (s *Store) Readings(ctx context.Context, tenantID string, userIDs []string) (map[string]switchboard.Presence, error) {
	const op = "presence.Readings"
	if err := store.CheckKey("tenant id", tenantID); err != nil {
		return nil, switchboard.Wrap(switchboard.EINVALID, op, err)
	}
	tc := s.cache(tenantID)
	// A copy that lacks the shards of userIDs is loaded in line, with
	// them.
	covers := func(*tenantCache) bool {
		tc.mu.RLock()
		defer tc.mu.RUnlock()
		return tc.holds(userIDs)
	}
	load := func(ctx context.Context, tenant string, _ *tenantCache) (*tenantCache, error) {
		return tc, s.refresh(ctx, tenant, tc, userIDs)
	}
	if _, err := s.fresh.GetCovering(ctx, tenantID, covers, load); err != nil {
		return nil, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	}
	now := s.now()
	tc.mu.RLock()
	defer tc.mu.RUnlock()
	out := make(map[string]switchboard.Presence, len(userIDs))
	g := tc.readers()
	if g == nil {
		return out, nil
	}
	for _, id := range userIDs {
		sc := g.shards[shardOf(id, len(g.shards))]
		if st, ok := sc.readings[id]; ok {
			out[id] = s.confirmCovered(tc.cov, st.presence(id, sc.confirmedAt, sc.source), st, sc.confirmedAt, now)
		}
	}
	return out, nil
}

// holds reports whether every shard userIDs fall in is loaded. Callers
// hold tc.mu.
func (tc *tenantCache) holds(userIDs []string) bool {
	g := tc.readers()
	if g == nil {
		return tc.known
	}
	for _, id := range userIDs {
		if !g.shards[shardOf(id, len(g.shards))].loaded {
			return false
		}
	}
	return true
}

func (st stored) presence(id string, shardConfirmedAt time.Time, shardSource switchboard.PresenceSource) switchboard.Presence {
	p := switchboard.Presence{
		UserID:       id,
		Availability: st.Availability,
		Activity:     st.Activity,
		OutOfOffice:  st.OutOfOffice,
		Source:       string(st.Source),
		Extended:     st.Source.Extended(),
		ChangedAt:    st.ChangedAt,
		ConfirmedAt:  st.ChangedAt,
	}
	if shardConfirmedAt.After(st.ChangedAt) {
		p.ConfirmedAt = shardConfirmedAt
		// The confirming source read the same values; it names the
		// reading's source as long as it is of the same kind (a switch
		// between extended and basic is a change, written as such).
		if shardSource != "" && shardSource.Extended() == st.Source.Extended() {
			p.Source = string(shardSource)
		}
	}
	return p
}

// refresh reads the tenant's state partition and reloads, in the readers'
// generation, the shards whose version changed among those loaded plus the
// shards of the users in want. State is read before readings and writers
// write readings before state, so each published confirmation comes with
// readings at least as new as the ones it confirmed.
func (s *Store) refresh(ctx context.Context, tenant string, tc *tenantCache, want []string) error {
	tc.load.Lock()
	defer tc.load.Unlock()
	if err := s.syncState(ctx, tenant, tc); err != nil {
		return err
	}
	tc.mu.RLock()
	gen := tc.lay.Gen
	g := tc.readers()
	var needed []int
	if g != nil {
		wanted := make([]bool, len(g.shards))
		for _, id := range want {
			wanted[shardOf(id, len(g.shards))] = true
		}
		for i, sc := range g.shards {
			if sc.loaded || wanted[i] {
				needed = append(needed, i)
			}
		}
	}
	tc.mu.RUnlock()
	if g != nil {
		if err := s.loadShards(ctx, tenant, tc, gen, needed); err != nil {
			return err
		}
	}
	tc.mu.Lock()
	tc.known = true
	tc.mu.Unlock()
	return nil
}

// syncState reads the tenant's state partition into tc: layout, shard
// rows of the readers' and the relayout's generation, source statuses and
// last poll. A changed layout drops the generations it no longer names.
// Callers hold tc.load.
func (s *Store) syncState(ctx context.Context, tenant string, tc *tenantCache) error {
	var rows []store.Entity
	var lay layout
	err := store.QueryAll(ctx, s.state, store.Query{PartitionKey: tenant}, func(e store.Entity) error {
		rows = append(rows, e)
		if e.RowKey == rowLayout {
			lay = layoutFromEntity(e)
		}
		return nil
	})
	if err != nil {
		return err
	}
	states := map[int64]map[int]shardState{lay.Gen: {}, lay.NextGen: {}}
	sources := map[switchboard.PresenceSource]SourceStatus{}
	var figures, shardFigures PollFigures
	subs := map[switchboard.PresenceSource]subState{}
	for _, e := range rows {
		if src, ok := strings.CutPrefix(e.RowKey, subRowPrefix); ok {
			if switchboard.PresenceSource(src).Account() != 0 {
				subs[switchboard.PresenceSource(src)] = subStateFromEntity(switchboard.PresenceSource(src), e)
			}
			continue
		}
		if gen, shard, ok := parseShardRowKey(e.RowKey); ok {
			if m, known := states[gen]; known && shard < lay.shardsOf(gen) {
				m[shard] = shardStateFromEntity(e)
			}
			continue
		}
		if e.RowKey == rowLastPoll {
			figures, _ = pollFiguresFromEntity(e)
			continue
		}
		if e.RowKey == rowLastShardPoll {
			shardFigures, _ = pollFiguresFromEntity(e)
			continue
		}
		for _, src := range switchboard.PresenceSources {
			if e.RowKey == sourceRowKey(src) {
				sources[src] = sourceStatusFromEntity(src, e)
			}
		}
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	tc.lay, tc.sources, tc.figures, tc.shardFigures = lay, sources, figures, shardFigures
	tc.cov = newCoverage(subs)
	for gen := range tc.gens {
		if n := lay.shardsOf(gen); n == 0 || len(tc.gens[gen].shards) != n {
			delete(tc.gens, gen)
		}
	}
	for _, gen := range []int64{lay.Gen, lay.NextGen} {
		n := lay.shardsOf(gen)
		if n == 0 {
			continue
		}
		g, ok := tc.gens[gen]
		if !ok {
			g = newGenCache(n)
			tc.gens[gen] = g
		}
		g.states = states[gen]
		// A shard whose version did not move keeps its readings and takes
		// the new confirmation now; the others wait for loadShards.
		for i, sc := range g.shards {
			st := g.states[i]
			if sc.loaded && st.Pending == "" && sc.version == st.Version {
				sc.confirmedAt, sc.source = st.ConfirmedAt, st.Source
			}
		}
	}
	return nil
}

// loadShards makes the given shards of generation gen current: a shard not
// loaded, mid-write, or at another version than its row is read again,
// with the partition it lives in. Every shard of a partition read takes
// what was read (the state was read first, so the rows are at least as new
// as the versions and confirmations it holds). Callers hold tc.load and
// have just synced the state.
func (s *Store) loadShards(ctx context.Context, tenant string, tc *tenantCache, gen int64, shards []int) error {
	tc.mu.RLock()
	g, ok := tc.gens[gen]
	var partitions []int
	if ok {
		seen := map[int]bool{}
		for _, i := range shards {
			sc, st := g.shards[i], g.states[i]
			if p := partitionOf(i); !seen[p] && (!sc.loaded || st.Pending != "" || sc.version != st.Version) {
				seen[p] = true
				partitions = append(partitions, p)
			}
		}
	}
	tc.mu.RUnlock()
	if !ok {
		return fmt.Errorf("presence: generation %d of tenant %s is not in the layout", gen, tenant)
	}
	n := len(g.shards)
	return s.forEach(ctx, partitions, func(ctx context.Context, p int) error {
		byShard := map[int]map[string]stored{}
		for _, sh := range shardsOfPartition(p, n) {
			byShard[sh] = map[string]stored{}
		}
		err := store.QueryAll(ctx, s.presence, store.Query{PartitionKey: partitionKey(tenant, gen, p)}, func(e store.Entity) error {
			if m, ok := byShard[shardOf(e.RowKey, n)]; ok {
				m[e.RowKey] = storedFromEntity(e)
			}
			return nil
		})
		if err != nil {
			return err
		}
		tc.mu.Lock()
		defer tc.mu.Unlock()
		for sh, readings := range byShard {
			st := g.states[sh]
			sc := g.shards[sh]
			sc.loaded, sc.readings = true, readings
			sc.version = st.Version
			if st.Pending != "" {
				sc.version = "" // mid-write: read it again next time
			}
			sc.confirmedAt, sc.source = st.ConfirmedAt, st.Source
		}
		return nil
	})
}

// forEach runs fn for every item with at most s.parallel at once and
// returns the first error (after all have finished).
func (s *Store) forEach(ctx context.Context, items []int, fn func(context.Context, int) error) error {
	var g errgroup.Group
	g.SetLimit(s.parallel)
	for _, it := range items {
		g.Go(func() error { return fn(ctx, it) })
	}
	return g.Wait()
}

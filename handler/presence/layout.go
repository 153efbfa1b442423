package presence

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"

	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// Table names.
const (
	presenceTableName = "presence"      // one row per user: PK {tenant}.{gen}.{shard}, RK user id
	stateTableName    = "presencestate" // one partition per tenant: layout, shards, sources, last poll
)

// Row keys of the state partition.
const (
	rowLayout   = "layout"
	rowLastPoll = "poll"
	// rowLastShardPoll holds the figures of the last fanned-out shard.
	rowLastShardPoll = "pollshard"
	shardRowPrefix   = "shard."
	sourceRowPref    = "source."
)

// maxShards bounds S: 4,096 shards of 400 users is 1.6 million agents.
const maxShards = 4096

// layout is how a tenant's users are spread over shards. Readers use Gen;
// a relayout (the first poll of a tenant, or a tenant that grew or shrank
// fourfold) fills generation NextGen, possibly over several polls, and
// switches Gen to it once every shard of it was confirmed. Generations
// are never reused, so rows of an abandoned or retired layout can be
// deleted at leisure (Garbage).
type layout struct {
	Gen    int64
	Shards int // a power of two; 0 when the tenant was never polled
	// NextGen and NextShards describe a relayout under way (0 when none).
	NextGen    int64
	NextShards int
	// MaxGen is the highest generation ever started.
	MaxGen int64
	// Garbage lists generations whose rows are to be deleted.
	Garbage []genShards
}

// target returns the generation and shard count polls write to.
func (l layout) target() (int64, int) {
	if l.NextGen != 0 {
		return l.NextGen, l.NextShards
	}
	return l.Gen, l.Shards
}

// shardsOf returns the shard count of generation gen, or 0.
func (l layout) shardsOf(gen int64) int {
	switch gen {
	case l.Gen:
		return l.Shards
	case l.NextGen:
		return l.NextShards
	}
	return 0
}

type genShards struct {
	Gen    int64 `json:"gen"`
	Shards int   `json:"shards"`
}

// shardsFor returns the number of shards for n users: a power of two with
// about target users per shard.
func shardsFor(n, target int) int {
	if target <= 0 {
		target = 400
	}
	want := (n + target - 1) / target
	s := 1
	for s < want && s < maxShards {
		s <<= 1
	}
	return s
}

// needsRelayout reports whether a tenant of n users has outgrown (or
// shrunk far below) a layout of s shards. The thresholds leave a factor of
// four between growing and shrinking, so a tenant hovering around a
// boundary is not rewritten back and forth.
func needsRelayout(n, s, target int) bool {
	if s == 0 {
		return true
	}
	if target <= 0 {
		target = 400
	}
	grow := n > s*target*11/8 && s < maxShards // mean above 550 users: the fullest shards near 650
	shrink := s > 1 && n < s*target/4
	return grow || shrink
}

// shardOf returns the shard of userID in a layout of s shards (a power of
// two): the top bits of its FNV-1a hash, so that doubling s splits every
// shard in two.
func shardOf(userID string, s int) int {
	if s <= 1 {
		return 0
	}
	// FNV-1a, inline: routing hashes a service's members on every route.
	h := uint64(14695981039346656037)
	for i := 0; i < len(userID); i++ {
		h ^= uint64(userID[i])
		h *= 1099511628211
	}
	return int(h >> (64 - bits.TrailingZeros(uint(s))))
}

// shardsPerPartition is how many shards share a partition of the presence
// table. A partition of about 1,600 users takes a poll's changes at the
// usual churn (a few percent) in one batch of at most 100 operations, so
// a steady cycle of 100,000 agents writes some 64 batches rather than 256,
// while no partition holds more than a few thousand rows (Table Storage
// serves about 2,000 entities per second per partition).
const shardsPerPartition = 4

// partitionOf returns the partition of shard in a layout of s shards.
func partitionOf(shard int) int { return shard / shardsPerPartition }

// partitionsFor returns the number of partitions of a layout of s shards.
func partitionsFor(s int) int { return (s + shardsPerPartition - 1) / shardsPerPartition }

// shardsOfPartition returns the shards of partition p in a layout of s
// shards.
func shardsOfPartition(p, s int) []int {
	var out []int
	for sh := p * shardsPerPartition; sh < min((p+1)*shardsPerPartition, s); sh++ {
		out = append(out, sh)
	}
	return out
}

// partitionKey returns the presence table partition of partition p.
func partitionKey(tenant string, gen int64, p int) string {
	return fmt.Sprintf("%s.%d.%04x", tenant, gen, p)
}

func shardRowKey(gen int64, shard int) string {
	return fmt.Sprintf("%s%d.%04x", shardRowPrefix, gen, shard)
}

// parseShardRowKey returns the generation and shard of a shard row key.
func parseShardRowKey(rk string) (gen int64, shard int, ok bool) {
	rest, found := strings.CutPrefix(rk, shardRowPrefix)
	if !found {
		return 0, 0, false
	}
	g, s, found := strings.Cut(rest, ".")
	if !found {
		return 0, 0, false
	}
	gen, err1 := strconv.ParseInt(g, 10, 64)
	sh, err2 := strconv.ParseInt(s, 16, 32)
	if err1 != nil || err2 != nil || sh < 0 {
		return 0, 0, false
	}
	return gen, int(sh), true
}

func sourceRowKey(src switchboard.PresenceSource) string { return sourceRowPref + string(src) }

func newVersion() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// stored is a reading as the presence table keeps it.
type stored struct {
	Availability string
	Activity     string
	OutOfOffice  bool
	Source       switchboard.PresenceSource
	ChangedAt    time.Time
}

// differs reports whether a new reading through src is a change worth
// writing: other values, or a switch between extended and basic (which
// changes what routing may conclude from the same values).
func (s stored) differs(r switchboard.PresenceReading, src switchboard.PresenceSource) bool {
	return s.Availability != r.Availability || s.Activity != r.Activity || s.OutOfOffice != r.OutOfOffice ||
		s.Source.Extended() != src.Extended()
}

func (s stored) entity(pk, userID string) store.Entity {
	return store.Entity{PartitionKey: pk, RowKey: userID, Props: map[string]any{
		"Availability": s.Availability,
		"Activity":     s.Activity,
		"OutOfOffice":  s.OutOfOffice,
		"Source":       string(s.Source),
		"ChangedAt":    s.ChangedAt.UTC(),
	}}
}

func storedFromEntity(e store.Entity) stored {
	return stored{
		Availability: e.String("Availability"),
		Activity:     e.String("Activity"),
		OutOfOffice:  e.Bool("OutOfOffice"),
		Source:       switchboard.PresenceSource(e.String("Source")),
		ChangedAt:    e.Time("ChangedAt"),
	}
}

// shardState is a shard row of the state partition.
type shardState struct {
	// Version names the readings last written to the shard; it changes
	// with every write, so a cache holding that version holds them all.
	Version string
	// Pending is set while a write of the shard is under way (or died):
	// the shard's readings may differ from any version, so caches reload
	// it and pollers do not trust what they hold.
	Pending        string
	ConfirmedAt    time.Time
	Source         switchboard.PresenceSource
	Users          int
	FannedOutUntil time.Time
}

func shardStateFromEntity(e store.Entity) shardState {
	return shardState{
		Version:        e.String("Version"),
		Pending:        e.String("Pending"),
		ConfirmedAt:    e.Time("ConfirmedAt"),
		Source:         switchboard.PresenceSource(e.String("Source")),
		Users:          int(e.Int64("Users")),
		FannedOutUntil: e.Time("FannedOutUntil"),
	}
}

func layoutFromEntity(e store.Entity) layout {
	l := layout{Gen: e.Int64("Gen"), Shards: int(e.Int64("Shards")), NextGen: e.Int64("NextGen"), NextShards: int(e.Int64("NextShards")),
		MaxGen: e.Int64("MaxGen")}
	if g := e.String("Garbage"); g != "" {
		_ = json.Unmarshal([]byte(g), &l.Garbage)
	}
	valid := func(s int) bool { return s > 0 && s <= maxShards && s&(s-1) == 0 }
	if !valid(l.Shards) {
		l.Gen, l.Shards = 0, 0 // unusable: the tenant is laid out afresh
	}
	if l.NextGen != 0 && !valid(l.NextShards) {
		l.NextGen, l.NextShards = 0, 0
	}
	if l.MaxGen < l.Gen || l.MaxGen < l.NextGen {
		l.MaxGen = max(l.Gen, l.NextGen)
	}
	return l
}

func (l layout) entity(tenant string) store.Entity {
	garbage := ""
	if len(l.Garbage) > 0 {
		b, _ := json.Marshal(l.Garbage)
		garbage = string(b)
	}
	return store.Entity{PartitionKey: tenant, RowKey: rowLayout, Props: map[string]any{
		"Gen":        l.Gen,
		"Shards":     int64(l.Shards),
		"NextGen":    l.NextGen,
		"NextShards": int64(l.NextShards),
		"MaxGen":     l.MaxGen,
		"Garbage":    garbage,
	}}
}

// collectGarbage deletes the rows of retired and abandoned generations
// until done or until the deadline, and records what is left.
func (s *Store) collectGarbage(ctx context.Context, tenant string, deadline time.Time) error {
	tc := s.cache(tenant)
	tc.load.Lock()
	defer tc.load.Unlock()
	tc.mu.RLock()
	lay := tc.lay
	tc.mu.RUnlock()
	if len(lay.Garbage) == 0 {
		return nil
	}
	var left []genShards
	for _, gs := range lay.Garbage {
		if gs.Gen == lay.Gen || gs.Gen == lay.NextGen {
			continue // never delete what is in use
		}
		if !s.now().Before(deadline) {
			left = append(left, gs)
			continue
		}
		if err := s.deleteGeneration(ctx, tenant, gs, deadline); err != nil {
			s.log.Warn("presence: deleting a retired generation failed", "tenant", tenant, "gen", gs.Gen, "err", err)
			left = append(left, gs)
		}
	}
	e, err := s.state.Get(ctx, tenant, rowLayout)
	if err != nil {
		return err
	}
	cur := layoutFromEntity(e)
	if cur.Gen != lay.Gen || cur.NextGen != lay.NextGen {
		return nil // someone relaid out meanwhile: their Garbage wins
	}
	cur.Garbage = left
	if _, err := s.state.Update(ctx, cur.entity(tenant), e.ETag); err != nil {
		return err
	}
	tc.mu.Lock()
	tc.lay.Garbage = left
	tc.mu.Unlock()
	return nil
}

func (s *Store) deleteGeneration(ctx context.Context, tenant string, gs genShards, deadline time.Time) error {
	for i := 0; i < partitionsFor(gs.Shards); i++ {
		if !s.now().Before(deadline) {
			return fmt.Errorf("deadline reached at partition %d of %d", i, partitionsFor(gs.Shards))
		}
		var ops []store.Op
		err := store.QueryAll(ctx, s.presence, store.Query{PartitionKey: partitionKey(tenant, gs.Gen, i)}, func(e store.Entity) error {
			ops = append(ops, store.Op{Kind: store.OpDelete, Entity: store.Entity{PartitionKey: e.PartitionKey, RowKey: e.RowKey}, IfMatch: "*"})
			return nil
		})
		if err != nil {
			return err
		}
		if len(ops) > 0 {
			if _, err := store.WriteBatched(ctx, s.presence, ops); err != nil {
				return err
			}
		}
	}
	var ops []store.Op
	err := store.QueryAll(ctx, s.state, store.Query{PartitionKey: tenant, Prefix: fmt.Sprintf("%s%d.", shardRowPrefix, gs.Gen)}, func(e store.Entity) error {
		ops = append(ops, store.Op{Kind: store.OpDelete, Entity: store.Entity{PartitionKey: e.PartitionKey, RowKey: e.RowKey}, IfMatch: "*"})
		return nil
	})
	if err != nil {
		return err
	}
	if len(ops) > 0 {
		_, err = store.WriteBatched(ctx, s.state, ops)
	}
	return err
}

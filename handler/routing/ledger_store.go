package routing

// The idle ledger in the state table (rows a|i|<shard>, see
// state_store.go): when each agent's last conversation ended, for
// LongestIdle.

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"

	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// idleShards is the number of ledger rows per tenant: more rows, fewer
// conflicts between concurrent releases; every route reads them all in the
// same query as the holds.
const idleShards = 16

// Ledger row layout: properties d00, d01, ... each at most idleChunk
// characters of "user millis\n" lines (a string property holds at most
// 64 KiB of UTF-16), at most idleChunks of them per row (an entity is at
// most 1 MB). A row that would outgrow that drops its oldest entries: an
// agent missing from the ledger ranks as idle longest, which is where the
// oldest entries rank anyway.
const (
	idleChunk  = 30000
	idleChunks = 15
)

func idleShard(user string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(user))
	return int(h.Sum32() % idleShards)
}

func idleRowKey(shard int) string { return fmt.Sprintf("%s%02d", idlePrefix, shard) }

func decodeLedger(e store.Entity) map[string]time.Time {
	var b strings.Builder
	for i := 0; i < idleChunks; i++ {
		b.WriteString(e.String(fmt.Sprintf("d%02d", i)))
	}
	out := map[string]time.Time{}
	for line := range strings.SplitSeq(b.String(), "\n") {
		user, ms, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(ms, 10, 64)
		if err != nil {
			continue
		}
		out[user] = time.UnixMilli(n).UTC()
	}
	return out
}

func encodeLedger(tenant string, shard int, idle map[string]time.Time) store.Entity {
	type entry struct {
		user string
		at   time.Time
	}
	entries := make([]entry, 0, len(idle))
	for u, t := range idle {
		entries = append(entries, entry{u, t})
	}
	// Newest first, so that what does not fit is the oldest.
	sort.Slice(entries, func(i, j int) bool {
		if !entries[i].at.Equal(entries[j].at) {
			return entries[i].at.After(entries[j].at)
		}
		return entries[i].user < entries[j].user
	})
	props := map[string]any{}
	var chunk strings.Builder
	n := 0
	for _, en := range entries {
		line := en.user + " " + strconv.FormatInt(en.at.UnixMilli(), 10) + "\n"
		if chunk.Len()+len(line) > idleChunk {
			props[fmt.Sprintf("d%02d", n)] = chunk.String()
			chunk.Reset()
			n++
			if n == idleChunks {
				break
			}
		}
		chunk.WriteString(line)
	}
	if n < idleChunks && chunk.Len() > 0 {
		props[fmt.Sprintf("d%02d", n)] = chunk.String()
	}
	return store.Entity{PartitionKey: tenant, RowKey: idleRowKey(shard), Props: props}
}

// idleOf reads one agent's ledger entry (zero when it has none).
func (s *stateStore) idleOf(ctx context.Context, tenant, user string) (time.Time, error) {
	e, err := s.t.Get(ctx, tenant, idleRowKey(idleShard(user)))
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	return decodeLedger(e)[user], nil
}

// recordIdle sets the ledger entry of each agent in ends to the later of
// its current value and the given time. Each ledger row is read, modified
// and written back ETag-guarded, retried when a concurrent writer won.
func (s *stateStore) recordIdle(ctx context.Context, tenant string, ends map[string]time.Time) error {
	byShard := map[int]map[string]time.Time{}
	for u, t := range ends {
		sh := idleShard(u)
		if byShard[sh] == nil {
			byShard[sh] = map[string]time.Time{}
		}
		byShard[sh][u] = t
	}
	for sh, upd := range byShard {
		if err := s.updateLedgerRow(ctx, tenant, sh, upd); err != nil {
			return err
		}
	}
	return nil
}

func (s *stateStore) updateLedgerRow(ctx context.Context, tenant string, shard int, upd map[string]time.Time) error {
	h := fnv.New32a()
	_, _ = h.Write([]byte(tenant))
	lock := &s.ledgerLocks[(int(h.Sum32())+shard)%len(s.ledgerLocks)]
	lock.Lock()
	defer lock.Unlock()
	const attempts = 20
	for attempt := 0; attempt < attempts; attempt++ {
		cur, err := s.t.Get(ctx, tenant, idleRowKey(shard))
		exists := err == nil
		if err != nil && !switchboard.IsCode(err, switchboard.ENOTFOUND) {
			return err
		}
		idle := map[string]time.Time{}
		if exists {
			idle = decodeLedger(cur)
		}
		changed := false
		for u, t := range upd {
			t = t.UTC().Truncate(time.Millisecond)
			if t.After(idle[u]) {
				idle[u] = t
				changed = true
			}
		}
		if !changed {
			return nil
		}
		e := encodeLedger(tenant, shard, idle)
		if exists {
			_, err = s.t.Update(ctx, e, cur.ETag)
		} else {
			_, err = s.t.Insert(ctx, e)
		}
		if err == nil {
			return nil
		}
		if !switchboard.IsCode(
			err,
			switchboard.EPRECONDITION,
		) && !switchboard.IsCode(err, switchboard.ECONFLICT) && !switchboard.IsCode(err, switchboard.ENOTFOUND) {
			return err
		}
		// Another instance won: back off a little, with jitter, and retry.
		select {
		case <-ctx.Done():
			return switchboard.Wrap(switchboard.EUNAVAILABLE, "routing.recordIdle", ctx.Err())
		case <-time.After(time.Duration(2+rand.IntN(8*(attempt+1))) * time.Millisecond):
		}
	}
	return switchboard.Errorf(switchboard.EUNAVAILABLE, "routing.recordIdle", "the idle ledger of tenant %s is contended; giving up after %d "+
		"attempts", tenant, attempts)
}

package presence

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"switchboard/handler/switchboard"
)

// call is one getPresencesByUserId request: up to
// switchboard.MaxPresenceIDsPerCall users, from one or more consecutive
// shards.
type call struct {
	ids    []string
	shards []int // the shards of ids, in order
	counts []int // how many ids of each shard
}

// packCalls packs the users of the shards, in order, into full calls (the
// last one takes the rest), and counts the calls each shard is part of.
func packCalls(order []int, byShard [][]string) ([]*call, map[int]int) {
	var calls []*call
	cur := &call{}
	callsOf := map[int]int{}
	for _, sh := range order {
		ids := byShard[sh]
		for len(ids) > 0 {
			n := min(switchboard.MaxPresenceIDsPerCall-len(cur.ids), len(ids))
			cur.ids = append(cur.ids, ids[:n]...)
			cur.shards = append(cur.shards, sh)
			cur.counts = append(cur.counts, n)
			callsOf[sh]++
			ids = ids[n:]
			if len(cur.ids) == switchboard.MaxPresenceIDsPerCall {
				calls = append(calls, cur)
				cur = &call{}
			}
		}
	}
	if len(cur.ids) > 0 {
		calls = append(calls, cur)
	}
	return calls, callsOf
}

// unskipped returns byShard without the users in skip.
func unskipped(byShard [][]string, skip map[string]bool) [][]string {
	if len(skip) == 0 {
		return byShard
	}
	out := make([][]string, len(byShard))
	for sh, ids := range byShard {
		for _, id := range ids {
			if !skip[id] {
				out[sh] = append(out[sh], id)
			}
		}
	}
	return out
}

// shardRead is a shard all of whose calls have finished.
type shardRead struct {
	shardWrite
	started bool // a call of the shard went out (false: deadline or budget came first)
}

// reading is readShards under way: each shard arrives on ready when its
// last call finishes; readDone is set before ready is closed.
type reading struct {
	ready    chan shardRead
	readDone time.Time
}

// readShards reads the shards' users in calls packed to
// MaxPresenceIDsPerCall ids, ParallelCalls at once. Shards without users
// are ready at once: confirming them removes readings of users no longer
// tracked.
//
// Users in skip (vouched for by a trusted presence subscription) are not
// read: the poll packs only what it must read. They stay the shard's
// users, so their readings are kept.
func (t *tenantPoll) readShards(ctx context.Context, order []int, byShard [][]string, skip map[string]bool) *reading {
	calls, pending := packCalls(order, unskipped(byShard, skip))
	rd := &reading{ready: make(chan shardRead, len(order))}
	writes := make(map[int]*shardRead, len(order))
	for _, sh := range order {
		writes[sh] = &shardRead{shardWrite: shardWrite{shard: sh, users: byShard[sh], readings: map[string]sourcedReading{}, complete: true}}
	}
	now := t.p.o.Now()
	for _, sh := range order {
		if pending[sh] == 0 {
			w := writes[sh]
			w.readAt, w.source, w.started = now, t.firstSource(), true
			rd.ready <- *w
		}
	}
	var mu sync.Mutex // guards writes and pending
	go func() {
		var g errgroup.Group
		g.SetLimit(t.p.o.ParallelCalls)
		for _, c := range calls {
			g.Go(func() error {
				readings, src, at, err := t.read(ctx, c.ids)
				mu.Lock()
				defer mu.Unlock()
				apply(c, writes, readings, src, at, err)
				for _, sh := range c.shards {
					if pending[sh]--; pending[sh] == 0 {
						rd.ready <- *writes[sh]
					}
				}
				return nil // a failed call leaves its shards incomplete; the others go on
			})
		}
		_ = g.Wait()
		rd.readDone = t.p.o.Now()
		close(rd.ready)
	}()
	return rd
}

// apply records the outcome of call c in the writes of its shards.
// Callers hold the lock on writes.
func apply(c *call, writes map[int]*shardRead, readings []switchboard.PresenceReading, src switchboard.PresenceSource, at time.Time, err error) {
	byID := make(map[string]switchboard.PresenceReading, len(readings))
	for _, r := range readings {
		byID[r.UserID] = r
	}
	pos := 0
	for k, sh := range c.shards {
		w := writes[sh]
		seg := c.ids[pos : pos+c.counts[k]]
		pos += c.counts[k]
		switch {
		case err == nil:
			w.started = true
			for _, id := range seg {
				r, ok := byID[id]
				if !ok {
					// Graph did not report the user: nothing is known of
					// its presence.
					r = switchboard.PresenceReading{UserID: id, Availability: switchboard.PresenceUnknown, Activity: switchboard.ActivityPresenceUnknown}
				}
				w.readings[id] = sourcedReading{PresenceReading: r, Source: src, At: at}
			}
			if w.readAt.IsZero() || at.Before(w.readAt) {
				w.readAt = at
			}
			if w.source == "" || sourceRank(src) > sourceRank(w.source) {
				w.source = src
			}
		case isNotStarted(err):
			w.complete = false
		default:
			w.started = true
			w.complete = false
		}
	}
}

// notStartedError marks a call that never went out: the deadline or the
// budget came first.
type notStartedError struct{ why string }

func (e *notStartedError) Error() string { return "not started: " + e.why }

func isNotStarted(err error) bool {
	_, ok := err.(*notStartedError)
	return ok
}

// spend takes one call from the tenant's budget.
func (t *tenantPoll) spend() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.calls >= t.p.o.MaxCallsPerTenant {
		return false
	}
	t.calls++
	return true
}

// refund gives back a call that never reached Graph.
func (t *tenantPoll) refund() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.calls--
}

// maxHonouredRetryAfter bounds a Retry-After taken from Graph, against a
// malformed or absurd value.
const maxHonouredRetryAfter = 10 * time.Minute

// throttle holds every call of the tenant back for d (Graph's
// Retry-After; a second when it gave none). The whole Retry-After holds,
// also past this poll; waitGate gives up on waits longer than
// MaxRetryAfter instead of calling early.
func (t *tenantPoll) throttle(d time.Duration) {
	if d <= 0 {
		d = time.Second
	}
	d = min(d, maxHonouredRetryAfter)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.throttled++
	if until := t.p.o.Now().Add(d); until.After(t.gate) {
		t.gate = until
	}
}

// waitGate waits until the tenant may call Graph again, or says the call
// cannot start before the poll must stop.
func (t *tenantPoll) waitGate(ctx context.Context) error {
	for {
		t.mu.Lock()
		gate := t.gate
		t.mu.Unlock()
		now := t.p.o.Now()
		if !now.Before(t.readUntil) || gate.After(t.readUntil) {
			return &notStartedError{"the poll's deadline came first"}
		}
		if gate.Sub(now) > t.p.o.MaxRetryAfter {
			return &notStartedError{"Graph asked to wait longer than MaxRetryAfter"}
		}
		if !gate.After(now) {
			return nil
		}
		if err := t.p.o.Sleep(ctx, gate.Sub(now)); err != nil {
			return err
		}
	}
}

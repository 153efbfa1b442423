package presence

import (
	"context"
	"slices"
	"sort"
	"time"
)

// pollPlan is what one poll of one tenant does. A timer tick plans every
// tracked user of the tenant (tickPlan); a fan-out message plans its one
// shard (shardPlan). Everything the two kinds do differently is a field
// here, set by those two constructors, so that the poll itself does not
// ask which kind it is.
type pollPlan struct {
	kind   string // PollFigures.Kind: "timer" or "shard"
	tenant string
	// users returns whose presence to read, sorted and without
	// duplicates, and how many ids it left out as unusable.
	users func(ctx context.Context) ([]string, int, error)
	// only lists the shards to read (they are read even when handed to a
	// fan-out message: the plan is that message's); nil means every shard
	// not handed to a message.
	only []int
	// wantGen is the layout generation the message was planned in; 0 for
	// a tick, which reads whatever generation is current.
	wantGen int64

	relayout       bool   // may start a relayout when the tenant grew or shrank
	remember       bool   // counts as the tenant's poll for Poll's least-recently-polled order
	fanOut         bool   // may fan out shards the deadline left over
	collectGarbage bool   // deletes retired generations' rows after the poll
	figuresRow     string // the state row the poll's figures go to

	// Set by layOut: the generation read, the users of each of its
	// shards, the shards to read in the order they are read, and when
	// (which shards are handed out and which sources pause is as of then).
	gen       int64
	byShard   [][]string
	order     []int
	plannedAt time.Time
	// skip: users a trusted presence subscription vouches for as of
	// plannedAt; they are not read (reconciliation reads them every
	// PRESENCE_RECONCILE_EVERY, and at once when it stops vouching).
	skip map[string]bool
}

// tickPlan plans a timer tick's poll of tenant: every tracked user.
func (p *Poller) tickPlan(tenant string) pollPlan {
	return pollPlan{
		kind: "timer", tenant: tenant,
		users: func(ctx context.Context) ([]string, int, error) {
			all, err := p.o.Tracked.TrackedUsers(ctx, tenant)
			if err != nil {
				return nil, 0, err
			}
			var users []string
			invalid := 0
			for _, id := range all {
				if validUserID(id) {
					users = append(users, id)
				} else {
					invalid++
				}
			}
			return slices.Compact(slices.Sorted(slices.Values(users))), invalid, nil
		},
		relayout: true, remember: true, fanOut: true, collectGarbage: true, figuresRow: rowLastPoll,
	}
}

// shardPlan plans the poll of a fan-out message's shard, with the users
// the poll that sent it saw (validated by PollShard).
func shardPlan(m ShardMessage) pollPlan {
	users := slices.Compact(slices.Sorted(slices.Values(m.Users)))
	return pollPlan{
		kind: "shard", tenant: m.Tenant,
		users:   func(context.Context) ([]string, int, error) { return users, 0, nil },
		only:    []int{m.Shard},
		wantGen: m.Gen,
		// No relayout (the message belongs to a generation), no fan-out of
		// its own, no garbage collection: that is the timer's work.
		figuresRow: rowLastShardPoll,
	}
}

// layOut prepares the tenant's layout for users and fills in the plan's
// generation, shards and order. It returns false when there is nothing to
// read: no users and no shards, or a message from an older layout.
func (p *Poller) layOut(ctx context.Context, pl *pollPlan, users []string) (bool, error) {
	lay, err := p.o.Store.prepare(ctx, pl.tenant, len(users), p.o.TargetShardUsers, pl.only, pl.relayout)
	if err != nil {
		return false, err
	}
	gen, nShards := lay.target()
	if pl.wantGen != 0 && gen != pl.wantGen {
		p.o.Log.Info("presence shard message dropped: the tenant was relaid out since", "tenant", pl.tenant, "kind", pl.kind, "gen", pl.wantGen, "current", gen)
		return false, nil
	}
	if nShards == 0 {
		return false, nil // no users and never polled: nothing to do
	}
	for _, sh := range pl.only {
		if sh >= nShards {
			p.o.Log.Error("presence shard message dropped: its generation has no such shard", "tenant", pl.tenant, "gen", gen, "shard", sh, "shards", nShards)
			return false, nil
		}
	}
	pl.gen = gen
	pl.byShard = make([][]string, nShards)
	for _, id := range users {
		if sh := shardOf(id, nShards); pl.only == nil || slices.Contains(pl.only, sh) {
			pl.byShard[sh] = append(pl.byShard[sh], id)
		}
	}
	pl.plannedAt = p.o.Now()
	pl.skip = p.o.Store.trustedUsers(pl.tenant, pl.plannedAt)
	pl.order = orderShards(pl.only, nShards, p.o.Store.shardStates(pl.tenant, gen), pl.plannedAt)
	return true, nil
}

// orderShards returns the shards to read: only's, or every shard not
// handed to a fan-out message at now. Oldest confirmation first, so that
// what a deadline leaves over is done first next time; partitions by their
// oldest shard and the shards of a partition together, so that a
// partition's changes are written in one go.
func orderShards(only []int, nShards int, states map[int]shardState, now time.Time) []int {
	var order []int
	for sh := 0; sh < nShards; sh++ {
		if only != nil && !slices.Contains(only, sh) {
			continue
		}
		if only == nil && states[sh].FannedOutUntil.After(now) {
			continue
		}
		order = append(order, sh)
	}
	oldest := map[int]time.Time{}
	for _, sh := range order {
		p, at := partitionOf(sh), states[sh].ConfirmedAt
		if cur, ok := oldest[p]; !ok || at.Before(cur) {
			oldest[p] = at
		}
	}
	sort.SliceStable(order, func(i, j int) bool {
		pi, pj := partitionOf(order[i]), partitionOf(order[j])
		if pi != pj {
			return oldest[pi].Before(oldest[pj]) || (oldest[pi].Equal(oldest[pj]) && pi < pj)
		}
		return order[i] < order[j]
	})
	return order
}

package presence

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// tenantPoll is one poll of one tenant: its sources (sources.go) and its
// calls (read.go), shared by the calls under way.
type tenantPoll struct {
	p         *Poller
	tenant    string
	readUntil time.Time
	sources   []switchboard.PresenceSource

	mu        sync.Mutex
	statuses  map[switchboard.PresenceSource]SourceStatus
	touched   map[switchboard.PresenceSource]bool
	dead      map[switchboard.PresenceSource]*switchboard.SourceError
	used      map[switchboard.PresenceSource]bool
	calls     int
	errors    int
	throttled int
	gate      time.Time // no call starts before: Graph asked us to wait
	lastErr   map[switchboard.PresenceSource]*switchboard.SourceError
}

// pollTenant carries out pl until deadline: lay out, read, commit, fan
// out what is left (when the plan may), and record the figures and source
// statuses.
func (p *Poller) pollTenant(ctx context.Context, pl pollPlan, deadline time.Time) PollFigures {
	start := p.o.Now()
	fig := PollFigures{PresencePollFigures: switchboard.PresencePollFigures{Kind: pl.kind, StartedAt: start}}
	log := p.o.Log.With("tenant", pl.tenant, "kind", fig.Kind)
	defer func() {
		fig.Duration = p.o.Now().Sub(fig.StartedAt)
		if pl.remember {
			p.mu.Lock()
			p.lastPoll[pl.tenant] = start
			p.mu.Unlock()
		}
		lvl := slog.LevelInfo
		if fig.Error != "" {
			lvl = slog.LevelWarn
		}
		log.Log(ctx, lvl, "presence poll", "users", fig.Users, "changed", fig.Changed, "calls", fig.Calls, "errors", fig.Errors,
			"shards", fig.Shards, "confirmed", fig.ShardsConfirmed, "left", fig.ShardsLeft, "fannedOut", fig.ShardsFannedOut,
			"duration", fig.Duration, "error", fig.Error)
	}()
	if store.CheckKey("tenant", pl.tenant) != nil || pl.tenant == "" {
		fig.Error = "tenant id is not usable as a key"
		return fig
	}
	if !p.plan(ctx, &pl, &fig, log) {
		return fig
	}
	t := p.startTenantPoll(ctx, pl, deadline, &fig, log)
	phase := p.o.Now()
	res := t.commitWaves(ctx, pl.gen, pl.order, t.readShards(ctx, pl.order, pl.byShard, pl.skip))
	gate := p.keepGate(t)
	log.Debug("presence poll: read and written", "took", p.o.Now().Sub(phase), "lastCallDone", res.readDone.Sub(phase))
	t.figures(&fig, res)
	if len(res.left) > 0 && pl.fanOut && p.o.Queue != nil && len(res.notStarted) > 0 {
		n, err := p.fanOut(ctx, pl.tenant, pl.gen, res.notStarted, pl.byShard, gate)
		fig.ShardsFannedOut = n
		if err != nil {
			fig.Errors++
			log.Warn("presence fan-out failed; the shards are left to the next poll", "err", err)
		}
	}
	switch {
	case res.err != nil:
		fig.Error = res.err.Error()
	case fig.Users > 0 && len(t.used) == 0:
		fig.Error = t.failureSummary()
	}
	p.saveStatus(ctx, pl, t, &fig, log)
	if pl.collectGarbage && p.o.Now().Before(deadline) {
		if err := p.o.Store.collectGarbage(ctx, pl.tenant, deadline); err != nil {
			log.Warn("presence: cleaning up retired layouts failed", "err", err)
		}
	}
	return fig
}

// plan reads whose presence pl covers and lays the tenant out for them.
// It returns false when there is nothing to read; failures are in fig.
func (p *Poller) plan(ctx context.Context, pl *pollPlan, fig *PollFigures, log *slog.Logger) bool {
	users, invalid, err := pl.users(ctx)
	if err != nil {
		fig.Error = "reading the tracked users failed: " + err.Error()
		fig.Errors++
		return false
	}
	fig.Errors += invalid
	phase := p.o.Now()
	ok, err := p.layOut(ctx, pl, users)
	log.Debug("presence poll: state read", "took", p.o.Now().Sub(phase))
	if err != nil {
		fig.Error = "reading the presence state failed: " + err.Error()
		fig.storageFailed = true
		fig.Errors++
		return false
	}
	if !ok {
		return false
	}
	for _, sh := range pl.order {
		for _, id := range pl.byShard[sh] {
			if !pl.skip[id] {
				fig.Users++
			}
		}
		fig.Covered += len(pl.byShard[sh])
	}
	fig.Covered -= fig.Users
	fig.Shards = len(pl.order)
	return true
}

// startTenantPoll sets up the poll's sources: their statuses as stored,
// the candidates, and a Retry-After that outlived an earlier poll of the
// tenant (it still holds).
func (p *Poller) startTenantPoll(ctx context.Context, pl pollPlan, deadline time.Time, fig *PollFigures, log *slog.Logger) *tenantPoll {
	t := &tenantPoll{p: p, tenant: pl.tenant, readUntil: deadline.Add(-p.o.Margin), statuses: p.o.Store.sourceStatuses(pl.tenant),
		touched: map[switchboard.PresenceSource]bool{}, dead: map[switchboard.PresenceSource]*switchboard.SourceError{},
		used: map[switchboard.PresenceSource]bool{}, lastErr: map[switchboard.PresenceSource]*switchboard.SourceError{}}
	p.mu.Lock()
	t.gate = p.gates[pl.tenant]
	p.mu.Unlock()
	for _, src := range switchboard.PresenceSources {
		if st, ok := t.statuses[src]; !ok || st.Source == "" {
			t.statuses[src] = SourceStatus{PresenceSourceStatus: switchboard.PresenceSourceStatus{Source: src}}
		}
	}
	var err error
	t.sources, err = p.candidates(ctx, pl.tenant, t.statuses, pl.plannedAt)
	if err != nil {
		fig.Errors++
		log.Warn("presence: tenant settings unreadable; presence accounts not used this poll", "err", err)
	}
	return t
}

// keepGate keeps the poll's Retry-After for the tenant's next poll in
// this process while it lasts, and returns it.
func (p *Poller) keepGate(t *tenantPoll) time.Time {
	t.mu.Lock()
	gate := t.gate
	t.mu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if gate.After(p.o.Now()) {
		p.gates[t.tenant] = gate
	} else {
		delete(p.gates, t.tenant)
	}
	return gate
}

// figures adds what the reads and commits did to fig.
func (t *tenantPoll) figures(fig *PollFigures, res runResult) {
	fig.Changed, fig.ShardsConfirmed = res.changed, res.confirmed
	fig.Errors += t.errors + res.writeErrors
	fig.Calls, fig.Throttled = t.calls, t.throttled
	for _, src := range switchboard.PresenceSources {
		if t.used[src] {
			fig.Sources = append(fig.Sources, src)
		}
	}
	fig.ShardsLeft = len(res.left)
}

// saveStatus writes the source statuses the poll touched and its figures
// to the state partition, last.
func (p *Poller) saveStatus(ctx context.Context, pl pollPlan, t *tenantPoll, fig *PollFigures, log *slog.Logger) {
	var ops []store.Op
	t.mu.Lock()
	for src := range t.touched {
		ops = append(ops, store.Op{Kind: store.OpUpsert, Entity: t.statuses[src].entity(pl.tenant)})
	}
	t.mu.Unlock()
	fig.Duration = p.o.Now().Sub(fig.StartedAt)
	figRow := fig.entity(pl.tenant)
	figRow.RowKey = pl.figuresRow
	ops = append(ops, store.Op{Kind: store.OpUpsert, Entity: figRow})
	if err := p.o.Store.saveState(ctx, pl.tenant, ops); err != nil {
		fig.Errors++
		log.Warn("presence: saving the poll's status failed", "err", err)
	}
}

// runResult is what a poll's reads and commits did.
type runResult struct {
	changed, confirmed, writeErrors int
	left                            []int // shards not confirmed
	readDone                        time.Time
	notStarted                      []int // shards none of whose calls started (deadline, budget)
	err                             error
}

// commitWaves commits the shards of generation gen as they are read, in
// waves of WavePartitions whole partitions, while further calls go on.
func (t *tenantPoll) commitWaves(ctx context.Context, gen int64, order []int, rd *reading) runResult {
	var res runResult
	inPartition := map[int]int{}
	for _, sh := range order {
		inPartition[partitionOf(sh)]++
	}
	waiting := map[int][]shardWrite{}
	partitionsInWave := 0
	var wave []shardWrite
	flush := func() {
		if len(wave) == 0 {
			return
		}
		stats, err := t.p.o.Store.commit(ctx, t.tenant, gen, wave)
		res.changed += stats.Changed
		res.confirmed += len(stats.Confirmed)
		res.writeErrors += stats.Failed
		if err != nil {
			res.writeErrors++
			res.err = fmt.Errorf("writing readings failed: %w", err)
		}
		wave, partitionsInWave = wave[:0], 0
	}
	for sr := range rd.ready {
		if !sr.complete {
			if !sr.started {
				res.notStarted = append(res.notStarted, sr.shard)
			}
			res.left = append(res.left, sr.shard)
		}
		p := partitionOf(sr.shard)
		if sr.complete || len(sr.readings) > 0 {
			waiting[p] = append(waiting[p], sr.shardWrite)
		}
		if inPartition[p]--; inPartition[p] > 0 {
			continue
		}
		wave = append(wave, waiting[p]...)
		delete(waiting, p)
		if partitionsInWave++; partitionsInWave >= t.p.o.WavePartitions {
			flush()
		}
	}
	flush()
	res.readDone = rd.readDone
	slices.Sort(res.left)
	slices.Sort(res.notStarted)
	return res
}

// fanOut sends one message per shard and marks the shards as handed over.
// While Graph asked the tenant to wait (notBefore, its Retry-After), the
// messages are scheduled for then.
func (p *Poller) fanOut(ctx context.Context, tenant string, gen int64, shards []int, byShard [][]string, notBefore time.Time) (int, error) {
	now := p.o.Now()
	var at time.Time
	if notBefore.After(now) {
		at, now = notBefore, notBefore
	}
	until := now.Add(p.o.FanOutFor)
	var planned []int
	for _, sh := range shards {
		if len(byShard[sh]) > 0 {
			planned = append(planned, sh)
		}
	}
	// Marked before the messages go out, so that a message handled at once
	// hands its shard back (PollShard) after the mark, not before it.
	if err := p.o.Store.markFannedOut(ctx, tenant, gen, planned, until); err != nil {
		return 0, err
	}
	var sent []int
	var firstErr error
	for _, sh := range planned {
		body, err := json.Marshal(ShardMessage{Tenant: tenant, Gen: gen, Shard: sh, Users: byShard[sh], NotAfter: until})
		if err != nil {
			firstErr = err
			break
		}
		id := fmt.Sprintf("presence.%s.%d.%d.%d", tenant, gen, sh, until.Unix())
		msg := switchboard.Message{Body: body, MessageID: id, ContentType: "application/json", ScheduledAt: at}
		if _, err := p.o.Queue.Send(ctx, p.o.QueueName, msg); err != nil {
			firstErr = err
			break
		}
		sent = append(sent, sh)
	}
	if unsent := planned[len(sent):]; len(unsent) > 0 {
		// Not handed over after all: the next poll takes them.
		if err := p.o.Store.markFannedOut(ctx, tenant, gen, unsent, p.o.Now()); err != nil {
			p.o.Log.Warn("presence fan-out: handing unsent shards back failed", "tenant", tenant, "err", err)
		}
	}
	return len(sent), firstErr
}

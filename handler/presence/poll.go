package presence

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// PollerOptions configures a Poller. Store, Graph and Tracked are
// required.
type PollerOptions struct {
	Store    *Store
	Graph    Graph
	Tracked  switchboard.TrackedUsers
	Settings Settings // nil: no tenant tracks over guest accounts
	// Queue and QueueName fan out shards left over at the deadline to
	// PollShard; a nil Queue leaves them to the next poll.
	Queue     switchboard.Queue
	QueueName string

	// Account1UPN and Account2UPN name the presence accounts ("" when not
	// configured); ApplicationConfigured says whether the app has a
	// secret for application permission.
	Account1UPN, Account2UPN string
	ApplicationConfigured    bool

	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	Log   *slog.Logger

	ParallelCalls     int           // Graph calls in flight per tenant (default 16)
	ParallelTenants   int           // tenants polled at once (default 4)
	MaxCallsPerTenant int           // Graph calls per tenant per poll, retries included (default 1,000)
	MaxThrottleWaits  int           // 429/503 answers one call may wait out (default 4)
	MaxRetryAfter     time.Duration // longest Retry-After waited for (default 30 s)
	Margin            time.Duration // no call starts later than the deadline minus this (default 3 s)
	SourceCooldown    time.Duration // pause after a source's own failure, doubling up to 8x (default 5 min)
	TargetShardUsers  int           // users per shard a layout aims at (default 400)
	FanOutFor         time.Duration // how long a fanned-out shard is left to its message (default 2 min)
	WavePartitions    int           // partitions committed together while calls go on (default 8)
}

// Poller reads presence from Graph into the Store.
type Poller struct {
	o PollerOptions

	mu       sync.Mutex
	lastPoll map[string]time.Time // when each tenant was last polled by this process
	gates    map[string]time.Time // per tenant: no Graph call before (Retry-After), in this process
}

// NewPoller returns a Poller.
func NewPoller(o PollerOptions) (*Poller, error) {
	if o.Store == nil || o.Graph == nil || o.Tracked == nil {
		return nil, switchboard.Errorf(switchboard.EINTERNAL, "presence.NewPoller", "store, graph and tracked users are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sleep == nil {
		o.Sleep = sleepCtx
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.ParallelCalls, 16)
	def(&o.ParallelTenants, 4)
	def(&o.MaxCallsPerTenant, 1000)
	def(&o.MaxThrottleWaits, 4)
	def(&o.TargetShardUsers, 400)
	def(&o.WavePartitions, 8)
	defd(&o.MaxRetryAfter, 30*time.Second)
	defd(&o.Margin, 3*time.Second)
	defd(&o.SourceCooldown, 5*time.Minute)
	defd(&o.FanOutFor, 2*time.Minute)
	return &Poller{o: o, lastPoll: map[string]time.Time{}, gates: map[string]time.Time{}}, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Summary is what one Poll did, per tenant.
type Summary struct {
	Tenants map[string]PollFigures
	// Skipped lists tenants not started before the deadline.
	Skipped []string
}

// Poll refreshes every tracked tenant until deadline: tenants least
// recently polled first, ParallelTenants at once. Shards a tenant could
// not start before the deadline are fanned out (with a queue) or left to
// the next poll; tenants not started are left to the next poll. A tenant
// that fails is recorded in its figures and does not stop the others.
func (p *Poller) Poll(ctx context.Context, deadline time.Time) (Summary, error) {
	sum := Summary{Tenants: map[string]PollFigures{}}
	tenants, err := p.o.Tracked.Tenants(ctx)
	if err != nil {
		return sum, switchboard.Wrap(switchboard.EUNAVAILABLE, "presence.Poll", err)
	}
	p.mu.Lock()
	sort.SliceStable(tenants, func(i, j int) bool { return p.lastPoll[tenants[i]].Before(p.lastPoll[tenants[j]]) })
	p.mu.Unlock()
	var mu sync.Mutex
	sem := make(chan struct{}, p.o.ParallelTenants)
	var wg sync.WaitGroup
	for _, tenant := range tenants {
		sem <- struct{}{}
		if !p.o.Now().Before(deadline.Add(-p.o.Margin)) {
			<-sem
			sum.Skipped = append(sum.Skipped, tenant)
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fig := p.pollTenant(ctx, tenant, deadline, nil)
			mu.Lock()
			sum.Tenants[tenant] = fig
			mu.Unlock()
		}()
	}
	wg.Wait()
	return sum, nil
}

// ShardMessage is the body of a fan-out message: one shard of a tenant's
// layout generation, with its users as the poll that planned it saw them.
type ShardMessage struct {
	Tenant   string    `json:"tenant"`
	Gen      int64     `json:"gen"`
	Shard    int       `json:"shard"`
	Users    []string  `json:"users"`
	NotAfter time.Time `json:"notAfter"`
}

// PollShard polls the shard a fan-out message names, until deadline. A
// malformed or outdated message is logged and dropped (nil error): it
// would fail the same way on every redelivery. Errors are transient.
func (p *Poller) PollShard(ctx context.Context, body []byte, deadline time.Time) error {
	var m ShardMessage
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		p.o.Log.Error("presence shard message dropped: malformed", "err", err, "bytes", len(body))
		return nil
	}
	if err := m.validate(); err != nil {
		p.o.Log.Error("presence shard message dropped: invalid", "err", err, "tenant", m.Tenant)
		return nil
	}
	if p.o.Now().After(m.NotAfter) {
		p.o.Log.Info("presence shard message dropped: expired; the next poll covers the shard", "tenant", m.Tenant, "shard", m.Shard, "notAfter", m.NotAfter)
		return nil
	}
	fig := p.pollTenant(ctx, m.Tenant, deadline, &m)
	if fig.storageFailed {
		// Nothing was tried (storage unreachable): worth a redelivery,
		// which the message's notAfter bounds.
		return switchboard.Errorf(switchboard.EUNAVAILABLE, "presence.PollShard", "%s", fig.Error)
	}
	if fig.Shards > 0 {
		// The message did its part: the shard is the timer's again (left
		// out for all of FanOutFor, it would go stale before the next
		// message).
		if err := p.o.Store.markFannedOut(ctx, m.Tenant, m.Gen, []int{m.Shard}, p.o.Now()); err != nil {
			p.o.Log.Warn("presence shard: handing the shard back to the timer failed", "tenant", m.Tenant, "shard", m.Shard, "err", err)
		}
	}
	return nil
}

func (m ShardMessage) validate() error {
	if m.Tenant == "" || store.CheckKey("tenant", m.Tenant) != nil || len(m.Tenant) > 64 {
		return fmt.Errorf("tenant %q is not a tenant id", m.Tenant)
	}
	if m.Gen <= 0 || m.Shard < 0 || m.Shard >= maxShards {
		return fmt.Errorf("gen %d / shard %d out of range", m.Gen, m.Shard)
	}
	if len(m.Users) == 0 || len(m.Users) > 4*switchboard.MaxPresenceIDsPerCall {
		return fmt.Errorf("%d users: 1 to %d expected", len(m.Users), 4*switchboard.MaxPresenceIDsPerCall)
	}
	for _, u := range m.Users {
		if !validUserID(u) {
			return fmt.Errorf("user id %q is not usable", u)
		}
	}
	if m.NotAfter.IsZero() {
		return fmt.Errorf("notAfter missing")
	}
	return nil
}

func validUserID(id string) bool {
	return id != "" && len(id) <= 128 && store.CheckKey("user id", id) == nil
}

// call is one getPresencesByUserId request: up to MaxPresenceIDsPerCall users,
// from one or more consecutive shards.
type call struct {
	ids    []string
	shards []int // the shards of ids, in order
	counts []int // how many ids of each shard
}

// tenantPoll is one poll of one tenant.
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

// pollTenant polls one tenant (all its shards, or the one of a fan-out
// message) and records its figures and source statuses.
func (p *Poller) pollTenant(ctx context.Context, tenant string, deadline time.Time, msg *ShardMessage) PollFigures {
	start := p.o.Now()
	fig := PollFigures{Kind: "timer", StartedAt: start}
	if msg != nil {
		fig.Kind = "shard"
	}
	log := p.o.Log.With("tenant", tenant, "kind", fig.Kind)
	defer func() {
		fig.Duration = p.o.Now().Sub(fig.StartedAt)
		if msg == nil {
			p.mu.Lock()
			p.lastPoll[tenant] = start
			p.mu.Unlock()
		}
		lvl := slog.LevelInfo
		if fig.Error != "" {
			lvl = slog.LevelWarn
		}
		log.Log(ctx, lvl, "presence poll", "users", fig.Users, "changed", fig.Changed, "calls", fig.Calls, "errors", fig.Errors,
			"shards", fig.Shards, "confirmed", fig.ShardsConfirmed, "left", fig.ShardsLeft, "fannedOut", fig.ShardsFannedOut, "duration", fig.Duration, "error", fig.Error)
	}()
	if store.CheckKey("tenant", tenant) != nil || tenant == "" {
		fig.Error = "tenant id is not usable as a key"
		return fig
	}

	// Whose presence, and how it is laid out.
	var users []string
	if msg != nil {
		users = slices.Compact(slices.Sorted(slices.Values(msg.Users)))
	} else {
		all, err := p.o.Tracked.TrackedUsers(ctx, tenant)
		if err != nil {
			fig.Error = "reading the tracked users failed: " + err.Error()
			fig.Errors++
			return fig
		}
		for _, id := range all {
			if validUserID(id) {
				users = append(users, id)
			} else {
				fig.Errors++
			}
		}
		users = slices.Compact(slices.Sorted(slices.Values(users)))
	}
	var only []int
	if msg != nil {
		only = []int{msg.Shard}
	}
	phase := p.o.Now()
	lay, err := p.o.Store.prepare(ctx, tenant, len(users), p.o.TargetShardUsers, only, msg == nil)
	log.Debug("presence poll: state read", "took", p.o.Now().Sub(phase))
	if err != nil {
		fig.Error = "reading the presence state failed: " + err.Error()
		fig.storageFailed = true
		fig.Errors++
		return fig
	}
	gen, nShards := lay.target()
	if msg != nil && gen != msg.Gen {
		log.Info("presence shard message dropped: the tenant was relaid out since", "gen", msg.Gen, "current", gen)
		return fig
	}
	if nShards == 0 {
		return fig // no users and never polled: nothing to do
	}
	byShard := make([][]string, nShards)
	for _, id := range users {
		sh := shardOf(id, nShards)
		if msg != nil && sh != msg.Shard {
			continue
		}
		byShard[sh] = append(byShard[sh], id)
	}

	// Oldest confirmation first, so that what a deadline leaves over is
	// done first next time; shards handed to a fan-out message are left to
	// it.
	states := p.o.Store.shardStates(tenant, gen)
	now := p.o.Now()
	var order []int
	for sh := 0; sh < nShards; sh++ {
		if msg != nil && sh != msg.Shard {
			continue
		}
		if msg == nil && states[sh].FannedOutUntil.After(now) {
			continue
		}
		order = append(order, sh)
	}
	// Partitions by their oldest shard, and the shards of a partition
	// together, so that a partition's changes are written in one go.
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
	for _, sh := range order {
		fig.Users += len(byShard[sh])
	}
	fig.Shards = len(order)

	t := &tenantPoll{p: p, tenant: tenant, readUntil: deadline.Add(-p.o.Margin), statuses: p.o.Store.sourceStatuses(tenant),
		touched: map[switchboard.PresenceSource]bool{}, dead: map[switchboard.PresenceSource]*switchboard.SourceError{}, used: map[switchboard.PresenceSource]bool{}, lastErr: map[switchboard.PresenceSource]*switchboard.SourceError{}}
	// A Retry-After that outlived an earlier poll of the tenant still holds.
	p.mu.Lock()
	t.gate = p.gates[tenant]
	p.mu.Unlock()
	for _, src := range switchboard.PresenceSources {
		if st, ok := t.statuses[src]; !ok || st.Source == "" {
			t.statuses[src] = SourceStatus{Source: src}
		}
	}
	t.sources, err = p.candidates(ctx, tenant, t.statuses, now)
	if err != nil {
		fig.Errors++
		log.Warn("presence: tenant settings unreadable; presence accounts not used this poll", "err", err)
	}

	phase = p.o.Now()
	res := t.run(ctx, gen, order, byShard)
	t.mu.Lock()
	gate := t.gate
	t.mu.Unlock()
	p.mu.Lock()
	if gate.After(p.o.Now()) {
		p.gates[tenant] = gate
	} else {
		delete(p.gates, tenant)
	}
	p.mu.Unlock()
	log.Debug("presence poll: read and written", "took", p.o.Now().Sub(phase), "lastCallDone", res.readDone.Sub(phase))
	fig.Changed, fig.ShardsConfirmed = res.changed, res.confirmed
	fig.Errors += t.errors + res.writeErrors
	fig.Calls, fig.Throttled = t.calls, t.throttled
	for _, src := range switchboard.PresenceSources {
		if t.used[src] {
			fig.Sources = append(fig.Sources, src)
		}
	}
	fig.ShardsLeft = len(res.left)
	if len(res.left) > 0 && msg == nil && p.o.Queue != nil && len(res.notStarted) > 0 {
		n, err := p.fanOut(ctx, tenant, gen, res.notStarted, byShard, gate)
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

	// Source statuses and figures go to the state partition last.
	var extra []store.Op
	t.mu.Lock()
	for src := range t.touched {
		extra = append(extra, store.Op{Kind: store.OpUpsert, Entity: t.statuses[src].entity(tenant)})
	}
	t.mu.Unlock()
	fig.Duration = p.o.Now().Sub(fig.StartedAt)
	figRow := fig.entity(tenant)
	if msg != nil {
		figRow.RowKey = rowLastShardPoll
	}
	extra = append(extra, store.Op{Kind: store.OpUpsert, Entity: figRow})
	if err := p.o.Store.saveState(ctx, tenant, extra); err != nil {
		fig.Errors++
		log.Warn("presence: saving the poll's status failed", "err", err)
	}
	if msg == nil && p.o.Now().Before(deadline) {
		if err := p.o.Store.collectGarbage(ctx, tenant, deadline); err != nil {
			log.Warn("presence: cleaning up retired layouts failed", "err", err)
		}
	}
	return fig
}

// candidates returns the sources to try, in order: the presence accounts
// when the tenant tracks over guest accounts, then the application, each
// only when configured and not cooling down after a failure of its own.
func (p *Poller) candidates(ctx context.Context, tenant string, statuses map[switchboard.PresenceSource]SourceStatus, now time.Time) ([]switchboard.PresenceSource, error) {
	var out []switchboard.PresenceSource
	var settingsErr error
	guest := false
	if p.o.Settings != nil {
		guest, settingsErr = p.o.Settings.TrackOverGuestAccounts(ctx, tenant)
		if settingsErr != nil {
			guest = false
		}
	}
	cool := func(src switchboard.PresenceSource) bool { return statuses[src].RetryAt.After(now) }
	if guest {
		if p.o.Account1UPN != "" && !cool(switchboard.SourceAccount1) {
			out = append(out, switchboard.SourceAccount1)
		}
		if p.o.Account2UPN != "" && !cool(switchboard.SourceAccount2) {
			out = append(out, switchboard.SourceAccount2)
		}
	}
	if p.o.ApplicationConfigured && !cool(switchboard.SourceApplication) {
		out = append(out, switchboard.SourceApplication)
	}
	return out, settingsErr
}

// runResult is what t.run did.
type runResult struct {
	changed, confirmed, writeErrors int
	left                            []int // shards not confirmed
	readDone                        time.Time
	notStarted                      []int // shards none of whose calls started (deadline, budget)
	err                             error
}

// run reads the shards in order with calls packed to switchboard.MaxPresenceIDsPerCall ids,
// ParallelCalls at once, and commits finished shards in waves while
// further calls are under way.
func (t *tenantPoll) run(ctx context.Context, gen int64, order []int, byShard [][]string) runResult {
	var res runResult
	// Pack the shards' users into calls.
	var calls []*call
	cur := &call{}
	pendingCalls := map[int]int{}
	for _, sh := range order {
		ids := byShard[sh]
		if len(ids) == 0 {
			continue
		}
		for len(ids) > 0 {
			room := switchboard.MaxPresenceIDsPerCall - len(cur.ids)
			n := min(room, len(ids))
			cur.ids = append(cur.ids, ids[:n]...)
			cur.shards = append(cur.shards, sh)
			cur.counts = append(cur.counts, n)
			pendingCalls[sh]++
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

	writes := make(map[int]*shardWrite, len(order))
	for _, sh := range order {
		writes[sh] = &shardWrite{shard: sh, users: byShard[sh], readings: map[string]sourcedReading{}, complete: true}
	}
	started := map[int]bool{}
	ready := make(chan *shardWrite, len(order))
	// Shards without users are complete at once: confirming them removes
	// readings of users no longer tracked.
	now := t.p.o.Now()
	for _, sh := range order {
		if pendingCalls[sh] == 0 {
			w := writes[sh]
			w.readAt, w.source = now, t.firstSource()
			started[sh] = true
			ready <- w
		}
	}

	var mu sync.Mutex // guards writes, pendingCalls, started
	var wg sync.WaitGroup
	sem := make(chan struct{}, t.p.o.ParallelCalls)
	go func() {
		for _, c := range calls {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				readings, src, at, err := t.read(ctx, c.ids)
				mu.Lock()
				defer mu.Unlock()
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
						started[sh] = true
						for _, id := range seg {
							r, ok := byID[id]
							if !ok {
								// Graph did not report the user: nothing
								// is known of its presence.
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
						started[sh] = true
						w.complete = false
					}
					pendingCalls[sh]--
					if pendingCalls[sh] == 0 {
						ready <- w
					}
				}
			}()
		}
		wg.Wait()
		mu.Lock()
		res.readDone = t.p.o.Now()
		mu.Unlock()
		close(ready)
	}()

	// Commit in waves of whole partitions as their shards finish.
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
	for w := range ready {
		mu.Lock()
		sw := *w
		wasStarted := started[sw.shard]
		mu.Unlock()
		if !sw.complete {
			if !wasStarted {
				res.notStarted = append(res.notStarted, sw.shard)
			}
			res.left = append(res.left, sw.shard)
		}
		p := partitionOf(sw.shard)
		if sw.complete || len(sw.readings) > 0 {
			waiting[p] = append(waiting[p], sw)
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
	slices.Sort(res.left)
	slices.Sort(res.notStarted)
	return res
}

func sourceRank(s switchboard.PresenceSource) int {
	return slices.Index(switchboard.PresenceSources, s)
}

func (t *tenantPoll) firstSource() switchboard.PresenceSource {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.sources {
		if t.dead[s] == nil {
			return s
		}
	}
	return ""
}

// errNotStarted marks a call that never went out: the deadline or the
// budget came first.
type notStartedError struct{ why string }

func (e *notStartedError) Error() string { return "not started: " + e.why }

func isNotStarted(err error) bool {
	_, ok := err.(*notStartedError)
	return ok
}

// read reads ids through the first source that works: a source failing
// for a reason of its own is dropped for the rest of the poll (and the
// next source takes the call over), a throttled call waits as Graph asks
// and tries again, a Graph error moves the call to the next source (each
// source gets two attempts).
func (t *tenantPoll) read(ctx context.Context, ids []string) ([]switchboard.PresenceReading, switchboard.PresenceSource, time.Time, error) {
	attempts := map[switchboard.PresenceSource]int{}
	waits := 0
	for {
		src := t.pick(attempts)
		if src == "" {
			return nil, "", time.Time{}, t.noSourceError()
		}
		if err := t.waitGate(ctx); err != nil {
			return nil, "", time.Time{}, err
		}
		if !t.spend() {
			return nil, "", time.Time{}, &notStartedError{"the tenant's call budget is spent"}
		}
		at := t.p.o.Now()
		readings, err := t.p.o.Graph.Presences(ctx, t.tenant, src, ids)
		if err == nil {
			t.succeeded(src, at)
			return readings, src, at, nil
		}
		se := switchboard.AsSourceError(src, err)
		if !se.ReachedGraph() {
			t.refund() // the sign-in failed: no Graph request was made
		}
		t.failed(src, se)
		switch {
		case se.Reason == switchboard.SourceThrottled:
			waits++
			if waits > t.p.o.MaxThrottleWaits {
				return nil, "", time.Time{}, se
			}
			t.throttle(se.RetryAfter)
		case se.Disqualifies():
		default:
			attempts[src]++
		}
		if ctx.Err() != nil {
			return nil, "", time.Time{}, ctx.Err()
		}
	}
}

func (t *tenantPoll) pick(attempts map[switchboard.PresenceSource]int) switchboard.PresenceSource {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.sources {
		if t.dead[s] == nil && attempts[s] < 2 {
			return s
		}
	}
	return ""
}

func (t *tenantPoll) noSourceError() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.sources) == 0 {
		return &switchboard.SourceError{Reason: switchboard.SourceNotConfigured, Message: "no source is configured and enabled for this tenant (or all are pausing after failures)"}
	}
	return fmt.Errorf("every source failed: %s", t.failureSummaryLocked())
}

func (t *tenantPoll) failureSummary() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.sources) == 0 {
		return "no source is configured and enabled for this tenant (or all are pausing after failures)"
	}
	return "every source failed: " + t.failureSummaryLocked()
}

func (t *tenantPoll) failureSummaryLocked() string {
	var parts []string
	for _, s := range t.sources {
		if e := t.lastErr[s]; e != nil {
			parts = append(parts, fmt.Sprintf("%s: %s", s, e.Reason))
		}
	}
	return strings.Join(parts, "; ")
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

func (t *tenantPoll) succeeded(src switchboard.PresenceSource, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.used[src] = true
	t.touched[src] = true
	t.statuses[src] = t.statuses[src].succeeded(at)
}

func (t *tenantPoll) failed(src switchboard.PresenceSource, se *switchboard.SourceError) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.errors++
	t.touched[src] = true
	t.lastErr[src] = se
	if se.Disqualifies() {
		if t.dead[src] == nil {
			t.dead[src] = se
			t.statuses[src] = t.statuses[src].failed(t.p.o.Now(), se, t.p.o.SourceCooldown)
		}
		return
	}
	if se.Reason == switchboard.SourceThrottled {
		return // the figures count it; the source itself is fine
	}
	t.statuses[src] = t.statuses[src].failed(t.p.o.Now(), se, 0)
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
		msg := switchboard.Message{Body: body, MessageID: fmt.Sprintf("presence.%s.%d.%d.%d", tenant, gen, sh, until.Unix()), ContentType: "application/json", ScheduledAt: at}
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

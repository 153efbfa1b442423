package presence

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

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
	// Tenants start in order as others finish; one not started before the
	// deadline is left to the next poll.
	figs := make([]PollFigures, len(tenants))
	started := make([]bool, len(tenants))
	var g errgroup.Group
	g.SetLimit(p.o.ParallelTenants)
	for i, tenant := range tenants {
		g.Go(func() error {
			if !p.o.Now().Before(deadline.Add(-p.o.Margin)) {
				return nil
			}
			started[i] = true
			figs[i] = p.pollTenant(ctx, p.tickPlan(tenant), deadline)
			return nil
		})
	}
	_ = g.Wait()
	for i, tenant := range tenants {
		if started[i] {
			sum.Tenants[tenant] = figs[i]
		} else {
			sum.Skipped = append(sum.Skipped, tenant)
		}
	}
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
	fig := p.pollTenant(ctx, shardPlan(m), deadline)
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

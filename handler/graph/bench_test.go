package graph

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models"

	"switchboard/handler/dev/graphsim"
	"switchboard/handler/internal/testenv"
	"switchboard/handler/presence"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// BenchmarkPoll measures presence poll cycles at 1,000, 10,000 and
// 100,000 agents against the simulator (150-300 ms per Graph request,
// unthrottled) and Azurite, and the naive approach beside them: one
// GET /users/{id}/presence and one upsert per agent.
//
//	make bench    (or: go test -run '^$' -bench Poll -benchtime 1x ./handler/graph)
//
// Cycles: cold (nothing stored: every reading written), steady (5% of the
// agents changed since the last cycle; the handler's cache is warm), and
// restart (5% changed, first cycle of a new process: the cache is read
// from storage). The naive approach is measured on a sample of agents and
// extrapolated linearly (it makes one call and one write per agent, so its
// cost is linear); real Graph would throttle it long before 100,000.
func BenchmarkPoll(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				benchPoll(b, n)
			}
		})
	}
}

const (
	benchTenant   = "66666666-6666-6666-6666-666666666666"
	benchApp      = "77777777-7777-7777-7777-777777777777"
	benchSecret   = "bench-secret"
	benchAccount  = "presence1@switchboard.example"
	benchPassword = "bench-password"
	naiveSample   = 500
	parallelCalls = 16
)

type benchTracked []string

func (t benchTracked) Tenants(context.Context) ([]string, error) { return []string{benchTenant}, nil }
func (t benchTracked) TrackedUsers(context.Context, string) ([]string, error) {
	return append([]string(nil), t...), nil
}

type benchGuest struct{}

func (benchGuest) TrackOverGuestAccounts(context.Context, string) (bool, error) { return true, nil }

// opCounter counts the entity operations written to the presence table.
type opCounter struct {
	store.Tables
	writes atomic.Int64
}

func (c *opCounter) Table(ctx context.Context, name string) (store.Table, error) {
	t, err := c.Tables.Table(ctx, name)
	if err != nil || name != "presence" {
		return t, err
	}
	return countedTable{t, c}, nil
}

type countedTable struct {
	store.Table
	c *opCounter
}

func (t countedTable) Batch(ctx context.Context, ops []store.Op) error {
	t.c.writes.Add(int64(len(ops)))
	return t.Table.Batch(ctx, ops)
}

func (t countedTable) Upsert(ctx context.Context, e store.Entity) (string, error) {
	t.c.writes.Add(1)
	return t.Table.Upsert(ctx, e)
}

type cycle struct {
	name    string
	wall    time.Duration
	calls   int
	writes  int64
	changed int
	note    string
}

func benchPoll(b *testing.B, n int) {
	b.StopTimer()
	sim, err := graphsim.Start(graphsim.Options{Seed: uint64(n), Latency: 150 * time.Millisecond, Jitter: 150 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	sim.AddApp(benchApp, benchSecret, true)
	sim.AddAccount(benchAccount, benchPassword, false)
	sim.AddTenant(benchTenant, graphsim.TenantOptions{DelegatedConsent: true, AppConsent: true, Guests: []string{benchAccount}})
	users := sim.AddUsers(benchTenant, "contoso.example", n)
	ids := make([]string, n)
	for i, u := range users {
		ids[i] = u.ID
	}
	sim.Change(benchTenant, 0.5)
	client, err := New(Options{BaseURL: sim.GraphURL(), AuthorityHost: sim.AuthorityURL(), ClientID: benchApp, ClientSecret: benchSecret,
		Accounts: [2]Account{{UPN: benchAccount, Password: benchPassword}}, HTTPClient: sim.HTTPClient()})
	if err != nil {
		b.Fatal(err)
	}
	tables := &opCounter{Tables: testenv.Tables(b)}
	ctx := context.Background()
	newPoller := func() *presence.Poller {
		var log *slog.Logger
		if os.Getenv("BENCH_DEBUG") != "" {
			log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
		st, err := presence.NewStore(ctx, presence.StoreOptions{Tables: tables, Log: log})
		if err != nil {
			b.Fatal(err)
		}
		p, err := presence.NewPoller(presence.PollerOptions{Store: st, Graph: client, Tracked: benchTracked(ids), Settings: benchGuest{},
			Account1UPN: benchAccount, ApplicationConfigured: true, ParallelCalls: parallelCalls, Log: log})
		if err != nil {
			b.Fatal(err)
		}
		return p
	}
	// Sign in before timing: the token is cached for an hour.
	if _, err := client.Presences(ctx, benchTenant, switchboard.SourceAccount1, ids[:1]); err != nil {
		b.Fatal(err)
	}

	run := func(p *presence.Poller, name string, changed int) cycle {
		sim.ResetStats()
		tables.writes.Store(0)
		b.StartTimer()
		start := time.Now()
		sum, err := p.Poll(ctx, time.Now().Add(10*time.Minute))
		wall := time.Since(start)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		fig := sum.Tenants[benchTenant]
		if fig.ShardsConfirmed != fig.Shards || fig.Error != "" {
			b.Fatalf("%s cycle incomplete: %+v", name, fig)
		}
		return cycle{name: name, wall: wall, calls: sim.Stats().PresenceCalls, writes: tables.writes.Load(), changed: changed}
	}
	poller := newPoller()
	cycles := []cycle{run(poller, "cold", n)}
	cycles = append(cycles, run(poller, "steady", sim.Change(benchTenant, 0.05)))
	cycles = append(cycles, run(newPoller(), "restart", sim.Change(benchTenant, 0.05)))
	cycles = append(cycles, naive(b, client, tables, sim, ids))

	w := os.Stdout
	fmt.Fprintf(w, "\npresence poll, %d agents (Graph 150-300 ms per request, %d calls in flight, Azurite)\n", n, parallelCalls)
	fmt.Fprintf(w, "  %-8s %10s %8s %9s %9s  %s\n", "cycle", "wall", "calls", "writes", "changed", "")
	for _, c := range cycles {
		changed := fmt.Sprint(c.changed)
		if c.name == "naive" {
			changed = "-"
		}
		fmt.Fprintf(w, "  %-8s %9.2fs %8d %9d %9s  %s\n", c.name, c.wall.Seconds(), c.calls, c.writes, changed, c.note)
	}
	want := (n + switchboard.MaxPresenceIDsPerCall - 1) / switchboard.MaxPresenceIDsPerCall
	for _, c := range cycles[:3] {
		if c.calls != want {
			b.Errorf("%s cycle made %d Graph calls, want ceil(%d/650) = %d", c.name, c.calls, n, want)
		}
		if c.writes != int64(c.changed) {
			b.Errorf("%s cycle wrote %d readings for %d changed agents", c.name, c.writes, c.changed)
		}
	}
	b.ReportMetric(cycles[0].wall.Seconds(), "cold-s")
	b.ReportMetric(cycles[1].wall.Seconds(), "steady-s")
	b.ReportMetric(cycles[2].wall.Seconds(), "restart-s")
	b.ReportMetric(float64(cycles[1].calls), "steady-calls")
	b.ReportMetric(float64(cycles[1].writes), "steady-writes")
	b.ReportMetric(cycles[3].wall.Seconds(), "naive-s")
}

// naive reads and upserts each agent on its own, parallelCalls at once,
// for a sample of the agents, and extrapolates to all of them.
func naive(b *testing.B, c *Client, tables store.Tables, sim *graphsim.Sim, ids []string) cycle {
	ctx := context.Background()
	t, err := tables.Table(ctx, "naive")
	if err != nil {
		b.Fatal(err)
	}
	a, err := c.adapter(benchTenant, switchboard.SourceAccount1)
	if err != nil {
		b.Fatal(err)
	}
	sample := ids
	if len(sample) > naiveSample {
		sample = sample[:naiveSample]
	}
	sim.ResetStats()
	sem := make(chan struct{}, parallelCalls)
	var wg sync.WaitGroup
	var failed atomic.Int64
	start := time.Now()
	for _, id := range sample {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			u, _ := url.Parse(c.base + "/users/" + id + "/presence")
			ri := abs.NewRequestInformation()
			ri.Method = abs.GET
			ri.SetUri(*u)
			ri.Headers.TryAdd("Accept", "application/json")
			res, err := a.Send(ctx, ri, models.CreatePresenceFromDiscriminatorValue, errorMapping)
			p, ok := res.(models.Presenceable)
			if err != nil || !ok {
				failed.Add(1)
				return
			}
			if _, err := t.Upsert(ctx, store.Entity{PartitionKey: benchTenant, RowKey: id, Props: map[string]any{
				"Availability": deref(p.GetAvailability()), "Activity": deref(p.GetActivity()), "ReadAt": time.Now().UTC(),
			}}); err != nil {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	if failed.Load() > 0 {
		b.Fatalf("naive: %d of %d agents failed", failed.Load(), len(sample))
	}
	if got := sim.Stats().SingleReads; got != len(sample) {
		b.Fatalf("naive: %d reads for %d agents", got, len(sample))
	}
	scale := float64(len(ids)) / float64(len(sample))
	note := "(every cycle alike)"
	if scale > 1 {
		note = fmt.Sprintf("(measured on %d agents in %.2fs, x%.0f)", len(sample), wall.Seconds(), scale)
	}
	return cycle{name: "naive", wall: time.Duration(float64(wall) * scale), calls: len(ids), writes: int64(len(ids)), note: note}
}

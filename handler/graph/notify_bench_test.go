package graph_test

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"switchboard/handler/dev/graphsim"
	"switchboard/handler/graph"
	"switchboard/handler/httpapi"
	"switchboard/handler/internal/testenv"
	"switchboard/handler/presence"
	"switchboard/handler/richnotify"
)

// BenchmarkNotifyLatency measures, for 1,300 agents of which 5 % change
// presence per 30 s, the time from a presence change in Graph (the
// simulator) to the stored reading (the presence store routing reads),
// once with notifications (two subscriptions of 650, the simulator
// notifying 0.5-1.5 s after the change) and once with polling alone (the
// poll every 30 s), and the Graph calls per hour of each.
//
//	go test -run '^$' -bench NotifyLatency -benchtime 1x ./handler/graph   (also part of make bench)
//
// Each mode runs two 30 s windows in real time (130 changes at uniformly
// random moments), with the poll ticking every 30 s in both (with
// notifications it finds no one to read). Graph calls per hour: polling makes ⌈1,300/650⌉ calls
// per 30 s tick; with notifications the covered agents are read once per
// PRESENCE_RECONCILE_EVERY (5 min) per subscription and each subscription
// is renewed when 15 min are left of its 60 (granted) minutes; the counts
// per operation are measured, the rates are those schedules.
func BenchmarkNotifyLatency(b *testing.B) {
	for i := 0; i < b.N; i++ {
		for _, mode := range []string{"notifications", "polling"} {
			b.Run("mode="+mode, func(b *testing.B) { benchNotifyLatency(b, mode) })
		}
	}
}

func benchNotifyLatency(b *testing.B, mode string) {
	const agents, window, windows = 1300, 30 * time.Second, 2
	changes := agents * 5 / 100 * windows
	sim, err := graphsim.Start(graphsim.Options{Seed: 11, Latency: 100 * time.Millisecond, Jitter: 100 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	sim.AddApp(appID, appSecret, true)
	sim.AddAccount(account1, password1, false)
	sim.AddAccount(account2, password2, false)
	sim.AddTenant(tenantID, fullyConsented)
	users := sim.AddUsers(tenantID, "contoso.example", agents)
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	client, err := graph.New(graph.Options{BaseURL: sim.GraphURL(), AuthorityHost: sim.AuthorityURL(), ClientID: appID, ClientSecret: appSecret,
		Accounts:   [2]graph.Account{{UPN: account1, Password: password1}, {UPN: account2, Password: password2}},
		HTTPClient: sim.HTTPClient(), Timeout: 20 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	st, err := presence.NewStore(ctx, presence.StoreOptions{Tables: testenv.Tables(b)})
	if err != nil {
		b.Fatal(err)
	}
	poller, err := presence.NewPoller(presence.PollerOptions{Store: st, Graph: client, Tracked: tracked{tenantID: ids}, Settings: guestSetting(true),
		Account1UPN: account1, Account2UPN: account2})
	if err != nil {
		b.Fatal(err)
	}
	poll := func() {
		if _, err := poller.Poll(ctx, time.Now().Add(24*time.Second)); err != nil {
			b.Error(err)
		}
	}
	poll() // everything stored once, as after the first tick

	var sub *presence.Subscriber
	if mode == "notifications" {
		pemBytes, _ := richnotify.GenerateCertificate("bench")
		cert, err := richnotify.ParseCertificate(pemBytes)
		if err != nil {
			b.Fatal(err)
		}
		router := httpapi.NewRouter(slog.New(slog.DiscardHandler), nil)
		srv := httptest.NewServer(router)
		defer srv.Close()
		sub, err = presence.NewSubscriber(presence.SubscriberOptions{Store: st, Graph: client, Subs: client, Tracked: tracked{tenantID: ids},
			Settings: guestSetting(true), NotificationURL: srv.URL + "/api/presence-notifications", Certificate: cert,
			Account1UPN: account1, Account2UPN: account2})
		if err != nil {
			b.Fatal(err)
		}
		recv, err := presence.NewNotifications(presence.NotificationsOptions{Store: st, Certificate: cert, Lifecycle: sub})
		if err != nil {
			b.Fatal(err)
		}
		(&httpapi.NotificationsAPI{Receiver: recv}).Register(router)
		sim.ResetStats()
		if _, err := sub.Maintain(ctx, tenantID); err != nil {
			b.Fatal(err)
		}
		if n := len(sim.Subscriptions(tenantID)); n != 2 {
			b.Fatalf("%d subscriptions, want 2", n)
		}
	}
	setupCalls := sim.Stats().PresenceCalls
	sim.ResetStats()

	// The changes: distinct agents, uniformly random moments.
	rng := rand.New(rand.NewPCG(5, 6))
	perm := rng.Perm(agents)[:changes]
	type change struct {
		user string
		at   time.Duration
	}
	plan := make([]change, changes)
	for i, p := range perm {
		plan[i] = change{user: ids[p], at: time.Duration(rng.Int64N(int64(window * windows)))}
	}
	slices.SortFunc(plan, func(a, b change) int { return int(a.at - b.at) })

	var mu sync.Mutex
	pending := map[string]time.Time{}
	var latencies []time.Duration
	start := time.Now()
	end := start.Add(window*windows + 35*time.Second) // room for the last change to be seen
	done := make(chan struct{})
	var wg sync.WaitGroup
	{ // the poll ticks in both modes (with notifications it has no one to read)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 1; ; k++ {
				select {
				case <-done:
					return
				case <-time.After(time.Until(start.Add(time.Duration(k) * window))):
					poll()
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // the watcher: what routing would read
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			mu.Lock()
			var want []string
			for u := range pending {
				want = append(want, u)
			}
			mu.Unlock()
			if len(want) == 0 {
				continue
			}
			got, err := st.Readings(ctx, tenantID, want)
			if err != nil {
				continue
			}
			now := time.Now()
			mu.Lock()
			for _, u := range want {
				if p := got[u]; p.Activity == "InACall" {
					latencies = append(latencies, now.Sub(pending[u]))
					delete(pending, u)
				}
			}
			mu.Unlock()
		}
	}()
	for _, c := range plan {
		time.Sleep(time.Until(start.Add(c.at)))
		mu.Lock()
		pending[c.user] = time.Now()
		mu.Unlock()
		sim.SetPresence(tenantID, c.user, "Busy", "InACall", false)
	}
	for time.Now().Before(end) {
		mu.Lock()
		n := len(pending)
		mu.Unlock()
		if n == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(done)
	wg.Wait()
	stats := sim.Stats()
	mu.Lock()
	defer mu.Unlock()
	if len(pending) > 0 {
		b.Errorf("%d changes never reached the store", len(pending))
	}
	slices.Sort(latencies)
	pct := func(q float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[min(len(latencies)-1, int(q*float64(len(latencies))))]
	}
	var sum time.Duration
	for _, l := range latencies {
		sum += l
	}
	mean := time.Duration(0)
	if len(latencies) > 0 {
		mean = sum / time.Duration(len(latencies))
	}
	// Graph calls per hour on the schedules (see the doc comment).
	var perHour float64
	switch mode {
	case "polling":
		perPoll := float64(stats.PresenceCalls) / float64(windows) // one poll per window
		perHour = perPoll * 3600 / window.Seconds()
	case "notifications":
		reads := float64(setupCalls) // the read of each subscription's agents after creation
		renewalsPerHour := 2 * 60.0 / 45.0
		perHour = reads*12 + renewalsPerHour
		if stats.PresenceCalls != 0 {
			b.Errorf("%d presence reads while notifications covered every agent", stats.PresenceCalls)
		}
	}
	b.ReportMetric(float64(pct(0.50).Milliseconds()), "p50-ms")
	b.ReportMetric(float64(pct(0.95).Milliseconds()), "p95-ms")
	b.ReportMetric(float64(mean.Milliseconds()), "mean-ms")
	b.ReportMetric(float64(latencies[len(latencies)-1].Milliseconds()), "max-ms")
	b.ReportMetric(perHour, "graph-calls/h")
	b.Logf("%s: %d changes, latency p50 %v p95 %v mean %v max %v; Graph calls per hour %.0f (presence reads in the run %d, notifications sent %d)",
		mode, len(latencies), pct(0.5), pct(0.95), mean, latencies[len(latencies)-1], perHour, stats.PresenceCalls, stats.NotificationsSent)
}

package outbound_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"switchboard/handler/httpapi"
	"switchboard/handler/internal/testenv"
	"switchboard/handler/outbound"
	"switchboard/handler/servicebus"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

const benchTenant = "7e6d5c4b-3a29-4180-9f7e-6d5c4b3a2918"

// countingQueue accepts every message (no broker): what is measured is
// the API, the cap and Table Storage.
type countingQueue struct{ seq atomic.Int64 }

func (q *countingQueue) Send(ctx context.Context, name string, m switchboard.Message) (int64, error) {
	return q.seq.Add(1), nil
}

func (q *countingQueue) Cancel(ctx context.Context, name string, seq int64) error { return nil }

type noAgents struct{}

func (noAgents) Route(ctx context.Context, tenantID, serviceID string, req switchboard.RouteRequest) (switchboard.RouteDecision, error) {
	return switchboard.RouteDecision{ConversationID: req.ConversationID}, nil
}

func (noAgents) Release(ctx context.Context, tenantID, conv string) error { return nil }

type fixedLimit int

func (l fixedLimit) MaxScheduledTasksPerService(ctx context.Context, tenantID string) (int, error) {
	return int(l), nil
}

// instances starts n handler instances (each its own outbound.Service and
// HTTP server, as scaled-out Function App instances) on the same tables and
// queue, and returns their base URLs.
func instances(b *testing.B, n int, tables store.Tables, q switchboard.Queue, limit int) []string {
	b.Helper()
	var urls []string
	for range n {
		svc, err := outbound.New(context.Background(), outbound.Options{
			Tables: tables, Queue: q, QueueName: "outbound-bench", Router: noAgents{}, Limits: fixedLimit(limit),
		})
		if err != nil {
			b.Fatal(err)
		}
		rt := httpapi.NewRouter(slog.New(slog.DiscardHandler), nil)
		(&httpapi.OutboundAPI{Tasks: svc}).Register(rt)
		srv := httptest.NewServer(rt)
		b.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
	}
	return urls
}

type result struct {
	status  int
	latency time.Duration
}

// burst sends requests POSTs at once, spread over the instances, to
// service, and returns each one's status and latency and the wall time.
func burst(b *testing.B, client *http.Client, urls []string, service string, requests int) ([]result, time.Duration) {
	b.Helper()
	due := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	body := `{"destination": "+41440000000", "dueDateTimeUtc": "` + due + `"}`
	out := make([]result, requests)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range requests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			url := urls[i%len(urls)] + "/api/tenants/" + benchTenant + "/services/" + service + "/outbound-tasks"
			t0 := time.Now()
			resp, err := client.Post(url, "application/json", strings.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			out[i] = result{status: resp.StatusCode, latency: time.Since(t0)}
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	return out, time.Since(t0)
}

func percentile(rs []result, p int) time.Duration {
	l := make([]time.Duration, 0, len(rs))
	for _, r := range rs {
		l = append(l, r.latency)
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	if len(l) == 0 {
		return 0
	}
	return l[min(len(l)-1, len(l)*p/100)]
}

// BenchmarkScheduleBurst measures POST .../outbound-tasks through HTTP
// with the tasks on Azurite: rounds of 200 concurrent requests against a
// cap of 20, spread over two handler instances sharing the tables (the cap
// must hold across instances), each round on a fresh service. It reports
// the throughput of the burst (all 200 requests, 20 admitted and 180
// refused), latency percentiles, and the over-admission (tasks admitted
// beyond the cap, which must be 0; anything but 202 or 409 fails). The
// queue is in memory (queue=memory) or the Service Bus stand-in through
// the real azservicebus client (queue=servicebus); tables=memory shows the
// handler's own share without Azurite. Run with -benchtime 1x.
func BenchmarkScheduleBurst(b *testing.B) {
	for _, c := range []struct{ tables, queue string }{{"azurite", "memory"}, {"azurite", "servicebus"}, {"memory", "memory"}} {
		b.Run("tables="+c.tables+"/queue="+c.queue, func(b *testing.B) {
			var tables store.Tables = store.NewMemoryTables()
			if c.tables == "azurite" {
				tables = testenv.Tables(b)
			}
			var queue switchboard.Queue = &countingQueue{}
			if c.queue == "servicebus" {
				sb, err := servicebus.Open(servicebus.Options{ConnectionString: testenv.ServiceBus(b)})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = sb.Close(context.Background()) })
				queue = sb
			}
			const limit, requests, rounds = 20, 200, 5
			urls := instances(b, 2, tables, queue, limit)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: requests}, Timeout: time.Minute}
			// Warm up connections, tables and the queue's link.
			burst(b, client, urls, "warmup", 20)
			for range b.N {
				var all []result
				var wall time.Duration
				over := 0
				for r := range rounds {
					rs, took := burst(b, client, urls, fmt.Sprintf("burst%d", r), requests)
					wall += took
					all = append(all, rs...)
					admitted := 0
					for _, x := range rs {
						switch x.status {
						case http.StatusAccepted:
							admitted++
						case http.StatusConflict:
						default:
							b.Fatalf("round %d: status %d", r, x.status)
						}
					}
					if admitted > limit {
						over += admitted - limit
					}
					if admitted < limit {
						b.Errorf("round %d: %d admitted, want %d", r, admitted, limit)
					}
				}
				b.ReportMetric(float64(len(all))/wall.Seconds(), "req/s")
				b.ReportMetric(float64(percentile(all, 50).Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(percentile(all, 99).Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64(over), "over-admitted")
				if over != 0 {
					b.Errorf("%d tasks admitted over the cap", over)
				}
			}
		})
	}
}

// BenchmarkScheduleAdmit measures admissions alone: 10 services with a
// cap of 50 each, 50 concurrent requests per service (500 at once, all
// admitted), over two instances. Admissions of one service serialize on its
// counter; services run in parallel.
func BenchmarkScheduleAdmit(b *testing.B) {
	tables := testenv.Tables(b)
	const limit, services = 50, 10
	urls := instances(b, 2, tables, &countingQueue{}, limit)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: limit * services}, Timeout: time.Minute}
	burst(b, client, urls, "warmup", 10)
	for n := range b.N {
		var mu sync.Mutex
		var all []result
		var wg sync.WaitGroup
		t0 := time.Now()
		for s := range services {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rs, _ := burst(b, client, urls, fmt.Sprintf("admit%d-%d", n, s), limit)
				mu.Lock()
				all = append(all, rs...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		wall := time.Since(t0)
		admitted := 0
		for _, x := range all {
			if x.status == http.StatusAccepted {
				admitted++
			}
		}
		if admitted != limit*services {
			b.Errorf("admitted %d, want %d", admitted, limit*services)
		}
		b.ReportMetric(float64(admitted)/wall.Seconds(), "admitted/s")
		b.ReportMetric(float64(percentile(all, 50).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(percentile(all, 99).Microseconds())/1000, "p99-ms")
	}
}

package distribution_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"switchboard/handler/distribution"
	"switchboard/handler/httpapi"
	"switchboard/handler/internal/testenv"
	"switchboard/handler/routing"
	"switchboard/handler/switchboard"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const benchTenant = "5b0c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c4"

// allAvailable reads every user as Available, confirmed now.
type allAvailable struct{}

func (allAvailable) Readings(ctx context.Context, tenant string, ids []string) (map[string]switchboard.Presence, error) {
	now := time.Now()
	out := make(map[string]switchboard.Presence, len(ids))
	for _, u := range ids {
		out[u] = switchboard.Presence{UserID: u, Availability: switchboard.Available, Activity: switchboard.ActivityAvailable, Extended: true, Source: switchboard.SourceAccount1, ChangedAt: now, ConfirmedAt: now}
	}
	return out, nil
}

// countingQueue accepts every message (the due times lie past the run).
type countingQueue struct{ n atomic.Int64 }

func (q *countingQueue) Send(ctx context.Context, queue string, m switchboard.Message) (int64, error) {
	return q.n.Add(1), nil
}
func (q *countingQueue) Cancel(ctx context.Context, queue string, seq int64) error { return nil }

// BenchmarkDistribution enqueues 1,000 conversations over 500 agents
// through the real router on a loopback HTTP server, with the routing and
// distribution tables on Azurite. Each caller enqueues a conversation,
// accepts the offer it got for its agent and releases it, so that agents
// are free (the enqueue offers at once): the first 200 by one caller at a
// time, the other 800 by 16 callers at once. It reports enqueue-to-offer
// latency (p50, p99; the enqueue reply is the offered conversation) alone
// and under that load, throughput (whole conversations per second under
// load: enqueue, accept, release) and double offers (an agent offered a
// conversation while it had another offer or conversation, from the
// histories), which must be 0. Run with -benchtime 1x.
func BenchmarkDistribution(b *testing.B) {
	const (
		agents        = 500
		conversations = 1000
		callers       = 16
	)
	ctx := context.Background()
	tables := testenv.Tables(b)
	engine, err := routing.New(ctx, routing.Options{Tables: tables, Presence: allAvailable{}, StaleAfter: 120 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	svc, err := distribution.New(ctx, distribution.Options{Tables: tables, Agents: engine, Presence: allAvailable{}, Queue: &countingQueue{}, QueueName: "distribution"})
	if err != nil {
		b.Fatal(err)
	}
	in := routing.ServiceInput{Name: ptr("Bench"), Distribution: routing.DistributionInput{RingSeconds: ptr(180), Queue: &routing.QueueInput{MaxLength: ptr(200)}}}
	for i := range agents {
		in.Members = append(in.Members, routing.MemberInput{UserID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1)})
	}
	if _, _, err := engine.PutService(ctx, benchTenant, "bench", in, ""); err != nil {
		b.Fatal(err)
	}
	rt := httpapi.NewRouter(slog.New(slog.DiscardHandler), nil)
	(&httpapi.RoutingAPI{Engine: engine, Now: time.Now, Conversations: svc}).Register(rt)
	(&httpapi.DistributionAPI{Service: svc, Now: time.Now}).Register(rt)
	srv := httptest.NewServer(rt)
	defer srv.Close()
	client := srv.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = callers
	base := srv.URL + "/api/tenants/" + benchTenant

	do := func(method, url string, body any) (int, []byte) {
		var r io.Reader
		if body != nil {
			raw, _ := json.Marshal(body)
			r = bytes.NewReader(raw)
		}
		req, _ := http.NewRequest(method, url, r)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			b.Error(err)
			return 0, nil
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, raw
	}
	// one runs conversations [from, to) with callers at once and returns
	// the enqueue latencies of those offered at once, the count of those
	// that were not, and the wall time.
	one := func(run, from, to, callers int) ([]time.Duration, int, time.Duration) {
		var mu sync.Mutex
		var latencies []time.Duration
		notOffered := 0
		next := atomic.Int64{}
		next.Store(int64(from))
		start := time.Now()
		var wg sync.WaitGroup
		for range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1) - 1)
					if i >= to {
						return
					}
					id := fmt.Sprintf("r%d-c%04d", run, i)
					t0 := time.Now()
					status, raw := do("POST", base+"/services/bench/queue", map[string]any{"conversationId": id, "priority": 1 + i%99})
					took := time.Since(t0)
					var c struct {
						State  string `json:"state"`
						Offers []struct {
							UserID string `json:"userId"`
						} `json:"offers"`
					}
					if status != http.StatusAccepted || json.Unmarshal(raw, &c) != nil {
						b.Errorf("enqueue %s: %d %s", id, status, raw)
						return
					}
					mu.Lock()
					if c.State == distribution.StateOffered {
						latencies = append(latencies, took)
					} else {
						notOffered++
					}
					mu.Unlock()
					if len(c.Offers) == 0 {
						continue
					}
					if status, raw := do("POST", base+"/conversations/"+id+"/accept", map[string]any{"userId": c.Offers[0].UserID}); status != http.StatusOK {
						b.Errorf("accept %s: %d %s", id, status, raw)
						continue
					}
					if status, raw := do("DELETE", base+"/conversations/"+id, nil); status != http.StatusNoContent {
						b.Errorf("release %s: %d %s", id, status, raw)
					}
				}
			}()
		}
		wg.Wait()
		slices.Sort(latencies)
		return latencies, notOffered, time.Since(start)
	}
	for run := range b.N {
		// First one caller at a time (latency with a free agent and nothing
		// else going on), then 16 at once (throughput, latency under load).
		const alone = 200
		quiet, n1, _ := one(run, 0, alone, 1)
		loaded, n2, elapsed := one(run, alone, conversations, callers)
		svc.Wait()
		doubles := doubleOffers(b, svc, run, conversations)
		b.ReportMetric(ms(pct(quiet, 50)), "offer-p50-ms")
		b.ReportMetric(ms(pct(quiet, 99)), "offer-p99-ms")
		b.ReportMetric(ms(pct(loaded, 50)), "loaded-offer-p50-ms")
		b.ReportMetric(ms(pct(loaded, 99)), "loaded-offer-p99-ms")
		b.ReportMetric(float64(conversations-alone)/elapsed.Seconds(), "conversations/s")
		b.ReportMetric(float64(n1+n2), "not-offered-at-once")
		b.ReportMetric(float64(doubles), "double-offers")
		if doubles != 0 {
			b.Errorf("%d double offers", doubles)
		}
	}
}

// doubleOffers counts offers made to an agent while it had another offer
// or conversation, from the conversations' histories.
func doubleOffers(b *testing.B, svc *distribution.Service, run, n int) int {
	type span struct {
		from, to time.Time
		conv     string
	}
	spans := map[string][]span{}
	for i := range n {
		p, err := svc.Get(context.Background(), benchTenant, fmt.Sprintf("r%d-c%04d", run, i))
		if err != nil {
			b.Fatal(err)
		}
		c := p.Conversation
		var from time.Time
		for _, e := range c.History {
			switch e.Event {
			case distribution.EventOffered:
				from = e.At
			case distribution.EventEnded:
				spans[e.UserID] = append(spans[e.UserID], span{from, e.At, c.ID})
			}
		}
	}
	doubles := 0
	for _, ss := range spans {
		sort.Slice(ss, func(i, j int) bool { return ss[i].from.Before(ss[j].from) })
		for i := 1; i < len(ss); i++ {
			if ss[i].from.Before(ss[i-1].to) {
				doubles++
			}
		}
	}
	return doubles
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, len(d)*p/100)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ptr[T any](v T) *T { return &v }

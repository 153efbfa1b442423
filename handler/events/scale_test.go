package events

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/google/uuid"

	"switchboard/handler/egress"
	"switchboard/handler/internal/testenv"
	"switchboard/handler/outbox"
	"switchboard/handler/secrets"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// liveQueue delivers messages to EventDelivery in real time, as the
// Functions host does: workers concurrent invocations, a scheduled message
// when it is due, a failed invocation again after a second.
type liveQueue struct {
	ch      chan switchboard.Message
	stopped chan struct{}
	once    sync.Once
}

func newLiveQueue() *liveQueue {
	return &liveQueue{ch: make(chan switchboard.Message, 1<<16), stopped: make(chan struct{})}
}

func (q *liveQueue) Send(_ context.Context, name string, m switchboard.Message) (int64, error) {
	if name != "events" {
		return 0, fmt.Errorf("sent to queue %q", name)
	}
	if wait := time.Until(m.ScheduledAt); wait > 0 {
		time.AfterFunc(wait, func() { q.put(m) })
		return 1, nil
	}
	q.put(m)
	return 0, nil
}

func (q *liveQueue) put(m switchboard.Message) {
	select {
	case q.ch <- m:
	case <-q.stopped:
	}
}

func (q *liveQueue) Cancel(context.Context, string, int64) error { return nil }

func (q *liveQueue) run(svc *Service, workers int) {
	for range workers {
		go func() {
			for {
				select {
				case <-q.stopped:
					return
				case m := <-q.ch:
					if _, err := svc.Handle(context.Background(), m.Body); err != nil {
						time.AfterFunc(time.Second, func() { q.put(m) })
					}
				}
			}
		}()
	}
}

func (q *liveQueue) stop() { q.once.Do(func() { close(q.stopped) }) }

// arrival is one delivery a receiver accepted.
type arrival struct {
	id      string
	subject string
	seq     int64
	at      time.Time
}

// scaleReceiver verifies each delivery with the Standard Webhooks library
// and records it.
type scaleReceiver struct {
	*httptest.Server
	mu       sync.Mutex
	secret   string
	got      []arrival
	bad      int
	received chan struct{}
}

func newScaleReceiver(tb testing.TB) *scaleReceiver {
	r := &scaleReceiver{received: make(chan struct{}, 1<<16)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		at := time.Now()
		r.mu.Lock()
		defer r.mu.Unlock()
		wh, err := standardwebhooks.NewWebhook(r.secret)
		var ce struct {
			ID       string `json:"id"`
			Subject  string `json:"subject"`
			Sequence string `json:"sequence"`
		}
		if err != nil || wh.Verify(body, req.Header) != nil || json.Unmarshal(body, &ce) != nil {
			r.bad++
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		n, _ := strconv.ParseInt(ce.Sequence, 10, 64)
		r.got = append(r.got, arrival{ce.ID, ce.Subject, n, at})
		w.WriteHeader(http.StatusNoContent)
		r.received <- struct{}{}
	}))
	tb.Cleanup(r.Close)
	return r
}

// scaleResult is what one run measured.
type scaleResult struct {
	elapsed   time.Duration   // first change written to last delivery
	latencies []time.Duration // change written to receiver, every delivery
	receivers []*scaleReceiver
	committed map[string]time.Time
}

// runScale emits events events over subjects subjects (each subject's in
// order, subjects concurrently), each written as a capability writes one:
// Prepare, its change and outbox row in one batch, Flush; it returns when
// every one of receivers subscribers got every event once, or fails.
func runScale(tb testing.TB, tables store.Tables, events, subjects, receivers int) scaleResult {
	tb.Helper()
	ctx := context.Background()
	keys, err := secrets.New(secrets.GenerateKey(), "")
	if err != nil {
		tb.Fatal(err)
	}
	q := newLiveQueue()
	svc, err := New(ctx, Options{Tables: tables, Queue: q, QueueName: "events", Secrets: keys, Guard: egress.Guard{AllowPrivate: true}})
	if err != nil {
		tb.Fatal(err)
	}
	tenant := uuid.NewString()
	res := scaleResult{committed: map[string]time.Time{}}
	for range receivers {
		r := newScaleReceiver(tb)
		sub, err := svc.Create(ctx, tenant, NewSubscription{URL: r.URL, Events: []string{"switchboard.outboundTask.*"}})
		if err != nil {
			tb.Fatal(err)
		}
		r.secret = sub.Secret
		res.receivers = append(res.receivers, r)
	}
	q.run(svc, 16) // the Functions host's default maxConcurrentCalls
	defer q.stop()
	tbl, err := tables.Table(ctx, "scalecapability")
	if err != nil {
		tb.Fatal(err)
	}

	var mu sync.Mutex
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, subjects)
	for s := range subjects {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pk := fmt.Sprintf("%s|task-%03d", tenant, s)
			for n := 1; n <= events/subjects; n++ {
				ev := switchboard.Event{ID: fmt.Sprintf("%s-%03d-%04d", tenant[:8], s, n), Type: switchboard.OutboundTaskStateChanged, TenantID: tenant,
					ServiceID: "support", Subject: fmt.Sprintf("outbound-tasks/task-%03d", s), Sequence: int64(n), Time: time.Now().UTC(),
					Data: json.RawMessage(fmt.Sprintf(`{"id":"task-%03d","state":"Queued","previousState":"Scheduled","n":%d}`, s, n))}
				if err := svc.Prepare(ctx, "scalecapability", pk); err != nil {
					errs <- err
					return
				}
				ops, err := outbox.Ops(pk, []switchboard.Event{ev})
				if err != nil {
					errs <- err
					return
				}
				change := store.Op{Kind: store.OpUpsert, Entity: store.Entity{PartitionKey: pk, RowKey: "task", Props: map[string]any{"N": int64(n)}}}
				if err := tbl.Batch(ctx, append([]store.Op{change}, ops...)); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				res.committed[ev.ID] = time.Now()
				mu.Unlock()
				svc.Flush(ctx, "scalecapability", pk)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatalf("emitting: %v", err)
	}
	want := events / subjects * subjects
	deadline := time.After(3 * time.Minute)
	for _, r := range res.receivers {
		for range want {
			select {
			case <-r.received:
			case <-deadline:
				r.mu.Lock()
				n := len(r.got)
				r.mu.Unlock()
				tb.Fatalf("a receiver got %d of %d events within 3 minutes", n, want)
			}
		}
	}
	var last time.Time
	for _, r := range res.receivers {
		r.mu.Lock()
		for _, a := range r.got {
			res.latencies = append(res.latencies, a.at.Sub(res.committed[a.id]))
			if a.at.After(last) {
				last = a.at
			}
		}
		r.mu.Unlock()
	}
	res.elapsed = last.Sub(start)
	sort.Slice(res.latencies, func(i, j int) bool { return res.latencies[i] < res.latencies[j] })
	return res
}

// check verifies exactly-once delivery in sequence order per subject for
// every receiver, after a pause for any late duplicate.
func (res scaleResult) check(tb testing.TB, events int) {
	tb.Helper()
	time.Sleep(200 * time.Millisecond)
	for i, r := range res.receivers {
		r.mu.Lock()
		if r.bad > 0 {
			tb.Errorf("receiver %d: %d deliveries did not verify", i, r.bad)
		}
		seen := map[string]bool{}
		last := map[string]int64{}
		for _, a := range r.got {
			if seen[a.id] {
				tb.Errorf("receiver %d: event %s delivered twice", i, a.id)
			}
			seen[a.id] = true
			if a.seq <= last[a.subject] {
				tb.Errorf("receiver %d: %s sequence %d after %d", i, a.subject, a.seq, last[a.subject])
			}
			last[a.subject] = a.seq
		}
		if len(seen) != events {
			tb.Errorf("receiver %d: %d distinct events, want %d", i, len(seen), events)
		}
		r.mu.Unlock()
	}
}

func (res scaleResult) percentile(p int) time.Duration {
	if len(res.latencies) == 0 {
		return 0
	}
	return res.latencies[min(len(res.latencies)-1, len(res.latencies)*p/100)]
}

// 1,000 events to 3 subscribers answering 2xx: each delivered exactly once
// to each, in sequence order per subject.
func TestThousandEventsToThreeSubscribersExactlyOnceInOrder(t *testing.T) {
	res := runScale(t, store.NewMemoryTables(), 1000, 50, 3)
	res.check(t, 1000)
}

// BenchmarkEventDelivery: 1,000 events (50 subjects of 20) to 3
// subscribers on Azurite, real time, 16 concurrent EventDelivery
// invocations: deliveries per second and event-to-receiver latency (from
// the change's batch committed to the receiver's request).
func BenchmarkEventDelivery(b *testing.B) {
	for _, backend := range []struct {
		name   string
		tables func() store.Tables
	}{
		{"azurite", func() store.Tables { return testenv.Tables(b) }},
		{"memory", func() store.Tables { return store.NewMemoryTables() }},
	} {
		b.Run(backend.name, func(b *testing.B) {
			for range b.N {
				res := runScale(b, backend.tables(), 1000, 50, 3)
				res.check(b, 1000)
				b.ReportMetric(float64(len(res.latencies))/res.elapsed.Seconds(), "deliveries/s")
				b.ReportMetric(float64(res.percentile(50).Milliseconds()), "p50-ms")
				b.ReportMetric(float64(res.percentile(99).Milliseconds()), "p99-ms")
			}
		})
	}
}

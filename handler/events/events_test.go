package events

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"switchboard/handler/egress"
	"switchboard/handler/internal/fakeclock"
	"switchboard/handler/outbox"
	"switchboard/handler/secrets"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

const tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"

// queue records sent messages; pump delivers the due ones.
type queue struct {
	mu   sync.Mutex
	msgs []switchboard.Message
}

func (q *queue) Send(_ context.Context, name string, m switchboard.Message) (int64, error) {
	if name != "events" {
		return 0, fmt.Errorf("sent to queue %q", name)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.msgs = append(q.msgs, m)
	return int64(len(q.msgs)), nil
}

func (q *queue) Cancel(context.Context, string, int64) error { return nil }

// due removes and returns the messages due at now.
func (q *queue) due(now time.Time) []switchboard.Message {
	q.mu.Lock()
	defer q.mu.Unlock()
	var due, rest []switchboard.Message
	for _, m := range q.msgs {
		if m.ScheduledAt.After(now) {
			rest = append(rest, m)
		} else {
			due = append(due, m)
		}
	}
	q.msgs = rest
	return due
}

func (q *queue) scheduled() []time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []time.Time
	for _, m := range q.msgs {
		out = append(out, m.ScheduledAt)
	}
	return out
}

// loopbackDialer fails the test on any address outside 127.0.0.0/8.
func loopbackDialer(t *testing.T) egress.DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(addr)
		if a, err := netip.ParseAddr(host); err != nil || !a.Is4() || !a.IsLoopback() {
			t.Errorf("dial to %s: tests dial only 127.0.0.0/8", addr)
			return nil, fmt.Errorf("refused by the test")
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
}

type fixture struct {
	t      *testing.T
	svc    *Service
	tables store.Tables
	q      *queue
	clock  *fakeclock.Clock
	keys   *secrets.Keyring
}

func newFixture(t *testing.T, allowPrivate bool) *fixture {
	t.Helper()
	keys, err := secrets.New(secrets.GenerateKey(), "")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, tables: store.NewMemoryTables(), q: &queue{}, clock: fakeclock.New(time.Now().UTC().Truncate(time.Second)), keys: keys}
	// The clock starts at real time: receivers check webhook-timestamp
	// against their own clock.
	f.svc, err = New(context.Background(), Options{
		Tables: f.tables, Queue: f.q, QueueName: "events", Secrets: keys,
		Guard: egress.Guard{AllowPrivate: allowPrivate, Dial: loopbackDialer(t)},
		Now:   f.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// pump runs every due message until none is left.
func (f *fixture) pump() {
	f.t.Helper()
	for range 1000 {
		due := f.q.due(f.clock.Now())
		if len(due) == 0 {
			return
		}
		for _, m := range due {
			if _, err := f.svc.Handle(context.Background(), m.Body); err != nil {
				f.t.Fatalf("Handle: %v", err)
			}
		}
	}
	f.t.Fatal("messages keep coming")
}

// emit writes evs as a capability does: its change and the outbox rows in
// one batch of its own table, Prepare before, Flush after (unless crash).
func (f *fixture) emit(evs []switchboard.Event, crash bool) {
	f.t.Helper()
	ctx := context.Background()
	tbl, _ := f.tables.Table(ctx, "capability")
	pk := tenant + "|support"
	if err := f.svc.Prepare(ctx, "capability", pk); err != nil {
		f.t.Fatal(err)
	}
	ops, err := outbox.Ops(pk, evs)
	if err != nil {
		f.t.Fatal(err)
	}
	change := store.Op{Kind: store.OpUpsert, Entity: store.Entity{PartitionKey: pk, RowKey: "conv|c-1", Props: map[string]any{"State": "Offered"}}}
	if err := tbl.Batch(ctx, append([]store.Op{change}, ops...)); err != nil {
		f.t.Fatal(err)
	}
	if !crash {
		f.svc.Flush(ctx, "capability", pk)
	}
}

var seq atomic.Int64

func event(typ, service, subject string, at time.Time) switchboard.Event {
	n := seq.Add(1)
	return switchboard.Event{ID: fmt.Sprintf("ev-%d", n), Type: typ, TenantID: tenant, ServiceID: service, Subject: subject,
		Sequence: n, Time: at, Data: json.RawMessage(fmt.Sprintf(`{"conversationId":"c-1","n":%d,"previousState":"Queued"}`, n))}
}

// receiver is a webhook endpoint on loopback that verifies every request
// with the Standard Webhooks library.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	secret   string
	fail     int // answer 503 to this many requests first
	status   int // then this (0: 204)
	got      []map[string]any
	ids      []string
	headers  []http.Header
	verifyOK bool
	t        *testing.T
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t, verifyOK: true}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.secret != "" {
			wh, err := standardwebhooks.NewWebhook(r.secret)
			if err != nil || wh.Verify(body, req.Header) != nil {
				r.verifyOK = false
			}
		}
		r.headers = append(r.headers, req.Header.Clone())
		if r.fail > 0 {
			r.fail--
			w.WriteHeader(503)
			return
		}
		var ce map[string]any
		if err := json.Unmarshal(body, &ce); err != nil {
			t.Errorf("body is not JSON: %s", body)
		}
		r.got = append(r.got, ce)
		r.ids = append(r.ids, req.Header.Get("webhook-id"))
		if r.status != 0 {
			w.WriteHeader(r.status)
			return
		}
		w.WriteHeader(204)
	}))
	t.Cleanup(r.Close)
	return r
}

func (f *fixture) subscribe(url string, n NewSubscription) Subscription {
	f.t.Helper()
	n.URL = url
	if n.Events == nil {
		n.Events = []string{"*"}
	}
	sub, err := f.svc.Create(context.Background(), tenant, n)
	if err != nil {
		f.t.Fatalf("Create: %v", err)
	}
	return sub
}

func TestCreateValidatesAndShowsTheSecretOnce(t *testing.T) {
	f := newFixture(t, false)
	ctx := context.Background()
	cases := []struct {
		name  string
		n     NewSubscription
		field string
	}{
		{"no url", NewSubscription{Events: []string{"*"}}, "url"},
		{"http", NewSubscription{URL: "http://hooks.example.com/x", Events: []string{"*"}}, "url"},
		{"loopback", NewSubscription{URL: "https://127.0.0.1:9/x", Events: []string{"*"}}, "url"},
		{"localhost", NewSubscription{URL: "https://localhost/x", Events: []string{"*"}}, "url"},
		{"no events", NewSubscription{URL: "https://127.0.0.1/x"}, "events"},
		{"unknown type", NewSubscription{URL: "https://127.0.0.1/x", Events: []string{"switchboard.conversation.exploded"}}, "events[0]"},
		{"bad service", NewSubscription{URL: "https://127.0.0.1/x", Events: []string{"*"}, Services: []string{"a/b"}}, "services[0]"},
	}
	for _, c := range cases {
		_, err := f.svc.Create(ctx, tenant, c.n)
		if !switchboard.IsCode(err, switchboard.EINVALID) || switchboard.ErrorField(err) != c.field {
			t.Errorf("%s: err = %v (field %q), want EINVALID on %s", c.name, err, switchboard.ErrorField(err), c.field)
		}
	}

	// With ALLOW_PRIVATE_ENDPOINTS a loopback receiver is fine.
	f = newFixture(t, true)
	sub := f.subscribe("http://127.0.0.1:9/hook", NewSubscription{Events: []string{"switchboard.conversation.*"}})
	if !strings.HasPrefix(sub.Secret, "whsec_") || len(sub.Secret) != len("whsec_")+44 {
		t.Fatalf("secret %q is not whsec_ + base64 of 32 bytes", sub.Secret)
	}
	got, err := f.svc.Get(ctx, tenant, sub.ID)
	if err != nil || got.Secret != "" || got.URL != sub.URL || got.State != StateActive {
		t.Fatalf("Get = %+v, %v; want the subscription without its secret", got, err)
	}
	list, _ := f.svc.List(ctx, tenant)
	if len(list) != 1 || list[0].Secret != "" {
		t.Fatalf("List = %+v", list)
	}
	// Stored encrypted, not in clear.
	tbl, _ := f.tables.Table(ctx, TableName)
	e, _ := tbl.Get(ctx, subPartition(tenant), sub.ID)
	if stored := e.String("Secret"); !secrets.Sealed(stored) || strings.Contains(stored, strings.TrimPrefix(sub.Secret, "whsec_")) {
		t.Fatalf("the secret is stored as %q, not sealed", stored)
	}
}

func TestFiftySubscriptionsPerTenantEvenConcurrently(t *testing.T) {
	f := newFixture(t, true)
	var wg sync.WaitGroup
	var ok, limited atomic.Int64
	for i := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.svc.Create(context.Background(), tenant, NewSubscription{URL: fmt.Sprintf("http://127.0.0.1:9/%d", i), Events: []string{"*"}})
			switch {
			case err == nil:
				ok.Add(1)
			case switchboard.IsCode(err, switchboard.ELIMIT):
				limited.Add(1)
			default:
				t.Errorf("Create: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != MaxSubscriptions || limited.Load() != 10 {
		t.Fatalf("%d created, %d refused; want 50 and 10", ok.Load(), limited.Load())
	}
	list, _ := f.svc.List(context.Background(), tenant)
	if err := f.svc.Delete(context.Background(), tenant, list[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Create(context.Background(), tenant, NewSubscription{URL: "http://127.0.0.1:9/again", Events: []string{"*"}}); err != nil {
		t.Fatalf("after a delete, Create = %v", err)
	}
	if err := f.svc.Delete(context.Background(), tenant, "nope"); !switchboard.IsCode(err, switchboard.ENOTFOUND) {
		t.Fatalf("Delete(unknown) = %v, want ENOTFOUND", err)
	}
}

func TestEventsAreSignedCloudEventsInSequenceOrder(t *testing.T) {
	f := newFixture(t, true)
	rcv := newReceiver(t)
	sub := f.subscribe(rcv.URL+"/hook", NewSubscription{})
	rcv.secret = sub.Secret
	other := newReceiver(t)
	f.subscribe(other.URL, NewSubscription{Events: []string{"switchboard.outboundTask.stateChanged"}})
	elsewhere := newReceiver(t)
	f.subscribe(elsewhere.URL, NewSubscription{Services: []string{"sales"}})

	now := f.clock.Now()
	evs := []switchboard.Event{
		event("switchboard.conversation.queued", "support", "conversations/c-1", now),
		event("switchboard.conversation.offered", "support", "conversations/c-1", now.Add(time.Millisecond)),
		event("switchboard.conversation.connected", "support", "conversations/c-1", now.Add(2*time.Millisecond)),
	}
	f.emit(evs, false)
	f.pump()

	if !rcv.verifyOK {
		t.Fatal("a Standard Webhooks library did not verify a delivery")
	}
	if len(rcv.got) != 3 {
		t.Fatalf("receiver got %d events, want 3", len(rcv.got))
	}
	for i, ce := range rcv.got {
		want := evs[i]
		if ce["specversion"] != "1.0" || ce["id"] != want.ID || ce["type"] != want.Type || ce["subject"] != "conversations/c-1" ||
			ce["source"] != "/tenants/"+tenant+"/services/support" || ce["sequence"] != fmt.Sprintf("%020d", want.Sequence) {
			t.Errorf("event %d = %v, want %+v", i, ce, want)
		}
		if data, _ := ce["data"].(map[string]any); data["previousState"] != "Queued" {
			t.Errorf("event %d data = %v", i, ce["data"])
		}
		if rcv.ids[i] != want.ID {
			t.Errorf("webhook-id %q, want the event id %q", rcv.ids[i], want.ID)
		}
		if ct := rcv.headers[i].Get("Content-Type"); !strings.HasPrefix(ct, "application/cloudevents+json") {
			t.Errorf("Content-Type %q", ct)
		}
	}
	if len(other.got) != 0 || len(elsewhere.got) != 0 {
		t.Fatalf("filtered subscriptions got %d and %d events, want none", len(other.got), len(elsewhere.got))
	}
	// The outbox is empty once handed over.
	tbl, _ := f.tables.Table(context.Background(), "capability")
	if rows, _ := outbox.Read(context.Background(), tbl, tenant+"|support"); len(rows) != 0 {
		t.Fatalf("%d outbox rows left", len(rows))
	}
	ds, err := f.svc.Deliveries(context.Background(), tenant, sub.ID)
	if err != nil || len(ds) != 3 {
		t.Fatalf("Deliveries = %+v, %v; want 3", ds, err)
	}
	for _, d := range ds {
		if d.State != DeliveryDelivered || d.StatusCode != 204 || d.Attempts != 1 || d.NextTryAt != nil {
			t.Errorf("delivery %+v, want delivered with 204 on attempt 1", d)
		}
	}
	got, _ := f.svc.Get(context.Background(), tenant, sub.ID)
	if got.LastSuccessAt == nil || got.State != StateActive {
		t.Fatalf("subscription after success: %+v", got)
	}
}

func TestRetriesOnTheScheduleWithTheSameID(t *testing.T) {
	f := newFixture(t, true)
	rcv := newReceiver(t)
	sub := f.subscribe(rcv.URL, NewSubscription{})
	rcv.secret, rcv.fail = sub.Secret, 3
	start := f.clock.Now()
	first := event("switchboard.conversation.queued", "support", "conversations/c-9", start)
	second := event("switchboard.conversation.offered", "support", "conversations/c-9", start.Add(time.Millisecond))
	f.emit([]switchboard.Event{first, second}, false)

	f.pump() // attempt 1 fails
	for i, wait := range []time.Duration{10 * time.Second, 30 * time.Second, time.Minute} {
		sched := f.q.scheduled()
		if len(sched) == 0 || !slices.Contains(sched, f.clock.Now().Add(wait)) {
			t.Fatalf("after failure %d: next try scheduled at %v, want +%s", i+1, sched, wait)
		}
		if len(rcv.got) != 0 {
			t.Fatalf("after failure %d the later event overtook the failing one: %v", i+1, rcv.got)
		}
		s, _ := f.svc.Get(context.Background(), tenant, sub.ID)
		if s.State != StateFailing || !strings.Contains(s.LastError, "503") {
			t.Fatalf("after failure %d: subscription %+v, want failing with the status", i+1, s)
		}
		f.clock.Advance(wait)
		f.pump()
	}
	if len(rcv.got) != 2 || rcv.ids[0] != first.ID || rcv.ids[1] != second.ID {
		t.Fatalf("after the 4th attempt: ids %v, want %s then %s", rcv.ids, first.ID, second.ID)
	}
	for i, h := range rcv.headers[:4] {
		if h.Get("webhook-id") != first.ID {
			t.Fatalf("attempt %d had webhook-id %q, want %q on every retry", i+1, h.Get("webhook-id"), first.ID)
		}
	}
	if !rcv.verifyOK {
		t.Fatal("a retry was not verifiable")
	}
	ds, _ := f.svc.Deliveries(context.Background(), tenant, sub.ID)
	var firstD Delivery
	for _, d := range ds {
		if d.EventID == first.ID {
			firstD = d
		}
	}
	if firstD.Attempts != 4 || firstD.State != DeliveryDelivered {
		t.Fatalf("delivery of the first event: %+v, want delivered on attempt 4", firstD)
	}
}

func TestGoneDeletesTheSubscription(t *testing.T) {
	f := newFixture(t, true)
	rcv := newReceiver(t)
	rcv.status = http.StatusGone
	sub := f.subscribe(rcv.URL, NewSubscription{})
	f.emit([]switchboard.Event{event("switchboard.conversation.queued", "support", "conversations/c-2", f.clock.Now())}, false)
	f.pump()
	if _, err := f.svc.Get(context.Background(), tenant, sub.ID); !switchboard.IsCode(err, switchboard.ENOTFOUND) {
		t.Fatalf("after 410 Gone: Get = %v, want ENOTFOUND", err)
	}
	f.emit([]switchboard.Event{event("switchboard.conversation.ended", "support", "conversations/c-2", f.clock.Now())}, false)
	f.pump()
	if len(rcv.got) != 1 {
		t.Fatalf("receiver got %d requests after it answered 410, want 1", len(rcv.got))
	}
}

func TestDeadLetterAndDisableAfter24Hours(t *testing.T) {
	f := newFixture(t, true)
	rcv := newReceiver(t)
	rcv.fail = 1 << 30
	sub := f.subscribe(rcv.URL, NewSubscription{})
	f.emit([]switchboard.Event{event("switchboard.conversation.queued", "support", "conversations/c-3", f.clock.Now())}, false)
	start := f.clock.Now()
	f.pump()
	for f.clock.Now().Sub(start) < 26*time.Hour {
		sched := f.q.scheduled()
		if len(sched) == 0 {
			break
		}
		f.clock.Set(slices.MinFunc(sched, func(a, b time.Time) int { return a.Compare(b) }))
		f.pump()
	}
	got, _ := f.svc.Get(context.Background(), tenant, sub.ID)
	if got.State != StateDisabled || got.FailedDeliveries != 1 {
		t.Fatalf("after 24 h of failures: %+v, want disabled with 1 failed delivery", got)
	}
	ds, _ := f.svc.Deliveries(context.Background(), tenant, sub.ID)
	if len(ds) != 1 || ds[0].State != DeliveryDeadLettered || ds[0].Attempts < 24 {
		t.Fatalf("deliveries %+v, want one dead-lettered after hourly retries", ds)
	}
	n := len(rcv.headers)
	f.emit([]switchboard.Event{event("switchboard.conversation.ended", "support", "conversations/c-3", f.clock.Now())}, false)
	f.pump()
	if len(rcv.headers) != n {
		t.Fatal("a disabled subscription was still delivered to")
	}
}

func TestCrashBeforeFlushLosesNothing(t *testing.T) {
	f := newFixture(t, true)
	rcv := newReceiver(t)
	f.subscribe(rcv.URL, NewSubscription{})
	ev := event("switchboard.conversation.queued", "support", "conversations/c-4", f.clock.Now())
	f.emit([]switchboard.Event{ev}, true) // the process dies after its batch
	f.pump()
	if len(rcv.got) != 0 {
		t.Fatal("delivered without a flush?")
	}
	// Another process, after a restart, sweeps the index.
	other, err := New(context.Background(), f.svc.o)
	if err != nil {
		t.Fatal(err)
	}
	n, err := other.SweepOutbox(context.Background(), func() bool { return false })
	if err != nil || n != 1 {
		t.Fatalf("SweepOutbox = %d, %v; want 1 event handed over", n, err)
	}
	f.pump()
	if len(rcv.ids) != 1 || rcv.ids[0] != ev.ID {
		t.Fatalf("after the sweep: %v, want %s", rcv.ids, ev.ID)
	}
	// The index row goes once idle and empty.
	f.clock.Advance(time.Hour)
	if _, err := other.SweepOutbox(context.Background(), func() bool { return false }); err != nil {
		t.Fatal(err)
	}
	tbl, _ := f.tables.Table(context.Background(), TableName)
	page, _ := tbl.Query(context.Background(), store.Query{PartitionKey: indexPK})
	_ = page // the memory table's Timestamp is real time, so the row may stay; what matters is that a flushed partition has nothing to resend
	f.pump()
	if len(rcv.ids) != 1 {
		t.Fatalf("the sweep delivered again: %v", rcv.ids)
	}
}

func TestConcurrentMessagesDeliverEachEventOnceInOrder(t *testing.T) {
	f := newFixture(t, true)
	rcv := newReceiver(t)
	sub := f.subscribe(rcv.URL, NewSubscription{})
	rcv.secret = sub.Secret
	var evs []switchboard.Event
	for i := range 40 {
		evs = append(evs, event("switchboard.conversation.offered", "support", fmt.Sprintf("conversations/c-%d", i%4), f.clock.Now().Add(time.Duration(i)*time.Millisecond)))
	}
	f.emit(evs, false)
	// Every message twice (a redelivery), all at once.
	due := f.q.due(f.clock.Now())
	var wg sync.WaitGroup
	for _, m := range append(due, due...) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.svc.Handle(context.Background(), m.Body); err != nil {
				t.Errorf("Handle: %v", err)
			}
		}()
	}
	wg.Wait()
	for range 20 {
		f.clock.Advance(2 * time.Second)
		f.pump()
	}
	if len(rcv.ids) != 40 {
		t.Fatalf("%d deliveries, want exactly 40", len(rcv.ids))
	}
	last := map[string]float64{}
	for _, ce := range rcv.got {
		subj := ce["subject"].(string)
		var n float64
		fmt.Sscanf(ce["sequence"].(string), "%f", &n)
		if n <= last[subj] {
			t.Fatalf("subject %s: sequence %v after %v", subj, n, last[subj])
		}
		last[subj] = n
	}
}

func TestRetryDelay(t *testing.T) {
	want := []time.Duration{10 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute, 10 * time.Minute, 30 * time.Minute, time.Hour, time.Hour, time.Hour}
	for i, w := range want {
		if got := RetryDelay(i + 1); got != w {
			t.Errorf("RetryDelay(%d) = %s, want %s", i+1, got, w)
		}
	}
}

func TestDeliveryLogKeepsTheLast100NewestFirst(t *testing.T) {
	f := newFixture(t, true)
	rcv := newReceiver(t)
	sub := f.subscribe(rcv.URL, NewSubscription{})
	var last switchboard.Event
	for i := range 130 {
		f.clock.Advance(time.Second)
		last = event("switchboard.conversation.queued", "support", fmt.Sprintf("conversations/c-%d", i), f.clock.Now())
		f.emit([]switchboard.Event{last}, false)
		f.pump()
	}
	ds, err := f.svc.Deliveries(context.Background(), tenant, sub.ID)
	if err != nil || len(ds) != KeptDeliveries || ds[0].EventID != last.ID {
		t.Fatalf("Deliveries: %d rows, first %+v, %v; want 100, newest (%s) first", len(ds), ds[0], err, last.ID)
	}
	tbl, _ := f.tables.Table(context.Background(), TableName)
	page, _ := tbl.Query(context.Background(), store.Query{PartitionKey: logPartition(tenant, sub.ID)})
	if n := len(page.Entities); n > KeptDeliveries+trimEvery {
		t.Fatalf("the log holds %d rows; it is trimmed to %d every %d", n, KeptDeliveries, trimEvery)
	}
}

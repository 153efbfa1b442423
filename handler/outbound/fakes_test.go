package outbound

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"switchboard/handler/internal/fakeclock"
	"switchboard/handler/internal/fakes"
	"switchboard/handler/internal/testenv"
	"switchboard/handler/outbox"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

const (
	tenant  = "8f0e4c5a-1b2d-4e3f-9a6b-7c8d9e0f1a2b"
	service = "support"
	queue   = "outbound-tasks"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type clock = fakeclock.Clock

func newClock() *clock { return fakeclock.New(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)) }

// fakeQueue is the shared fake queue; it takes messages for the outbound
// queue only, with a body the worker can read.
type fakeQueue = fakes.Queue

func newQueue(now func() time.Time) *fakeQueue {
	q := fakes.NewQueue(now)
	q.Check = func(name string, m switchboard.Message) error {
		if name != queue {
			return fmt.Errorf("fakeQueue: unexpected queue %q", name)
		}
		var b message
		if err := json.Unmarshal(m.Body, &b); err != nil {
			return fmt.Errorf("fakeQueue: body %s: %v", m.Body, err)
		}
		return nil
	}
	return q
}

// body is the worker's message in s.
func body(s *fakes.Sent) message {
	var b message
	_ = json.Unmarshal(s.Msg.Body, &b) // checked when it was sent
	return b
}

// fakeRouter is the shared fake router, taking only what outbound tasks
// ask: one agent, held until released.
type fakeRouter = fakes.Router

func newRouter(agents ...string) *fakeRouter {
	r := fakes.NewRouter(agents...)
	r.Check = fakes.OneAgentUntilReleased
	return r
}

type fakeLimits struct {
	mu    sync.Mutex
	limit int
	// onRead, when set, runs on every read (time passing while a request
	// waits on its way to admission).
	onRead func()
}

func (l *fakeLimits) MaxScheduledTasksPerService(ctx context.Context, tenantID string) (int, error) {
	l.mu.Lock()
	hook := l.onRead
	limit := l.limit
	l.mu.Unlock()
	if hook != nil {
		hook()
	}
	return limit, nil
}

type fakeServices map[string]bool

func (s fakeServices) CheckService(ctx context.Context, tenantID, serviceID string) error {
	if !s[serviceID] {
		return switchboard.Errorf(switchboard.ENOTFOUND, "services", "no service %s", serviceID)
	}
	return nil
}

type fixture struct {
	t      *testing.T
	tables store.Tables
	clock  *clock
	queue  *fakeQueue
	router *fakeRouter
	limits *fakeLimits
	events *fakeOutbox
	svc    *Service
}

const (
	agentA = "00000000-0000-4000-8000-00000000000a"
	agentB = "00000000-0000-4000-8000-00000000000b"
	agentC = "00000000-0000-4000-8000-00000000000c"
)

func newFixture(t *testing.T, tables store.Tables) *fixture {
	t.Helper()
	c := newClock()
	f := &fixture{t: t, tables: tables, clock: c, queue: newQueue(c.Now), router: newRouter(), limits: &fakeLimits{limit: 20}, events: &fakeOutbox{tables: tables}}
	f.svc = f.newService()
	return f
}

// newService returns another instance over the same tables, queue and
// router (a scaled-out handler).
func (f *fixture) newService() *Service {
	f.t.Helper()
	s, err := New(context.Background(), Options{
		Tables: f.tables, Queue: f.queue, QueueName: queue, Router: f.router, Limits: f.limits,
		Services: fakeServices{service: true, "sales": true}, Events: f.events, Now: f.clock.Now,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func (f *fixture) schedule(n NewTask) Task {
	f.t.Helper()
	t, created, err := f.svc.Schedule(context.Background(), tenant, service, n)
	if err != nil {
		f.t.Fatalf("Schedule(%+v): %v", n, err)
	}
	if !created {
		f.t.Fatalf("Schedule(%+v): created = false, want a new task", n)
	}
	return t
}

func (f *fixture) get(id string) Task {
	f.t.Helper()
	t, err := f.svc.Get(context.Background(), tenant, service, id)
	if err != nil {
		f.t.Fatalf("Get(%s): %v", id, err)
	}
	return t
}

// deliver hands every due message to the worker once and returns what it
// did, in order.
func (f *fixture) deliver() []Work {
	f.t.Helper()
	var out []Work
	for _, m := range f.queue.Due(f.clock.Now()) {
		w, err := f.svc.Handle(context.Background(), m.Msg.Body)
		if err != nil {
			f.t.Fatalf("Handle(%s): %v", m.Msg.Body, err)
		}
		out = append(out, w)
	}
	return out
}

func (f *fixture) counter() int {
	f.t.Helper()
	tb, err := f.tables.Table(context.Background(), TableName)
	if err != nil {
		f.t.Fatal(err)
	}
	e, err := tb.Get(context.Background(), partition(tenant, service), counterKey)
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return 0
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return int(e.Int64("Count"))
}

func (f *fixture) table() store.Table {
	f.t.Helper()
	tb, err := f.tables.Table(context.Background(), TableName)
	if err != nil {
		f.t.Fatal(err)
	}
	return tb
}

func actions(ws []Work) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.Action
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// fakeOutbox is the events capability as outbound sees it: Prepare records
// the partition, Flush reads the partition's outbox rows, records their
// events and deletes them (as events.Service does, without delivery).
type fakeOutbox struct {
	tables store.Tables

	mu       sync.Mutex
	prepared []string
	flushed  []switchboard.Event
	// failPrepare fails every Prepare; hold keeps Flush from doing
	// anything (a process that died before it).
	failPrepare error
	hold        bool
}

func (o *fakeOutbox) Prepare(ctx context.Context, table, pk string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.failPrepare != nil {
		return o.failPrepare
	}
	o.prepared = append(o.prepared, table+"/"+pk)
	return nil
}

func (o *fakeOutbox) Flush(ctx context.Context, table, pk string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.hold {
		return
	}
	t, err := o.tables.Table(ctx, table)
	if err != nil {
		panic(err)
	}
	rows, err := outbox.Read(ctx, t, pk)
	if err != nil {
		panic(err)
	}
	for _, r := range rows {
		if err := t.Delete(ctx, pk, r.RowKey, r.ETag); err != nil {
			continue // a concurrent flush took it
		}
		o.flushed = append(o.flushed, r.Event)
	}
}

// events returns the events flushed so far, in order.
func (o *fakeOutbox) events() []switchboard.Event {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.flushed)
}

package outbound

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"switchboard/handler/internal/fakeclock"
	"switchboard/handler/internal/testenv"
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

// sent is a message the fake queue holds.
type sent struct {
	seq         int64
	msg         switchboard.Message
	body        message
	enqueuedAt  time.Time
	cancelled   bool
	delivered   int
	deadLetters bool
}

// fakeQueue is an in-memory queue with scheduled messages.
type fakeQueue struct {
	mu       sync.Mutex
	now      func() time.Time
	seq      int64
	msgs     []*sent
	cancels  []int64
	failSend error
	// beforeSend, when set, runs once before the next send.
	beforeSend func()
}

func (q *fakeQueue) Send(ctx context.Context, name string, m switchboard.Message) (int64, error) {
	q.mu.Lock()
	if hook := q.beforeSend; hook != nil {
		q.beforeSend = nil
		q.mu.Unlock()
		hook()
		q.mu.Lock()
	}
	defer q.mu.Unlock()
	if q.failSend != nil {
		return 0, q.failSend
	}
	if name != queue {
		return 0, fmt.Errorf("fakeQueue: unexpected queue %q", name)
	}
	var b message
	if err := json.Unmarshal(m.Body, &b); err != nil {
		return 0, fmt.Errorf("fakeQueue: body %s: %v", m.Body, err)
	}
	q.seq++
	q.msgs = append(q.msgs, &sent{seq: q.seq, msg: m, body: b, enqueuedAt: q.now()})
	if m.ScheduledAt.IsZero() {
		return 0, nil
	}
	return q.seq, nil
}

func (q *fakeQueue) Cancel(ctx context.Context, name string, seq int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.cancels = append(q.cancels, seq)
	for _, m := range q.msgs {
		if m.seq == seq && m.delivered == 0 {
			m.cancelled = true
		}
	}
	return nil
}

// due returns the messages deliverable at now, oldest first, and marks
// them delivered.
func (q *fakeQueue) due(now time.Time) []*sent {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []*sent
	for _, m := range q.msgs {
		if m.cancelled || m.delivered > 0 || m.msg.ScheduledAt.After(now) {
			continue
		}
		m.delivered++
		out = append(out, m)
	}
	return out
}

// live counts messages neither delivered nor cancelled.
func (q *fakeQueue) live() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, m := range q.msgs {
		if !m.cancelled && m.delivered == 0 {
			n++
		}
	}
	return n
}

func (q *fakeQueue) last() *sent {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.msgs) == 0 {
		return nil
	}
	return q.msgs[len(q.msgs)-1]
}

// fakeRouter hands out agents from a fixed set, one conversation each, as
// the routing engine does: the same conversation asked again keeps its
// agent.
type fakeRouter struct {
	mu      sync.Mutex
	agents  []string          // in ranking order
	holds   map[string]string // conversation → agent
	routes  int
	release []string
	err     error
}

func newRouter(agents ...string) *fakeRouter {
	return &fakeRouter{agents: agents, holds: map[string]string{}}
}

func (r *fakeRouter) Route(ctx context.Context, tenantID, serviceID string, req switchboard.RouteRequest) (switchboard.RouteDecision, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.routes++
	if r.err != nil {
		return switchboard.RouteDecision{}, r.err
	}
	if !req.Reserve || !req.UntilReleased || req.MaxAgents != 1 {
		return switchboard.RouteDecision{}, errors.New("fakeRouter: outbound tasks must reserve exactly one agent until released")
	}
	out := switchboard.RouteDecision{ConversationID: req.ConversationID}
	if a, ok := r.holds[req.ConversationID]; ok {
		out.Agents = []switchboard.Assignment{{UserID: a}}
		return out, nil
	}
	busy := map[string]bool{}
	for _, a := range r.holds {
		busy[a] = true
	}
	order := append(slices.Clone(req.PreferredUsers), r.agents...)
	for _, a := range order {
		if slices.Contains(r.agents, a) && !busy[a] {
			r.holds[req.ConversationID] = a
			out.Agents = []switchboard.Assignment{{UserID: a}}
			return out, nil
		}
	}
	return out, nil
}

func (r *fakeRouter) Release(ctx context.Context, tenantID, conv string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.release = append(r.release, conv)
	delete(r.holds, conv)
	return nil
}

// held returns the held agents by conversation.
func (r *fakeRouter) held() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]string{}
	for c, a := range r.holds {
		out[c] = a
	}
	return out
}

func (r *fakeRouter) setAgents(agents ...string) {
	r.mu.Lock()
	r.agents = agents
	r.mu.Unlock()
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
	f := &fixture{t: t, tables: tables, clock: c, queue: &fakeQueue{now: c.Now}, router: newRouter(), limits: &fakeLimits{limit: 20}}
	f.svc = f.newService()
	return f
}

// newService returns another instance over the same tables, queue and
// router (a scaled-out handler).
func (f *fixture) newService() *Service {
	f.t.Helper()
	s, err := New(context.Background(), Options{
		Tables: f.tables, Queue: f.queue, QueueName: queue, Router: f.router, Limits: f.limits,
		Services: fakeServices{service: true, "sales": true}, Now: f.clock.Now,
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
	for _, m := range f.queue.due(f.clock.Now()) {
		w, err := f.svc.Handle(context.Background(), m.msg.Body)
		if err != nil {
			f.t.Fatalf("Handle(%s): %v", m.msg.Body, err)
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

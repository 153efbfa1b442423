package distribution

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"switchboard/handler/internal/fakeclock"
	"switchboard/handler/routing"
	"switchboard/handler/store"
	sb "switchboard/handler/switchboard"
)

const tenant = "7c1c4f4e-0000-4000-8000-000000000001"

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func user(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

func ptr[T any](v T) *T { return &v }

// fakePresence confirms every reading at the clock's time.
type fakePresence struct {
	mu       sync.Mutex
	clock    *fakeclock.Clock
	readings map[string]sb.Presence
}

func (f *fakePresence) set(u, availability string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.readings[u] = sb.Presence{UserID: u, Availability: availability, Activity: availability, Extended: true, Source: sb.SourceAccount1}
}

func (f *fakePresence) Readings(ctx context.Context, tenantID string, ids []string) (map[string]sb.Presence, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]sb.Presence{}
	now := f.clock.Now()
	for _, u := range ids {
		if p, ok := f.readings[u]; ok {
			p.ConfirmedAt, p.ChangedAt = now, now
			out[u] = p
		}
	}
	return out, nil
}

// fakeQueue keeps sent messages; deliver hands those due to the service.
type fakeQueue struct {
	mu   sync.Mutex
	msgs []sb.Message
	sent int
}

func (q *fakeQueue) Send(ctx context.Context, queue string, m sb.Message) (int64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.msgs = append(q.msgs, m)
	q.sent++
	return int64(q.sent), nil
}

func (q *fakeQueue) Cancel(ctx context.Context, queue string, seq int64) error { return nil }

// due takes the messages due at now out of the queue.
func (q *fakeQueue) due(now time.Time) []sb.Message {
	q.mu.Lock()
	defer q.mu.Unlock()
	var due, rest []sb.Message
	for _, m := range q.msgs {
		if !m.ScheduledAt.After(now) {
			due = append(due, m)
		} else {
			rest = append(rest, m)
		}
	}
	q.msgs = rest
	return due
}

// fakeOutbound records callbacks and serves waiting tasks.
type fakeOutbound struct {
	mu        sync.Mutex
	callbacks []Callback
	refuse    bool
	waiting   map[string][]WaitingTask // by service
	assign    func(service, task string, prefer, only []string) string
	assigned  []string
}

func (f *fakeOutbound) ScheduleCallback(ctx context.Context, tenant, service string, cb Callback) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuse {
		return "", &sb.Error{Code: sb.ELIMIT, Op: "fake", Message: "the service has 20 of 20 outbound tasks"}
	}
	f.callbacks = append(f.callbacks, cb)
	return "task-" + cb.ReferenceID, nil
}

func (f *fakeOutbound) Waiting(ctx context.Context, tenant, service string) ([]WaitingTask, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.waiting[service]), nil
}

func (f *fakeOutbound) AssignWaiting(ctx context.Context, tenant, service, task string, prefer, only []string) (string, error) {
	f.mu.Lock()
	assign := f.assign
	f.mu.Unlock()
	agent := ""
	if assign != nil {
		agent = assign(service, task, prefer, only)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if agent != "" {
		f.assigned = append(f.assigned, task)
		f.waiting[service] = slices.DeleteFunc(f.waiting[service], func(t WaitingTask) bool { return t.ID == task })
	}
	return agent, nil
}

type fixture struct {
	t        *testing.T
	tables   store.Tables
	clock    *fakeclock.Clock
	presence *fakePresence
	queue    *fakeQueue
	outbound *fakeOutbound
	engine   *routing.Engine
	svc      *Service
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureOn(t, store.NewMemoryTables())
}

// newFixtureOn is newFixture on the given tables.
func newFixtureOn(t *testing.T, tables store.Tables) *fixture {
	t.Helper()
	f := &fixture{t: t, tables: tables, clock: fakeclock.New(t0), queue: &fakeQueue{}, outbound: &fakeOutbound{waiting: map[string][]WaitingTask{}}}
	f.presence = &fakePresence{clock: f.clock, readings: map[string]sb.Presence{}}
	f.engine, f.svc = f.instance()
	return f
}

// instance returns another instance of the app on the same tables.
func (f *fixture) instance() (*routing.Engine, *Service) {
	f.t.Helper()
	ctx := context.Background()
	var s *Service
	e, err := routing.New(ctx, routing.Options{Tables: f.tables, Presence: f.presence, StaleAfter: 120 * time.Second, Now: f.clock.Now, StateRefresh: -1,
		// As the handler wires it: a route API hold that runs out is a due time.
		Expiring: func(tenant, conv string, users []string, expires time.Time) {
			s.HoldExpires(tenant, conv, users, expires)
		},
	})
	if err != nil {
		f.t.Fatal(err)
	}
	s = f.serviceOn(e)
	return e, s
}

// serviceOn returns a distribution service on the fixture's tables, queue
// and clock with agents as its routing.
func (f *fixture) serviceOn(agents Agents) *Service {
	f.t.Helper()
	s, err := New(context.Background(), Options{Tables: f.tables, Agents: agents, Presence: f.presence, Outbound: f.outbound, Queue: f.queue,
		QueueName: "distribution", Now: f.clock.Now})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(s.Wait)
	return s
}

// service creates a service of members 1..n (all Available) with d applied.
func (f *fixture) service(id string, n int, d routing.DistributionInput, skills map[int]map[string]int) {
	f.t.Helper()
	in := routing.ServiceInput{Name: ptr(id), Distribution: d}
	for i := 1; i <= n; i++ {
		in.Members = append(in.Members, routing.MemberInput{UserID: user(i), Skills: skills[i]})
		f.presence.set(user(i), sb.Available)
	}
	if _, _, err := f.engine.PutService(context.Background(), tenant, id, in, ""); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) enqueue(service, id string, in EnqueueInput) Conversation {
	f.t.Helper()
	in.ConversationID = id
	c, _, err := f.svc.Enqueue(context.Background(), tenant, service, in)
	if err != nil {
		f.t.Fatalf("enqueue %s: %v", id, err)
	}
	f.svc.Wait()
	return c
}

func (f *fixture) get(id string) Conversation {
	f.t.Helper()
	c, err := f.svc.Get(context.Background(), tenant, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return c.Conversation
}

// advance moves the clock and delivers the messages that came due, as the
// queue would, until none is left.
func (f *fixture) advance(d time.Duration) {
	f.t.Helper()
	f.clock.Advance(d)
	for {
		due := f.queue.due(f.clock.Now())
		if len(due) == 0 {
			return
		}
		for _, m := range due {
			if _, err := f.svc.Handle(context.Background(), m.Body); err != nil {
				f.t.Fatalf("Handle: %v", err)
			}
		}
		f.svc.Wait()
	}
}

// ringing returns the users with a ringing offer of the conversation.
func ringing(c Conversation) []string {
	var out []string
	for _, o := range c.Ringing() {
		out = append(out, o.UserID)
	}
	return out
}

func (f *fixture) agent(u string) AgentView {
	f.t.Helper()
	v, err := f.svc.Agent(context.Background(), tenant, u)
	if err != nil {
		f.t.Fatal(err)
	}
	return v
}

// reason returns the reason a dry route gives for user u in service s.
func (f *fixture) reason(s, u string) string {
	f.t.Helper()
	d, err := f.engine.Route(context.Background(), tenant, s, sb.RouteRequest{})
	if err != nil {
		f.t.Fatal(err)
	}
	for _, x := range d.Excluded {
		if x.UserID == u {
			return x.Reason
		}
	}
	return ""
}

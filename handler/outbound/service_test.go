package outbound

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"switchboard/handler/internal/testenv"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

var ctx = context.Background()

func TestValidate(t *testing.T) {
	now := newClock().Now()
	long := strings.Repeat("x", MaxReferenceIDLength+1)
	users := func(n int) []string {
		var u []string
		for i := range n {
			u = append(u, fmt.Sprintf("00000000-0000-4000-8000-%012d", i))
		}
		return u
	}
	bigContext := map[string]string{}
	for i := range MaxContextEntries + 1 {
		bigContext[fmt.Sprint("k", i)] = "v"
	}
	for _, tc := range []struct {
		name  string
		in    NewTask
		field string // "" when valid
	}{
		{"phone", NewTask{Destination: "+41440000000"}, ""},
		{"phone with spaces", NewTask{Destination: "+41 44 000 00 00"}, ""},
		{"upn", NewTask{Destination: "Agent@Contoso.com"}, ""},
		{"all fields", NewTask{Destination: "+41440000000", DueDateTimeUTC: "2026-11-22T13:00:00Z", ReferenceID: "ref-1", Priority: ptr(99), MaxAttempts: ptr(10), MaxQueueTimeSeconds: ptr(3600), PreferredUsers: users(10), Context: map[string]string{"a": "b"}}, ""},
		{"minimums", NewTask{Destination: "+41440000000", Priority: ptr(1), MaxAttempts: ptr(1), MaxQueueTimeSeconds: ptr(5)}, ""},
		{"missing destination", NewTask{}, "destination"},
		{"phone without plus", NewTask{Destination: "0441234567"}, "destination"},
		{"phone too short", NewTask{Destination: "+123456"}, "destination"},
		{"phone too long", NewTask{Destination: "+1234567890123456"}, "destination"},
		{"phone with letters", NewTask{Destination: "+4144000000a"}, "destination"},
		{"address without domain dot", NewTask{Destination: "agent@localhost"}, "destination"},
		{"display name address", NewTask{Destination: "Agent <agent@contoso.com>"}, "destination"},
		{"bad due", NewTask{Destination: "+41440000000", DueDateTimeUTC: "tomorrow"}, "dueDateTimeUtc"},
		{"due without zone", NewTask{Destination: "+41440000000", DueDateTimeUTC: "2026-11-22T13:00:00"}, "dueDateTimeUtc"},
		{"due exactly a year ahead", NewTask{Destination: "+41440000000", DueDateTimeUTC: now.Add(MaxScheduleAhead).Format(time.RFC3339)}, ""},
		{"due more than a year ahead", NewTask{Destination: "+41440000000", DueDateTimeUTC: now.Add(MaxScheduleAhead + time.Second).Format(time.RFC3339)}, "dueDateTimeUtc"},
		{"due in the year 9999", NewTask{Destination: "+41440000000", DueDateTimeUTC: "9999-12-31T23:59:59Z"}, "dueDateTimeUtc"},
		{"reference too long", NewTask{Destination: "+41440000000", ReferenceID: long}, "referenceId"},
		{"priority 0", NewTask{Destination: "+41440000000", Priority: ptr(0)}, "priority"},
		{"priority 100", NewTask{Destination: "+41440000000", Priority: ptr(100)}, "priority"},
		{"maxAttempts 0", NewTask{Destination: "+41440000000", MaxAttempts: ptr(0)}, "maxAttempts"},
		{"maxAttempts 11", NewTask{Destination: "+41440000000", MaxAttempts: ptr(11)}, "maxAttempts"},
		{"queue time 4", NewTask{Destination: "+41440000000", MaxQueueTimeSeconds: ptr(4)}, "maxQueueTimeSeconds"},
		{"queue time 3601", NewTask{Destination: "+41440000000", MaxQueueTimeSeconds: ptr(3601)}, "maxQueueTimeSeconds"},
		{"11 preferred users", NewTask{Destination: "+41440000000", PreferredUsers: users(11)}, "preferredUsers"},
		{"preferred user not a guid", NewTask{Destination: "+41440000000", PreferredUsers: []string{"bob"}}, "preferredUsers[0]"},
		{"too many context entries", NewTask{Destination: "+41440000000", Context: bigContext}, "context"},
		{"context value too long", NewTask{Destination: "+41440000000", Context: map[string]string{"k": strings.Repeat("v", MaxContextValueLength+1)}}, "context.k"},
		{"empty context key", NewTask{Destination: "+41440000000", Context: map[string]string{"": "v"}}, "context"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := validateNewTask(tc.in, now)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("validate: %v, want no error", err)
				}
				return
			}
			if got, want := switchboard.ErrorCode(err), switchboard.EINVALID; got != want {
				t.Fatalf("code = %q (%v), want %q", got, err, want)
			}
			if got := switchboard.ErrorField(err); got != tc.field {
				t.Errorf("field = %q, want %q", got, tc.field)
			}
		})
	}
}

func TestValidateDefaultsAndNormalization(t *testing.T) {
	now := newClock().Now()
	got, err := validateNewTask(NewTask{Destination: "+41 (44) 000-00-00", DueDateTimeUTC: "2020-01-01T00:00:00Z", PreferredUsers: []string{strings.ToUpper(agentA), agentA}}, now)
	if err != nil {
		t.Fatal(err)
	}
	if got.Destination != "+41440000000" {
		t.Errorf("destination = %q, want +41440000000", got.Destination)
	}
	if !got.DueAt.Equal(now) {
		t.Errorf("due = %v, want now (%v): a past due time means now", got.DueAt, now)
	}
	if got.Priority != 50 || got.MaxAttempts != 1 || got.MaxQueueTimeSeconds != 300 {
		t.Errorf("priority, maxAttempts, maxQueueTimeSeconds = %d, %d, %d; want 50, 1, 300", got.Priority, got.MaxAttempts, got.MaxQueueTimeSeconds)
	}
	if want := []string{agentA}; !slices.Equal(got.PreferredUsers, want) {
		t.Errorf("preferred users = %v, want %v (normalized, without duplicates)", got.PreferredUsers, want)
	}
}

func TestSchedule(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		f := newFixture(t, tables)
		due := f.clock.Now().Add(time.Hour)
		task := f.schedule(NewTask{Destination: "+41440000000", DueDateTimeUTC: due.Format(time.RFC3339), ReferenceID: "crm/42?x", Context: map[string]string{"case": "42"}})
		if task.State != StateScheduled || !task.DueAt.Equal(due) || task.ReferenceID != "crm/42?x" || task.Attempts != 0 || task.Agent != "" {
			t.Errorf("task = %+v, want Scheduled for %v with its referenceId", task, due)
		}
		m := f.queue.Last()
		if m == nil || !m.Msg.ScheduledAt.Equal(due) || body(m).TaskID != task.ID || body(m).Try != 1 || body(m).TenantID != tenant || body(m).ServiceID != service {
			t.Fatalf("message = %+v, want one scheduled for %v naming the task", m, due)
		}
		stored := f.get(task.ID)
		if stored.SequenceNumber != m.Seq || stored.SendPending {
			t.Errorf("stored sequence number %d, send pending %v; want %d, false", stored.SequenceNumber, stored.SendPending, m.Seq)
		}
		if got := f.counter(); got != 1 {
			t.Errorf("counter = %d, want 1", got)
		}
		if _, _, err := f.svc.Schedule(ctx, tenant, "nope", NewTask{Destination: "+41440000000"}); !switchboard.IsCode(err, switchboard.ENOTFOUND) {
			t.Errorf("unknown service: %v, want ENOTFOUND", err)
		}
	})
}

// The cap is exact under concurrency, across instances: 200 concurrent
// requests spread over three instances against a cap of 20 admit exactly
// 20.
func TestConcurrentScheduleExactCap(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		f := newFixture(t, tables)
		instances := []*Service{f.svc, f.newService(), f.newService()}
		var accepted, limited, other int
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range 200 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, err := instances[i%len(instances)].Schedule(ctx, tenant, service, NewTask{Destination: "+41440000000"})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					accepted++
				case switchboard.IsCode(err, switchboard.ELIMIT) && switchboard.ErrorType(err) == "outbound-task-limit-reached":
					limited++
				default:
					other++
					t.Errorf("Schedule: %v", err)
				}
			}()
		}
		wg.Wait()
		if accepted != 20 || limited != 180 || other != 0 {
			t.Fatalf("accepted %d, limited %d, other %d; want 20, 180, 0", accepted, limited, other)
		}
		if got := f.counter(); got != 20 {
			t.Errorf("counter = %d, want 20", got)
		}
		page, err := f.svc.List(ctx, tenant, service, ListOptions{Top: 100})
		if err != nil || len(page.Tasks) != 20 {
			t.Errorf("stored tasks: %d (%v), want 20: a rejected task is discarded", len(page.Tasks), err)
		}
		if got := f.queue.Live(); got != 20 {
			t.Errorf("messages on the queue = %d, want 20", got)
		}
	})
}

func fill(t *testing.T, f *fixture, n int) []Task {
	t.Helper()
	var out []Task
	for range n {
		out = append(out, f.schedule(NewTask{Destination: "+41440000000", DueDateTimeUTC: f.clock.Now().Add(time.Hour).Format(time.RFC3339)}))
	}
	if _, _, err := f.svc.Schedule(ctx, tenant, service, NewTask{Destination: "+41440000000"}); !switchboard.IsCode(err, switchboard.ELIMIT) {
		t.Fatalf("Schedule over the cap: %v, want ELIMIT", err)
	}
	return out
}

func TestCancelFreesExactlyOneSlot(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		f := newFixture(t, tables)
		f.limits.limit = 3
		tasks := fill(t, f, 3)
		m := f.queue.Messages()[1]
		done, err := f.svc.Cancel(ctx, tenant, service, tasks[1].ID)
		if err != nil || done.State != StateCancelled {
			t.Fatalf("Cancel: %+v, %v; want Cancelled", done, err)
		}
		if !slices.Contains(f.queue.Cancels(), m.Seq) {
			t.Errorf("cancelled sequence numbers %v, want %d", f.queue.Cancels(), m.Seq)
		}
		again, err := f.svc.Cancel(ctx, tenant, service, tasks[1].ID)
		if err != nil || again.State != StateCancelled {
			t.Errorf("Cancel again: %+v, %v; want the cancelled task", again, err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		accepted := 0
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, _, err := f.svc.Schedule(ctx, tenant, service, NewTask{Destination: "+41440000000"}); err == nil {
					mu.Lock()
					accepted++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if accepted != 1 {
			t.Errorf("accepted after one cancel: %d, want exactly 1", accepted)
		}
		f.clock.Advance(2 * time.Hour)
		for _, w := range f.deliver() {
			if w.TaskID == tasks[1].ID {
				t.Errorf("the cancelled task's message was delivered: %v", w)
			}
		}
	})
}

func TestCancelInProgressConflicts(t *testing.T) {
	f := newFixture(t, store.NewMemoryTables())
	f.router.SetAgents(agentA)
	task := f.schedule(NewTask{Destination: "+41440000000"})
	if got := actions(f.deliver()); !slices.Equal(got, []string{ActionAssigned}) {
		t.Fatalf("deliver: %v, want assigned", got)
	}
	_, err := f.svc.Cancel(ctx, tenant, service, task.ID)
	if !switchboard.IsCode(err, switchboard.ECONFLICT) {
		t.Fatalf("Cancel while InProgress: %v, want ECONFLICT", err)
	}
	if _, err := f.svc.Complete(ctx, tenant, service, task.ID, Completion{Outcome: "", Note: "done"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Cancel(ctx, tenant, service, task.ID); !switchboard.IsCode(err, switchboard.ECONFLICT) {
		t.Errorf("Cancel when Completed: %v, want ECONFLICT", err)
	}
	if _, err := f.svc.Cancel(ctx, tenant, service, "00000000-0000-7000-8000-000000000000"); !switchboard.IsCode(err, switchboard.ENOTFOUND) {
		t.Errorf("Cancel unknown: %v, want ENOTFOUND", err)
	}
}

func TestCompleteFreesSlotAndAgent(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		f := newFixture(t, tables)
		f.limits.limit = 1
		f.router.SetAgents(agentA)
		task := f.schedule(NewTask{Destination: "+41440000000"})
		if got := actions(f.deliver()); !slices.Equal(got, []string{ActionAssigned}) {
			t.Fatalf("deliver: %v, want assigned", got)
		}
		got := f.get(task.ID)
		if got.State != StateInProgress || got.Agent != agentA || got.Attempts != 1 {
			t.Fatalf("task = %s agent %q attempts %d; want InProgress with %s, 1 attempt", got.State, got.Agent, got.Attempts, agentA)
		}
		if _, _, err := f.svc.Schedule(ctx, tenant, service, NewTask{Destination: "+41440000000"}); !switchboard.IsCode(err, switchboard.ELIMIT) {
			t.Fatalf("Schedule while InProgress holds the only slot: %v, want ELIMIT", err)
		}
		done, err := f.svc.Complete(ctx, tenant, service, task.ID, Completion{Outcome: OutcomeCompleted, Note: "talked"})
		if err != nil || done.State != StateCompleted || done.Agent != agentA {
			t.Fatalf("Complete: %+v, %v; want Completed, agent kept", done, err)
		}
		if held := f.router.Held(); len(held) != 0 {
			t.Errorf("holds after complete: %v, want none", held)
		}
		if again, err := f.svc.Complete(ctx, tenant, service, task.ID, Completion{Outcome: OutcomeCompleted, Note: "talked"}); err != nil || again.State != StateCompleted {
			t.Errorf("Complete again: %v, want the same task", err)
		}
		if _, err := f.svc.Complete(ctx, tenant, service, task.ID, Completion{Outcome: OutcomeFailed, Note: ""}); !switchboard.IsCode(err, switchboard.ECONFLICT) {
			t.Errorf("Complete Completed task as Failed: %v, want ECONFLICT", err)
		}
		if got := f.counter(); got != 0 {
			t.Errorf("counter = %d, want 0", got)
		}
		f.schedule(NewTask{Destination: "+41440000000"})
	})
}

func TestCompleteValidation(t *testing.T) {
	f := newFixture(t, store.NewMemoryTables())
	task := f.schedule(NewTask{Destination: "+41440000000"})
	for _, tc := range []struct {
		name, outcome, note, code, field string
	}{
		{"bad outcome", "Done", "", switchboard.EINVALID, "outcome"},
		{"long note", "", strings.Repeat("n", MaxNoteLength+1), switchboard.EINVALID, "note"},
		{"not in progress", "", "", switchboard.ECONFLICT, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.svc.Complete(ctx, tenant, service, task.ID, Completion{Outcome: tc.outcome, Note: tc.note})
			if got := switchboard.ErrorCode(err); got != tc.code {
				t.Fatalf("code = %q (%v), want %q", got, err, tc.code)
			}
			if got := switchboard.ErrorField(err); got != tc.field {
				t.Errorf("field = %q, want %q", got, tc.field)
			}
		})
	}
}

func TestFailedAttemptRequeues(t *testing.T) {
	f := newFixture(t, store.NewMemoryTables())
	f.router.SetAgents(agentA, agentB)
	task := f.schedule(NewTask{Destination: "+41440000000", MaxAttempts: ptr(2)})
	f.deliver()
	first := f.get(task.ID)
	done, err := f.svc.Complete(ctx, tenant, service, task.ID, Completion{Outcome: OutcomeFailed, Note: "no answer"})
	if err != nil || done.State != StateQueued || done.Agent != "" || done.Attempts != 1 {
		t.Fatalf("Complete Failed with an attempt left: %+v, %v; want Queued, no agent, 1 attempt", done, err)
	}
	if got := f.counter(); got != 1 {
		t.Errorf("counter = %d, want 1: a requeued task keeps its slot", got)
	}
	if got := actions(f.deliver()); !slices.Equal(got, []string{ActionAssigned}) {
		t.Fatalf("deliver: %v, want assigned", got)
	}
	second := f.get(task.ID)
	if second.State != StateInProgress || second.Attempts != 2 {
		t.Fatalf("second attempt: %s attempts %d, want InProgress 2", second.State, second.Attempts)
	}
	if second.Agent != first.Agent {
		t.Logf("second attempt went to %s, the first to %s", second.Agent, first.Agent)
	}
	done, err = f.svc.Complete(ctx, tenant, service, task.ID, Completion{Outcome: OutcomeFailed, Note: "no answer again"})
	if err != nil || done.State != StateFailed {
		t.Fatalf("Complete Failed on the last attempt: %+v, %v; want Failed", done, err)
	}
	if got := f.counter(); got != 0 {
		t.Errorf("counter = %d, want 0", got)
	}
	if held := f.router.Held(); len(held) != 0 {
		t.Errorf("holds: %v, want none", held)
	}
}

func TestReferenceIDIsIdempotent(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		f := newFixture(t, tables)
		f.limits.limit = 5
		instances := []*Service{f.svc, f.newService()}
		var ids sync.Map
		var created int
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				task, c, err := instances[i%2].Schedule(ctx, tenant, service, NewTask{Destination: "+41440000000", ReferenceID: "flow-run-7"})
				if err != nil {
					t.Errorf("Schedule: %v", err)
					return
				}
				ids.Store(task.ID, true)
				if c {
					mu.Lock()
					created++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		n := 0
		ids.Range(func(any, any) bool { n++; return true })
		if n != 1 || created != 1 {
			t.Errorf("%d distinct tasks, %d created; want 1 and 1", n, created)
		}
		if got := f.counter(); got != 1 {
			t.Errorf("counter = %d, want 1", got)
		}
		// The same referenceId is answered even when the cap is reached.
		fill(t, f, 4)
		if _, c, err := f.svc.Schedule(ctx, tenant, service, NewTask{Destination: "+41440000000", ReferenceID: "flow-run-7"}); err != nil || c {
			t.Errorf("Schedule with the referenceId at the cap: created %v, %v; want the existing task", c, err)
		}
	})
}

// A task due later has its message scheduled before it is written; when
// another instance takes the last slot in between, the task is refused and
// its message cancelled.
func TestSlotTakenWhileSendingFirst(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		f := newFixture(t, tables)
		f.limits.limit = 2
		later := f.clock.Now().Add(time.Hour).Format(time.RFC3339)
		f.schedule(NewTask{Destination: "+41440000002", DueDateTimeUTC: later})
		other := f.newService()
		f.queue.BeforeNextSend(func() {
			if _, _, err := other.Schedule(ctx, tenant, service, NewTask{Destination: "+41440000001", DueDateTimeUTC: later}); err != nil {
				t.Errorf("the other instance's Schedule: %v", err)
			}
		})
		_, _, err := f.svc.Schedule(ctx, tenant, service, NewTask{Destination: "+41440000000", DueDateTimeUTC: later})
		if !switchboard.IsCode(err, switchboard.ELIMIT) {
			t.Fatalf("Schedule that lost the last slot: %v, want ELIMIT", err)
		}
		if got := f.counter(); got != 2 {
			t.Errorf("counter = %d, want 2", got)
		}
		if got := f.queue.Live(); got != 2 {
			t.Errorf("live messages = %d, want 2: the refused task's message is cancelled", got)
		}
	})
}

// eagerQueue hands a message that is due when sent (unscheduled, or
// scheduled for a time already past) to the worker at once, as a fast
// Service Bus may.
type eagerQueue struct {
	*fakeQueue
	now    func() time.Time
	worker *Service
	works  []Work
}

func (q *eagerQueue) Send(ctx context.Context, name string, m switchboard.Message) (int64, error) {
	seq, err := q.fakeQueue.Send(ctx, name, m)
	if err == nil && !m.ScheduledAt.After(q.now()) {
		w, herr := q.worker.Handle(ctx, m.Body)
		if herr != nil {
			return 0, herr
		}
		q.works = append(q.works, w)
	}
	return seq, err
}

// A task due a few seconds ahead whose due time has come by the time its
// message is sent (the request waited for storage or for the partition
// lock) is sent for immediate delivery: it must not be sent before its task
// is written, or the worker drops the message as one for an unknown task
// and the accepted task is never offered to an agent.
func TestDueTimeReachedWhileSchedulingIsNotLost(t *testing.T) {
	f := newFixture(t, store.NewMemoryTables())
	f.router.SetAgents(agentA)
	q := &eagerQueue{fakeQueue: f.queue, now: f.clock.Now}
	s, err := New(ctx, Options{
		Tables: f.tables, Queue: q, QueueName: queue, Router: f.router, Limits: f.limits,
		Services: fakeServices{service: true}, Now: f.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	q.worker = s
	f.limits.onRead = func() { f.clock.Advance(5 * time.Second) }
	due := f.clock.Now().Add(3 * time.Second).Format(time.RFC3339)
	task, created, err := s.Schedule(ctx, tenant, service, NewTask{Destination: "+41440000000", DueDateTimeUTC: due})
	if err != nil || !created {
		t.Fatalf("Schedule: created %v, %v; want a new task", created, err)
	}
	if got, want := actions(q.works), []string{ActionAssigned}; !slices.Equal(got, want) {
		t.Errorf("worker actions on the immediate message = %v (%v), want %v", got, q.works, want)
	}
	if got, want := f.get(task.ID).State, StateInProgress; got != want {
		t.Errorf("state = %s, want %s", got, want)
	}
}

func TestSendFailureSchedulesNothing(t *testing.T) {
	f := newFixture(t, store.NewMemoryTables())
	f.queue.FailSend(switchboard.Errorf(switchboard.EUNAVAILABLE, "queue", "broker down"))
	_, _, err := f.svc.Schedule(ctx, tenant, service, NewTask{Destination: "+41440000000", ReferenceID: "r1"})
	if !switchboard.IsCode(err, switchboard.EUNAVAILABLE) {
		t.Fatalf("Schedule: %v, want EUNAVAILABLE", err)
	}
	if got := f.counter(); got != 0 {
		t.Errorf("counter = %d, want 0: the slot is given back", got)
	}
	page, _ := f.svc.List(ctx, tenant, service, ListOptions{})
	if len(page.Tasks) != 0 {
		t.Errorf("tasks = %d, want 0: the task is withdrawn", len(page.Tasks))
	}
	f.queue.FailSend(nil)
	if _, c, err := f.svc.Schedule(ctx, tenant, service, NewTask{Destination: "+41440000000", ReferenceID: "r1"}); err != nil || !c {
		t.Errorf("retry with the same referenceId: created %v, %v; want a new task", c, err)
	}
}

func TestNoQueueConfigured(t *testing.T) {
	s, err := New(ctx, Options{Tables: store.NewMemoryTables(), Router: newRouter(), Limits: &fakeLimits{limit: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Schedule(ctx, tenant, service, NewTask{Destination: "+41440000000"}); !switchboard.IsCode(err, switchboard.EUNAVAILABLE) {
		t.Errorf("Schedule without a queue: %v, want EUNAVAILABLE", err)
	}
}

func TestList(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		f := newFixture(t, tables)
		f.router.SetAgents(agentA)
		var all []string
		for i := range 7 {
			f.clock.Advance(time.Millisecond)
			all = append(all, f.schedule(NewTask{Destination: "+41440000000", DueDateTimeUTC: f.clock.Now().Add(time.Duration(i) * time.Hour).Format(time.RFC3339Nano)}).ID)
		}
		f.deliver() // the first one is due: assigned
		if _, err := f.svc.Cancel(ctx, tenant, service, all[3]); err != nil {
			t.Fatal(err)
		}
		var got []string
		token := ""
		for pages := 0; ; pages++ {
			p, err := f.svc.List(ctx, tenant, service, ListOptions{Top: 3, Continuation: token})
			if err != nil {
				t.Fatal(err)
			}
			for _, task := range p.Tasks {
				got = append(got, task.ID)
			}
			if token = p.Continuation; token == "" || pages > 5 {
				break
			}
		}
		if !slices.Equal(got, all) {
			t.Errorf("paged list = %v, want %v (creation order)", got, all)
		}
		for _, tc := range []struct {
			state string
			want  []string
		}{
			{StateInProgress, all[:1]},
			{StateScheduled, []string{all[1], all[2], all[4], all[5], all[6]}},
			{StateCancelled, all[3:4]},
			{StateCompleted, nil},
		} {
			var ids []string
			token := ""
			for range 5 {
				p, err := f.svc.List(ctx, tenant, service, ListOptions{State: tc.state, Top: 2, Continuation: token})
				if err != nil {
					t.Fatal(err)
				}
				for _, task := range p.Tasks {
					ids = append(ids, task.ID)
				}
				if token = p.Continuation; token == "" {
					break
				}
			}
			if !slices.Equal(ids, tc.want) {
				t.Errorf("state %s: %v, want %v", tc.state, ids, tc.want)
			}
		}
		for _, o := range []ListOptions{{State: "Done"}, {Top: 101}, {Top: -1}, {Continuation: "!!"}} {
			if _, err := f.svc.List(ctx, tenant, service, o); !switchboard.IsCode(err, switchboard.EINVALID) {
				t.Errorf("List(%+v): %v, want EINVALID", o, err)
			}
		}
	})
}

func TestUnknownIDs(t *testing.T) {
	f := newFixture(t, store.NewMemoryTables())
	for _, id := range []string{"nope", "00000000-0000-7000-8000-000000000000"} {
		if _, err := f.svc.Get(ctx, tenant, service, id); !switchboard.IsCode(err, switchboard.ENOTFOUND) {
			t.Errorf("Get(%q): %v, want ENOTFOUND", id, err)
		}
	}
	if _, err := f.svc.Get(ctx, "not-a-guid", service, "x"); !switchboard.IsCode(err, switchboard.EINVALID) {
		t.Errorf("Get with a bad tenant: %v, want EINVALID", err)
	}
}

var errBoom = errors.New("boom")

// Power Automate retries an action that timed out: complete(Failed) for
// attempt 1 may arrive again while attempt 2 is in progress. Naming the
// attempt (or the ETag the caller saw) makes the retry a no-op.
func TestRetriedFailedCompleteDoesNotEndTheNextAttempt(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		f := newFixture(t, tables)
		f.router.SetAgents(agentA, agentB)
		task := f.schedule(NewTask{Destination: "+41440000000", MaxAttempts: ptr(3)})
		f.deliver()
		first := f.get(task.ID)
		if first.State != StateInProgress || first.Attempts != 1 || switchboard.PublicETag(first.ETag) == "" {
			t.Fatalf("first attempt: %s attempts %d etag %q, want InProgress 1 with an ETag", first.State, first.Attempts, switchboard.PublicETag(first.ETag))
		}
		failFirst := Completion{Outcome: OutcomeFailed, Note: "no answer", Attempt: ptr(1)}
		if done, err := f.svc.Complete(ctx, tenant, service, task.ID, failFirst); err != nil || done.State != StateQueued {
			t.Fatalf("Complete Failed attempt 1: %+v, %v; want Queued", done, err)
		}
		// The retry while the task waits for its second attempt.
		if got, err := f.svc.Complete(ctx, tenant, service, task.ID, failFirst); err != nil || got.State != StateQueued || got.Attempts != 1 {
			t.Fatalf("retried Complete while Queued: %+v, %v; want the task unchanged (Queued, 1 attempt)", got, err)
		}
		if got := actions(f.deliver()); !slices.Equal(got, []string{ActionAssigned}) {
			t.Fatalf("deliver: %v, want assigned", got)
		}
		second := f.get(task.ID)
		if second.State != StateInProgress || second.Attempts != 2 {
			t.Fatalf("second attempt: %s attempts %d, want InProgress 2", second.State, second.Attempts)
		}
		heldBefore := f.router.Held()
		for _, c := range []struct {
			name string
			c    Completion
		}{
			{"attempt 1 again", failFirst},
			{"attempt 1 as Completed", Completion{Outcome: OutcomeCompleted, Attempt: ptr(1)}},
			{"the first attempt's ETag", Completion{Outcome: OutcomeFailed, IfMatch: switchboard.PublicETag(first.ETag)}},
		} {
			got, err := f.svc.Complete(ctx, tenant, service, task.ID, c.c)
			if err != nil || got.State != StateInProgress || got.Attempts != 2 || got.Agent != second.Agent {
				t.Fatalf("%s: %+v, %v; want the second attempt untouched (InProgress, 2 attempts, agent %s)", c.name, got, err, second.Agent)
			}
		}
		if held := f.router.Held(); !maps.Equal(held, heldBefore) || len(held) != 1 {
			t.Fatalf("holds after the retries: %v, want %v: the second attempt's agent stays held", held, heldBefore)
		}
		if got := f.counter(); got != 1 {
			t.Errorf("counter = %d, want 1", got)
		}
		// An attempt that has not begun is a mistake of the caller's.
		if _, err := f.svc.Complete(ctx, tenant, service, task.ID, Completion{Attempt: ptr(3)}); !switchboard.IsCode(err, switchboard.ECONFLICT) || switchboard.ErrorField(err) != "attempt" {
			t.Errorf("Complete attempt 3: %v, want ECONFLICT naming attempt", err)
		}
		// The current attempt, by number and by ETag.
		done, err := f.svc.Complete(ctx, tenant, service, task.ID, Completion{Outcome: OutcomeFailed, Attempt: ptr(2)})
		if err != nil || done.State != StateQueued {
			t.Fatalf("Complete Failed attempt 2: %+v, %v; want Queued", done, err)
		}
		f.deliver()
		third := f.get(task.ID)
		done, err = f.svc.Complete(ctx, tenant, service, task.ID, Completion{Outcome: OutcomeCompleted, IfMatch: switchboard.PublicETag(third.ETag)})
		if err != nil || done.State != StateCompleted || done.Attempts != 3 {
			t.Fatalf("Complete attempt 3 by ETag: %+v, %v; want Completed after 3 attempts", done, err)
		}
		if got, err := f.svc.Complete(ctx, tenant, service, task.ID, Completion{Outcome: OutcomeCompleted, Attempt: ptr(3)}); err != nil || got.State != StateCompleted {
			t.Errorf("retried Complete of the last attempt: %+v, %v; want the Completed task", got, err)
		}
		if held := f.router.Held(); len(held) != 0 {
			t.Errorf("holds: %v, want none", held)
		}
	})
}

func TestCompleteAttemptValidation(t *testing.T) {
	f := newFixture(t, store.NewMemoryTables())
	task := f.schedule(NewTask{Destination: "+41440000000"})
	for _, n := range []int{0, -1, MaxMaxAttempts + 1} {
		_, err := f.svc.Complete(ctx, tenant, service, task.ID, Completion{Attempt: ptr(n)})
		if !switchboard.IsCode(err, switchboard.EINVALID) || switchboard.ErrorField(err) != "attempt" {
			t.Errorf("attempt %d: %v, want EINVALID naming attempt", n, err)
		}
	}
}

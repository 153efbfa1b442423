package outbound

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"switchboard/handler/internal/testenv"
	"switchboard/handler/outbox"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// eventStates returns "previous>state" for each event, "null>Scheduled"
// for a creation.
func eventStates(t *testing.T, evs []switchboard.Event) []string {
	t.Helper()
	out := make([]string, len(evs))
	for i, ev := range evs {
		var d struct {
			State         string  `json:"state"`
			PreviousState *string `json:"previousState"`
		}
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Fatalf("event %d data %s: %v", i, ev.Data, err)
		}
		from := "null"
		if d.PreviousState != nil {
			from = *d.PreviousState
		}
		out[i] = from + ">" + d.State
	}
	return out
}

// checkEvents checks what every event of task must carry: type, tenant,
// service, subject, a unique id, sequence 1, 2, 3, ... in order.
func checkEvents(t *testing.T, evs []switchboard.Event, task Task) {
	t.Helper()
	ids := map[string]bool{}
	for i, ev := range evs {
		if ev.Type != switchboard.OutboundTaskStateChanged || ev.TenantID != tenant || ev.ServiceID != service || ev.Subject != "outbound-tasks/"+task.ID {
			t.Errorf("event %d = %s %s %s %s; want %s of %s/%s, subject outbound-tasks/%s", i, ev.Type, ev.TenantID, ev.ServiceID, ev.Subject,
				switchboard.OutboundTaskStateChanged, tenant, service, task.ID)
		}
		if got, want := ev.Sequence, int64(i+1); got != want {
			t.Errorf("event %d sequence = %d, want %d", i, got, want)
		}
		if ids[ev.ID] || ev.ID == "" {
			t.Errorf("event %d id %q: want a unique id", i, ev.ID)
		}
		ids[ev.ID] = true
	}
}

// The task's creation and each change of its state emit stateChanged with
// the task as GET returns it and the state before; the sequence is kept on
// the task row.
func TestTaskStateChangedEvents(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		f := newFixture(t, tables)
		f.router.SetAgents(agentA)
		task := f.schedule(NewTask{Destination: "+41440000000", DueDateTimeUTC: f.clock.Now().Add(time.Minute).Format(time.RFC3339), MaxAttempts: ptr(2), ReferenceID: "crm-7"})
		evs := f.events.events()
		if len(evs) != 1 {
			t.Fatalf("events after scheduling: %d, want 1", len(evs))
		}
		var created map[string]any
		if err := json.Unmarshal(evs[0].Data, &created); err != nil {
			t.Fatal(err)
		}
		if prev, ok := created["previousState"]; !ok || prev != nil {
			t.Errorf("creation previousState = %v (present %v), want null", prev, ok)
		}
		delete(created, "previousState")
		want, _ := json.Marshal(f.get(task.ID).View())
		var wantMap map[string]any
		_ = json.Unmarshal(want, &wantMap)
		if got, _ := json.Marshal(created); string(got) != string(mustJSON(t, wantMap)) {
			t.Errorf("creation data\n got %s\nwant %s (the task as GET returns it)", got, mustJSON(t, wantMap))
		}

		f.clock.Advance(time.Minute)
		if got := actions(f.deliver()); !slices.Equal(got, []string{ActionAssigned}) {
			t.Fatalf("deliver: %v, want assigned", got)
		}
		if _, err := f.svc.Complete(ctx, tenant, service, task.ID, Completion{Outcome: OutcomeFailed, Note: "no answer"}); err != nil {
			t.Fatal(err)
		}
		if got := actions(f.deliver()); !slices.Equal(got, []string{ActionAssigned}) {
			t.Fatalf("second attempt: %v, want assigned", got)
		}
		if _, err := f.svc.Complete(ctx, tenant, service, task.ID, Completion{Outcome: OutcomeCompleted, Note: "talked"}); err != nil {
			t.Fatal(err)
		}
		evs = f.events.events()
		if got, want := eventStates(t, evs), []string{"null>Scheduled", "Scheduled>InProgress", "InProgress>Queued", "Queued>InProgress", "InProgress>Completed"}; !slices.Equal(got, want) {
			t.Fatalf("events %v, want %v", got, want)
		}
		checkEvents(t, evs, task)
		last := f.get(task.ID)
		if last.EventSeq != 5 {
			t.Errorf("task EventSeq = %d, want 5", last.EventSeq)
		}
		var final switchboard.OutboundTaskEventData
		if err := json.Unmarshal(evs[4].Data, &final); err != nil {
			t.Fatal(err)
		}
		if final.Agent == nil || final.Agent.UserID != agentA || final.Attempts != 2 || final.ReferenceID == nil || *final.ReferenceID != "crm-7" {
			t.Errorf("last event data %+v, want agent %s, 2 attempts, referenceId crm-7", final, agentA)
		}
		if rows := outboxRows(t, f); len(rows) != 0 {
			t.Errorf("outbox rows left after flushing: %d", len(rows))
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func outboxRows(t *testing.T, f *fixture) []outbox.Pending {
	t.Helper()
	rows, err := outbox.Read(ctx, f.table(), partition(tenant, service))
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// A new try in the same state (nobody free) and the sent mark change no
// state and emit nothing.
func TestSameStateMovesEmitNothing(t *testing.T) {
	f := newFixture(t, store.NewMemoryTables())
	task := f.schedule(NewTask{Destination: "+41440000000", MaxQueueTimeSeconds: ptr(60)})
	for range 3 {
		if got := actions(f.deliver()); !slices.Equal(got, []string{ActionWaiting}) {
			t.Fatalf("deliver: %v, want waiting", got)
		}
		f.clock.Advance(10 * time.Second)
	}
	if _, err := f.svc.Cancel(ctx, tenant, service, task.ID); err != nil {
		t.Fatal(err)
	}
	evs := f.events.events()
	if got, want := eventStates(t, evs), []string{"null>Scheduled", "Scheduled>Queued", "Queued>Cancelled"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	checkEvents(t, evs, task)
}

// Without the outbox index entry the change is not written: a crash after
// it could lose its event otherwise.
func TestNoChangeWithoutPreparedOutbox(t *testing.T) {
	f := newFixture(t, store.NewMemoryTables())
	task := f.schedule(NewTask{Destination: "+41440000000"})
	f.events.failPrepare = switchboard.Errorf(switchboard.EUNAVAILABLE, "events", "storage down")
	if _, _, err := f.svc.Schedule(ctx, tenant, service, NewTask{Destination: "+41440000001"}); !switchboard.IsCode(err, switchboard.EUNAVAILABLE) {
		t.Errorf("Schedule: %v, want EUNAVAILABLE", err)
	}
	if got := f.counter(); got != 1 {
		t.Errorf("counter = %d, want 1: nothing admitted", got)
	}
	if _, err := f.svc.Cancel(ctx, tenant, service, task.ID); !switchboard.IsCode(err, switchboard.EUNAVAILABLE) {
		t.Errorf("Cancel: %v, want EUNAVAILABLE", err)
	}
	if got := f.get(task.ID); got.State != StateScheduled {
		t.Errorf("state = %s, want Scheduled (not cancelled)", got.State)
	}
}

// A task withdrawn because its message could not be sent takes its
// unsent creation event with it; if the outbox sweep handed the event over
// in between, a Cancelled event follows it.
func TestWithdrawnTaskTakesItsEvent(t *testing.T) {
	f := newFixture(t, store.NewMemoryTables())
	f.queue.FailSend(switchboard.Errorf(switchboard.EUNAVAILABLE, "queue", "broker down"))
	if _, _, err := f.svc.Schedule(ctx, tenant, service, NewTask{Destination: "+41440000000"}); !switchboard.IsCode(err, switchboard.EUNAVAILABLE) {
		t.Fatalf("Schedule: %v, want EUNAVAILABLE", err)
	}
	if evs, rows := f.events.events(), outboxRows(t, f); len(evs) != 0 || len(rows) != 0 {
		t.Errorf("events %v, outbox rows %d; want none for a withdrawn task", eventStates(t, evs), len(rows))
	}

	// The sweep flushes the partition just before the send fails.
	f.queue.BeforeNextSend(func() { f.events.Flush(ctx, TableName, partition(tenant, service)) })
	if _, _, err := f.svc.Schedule(ctx, tenant, service, NewTask{Destination: "+41440000000"}); !switchboard.IsCode(err, switchboard.EUNAVAILABLE) {
		t.Fatalf("Schedule: %v, want EUNAVAILABLE", err)
	}
	evs := f.events.events()
	if got, want := eventStates(t, evs), []string{"null>Scheduled", "Scheduled>Cancelled"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	if evs[0].Subject != evs[1].Subject || evs[1].Sequence != 2 {
		t.Errorf("events %s #%d, %s #%d; want one subject, sequence 1 then 2", evs[0].Subject, evs[0].Sequence, evs[1].Subject, evs[1].Sequence)
	}
	if got := f.counter(); got != 0 {
		t.Errorf("counter = %d, want 0", got)
	}
}

// Outbox rows live in the service's partition until flushed: listing,
// the worker and housekeeping (index and full scans) pass over them.
func TestOutboxRowsInThePartitionTripNothing(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		f := newFixture(t, tables)
		f.events.hold = true // the process died before each Flush
		f.router.SetAgents(agentA)
		a := f.schedule(NewTask{Destination: "+41440000000"})
		b := f.schedule(NewTask{Destination: "+41440000001", DueDateTimeUTC: f.clock.Now().Add(time.Hour).Format(time.RFC3339)})
		c := f.schedule(NewTask{Destination: "+41440000002", DueDateTimeUTC: f.clock.Now().Add(time.Hour).Format(time.RFC3339)})
		if got := actions(f.deliver()); !slices.Equal(got, []string{ActionAssigned}) {
			t.Fatalf("deliver: %v, want assigned", got)
		}
		if _, err := f.svc.Cancel(ctx, tenant, service, c.ID); err != nil {
			t.Fatal(err)
		}
		if got := len(outboxRows(t, f)); got != 5 {
			t.Fatalf("outbox rows = %d, want 5 (3 created, 1 assigned, 1 cancelled)", got)
		}
		page, err := f.svc.List(ctx, tenant, service, ListOptions{})
		if err != nil || len(page.Tasks) != 3 {
			t.Fatalf("List: %d tasks, %v; want 3", len(page.Tasks), err)
		}
		for _, top := range []int{1, 2} {
			var ids []string
			o := ListOptions{Top: top}
			for {
				p, err := f.svc.List(ctx, tenant, service, o)
				if err != nil {
					t.Fatal(err)
				}
				for _, task := range p.Tasks {
					ids = append(ids, task.ID)
				}
				if p.Continuation == "" {
					break
				}
				o.Continuation = p.Continuation
			}
			if want := []string{a.ID, b.ID, c.ID}; !slices.Equal(ids, want) {
				t.Errorf("paged by %d: %v, want %v", top, ids, want)
			}
		}
		rep, err := f.svc.Housekeep(ctx)
		if err != nil || rep.CountersFixed != 0 || rep.IndexRepaired != 0 || rep.FullScans != 1 {
			t.Errorf("Housekeep: %s, %v; want a full scan repairing nothing", rep, err)
		}
		if got := f.counter(); got != 2 {
			t.Errorf("counter = %d, want 2", got)
		}
		f.events.hold = false
		f.events.Flush(ctx, TableName, partition(tenant, service))
		evs := f.events.events()
		if len(evs) != 5 {
			t.Fatalf("events flushed late: %d, want 5", len(evs))
		}
	})
}

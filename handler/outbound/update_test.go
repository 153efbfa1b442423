package outbound

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"switchboard/handler/internal/testenv"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

func (f *fixture) update(id, patch string) (Task, error) {
	f.t.Helper()
	return f.svc.Update(ctx, tenant, service, id, switchboard.OutboundTaskPatch{Merge: []byte(patch)})
}

// A new due time reschedules the task: the old message is cancelled (and
// changes nothing should it come anyway), the new one is scheduled for the
// new time; the other fields take effect when it is assigned.
func TestUpdateReschedules(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		f := newFixture(t, tables)
		f.router.SetAgents(agentA, agentB)
		start := f.clock.Now()
		task := f.schedule(NewTask{Destination: "+41440000000", DueDateTimeUTC: start.Add(time.Hour).Format(time.RFC3339)})
		first := f.queue.Last()
		due := start.Add(2 * time.Hour)
		got, err := f.update(task.ID, fmt.Sprintf(`{"dueDateTimeUtc": %q, "priority": 80, "maxQueueTimeSeconds": 60, "preferredUsers": [%q], "context": {"case": "7"}}`,
			due.Format(time.RFC3339), agentB))
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		if got.State != StateScheduled || !got.DueAt.Equal(due) || got.Priority != 80 || got.MaxQueueTimeSeconds != 60 ||
			!slices.Equal(got.PreferredUsers, []string{agentB}) || got.Context["case"] != "7" || !got.Deadline.Equal(due.Add(time.Minute)) {
			t.Fatalf("updated task %+v; want Scheduled for %v, priority 80, queue time 60 s, preferred %s, context case=7", got, due, agentB)
		}
		if got.ETag == "" || got.ETag == task.ETag {
			t.Errorf("ETag %q, want a fresh one (was %q)", got.ETag, task.ETag)
		}
		if !slices.Contains(f.queue.Cancels(), first.Seq) {
			t.Errorf("cancels %v, want the old message %d cancelled", f.queue.Cancels(), first.Seq)
		}
		m := f.queue.Last()
		if m == first || !m.Msg.ScheduledAt.Equal(due) || body(m).Try != 2 {
			t.Fatalf("new message %+v, want try 2 scheduled for %v", m, due)
		}
		if stored := f.get(task.ID); stored.SequenceNumber != m.Seq || stored.SendPending || stored.Try != 2 {
			t.Errorf("stored sequence %d pending %v try %d; want %d, false, 2", stored.SequenceNumber, stored.SendPending, stored.Try, m.Seq)
		}
		// The old message arrives anyway (cancel raced its delivery).
		if w, err := f.svc.Handle(ctx, first.Msg.Body); err != nil || w.Action != ActionStale {
			t.Errorf("old message: %v, %v; want stale", w, err)
		}
		f.clock.Advance(time.Hour)
		if got := actions(f.deliver()); len(got) != 0 {
			t.Fatalf("deliveries at the old due time: %v, want none", got)
		}
		f.clock.Advance(time.Hour)
		ws := f.deliver()
		if got := actions(ws); !slices.Equal(got, []string{ActionAssigned}) || ws[0].Agent != agentB {
			t.Fatalf("at the new due time: %v, want assigned to the preferred %s", ws, agentB)
		}
		if got, want := eventStates(t, f.events.events()), []string{"null>Scheduled", "Scheduled>InProgress"}; !slices.Equal(got, want) {
			t.Errorf("events %v, want %v (a change of fields is no change of state)", got, want)
		}
	})
}

// A task waiting in the queue that is given a later due time is Scheduled
// again (an event says so); its pending retry is superseded.
func TestUpdateQueuedTaskToLater(t *testing.T) {
	f := newFixture(t, store.NewMemoryTables())
	task := f.schedule(NewTask{Destination: "+41440000000"})
	if got := actions(f.deliver()); !slices.Equal(got, []string{ActionWaiting}) {
		t.Fatalf("deliver: %v, want waiting", got)
	}
	retry := f.queue.Last()
	due := f.clock.Now().Add(30 * time.Minute)
	got, err := f.update(task.ID, fmt.Sprintf(`{"dueDateTimeUtc": %q}`, due.Format(time.RFC3339)))
	if err != nil {
		t.Fatal(err)
	}
	if got.State != StateScheduled || !got.DueAt.Equal(due) || !got.QueuedAt.Equal(due) {
		t.Fatalf("task %s due %v queued %v; want Scheduled, due and queued at %v", got.State, got.DueAt, got.QueuedAt, due)
	}
	f.clock.Advance(10 * time.Second)
	if w, err := f.svc.Handle(ctx, retry.Msg.Body); err != nil || w.Action != ActionStale {
		t.Errorf("superseded retry: %v, %v; want stale", w, err)
	}
	if got, want := eventStates(t, f.events.events()), []string{"null>Scheduled", "Scheduled>Queued", "Queued>Scheduled"}; !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	if got := f.counter(); got != 1 {
		t.Errorf("counter = %d, want 1 (still holds its slot)", got)
	}
}

// Merge patch semantics (RFC 7396): context entries merge, null removes
// an entry or restores a field's default; a patch that changes nothing
// writes nothing.
func TestUpdateMergesAsRFC7396(t *testing.T) {
	f := newFixture(t, store.NewMemoryTables())
	task := f.schedule(NewTask{Destination: "+41440000000", DueDateTimeUTC: f.clock.Now().Add(time.Hour).Format(time.RFC3339),
		Priority: ptr(70), Context: map[string]string{"a": "1", "b": "2"}})
	got, err := f.update(task.ID, `{"context": {"b": null, "c": "3"}, "priority": null}`)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"a": "1", "c": "3"}; !maps.Equal(got.Context, want) || got.Priority != DefaultPriority {
		t.Errorf("context %v priority %d; want %v and the default %d", got.Context, got.Priority, want, DefaultPriority)
	}
	if !got.DueAt.Equal(task.DueAt) || got.Try != 1 {
		t.Errorf("due %v try %d; want the due time and try untouched", got.DueAt, got.Try)
	}
	same, err := f.update(task.ID, `{"context": {"a": "1"}}`)
	if err != nil || same.ETag != got.ETag {
		t.Errorf("a patch changing nothing: ETag %q, %v; want %q (no write)", same.ETag, err, got.ETag)
	}
	sends := len(f.queue.Messages())
	if _, err := f.update(task.ID, `{}`); err != nil || len(f.queue.Messages()) != sends {
		t.Errorf("empty patch: %v, %d messages; want nothing sent", err, len(f.queue.Messages())-sends)
	}
}

// Validation is as when scheduling, naming the field; the state, ETag and
// existence are checked against the task as stored.
func TestUpdateRefuses(t *testing.T) {
	f := newFixture(t, store.NewMemoryTables())
	f.router.SetAgents(agentA)
	waitingTask := f.get(f.schedule(NewTask{Destination: "+41440000000", DueDateTimeUTC: f.clock.Now().Add(time.Hour).Format(time.RFC3339)}).ID)
	for _, tc := range []struct {
		name, patch, field string
	}{
		{"not an object", `[1]`, ""},
		{"not json", `{`, ""},
		{"destination", `{"destination": "+41440000001"}`, "destination"},
		{"state", `{"state": "Completed"}`, "state"},
		{"priority 0", `{"priority": 0}`, "priority"},
		{"priority 100", `{"priority": 100}`, "priority"},
		{"priority text", `{"priority": "high"}`, "priority"},
		{"queue time 4", `{"maxQueueTimeSeconds": 4}`, "maxQueueTimeSeconds"},
		{"queue time 3601", `{"maxQueueTimeSeconds": 3601}`, "maxQueueTimeSeconds"},
		{"bad due", `{"dueDateTimeUtc": "tomorrow"}`, "dueDateTimeUtc"},
		{"due too far", `{"dueDateTimeUtc": "2099-01-01T00:00:00Z"}`, "dueDateTimeUtc"},
		{"preferred user", `{"preferredUsers": ["bob"]}`, "preferredUsers[0]"},
		{"11 preferred users", `{"preferredUsers": [` + strings.TrimSuffix(strings.Repeat(`"`+agentA+`",`, 11), ",") + `]}`, "preferredUsers"},
		{"context value", `{"context": {"k": "` + strings.Repeat("v", MaxContextValueLength+1) + `"}}`, "context.k"},
		{"context number", `{"context": {"k": 1}}`, "context"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.update(waitingTask.ID, tc.patch)
			if !switchboard.IsCode(err, switchboard.EINVALID) || switchboard.ErrorField(err) != tc.field {
				t.Errorf("Update(%s): %v (field %q), want EINVALID naming %q", tc.patch, err, switchboard.ErrorField(err), tc.field)
			}
		})
	}
	if got := f.get(waitingTask.ID); got.Priority != DefaultPriority || got.ETag != waitingTask.ETag {
		t.Errorf("after refused patches: priority %d, ETag changed %v; want untouched", got.Priority, got.ETag != waitingTask.ETag)
	}

	stale := waitingTask.ETag
	if _, err := f.update(waitingTask.ID, `{"priority": 60}`); err != nil {
		t.Fatal(err)
	}
	_, err := f.svc.Update(ctx, tenant, service, waitingTask.ID, switchboard.OutboundTaskPatch{Merge: []byte(`{"priority": 61}`), IfMatch: stale})
	if !switchboard.IsCode(err, switchboard.EPRECONDITION) {
		t.Errorf("stale If-Match: %v, want EPRECONDITION", err)
	}
	fresh := f.get(waitingTask.ID)
	weak := "W/" + switchboard.PublicETag(fresh.ETag)
	if _, err := f.svc.Update(ctx, tenant, service, waitingTask.ID, switchboard.OutboundTaskPatch{Merge: []byte(`{"priority": 61}`), IfMatch: weak}); !switchboard.IsCode(err, switchboard.EPRECONDITION) {
		t.Errorf("a weak If-Match (RFC 9110: strong comparison): %v, want EPRECONDITION", err)
	}
	current := `"x", ` + switchboard.PublicETag(fresh.ETag)
	if got, err := f.svc.Update(ctx, tenant, service, waitingTask.ID, switchboard.OutboundTaskPatch{Merge: []byte(`{"priority": 61}`), IfMatch: current}); err != nil || got.Priority != 61 {
		t.Errorf("a list holding the current ETag: %v, priority %d; want 61", err, got.Priority)
	}

	busy := f.schedule(NewTask{Destination: "+41440000002"})
	if got := actions(f.deliver()); !slices.Equal(got, []string{ActionAssigned}) {
		t.Fatalf("deliver: %v, want assigned", got)
	}
	if _, err := f.update(busy.ID, `{"priority": 60}`); !switchboard.IsCode(err, switchboard.ECONFLICT) || switchboard.ErrorType(err) != "outbound-task-in-progress" {
		t.Errorf("InProgress: %v, want ECONFLICT outbound-task-in-progress", err)
	}
	if _, err := f.svc.Cancel(ctx, tenant, service, waitingTask.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.update(waitingTask.ID, `{"priority": 60}`); !switchboard.IsCode(err, switchboard.ECONFLICT) || switchboard.ErrorType(err) != "outbound-task-finished" {
		t.Errorf("Cancelled: %v, want ECONFLICT outbound-task-finished", err)
	}
	if _, err := f.update("00000000-0000-7000-8000-000000000000", `{"priority": 60}`); !switchboard.IsCode(err, switchboard.ENOTFOUND) {
		t.Errorf("unknown task: %v, want ENOTFOUND", err)
	}
}

// A shorter queue time for a waiting task brings its next try forward to
// the new end of its queue time, so it expires on time.
func TestUpdateShorterQueueTimeBringsTheTryForward(t *testing.T) {
	f := newFixture(t, store.NewMemoryTables())
	f.svc.o.RetryInterval = time.Minute
	task := f.schedule(NewTask{Destination: "+41440000000", MaxQueueTimeSeconds: ptr(600)})
	if got := actions(f.deliver()); !slices.Equal(got, []string{ActionWaiting}) {
		t.Fatalf("deliver: %v, want waiting", got)
	}
	got, err := f.update(task.ID, `{"maxQueueTimeSeconds": 20}`)
	if err != nil {
		t.Fatal(err)
	}
	if want := task.QueuedAt.Add(20 * time.Second); !got.Deadline.Equal(want) || !got.NextTryAt.Equal(want) {
		t.Fatalf("deadline %v next try %v; want both %v", got.Deadline, got.NextTryAt, want)
	}
	f.clock.Advance(20 * time.Second)
	if got := actions(f.deliver()); !slices.Equal(got, []string{ActionExpired}) {
		t.Errorf("at the new end of the queue time: %v, want expired", got)
	}
}

// When the new try's message cannot be sent, the old message is kept: it
// sends the new try when it comes (or housekeeping does), so the task is
// never left without a message.
func TestUpdateSendFailureKeepsTheOldMessage(t *testing.T) {
	f := newFixture(t, store.NewMemoryTables())
	task := f.schedule(NewTask{Destination: "+41440000000", DueDateTimeUTC: f.clock.Now().Add(time.Minute).Format(time.RFC3339)})
	first := f.queue.Last()
	f.queue.FailSend(switchboard.Errorf(switchboard.EUNAVAILABLE, "queue", "broker down"))
	due := f.clock.Now().Add(time.Hour)
	got, err := f.update(task.ID, fmt.Sprintf(`{"dueDateTimeUtc": %q}`, due.Format(time.RFC3339)))
	if err != nil || !got.SendPending || got.Try != 2 {
		t.Fatalf("Update: %+v, %v; want the new try written, its send pending", got, err)
	}
	if len(f.queue.Cancels()) != 0 {
		t.Errorf("cancels %v, want the old message kept", f.queue.Cancels())
	}
	f.queue.FailSend(nil)
	f.clock.Advance(time.Minute)
	if w, err := f.svc.Handle(ctx, first.Msg.Body); err != nil || w.Action != ActionResent {
		t.Fatalf("the old message: %v, %v; want it to send the new try", w, err)
	}
	if m := f.queue.Last(); m == first || !m.Msg.ScheduledAt.Equal(due) || body(m).Try != 2 {
		t.Errorf("message %+v, want try 2 scheduled for %v", m, due)
	}
}

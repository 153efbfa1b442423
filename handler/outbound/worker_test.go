package outbound

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"switchboard/handler/functions"
	"switchboard/handler/internal/testenv"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

func TestWorkerDropsMalformedMessages(t *testing.T) {
	f := newFixture(t, store.NewMemoryTables())
	task := f.schedule(NewTask{Destination: "+41440000000"})
	for _, tc := range []struct {
		name string
		body string
	}{
		{"empty", ``},
		{"not json", `hello`},
		{"array", `[1,2]`},
		{"base64 left undecoded", base64.StdEncoding.EncodeToString([]byte(`{"tenantId":"x"}`))},
		{"unknown field", `{"tenantId":"` + tenant + `","serviceId":"support","taskId":"` + task.ID + `","try":1,"extra":1}`},
		{"missing task id", `{"tenantId":"` + tenant + `","serviceId":"support","try":1}`},
		{"bad tenant", `{"tenantId":"contoso","serviceId":"support","taskId":"` + task.ID + `","try":1}`},
		{"try 0", `{"tenantId":"` + tenant + `","serviceId":"support","taskId":"` + task.ID + `","try":0}`},
		{"unknown task", `{"tenantId":"` + tenant + `","serviceId":"support","taskId":"00000000-0000-7000-8000-000000000000","try":1}`},
		{"other service", `{"tenantId":"` + tenant + `","serviceId":"sales","taskId":"` + task.ID + `","try":1}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := f.svc.Handle(ctx, []byte(tc.body))
			if err != nil || w.Action != ActionDropped {
				t.Errorf("Handle = %v, %v; want dropped without error", w, err)
			}
		})
	}
	if got := f.get(task.ID); got.State != StateScheduled || got.Try != 1 {
		t.Errorf("task = %s try %d, want untouched", got.State, got.Try)
	}
}

// A redelivered message, even delivered concurrently many times, assigns
// the task once.
func TestRedeliveryNeverAssignsTwice(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		f := newFixture(t, tables)
		f.router.SetAgents(agentA, agentB, agentC)
		task := f.schedule(NewTask{Destination: "+41440000000"})
		m := f.queue.Last()
		instances := []*Service{f.svc, f.newService()}
		var mu sync.Mutex
		var got []Work
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w, err := instances[i%2].Handle(ctx, m.Msg.Body)
				if err != nil {
					t.Errorf("Handle: %v", err)
					return
				}
				mu.Lock()
				got = append(got, w)
				mu.Unlock()
			}()
		}
		wg.Wait()
		agents := map[string]bool{}
		for _, w := range got {
			switch w.Action {
			case ActionAssigned:
				agents[w.Agent] = true
			case ActionStale:
			default:
				t.Errorf("delivery: %v, want assigned or stale", w)
			}
		}
		if len(agents) != 1 {
			t.Errorf("agents reported: %v, want exactly one", agents)
		}
		if held := f.router.Held(); len(held) != 1 {
			t.Errorf("holds = %v, want one agent held", held)
		}
		stored := f.get(task.ID)
		if stored.State != StateInProgress || stored.Attempts != 1 || !agents[stored.Agent] {
			t.Errorf("task = %s, %d attempts, agent %s; want InProgress, 1, one of %v", stored.State, stored.Attempts, stored.Agent, agents)
		}
		// Later redeliveries change nothing.
		w, err := f.svc.Handle(ctx, m.Msg.Body)
		if err != nil || w.Action != ActionStale {
			t.Errorf("late redelivery: %v, %v; want stale", w, err)
		}
	})
}

func TestWorkerRetriesThenExpires(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		f := newFixture(t, tables)
		task := f.schedule(NewTask{Destination: "+41440000000", MaxQueueTimeSeconds: ptr(15)})
		if got := actions(f.deliver()); !slices.Equal(got, []string{ActionWaiting}) {
			t.Fatalf("first try: %v, want waiting", got)
		}
		stored := f.get(task.ID)
		if stored.State != StateQueued || stored.Try != 2 || !stored.NextTryAt.Equal(task.DueAt.Add(10*time.Second)) {
			t.Fatalf("after the first try: %s try %d next %v; want Queued, try 2, due+10s", stored.State, stored.Try, stored.NextTryAt)
		}
		first := f.queue.Messages()[0]
		if w, err := f.svc.Handle(ctx, first.Msg.Body); err != nil || w.Action != ActionStale {
			t.Errorf("the superseded first message again: %v, %v; want stale", w, err)
		}
		f.clock.Advance(10 * time.Second)
		if got := actions(f.deliver()); !slices.Equal(got, []string{ActionWaiting}) {
			t.Fatalf("second try: %v, want waiting", got)
		}
		if next := f.get(task.ID).NextTryAt; !next.Equal(task.Deadline) {
			t.Errorf("third try at %v, want the deadline %v", next, task.Deadline)
		}
		f.clock.Advance(4 * time.Second)
		if got := actions(f.deliver()); len(got) != 0 {
			t.Fatalf("deliveries before the deadline: %v, want none", got)
		}
		f.clock.Advance(time.Second)
		if got := actions(f.deliver()); !slices.Equal(got, []string{ActionExpired}) {
			t.Fatalf("try at the deadline: %v, want expired", got)
		}
		if stored := f.get(task.ID); stored.State != StateExpired {
			t.Errorf("state = %s, want Expired", stored.State)
		}
		if got := f.counter(); got != 0 {
			t.Errorf("counter = %d, want 0: an expired task frees its slot", got)
		}
		if got := f.queue.Live(); got != 0 {
			t.Errorf("messages left = %d, want 0", got)
		}
	})
}

func TestWorkerAssignsWhenAnAgentFreesUp(t *testing.T) {
	f := newFixture(t, store.NewMemoryTables())
	f.router.SetAgents(agentA)
	first := f.schedule(NewTask{Destination: "+41440000000"})
	second := f.schedule(NewTask{Destination: "+41440000001", PreferredUsers: []string{agentB}})
	if got := actions(f.deliver()); !slices.Equal(got, []string{ActionAssigned, ActionWaiting}) {
		t.Fatalf("deliver: %v, want assigned then waiting", got)
	}
	if _, err := f.svc.Complete(ctx, tenant, service, first.ID, Completion{Outcome: "", Note: ""}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(10 * time.Second)
	ws := f.deliver()
	if got := actions(ws); !slices.Equal(got, []string{ActionAssigned}) || ws[0].Agent != agentA {
		t.Fatalf("deliver: %v, want the second task assigned to %s", ws, agentA)
	}
	if got := f.get(second.ID); got.State != StateInProgress {
		t.Errorf("second task %s, want InProgress", got.State)
	}
}

func TestWorkerPrefersPreferredUsers(t *testing.T) {
	f := newFixture(t, store.NewMemoryTables())
	f.router.SetAgents(agentA, agentB, agentC)
	f.schedule(NewTask{Destination: "+41440000000", PreferredUsers: []string{agentC}})
	ws := f.deliver()
	if len(ws) != 1 || ws[0].Agent != agentC {
		t.Errorf("deliver: %v, want the preferred %s", ws, agentC)
	}
}

// A message of a lower-priority task that finds an agent free gives it to
// the higher-priority task waiting longer first.
func TestWorkerHonoursPriority(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		f := newFixture(t, tables)
		low := f.schedule(NewTask{Destination: "+41440000000", Priority: ptr(10)})
		high := f.schedule(NewTask{Destination: "+41440000001", Priority: ptr(90)})
		if got := actions(f.deliver()); !slices.Equal(got, []string{ActionWaiting, ActionWaiting}) {
			t.Fatalf("deliver: %v, want both waiting", got)
		}
		f.router.SetAgents(agentA)
		// Only the low-priority task's next try comes now.
		lowTry := f.get(low.ID)
		m := f.queue.Messages()[len(f.queue.Messages())-2]
		if body(m).TaskID != low.ID || body(m).Try != lowTry.Try {
			t.Fatalf("message %+v is not the low task's current try", body(m))
		}
		w, err := f.svc.Handle(ctx, m.Msg.Body)
		if err != nil {
			t.Fatal(err)
		}
		if w.Action != ActionWaiting || w.Ahead != 1 {
			t.Errorf("low task's try: %v, want waiting after assigning 1 ahead", w)
		}
		if got := f.get(high.ID); got.State != StateInProgress || got.Agent != agentA {
			t.Errorf("high-priority task: %s with %q, want InProgress with %s", got.State, got.Agent, agentA)
		}
		if got := f.get(low.ID); got.State != StateQueued {
			t.Errorf("low-priority task: %s, want Queued", got.State)
		}
	})
}

// A message that keeps failing is dead-lettered by Service Bus; the task
// it carried waits until housekeeping expires it and frees its slot.
func TestPoisonedMessageSlotReleasedByHousekeeping(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		f := newFixture(t, tables)
		f.limits.limit = 1
		task := f.schedule(NewTask{Destination: "+41440000000", MaxQueueTimeSeconds: ptr(60)})
		f.router.Fail(switchboard.Errorf(switchboard.EINTERNAL, "routing", "corrupt service row"))
		m := f.queue.Last()
		for range 10 { // MaxDeliveryCount
			if _, err := f.svc.Handle(ctx, m.Msg.Body); err == nil {
				t.Fatal("Handle succeeded, want the failure that gets the message retried")
			}
		}
		f.router.Fail(nil)
		rep, err := f.svc.Housekeep(ctx)
		if err != nil || rep.Expired != 0 {
			t.Fatalf("housekeeping before the deadline: %+v, %v; want nothing expired", rep, err)
		}
		f.clock.Advance(60*time.Second + DefaultExpiryGrace + time.Second)
		rep, err = f.svc.Housekeep(ctx)
		if err != nil || rep.Expired != 1 {
			t.Fatalf("housekeeping after the deadline: %+v, %v; want 1 expired", rep, err)
		}
		if got := f.get(task.ID); got.State != StateExpired {
			t.Errorf("state = %s, want Expired", got.State)
		}
		if got := f.counter(); got != 0 {
			t.Errorf("counter = %d, want 0", got)
		}
		f.schedule(NewTask{Destination: "+41440000000"})
	})
}

// A try whose send failed is sent by the redelivery of the message that
// started it.
func TestWorkerSendFailureRecoveredOnRedelivery(t *testing.T) {
	f := newFixture(t, store.NewMemoryTables())
	task := f.schedule(NewTask{Destination: "+41440000000"})
	m := f.queue.Due(f.clock.Now())[0]
	f.queue.FailSend(errBoom)
	if _, err := f.svc.Handle(ctx, m.Msg.Body); err == nil {
		t.Fatal("Handle succeeded with the queue down, want an error (retry)")
	}
	if got := f.get(task.ID); !got.SendPending || got.Try != 2 {
		t.Fatalf("task send pending %v try %d, want true, 2", got.SendPending, got.Try)
	}
	f.queue.FailSend(nil)
	w, err := f.svc.Handle(ctx, m.Msg.Body)
	if err != nil || w.Action != ActionResent {
		t.Fatalf("redelivery: %v, %v; want resent", w, err)
	}
	if got := f.get(task.ID); got.SendPending {
		t.Error("send still pending after the resend")
	}
	if last := f.queue.Last(); body(last).Try != 2 || body(last).TaskID != task.ID {
		t.Errorf("last message %+v, want try 2 of the task", body(last))
	}
}

func TestHousekeepingRepairs(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		f := newFixture(t, tables)
		f.router.SetAgents(agentA)
		inProgress := f.schedule(NewTask{Destination: "+41440000000"})
		f.deliver()
		waiting := f.schedule(NewTask{Destination: "+41440000001", DueDateTimeUTC: f.clock.Now().Add(time.Hour).Format(time.RFC3339)})
		tb := f.table()
		pk := partition(tenant, service)

		// A counter off by some, a stray index row, a lost index row.
		c, _ := tb.Get(ctx, pk, counterKey)
		c.Props["Count"] = int64(7)
		if _, err := tb.Update(ctx, c, "*"); err != nil {
			t.Fatal(err)
		}
		if err := tb.Delete(ctx, pk, openKey(waiting.ID), "*"); err != nil {
			t.Fatal(err)
		}
		stray := openEntity(Task{ID: "00000000-0000-7000-8000-000000000001", TenantID: tenant, ServiceID: service, State: StateQueued})
		if _, err := tb.Insert(ctx, stray); err != nil {
			t.Fatal(err)
		}
		rep, err := f.svc.Housekeep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rep.FullScans != 1 || rep.IndexRepaired != 2 || rep.CountersFixed != 1 {
			t.Errorf("report %+v, want a full scan, 2 index rows repaired, 1 counter fixed", rep)
		}
		if got := f.counter(); got != 2 {
			t.Errorf("counter = %d, want 2", got)
		}

		// The quick pass (no full scan within the hour) fixes the counter too.
		c, _ = tb.Get(ctx, pk, counterKey)
		c.Props["Count"] = int64(0)
		if _, err := tb.Update(ctx, c, "*"); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Minute)
		if rep, err = f.svc.Housekeep(ctx); err != nil || rep.CountersFixed != 1 || rep.FullScans != 0 {
			t.Errorf("quick pass: %+v, %v; want the counter fixed without a full scan", rep, err)
		}
		if got := f.counter(); got != 2 {
			t.Errorf("counter = %d, want 2", got)
		}

		// An InProgress task never completed fails after the limit.
		f.clock.Advance(DefaultInProgressLimit)
		if rep, err = f.svc.Housekeep(ctx); err != nil || rep.TimedOut != 1 || rep.Expired != 1 {
			t.Errorf("after 12 h: %+v, %v; want 1 timed out and 1 expired (its message never came)", rep, err)
		}
		if got := f.get(inProgress.ID); got.State != StateFailed {
			t.Errorf("state = %s, want Failed", got.State)
		}
		if held := f.router.Held(); len(held) != 0 {
			t.Errorf("holds = %v, want none", held)
		}
		if got := f.get(waiting.ID); got.State != StateExpired {
			t.Errorf("the waiting task is %s, want Expired", got.State)
		}
		if got := f.counter(); got != 0 {
			t.Errorf("counter = %d, want 0", got)
		}
	})
}

func TestHousekeepingResendsAndDeletes(t *testing.T) {
	f := newFixture(t, store.NewMemoryTables())
	task := f.schedule(NewTask{Destination: "+41440000000", ReferenceID: "r"})
	// A sender that died between the write and the send.
	tb := f.table()
	e, _ := tb.Get(ctx, partition(tenant, service), taskKey(task.ID))
	e.Props["SendPending"] = true
	if _, err := tb.Update(ctx, e, "*"); err != nil {
		t.Fatal(err)
	}
	sends := len(f.queue.Messages())
	if rep, _ := f.svc.Housekeep(ctx); rep.Resent != 0 {
		t.Errorf("resent %d at once, want 0 before ResendAfter", rep.Resent)
	}
	f.clock.Advance(DefaultResendAfter + time.Second)
	if rep, err := f.svc.Housekeep(ctx); err != nil || rep.Resent != 1 {
		t.Errorf("housekeeping: %+v, %v; want 1 resent", rep, err)
	}
	if got := len(f.queue.Messages()); got != sends+1 {
		t.Errorf("messages sent = %d, want %d", got, sends+1)
	}
	if _, err := f.svc.Cancel(ctx, tenant, service, task.ID); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(DefaultRetention + 2*time.Hour)
	rep, err := f.svc.Housekeep(ctx)
	if err != nil || rep.Deleted != 1 {
		t.Errorf("after retention: %+v, %v; want 1 deleted", rep, err)
	}
	if _, err := f.svc.Get(ctx, tenant, service, task.ID); !switchboard.IsCode(err, switchboard.ENOTFOUND) {
		t.Errorf("Get after retention: %v, want ENOTFOUND", err)
	}
	if _, c, err := f.svc.Schedule(ctx, tenant, service, NewTask{Destination: "+41440000000", ReferenceID: "r"}); err != nil || !c {
		t.Errorf("the referenceId after retention: created %v, %v; want a new task", c, err)
	}
}

// The worker behind the Service Bus trigger takes the body in each form
// the host may pass it: an object, a JSON string, base64.
func TestWorkerThroughTheTrigger(t *testing.T) {
	f := newFixture(t, store.NewMemoryTables())
	f.router.SetAgents(agentA, agentB, agentC)
	var got []Work
	fn := functions.ServiceBusFunc("message", func(ctx context.Context, inv *functions.Invocation, m functions.Message) error {
		w, err := f.svc.Handle(ctx, m.Body)
		got = append(got, w)
		return err
	})
	for _, form := range []string{"object", "string", "base64"} {
		task := f.schedule(NewTask{Destination: "+41440000000"})
		body := messageBody(task.ID)
		var data string
		switch form {
		case "object":
			data = body
		case "string":
			b, _ := json.Marshal(body)
			data = string(b)
		case "base64":
			data = `"` + base64.StdEncoding.EncodeToString([]byte(body)) + `"`
		}
		inv, err := functions.Decode(strings.NewReader(`{"Data": {"message": ` + data + `}, "Metadata": {"DeliveryCount": "1"}}`))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fn(ctx, inv); err != nil {
			t.Fatalf("%s: %v", form, err)
		}
		if w := got[len(got)-1]; w.Action != ActionAssigned || w.TaskID != task.ID {
			t.Errorf("%s: %v, want the task assigned", form, w)
		}
	}
}

func messageBody(taskID string) string {
	return `{"tenantId":"` + tenant + `","serviceId":"` + service + `","taskId":"` + taskID + `","try":1}`
}

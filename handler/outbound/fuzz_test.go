package outbound

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"switchboard/handler/store"
)

// FuzzWorkerMessage feeds arbitrary Service Bus message bodies to the
// worker, with a due task and a scheduled one stored ($TASK and $LATER in
// the input name them, $TENANT and $SERVICE their keys): it never panics,
// never fails (a message that makes no sense is dropped, not retried
// forever), and whatever it did leaves the cap's counter, the task states
// and the agents' holds agreeing with each other.
func FuzzWorkerMessage(f *testing.F) {
	for _, seed := range []string{
		`{"tenantId":"$TENANT","serviceId":"$SERVICE","taskId":"$TASK","try":1}`,
		`{"tenantId":"$TENANT","serviceId":"$SERVICE","taskId":"$LATER","try":1}`,
		`{"tenantId":"$TENANT","serviceId":"$SERVICE","taskId":"$TASK","try":2}`,
		`{"tenantId":"$TENANT","serviceId":"$SERVICE","taskId":"$TASK","try":0}`,
		`{"tenantId":"$TENANT","serviceId":"$SERVICE","taskId":"$TASK","try":1,"extra":true}`,
		`{"tenantId":"$TENANT","serviceId":"other","taskId":"$TASK","try":1}`,
		`{"tenantId":"x","serviceId":"$SERVICE","taskId":"not-a-task","try":1}`,
		`{"tenantId":"$TENANT","serviceId":"a|b","taskId":"$TASK","try":1e3}`,
		`{}`, `null`, `[]`, `{"try":"1"}`, `{"a":`, "", "\xff",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		fx := newFixture(t, store.NewMemoryTables())
		fx.router.SetAgents(agentA)
		due := fx.schedule(NewTask{Destination: "+41440000000"})
		later := fx.schedule(NewTask{Destination: "+41440000001", DueDateTimeUTC: fx.clock.Now().Add(time.Hour).Format(time.RFC3339)})
		body := strings.NewReplacer("$TENANT", tenant, "$SERVICE", service, "$TASK", due.ID, "$LATER", later.ID).Replace(input)
		w, err := fx.svc.Handle(context.Background(), []byte(body))
		if err != nil {
			t.Fatalf("Handle(%q): %v, want no error on memory tables", body, err)
		}
		if !slices.Contains([]string{ActionDropped, ActionStale, ActionAssigned, ActionWaiting, ActionExpired, ActionResent}, w.Action) {
			t.Fatalf("Handle(%q): action %q", body, w.Action)
		}
		slots, inProgress := 0, 0
		for _, id := range []string{due.ID, later.ID} {
			task := fx.get(id)
			if Counted(task.State) {
				slots++
			}
			if task.State == StateInProgress {
				inProgress++
				if task.Agent != agentA {
					t.Fatalf("task %s InProgress with agent %q, want %s", id, task.Agent, agentA)
				}
			}
		}
		if got := fx.counter(); got != slots {
			t.Fatalf("after %q (%s): counter %d, tasks holding slots %d", body, w.Action, got, slots)
		}
		if held := fx.router.Held(); len(held) != inProgress {
			t.Fatalf("after %q (%s): holds %v, tasks in progress %d", body, w.Action, held, inProgress)
		}
	})
}

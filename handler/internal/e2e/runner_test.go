package e2e_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"switchboard/handler/internal/e2e"
	"switchboard/handler/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// The real handler, started by the local runner on Azurite: the HTTP front
// routes by function.json, and a queue message that its function cannot
// process is redelivered and in the end dead-lettered.
func TestRunnerWithTheRealHandler(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds the handler and starts Azurite")
	}
	env := e2e.Start(t, e2e.Options{
		// A Service Bus function the handler does not implement: every
		// delivery fails (the handler answers 404 for an unknown function).
		Functions: map[string]string{
			"E2EUnknownWorker": `{"bindings":[{"type":"serviceBusTrigger","direction":"in","name":"message","queueName":"%E2E_QUEUE%","connection":"ServiceBusConnection"}]}`,
		},
		Env:              map[string]string{"E2E_QUEUE": "e2e-failing"},
		MaxDeliveryCount: 3,
	})

	t.Run("health reaches storage", func(t *testing.T) {
		status, _, body := env.Do(t, "GET", "/api/health", nil)
		var got struct{ Status, Storage string }
		if status != 200 || json.Unmarshal(body, &got) != nil || got.Storage != "ok" {
			t.Errorf("GET /api/health = %d %s, want 200 with storage ok", status, body)
		}
	})

	t.Run("the handler answers GET / as the host polls it", func(t *testing.T) {
		status, _, body := env.Do(t, "GET", "/admin/host/status", nil)
		var st struct{ State, Handler string }
		if status != 200 || json.Unmarshal(body, &st) != nil || st.State != "Running" || st.Handler == "" {
			t.Fatalf("status = %d %s", status, body)
		}
		resp, err := http.Get(st.Handler + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.Contains(string(raw), "ready") {
			t.Errorf("GET %s/ = %d %q, want 200 ready", st.Handler, resp.StatusCode, raw)
		}
	})

	t.Run("unknown route", func(t *testing.T) {
		status, hdr, body := env.Do(t, "GET", "/api/no-such-route", nil)
		var p struct {
			Type   string
			Status int
		}
		if status != 404 || hdr.Get("Content-Type") != "application/problem+json" || json.Unmarshal(body, &p) != nil || p.Status != 404 || p.Type == "" {
			t.Errorf("GET /api/no-such-route = %d %s %s, want a 404 problem", status, hdr.Get("Content-Type"), body)
		}
	})

	t.Run("wrong method on a real route", func(t *testing.T) {
		if status, _, body := env.Do(t, "DELETE", "/api/health", nil); status != 404 {
			t.Errorf("DELETE /api/health = %d %s, want 404 (as in Azure)", status, body)
		}
	})

	t.Run("a failing message is redelivered, then dead-lettered", func(t *testing.T) {
		seq := env.Send(t, "e2e-failing", map[string]string{"taskId": "t-1"})
		st := env.WaitQueue(t, "e2e-failing", "the message dead-lettered", func(st e2e.QueueState) bool { return st.DeadLettered == 1 })
		if st.Active != 0 || st.Locked != 0 || st.Completed != 0 {
			t.Errorf("queue = %+v, want only the dead letter", st.QueueStats)
		}
		dl := st.DeadLetters[0]
		if dl.SequenceNumber != seq || dl.DeliveryCount != 3 || dl.DeadLetterReason != "MaxDeliveryCountExceeded" || !strings.Contains(dl.DeadLetterErrorDescription, "404") {
			t.Errorf("dead letter = %+v, want sequence %d delivered 3 times, failed with the handler's 404", dl, seq)
		}
		var body struct{ TaskID string }
		if json.Unmarshal(dl.Body, &body) != nil || body.TaskID != "t-1" {
			t.Errorf("dead letter body = %s", dl.Body)
		}
		if out := env.Output(); strings.Count(out, "E2EUnknownWorker] invocation") != 3 {
			t.Errorf("the runner logged %d failed invocations, want 3", strings.Count(out, "E2EUnknownWorker] invocation"))
		}
	})
}

// Package outbounde2e tests outbound tasks end to end: the real handler
// behind the local runner, on Azurite, with presence polled from the Graph
// simulator and the tasks' messages on the runner's in-process queue or on
// the Service Bus stand-in (through the real azservicebus client).
package outbounde2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"switchboard/handler/dev/graphsim"
	"switchboard/handler/internal/e2e"
	"switchboard/handler/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	tenant    = "2c9d8e7f-6a5b-4c3d-8e2f-1a0b9c8d7e6f"
	appID     = "4f3e2d1c-0b9a-4876-8543-210fedcba987"
	appSecret = "e2e-outbound-secret"
	queue     = "outbound-tasks"
	// maxDeliveries is the queues' MaxDeliveryCount in these tests.
	maxDeliveries = 3
)

type task struct {
	ID             string   `json:"id"`
	State          string   `json:"state"`
	Attempts       int      `json:"attempts"`
	PreferredUsers []string `json:"preferredUsers"`
	Agent          *struct {
		UserID string `json:"userId"`
	} `json:"agent"`
}

func (t task) agent() string {
	if t.Agent == nil {
		return ""
	}
	return t.Agent.UserID
}

// faultyTables is a proxy in front of Azurite that refuses the reads of
// the rows whose keys contain a chosen text: storage failing for one task.
type faultyTables struct {
	srv  *httptest.Server
	fail atomic.Value // string
}

func newFaultyTables(t *testing.T) (*faultyTables, string) {
	t.Helper()
	az := testenv.NewAzurite(t)
	m := regexp.MustCompile(`TableEndpoint=(http://[^/;]+)`).FindStringSubmatch(az)
	if m == nil {
		t.Fatalf("no table endpoint in %q", az)
	}
	target, _ := url.Parse(m[1])
	f := &faultyTables{}
	f.fail.Store("")
	proxy := httputil.NewSingleHostReverseProxy(target)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s := f.fail.Load().(string); s != "" && r.Method == http.MethodGet && strings.Contains(r.URL.String(), s) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_, _ = fmt.Fprint(w, `{"odata.error":{"code":"AuthorizationFailure","message":{"lang":"en-US","value":"injected by the test"}}}`)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	port, _ := strconv.Atoi(strings.TrimPrefix(f.srv.URL, "http://127.0.0.1:"))
	return f, testenv.AzuriteConnectionString(port)
}

type harness struct {
	t      *testing.T
	env    *e2e.Env
	sim    *graphsim.Sim
	users  []string
	tables *faultyTables
	// deadLetters waits for the dead letters of the outbound queue and
	// returns their bodies.
	deadLetters func(n int) []string
	// send puts a message on the outbound queue, as a redelivery would.
	send func(body string)
	// transport names the queue used.
	transport string
}

// start runs the handler behind the local runner with three Available
// agents, members of service "support", polled once. With serviceBus the
// handler and the runner use the Service Bus stand-in, else the runner's
// in-process queues.
func start(t *testing.T, serviceBus bool) *harness {
	t.Helper()
	tn := e2e.NewTenant(t, e2e.TenantOptions{Sim: graphsim.Options{Seed: 5}, ID: tenant, App: appID, Secret: appSecret,
		Users: 3, Domain: "contoso.example"})
	h := &harness{t: t, sim: tn.Sim, transport: "in-process queue", users: tn.UserIDs()}
	tables, tablesConn := newFaultyTables(t)
	h.tables = tables
	settings := map[string]string{"OUTBOUND_QUEUE": queue}
	var sbConn string
	if serviceBus {
		sbConn = testenv.NewServiceBus(t, testenv.ServiceBusOptions{MaxDeliveryCount: maxDeliveries})
		settings["ServiceBusConnection"] = sbConn
		h.transport = "Service Bus stand-in"
	}
	h.env = tn.Start(t, e2e.Options{Env: settings, Tables: tablesConn, MaxDeliveryCount: maxDeliveries})
	if serviceBus {
		h.deadLetters = func(n int) []string { return serviceBusDeadLetters(t, sbConn, n) }
		h.send = func(body string) { serviceBusSend(t, sbConn, body) }
	} else {
		h.send = func(body string) { h.env.Send(t, queue, body) }
		h.deadLetters = func(n int) []string {
			st := h.env.WaitQueue(t, queue, fmt.Sprintf("%d dead letters", n), func(st e2e.QueueState) bool { return len(st.DeadLetters) >= n })
			var out []string
			for _, d := range st.DeadLetters {
				out = append(out, string(d.Body))
			}
			return out
		}
	}
	members := make([]map[string]any, len(h.users))
	for i, u := range h.users {
		members[i] = map[string]any{"userId": u, "active": true}
	}
	service := map[string]any{"name": "Support", "members": members, "distribution": map[string]any{"order": "LongestIdle", "holdSeconds": 30}}
	if status, _, raw := h.env.Do(t, "PUT", "/api/tenants/"+tenant+"/services/support", service); status != http.StatusCreated {
		t.Fatalf("PUT service: %d %s", status, raw)
	}
	h.env.Invoke(t, "PresencePoll")
	return h
}

func serviceBusDeadLetters(t *testing.T, conn string, n int) []string {
	t.Helper()
	c, err := azservicebus.NewClientFromConnectionString(conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	r, err := c.NewReceiverForQueue(queue, &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter, ReceiveMode: azservicebus.ReceiveModePeekLock})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(context.Background())
	var out []string
	deadline := time.Now().Add(60 * time.Second)
	for len(out) < n && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		msgs, err := r.ReceiveMessages(ctx, n-len(out), nil)
		cancel()
		if err != nil && ctx.Err() == nil {
			t.Fatalf("dead letters: %v", err)
		}
		for _, m := range msgs {
			out = append(out, string(m.Body))
			_ = r.AbandonMessage(context.Background(), m, nil) // leave it for later readers
		}
	}
	if len(out) < n {
		t.Fatalf("dead letters: %d after 60 s, want %d", len(out), n)
	}
	return out
}

func serviceBusSend(t *testing.T, conn, body string) {
	t.Helper()
	c, err := azservicebus.NewClientFromConnectionString(conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	s, err := c.NewSender(queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if err := s.SendMessage(context.Background(), &azservicebus.Message{Body: []byte(body)}, nil); err != nil {
		t.Fatal(err)
	}
}

// waitOutput waits until the runner's output (the handler's invocation
// logs among it) contains text n times.
func (h *harness) waitOutput(text string, n int) {
	h.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for strings.Count(h.env.Output(), text) < n {
		if time.Now().After(deadline) {
			h.t.Fatalf("%q not logged %d times within 60 s", text, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (h *harness) path(suffix string) string {
	return "/api/tenants/" + tenant + "/services/support/outbound-tasks" + suffix
}

func (h *harness) schedule(body map[string]any) (int, task, []byte) {
	h.t.Helper()
	status, _, raw := h.env.Do(h.t, "POST", h.path(""), body)
	var tk task
	if status < 300 {
		if err := json.Unmarshal(raw, &tk); err != nil {
			h.t.Fatalf("POST reply %s: %v", raw, err)
		}
	}
	return status, tk, raw
}

func (h *harness) mustSchedule(body map[string]any) task {
	h.t.Helper()
	status, tk, raw := h.schedule(body)
	if status != http.StatusAccepted {
		h.t.Fatalf("POST %v: %d %s, want 202", body, status, raw)
	}
	return tk
}

func (h *harness) get(id string) task {
	h.t.Helper()
	status, _, raw := h.env.Do(h.t, "GET", h.path("/"+id), nil)
	var tk task
	if status != http.StatusOK || json.Unmarshal(raw, &tk) != nil {
		h.t.Fatalf("GET task %s: %d %s", id, status, raw)
	}
	return tk
}

// waitState polls the task until it is in state (at most 60 s).
func (h *harness) waitState(id, state string) task {
	h.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		tk := h.get(id)
		if tk.State == state {
			return tk
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("task %s is %s after 60 s, want %s", id, tk.State, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (h *harness) do(method, suffix string, body any, want int) []byte {
	h.t.Helper()
	status, _, raw := h.env.Do(h.t, method, h.path(suffix), body)
	if status != want {
		h.t.Fatalf("%s %s: %d %s, want %d", method, suffix, status, raw, want)
	}
	return raw
}

func (h *harness) setCap(n int) {
	h.t.Helper()
	body := map[string]any{"outbound": map[string]any{"maxScheduledTasksPerService": n}}
	if status, _, raw := h.env.Do(h.t, "PATCH", "/api/tenants/"+tenant+"/settings", body); status != http.StatusOK {
		h.t.Fatalf("PATCH settings: %d %s", status, raw)
	}
}

// inConversation reports the route API's reason for user ("" when
// eligible).
func (h *harness) reason(user string) string {
	h.t.Helper()
	status, _, raw := h.env.Do(h.t, "POST", "/api/tenants/"+tenant+"/services/support/route", map[string]any{"conversationId": "probe"})
	var r struct {
		Excluded []struct{ UserID, Reason string } `json:"excluded"`
	}
	if status != http.StatusOK || json.Unmarshal(raw, &r) != nil {
		h.t.Fatalf("route: %d %s", status, raw)
	}
	for _, x := range r.Excluded {
		if x.UserID == user {
			return x.Reason
		}
	}
	return ""
}

func message(id string, try int) string {
	return fmt.Sprintf(`{"tenantId":%q,"serviceId":"support","taskId":%q,"try":%d}`, tenant, id, try)
}

func TestOutboundTasksInProcessQueue(t *testing.T) { testOutbound(t, start(t, false)) }

func TestOutboundTasksServiceBus(t *testing.T) { testOutbound(t, start(t, true)) }

func testOutbound(t *testing.T, h *harness) {
	later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	var scheduled []string

	t.Run("200 concurrent requests against a cap of 20", func(t *testing.T) {
		statuses := map[int]int{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range 200 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				status, tk, raw := h.schedule(map[string]any{"destination": fmt.Sprintf("+4144000%04d", i), "dueDateTimeUtc": later})
				mu.Lock()
				defer mu.Unlock()
				statuses[status]++
				switch status {
				case http.StatusAccepted:
					scheduled = append(scheduled, tk.ID)
				case http.StatusConflict:
					if !strings.Contains(string(raw), `"outbound-task-limit-reached"`) {
						t.Errorf("409 without the problem type: %s", raw)
					}
				}
			}()
		}
		wg.Wait()
		if statuses[http.StatusAccepted] != 20 || statuses[http.StatusConflict] != 180 || len(statuses) != 2 {
			t.Fatalf("statuses %v, want 20 × 202 and 180 × 409", statuses)
		}
		var list struct {
			Value []task `json:"value"`
		}
		if err := json.Unmarshal(h.do("GET", "?state=Scheduled&top=100", nil, http.StatusOK), &list); err != nil || len(list.Value) != 20 {
			t.Errorf("Scheduled tasks listed: %d (%v), want 20: the rejected ones are discarded", len(list.Value), err)
		}
	})
	if t.Failed() {
		return
	}

	t.Run("cancelling one frees exactly one slot", func(t *testing.T) {
		h.do("DELETE", "/"+scheduled[0], nil, http.StatusOK)
		if got := h.get(scheduled[0]).State; got != "Cancelled" {
			t.Fatalf("state %s, want Cancelled", got)
		}
		var accepted atomic.Int32
		var wg sync.WaitGroup
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if status, tk, _ := h.schedule(map[string]any{"destination": "+41440000000", "dueDateTimeUtc": later}); status == http.StatusAccepted {
					accepted.Add(1)
					scheduled = append(scheduled, tk.ID)
				}
			}()
		}
		wg.Wait()
		if accepted.Load() != 1 {
			t.Errorf("accepted after one cancel: %d, want exactly 1", accepted.Load())
		}
		for _, id := range scheduled[1:] {
			h.do("DELETE", "/"+id, nil, http.StatusOK)
		}
	})

	h.setCap(1)
	agent := h.users[1]
	var first task

	t.Run("assigned to the preferred agent, held while in progress", func(t *testing.T) {
		first = h.mustSchedule(map[string]any{"destination": "agent@contoso.example", "preferredUsers": []string{agent}})
		got := h.waitState(first.ID, "InProgress")
		if got.agent() != agent || got.Attempts != 1 {
			t.Fatalf("task agent %q, %d attempts; want %s, 1", got.agent(), got.Attempts, agent)
		}
		if r := h.reason(agent); r != "InConversation" {
			t.Errorf("route: the agent is %q, want InConversation", r)
		}
		h.do("DELETE", "/"+first.ID, nil, http.StatusConflict)
	})
	if t.Failed() {
		return
	}

	t.Run("a redelivered message does not assign twice", func(t *testing.T) {
		// Once through the queue, once straight to the function.
		h.send(message(first.ID, 1))
		h.waitOutput("stale task "+first.ID, 1)
		out := h.env.InvokeWith(t, "OutboundWorker", message(first.ID, 1))
		if !out.Succeeded {
			t.Fatalf("redelivery failed: %s", out.Error)
		}
		if !strings.Contains(string(out.Reply), "stale") {
			t.Errorf("worker reply %s, want the message found stale", out.Reply)
		}
		got := h.get(first.ID)
		if got.State != "InProgress" || got.agent() != agent || got.Attempts != 1 {
			t.Errorf("after redelivery: %s, agent %q, %d attempts; want unchanged", got.State, got.agent(), got.Attempts)
		}
		if r := h.reason(h.users[0]); r != "" {
			t.Errorf("another agent is %q after the redelivery, want free", r)
		}
	})

	t.Run("completing frees the slot and the agent", func(t *testing.T) {
		if status, _, raw := h.schedule(map[string]any{"destination": "+41440000001"}); status != http.StatusConflict {
			t.Fatalf("POST at the cap: %d %s, want 409", status, raw)
		}
		h.do("POST", "/"+first.ID+"/complete", map[string]any{"outcome": "Completed", "note": "spoke to the customer"}, http.StatusOK)
		if got := h.get(first.ID); got.State != "Completed" {
			t.Fatalf("state %s, want Completed", got.State)
		}
		if r := h.reason(agent); r != "" {
			t.Errorf("route: the agent is %q after complete, want free", r)
		}
		second := h.mustSchedule(map[string]any{"destination": "+41440000001"})
		h.waitState(second.ID, "InProgress")
		h.do("POST", "/"+second.ID+"/complete", nil, http.StatusOK)
	})

	// Nobody can take a task from here on.
	for _, u := range h.users {
		h.sim.SetPresence(tenant, u, "Offline", "Offline", false)
	}
	h.env.Invoke(t, "PresencePoll")

	t.Run("an expired task frees its slot", func(t *testing.T) {
		tk := h.mustSchedule(map[string]any{"destination": "+41440000002", "maxQueueTimeSeconds": 5})
		if got := h.waitState(tk.ID, "Queued"); got.agent() != "" {
			t.Errorf("queued task has agent %q", got.agent())
		}
		if status, _, _ := h.schedule(map[string]any{"destination": "+41440000003"}); status != http.StatusConflict {
			t.Errorf("POST while the task waits: %d, want 409", status)
		}
		h.waitState(tk.ID, "Expired")
		next := h.mustSchedule(map[string]any{"destination": "+41440000003", "dueDateTimeUtc": later})
		h.do("DELETE", "/"+next.ID, nil, http.StatusOK)
	})

	t.Run("a poisoned message ends dead-lettered with its slot back", func(t *testing.T) {
		due := time.Now().Add(3 * time.Second)
		tk := h.mustSchedule(map[string]any{"destination": "+41440000004", "dueDateTimeUtc": due.UTC().Format(time.RFC3339Nano), "maxQueueTimeSeconds": 5})
		// Storage refuses to read this task's row: every delivery fails.
		h.tables.fail.Store(tk.ID)
		dead := h.deadLetters(1)
		if !strings.Contains(dead[0], tk.ID) {
			t.Fatalf("dead letter %s, want the task's message", dead[0])
		}
		h.tables.fail.Store("")
		if got := h.get(tk.ID); got.State != "Scheduled" {
			t.Fatalf("after dead-lettering the task is %s, want Scheduled (its slot still held)", got.State)
		}
		if status, _, _ := h.schedule(map[string]any{"destination": "+41440000005"}); status != http.StatusConflict {
			t.Fatalf("POST while the poisoned task holds the slot: %d, want 409", status)
		}
		// Housekeeping gives the slot back once the task's queue time and
		// a grace period have passed.
		time.Sleep(time.Until(due.Add(5*time.Second + 16*time.Second)))
		out := h.env.Invoke(t, "Housekeeping")
		if !strings.Contains(string(out.Reply), "1 expired") {
			t.Errorf("housekeeping reply %s, want 1 expired", out.Reply)
		}
		if got := h.get(tk.ID); got.State != "Expired" {
			t.Errorf("state %s, want Expired", got.State)
		}
		next := h.mustSchedule(map[string]any{"destination": "+41440000005", "dueDateTimeUtc": later})
		h.do("DELETE", "/"+next.ID, nil, http.StatusOK)
	})

	out := h.env.Output()
	for _, bad := range []string{"not cancelled", "not sent", "panic"} {
		if strings.Contains(out, bad) {
			t.Errorf("the output says %q:\n%s", bad, out)
		}
	}
	if want := map[bool]string{true: "queue: Service Bus", false: "in-process queues"}[h.transport == "Service Bus stand-in"]; !strings.Contains(out, want) {
		t.Errorf("the handler did not log %q", want)
	}
}

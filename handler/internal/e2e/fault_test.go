package e2e_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"switchboard/handler/dev/graphsim"
	"switchboard/handler/internal/e2e"
	"switchboard/handler/internal/testenv"
)

// Fault tolerance: the real handler behind the local runner, killed with
// SIGKILL in the middle of its work (the runner starts it again, as the
// Functions host does), and Table Storage (Azurite) gone for 20 s.

const (
	faultTenant = "3d4c5b6a-7980-4a1b-8c2d-3e4f5a6b7c8d"
	faultApp    = "3d4c5b6a-0000-4000-8000-0000000000f1"
	faultSecret = "e2e-fault-secret"
)

// faultEnv is a handler with a Graph simulator tenant of n Available users,
// all members of service "support", unless n is 0.
type faultEnv struct {
	env   *e2e.Env
	sim   *graphsim.Sim
	users []string
}

func startFaultEnv(t *testing.T, n int, o e2e.Options, latency time.Duration) *faultEnv {
	t.Helper()
	tn := e2e.NewTenant(t, e2e.TenantOptions{Sim: graphsim.Options{Seed: 21, Latency: latency}, ID: faultTenant, App: faultApp, Secret: faultSecret,
		Users: n, Domain: "fault.example", Available: true})
	f := &faultEnv{sim: tn.Sim, users: tn.UserIDs()}
	f.env = tn.Start(t, o)
	if n > 0 {
		members := make([]map[string]any, n)
		for i, u := range f.users {
			members[i] = map[string]any{"userId": u, "active": true}
		}
		service := map[string]any{"name": "Support", "members": members, "distribution": map[string]any{"order": "LongestIdle", "holdSeconds": 60}}
		if status, _, raw := f.env.Do(t, http.MethodPut, faultPath("/services/support"), service); status != http.StatusCreated {
			t.Fatalf("PUT service: %d %s", status, raw)
		}
	}
	return f
}

func faultPath(suffix string) string { return "/api/tenants/" + faultTenant + suffix }

type faultTask struct {
	ID          string  `json:"id"`
	State       string  `json:"state"`
	ReferenceID *string `json:"referenceId"`
	Attempts    int     `json:"attempts"`
	Agent       *struct {
		UserID string `json:"userId"`
	} `json:"agent"`
}

// listTasks returns every task of service support.
func listTasks(t *testing.T, env *e2e.Env) []faultTask {
	t.Helper()
	var all []faultTask
	token := ""
	for {
		path := faultPath("/services/support/outbound-tasks?top=100")
		if token != "" {
			path += "&continuationToken=" + token
		}
		var page struct {
			Value             []faultTask `json:"value"`
			ContinuationToken *string     `json:"continuationToken"`
		}
		status, _, raw := env.Do(t, http.MethodGet, path, nil)
		if status != http.StatusOK || json.Unmarshal(raw, &page) != nil {
			t.Fatalf("list tasks: %d %s", status, raw)
		}
		all = append(all, page.Value...)
		if page.ContinuationToken == nil {
			return all
		}
		token = *page.ContinuationToken
	}
}

func waitUntil(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The handler dies while the worker assigns due tasks to agents: no task
// is lost (each POST cut off by the kill is retried with its referenceId,
// and none is created twice), none is assigned twice, no agent stays held
// by a task that does not have it.
func TestHandlerKilledDuringOutboundAssignment(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds the handler and starts Azurite")
	}
	const tasks = 30
	f := startFaultEnv(t, 3, e2e.Options{}, 0)
	f.env.Invoke(t, "PresencePoll")
	if status, _, raw := f.env.Do(t, http.MethodPatch, faultPath("/settings"), `{"outbound":{"maxScheduledTasksPerService":50}}`, "Content-Type", "application/merge-patch+json"); status != http.StatusOK {
		t.Fatalf("PATCH settings: %d %s", status, raw)
	}

	schedule := func(i int) int {
		status, _, _ := f.env.Do(t, http.MethodPost, faultPath("/services/support/outbound-tasks"), map[string]any{
			"destination": fmt.Sprintf("+4144000%04d", i), "referenceId": fmt.Sprintf("fault-%d", i), "maxQueueTimeSeconds": 900,
		})
		return status
	}
	accepted := make([]atomic.Bool, tasks)
	var wg sync.WaitGroup
	for i := range tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s := schedule(i); s == http.StatusAccepted || s == http.StatusOK {
				accepted[i].Store(true)
			}
		}()
	}
	// Kill once the worker has messages in hand.
	deadline := time.Now().Add(30 * time.Second)
	for f.env.Queue(t, "outbound-tasks").Locked == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no delivery seen in progress within 30 s")
		}
		time.Sleep(2 * time.Millisecond)
	}
	f.env.KillHandler(t)
	wg.Wait()
	// A POST the kill cut off may or may not have been admitted: the flow
	// retries it with the same referenceId.
	for i := range tasks {
		if !accepted[i].Load() {
			if s := schedule(i); s != http.StatusAccepted && s != http.StatusOK {
				t.Fatalf("POST task %d again after the restart: %d", i, s)
			}
		}
	}

	var list []faultTask
	waitUntil(t, "three tasks in progress", 60*time.Second, func() bool {
		list = listTasks(t, f.env)
		n := 0
		for _, tk := range list {
			if tk.State == "InProgress" {
				n++
			}
		}
		return n == 3
	})
	refs := map[string]bool{}
	agents := map[string]string{}
	for _, tk := range list {
		if tk.ReferenceID == nil || refs[*tk.ReferenceID] {
			t.Errorf("task %s: referenceId %v missing or seen twice", tk.ID, tk.ReferenceID)
			continue
		}
		refs[*tk.ReferenceID] = true
		switch tk.State {
		case "Scheduled", "Queued":
		case "InProgress":
			if tk.Agent == nil {
				t.Errorf("task %s InProgress without an agent", tk.ID)
			} else if other, dup := agents[tk.Agent.UserID]; dup {
				t.Errorf("agent %s assigned to tasks %s and %s at once", tk.Agent.UserID, other, tk.ID)
			} else {
				agents[tk.Agent.UserID] = tk.ID
			}
		default:
			t.Errorf("task %s is %s: want it still waiting or in progress", tk.ID, tk.State)
		}
	}
	if len(list) != tasks || len(refs) != tasks {
		t.Fatalf("%d tasks (%d referenceIds) after the kill, want %d", len(list), len(refs), tasks)
	}
	// Every agent is held by exactly its task: a route finds nobody free...
	var d struct {
		Agents []struct{ UserID string } `json:"agents"`
	}
	status, _, raw := f.env.Do(t, http.MethodPost, faultPath("/services/support/route"), map[string]any{"conversationId": "c-after-kill"})
	if status != http.StatusOK || json.Unmarshal(raw, &d) != nil || len(d.Agents) != 0 {
		t.Fatalf("route while every agent has a task: %d %s, want 200 and no agent", status, raw)
	}
	// ...and completing one gives its agent to a waiting task at once,
	// through distribution's line: the worker has no retry (the waiting
	// tasks' next messages are at their deadlines, 15 minutes away) and
	// the timers (housekeeping) are off here.
	var done faultTask
	for agent, id := range agents {
		var cur faultTask
		getJSON(t, f.env, faultPath("/services/support/outbound-tasks/"+id), &cur)
		status, _, raw := f.env.Do(t, http.MethodPost, faultPath("/services/support/outbound-tasks/"+id+"/complete"), map[string]any{"outcome": "Completed", "attempt": cur.Attempts})
		if status != http.StatusOK || json.Unmarshal(raw, &done) != nil || done.State != "Completed" {
			t.Fatalf("complete %s: %d %s", id, status, raw)
		}
		waitUntil(t, "the freed agent assigned to a waiting task", 60*time.Second, func() bool {
			for _, tk := range listTasks(t, f.env) {
				if tk.State == "InProgress" && tk.Agent != nil && tk.Agent.UserID == agent && tk.ID != id {
					return true
				}
			}
			return false
		})
		break
	}
}

// The handler dies while settings patches are being written: every read
// after the restart shows the settings of exactly one patch, whole (the
// fields each patch sets together agree), and the sealed connection string
// still opens (the restarted handler has the run's key).
func TestHandlerKilledDuringSettingsPatch(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds the handler and starts Azurite")
	}
	env := e2e.Start(t, e2e.Options{})
	key := base64.StdEncoding.EncodeToString([]byte("fault-test-access-key-0123456789"))
	patch := func(n int) int {
		body := fmt.Sprintf(`{"outbound":{"maxScheduledTasksPerService":%d},"interact":{"sessionRecoveryTimeoutSeconds":%d,"acsConnectionString":"endpoint=https://r%d.communication.azure.com/;accesskey=%s"},"attendantConsole":{"contactSearchFilter":"department eq 'd%d'"}}`, n, n+5, n, key, n)
		status, _, _ := env.Do(t, http.MethodPatch, faultPath("/settings"), body, "Content-Type", "application/merge-patch+json")
		return status
	}
	if s := patch(1); s != http.StatusOK {
		t.Fatalf("first PATCH: %d", s)
	}
	var stop atomic.Bool
	var sent atomic.Int64
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				patch(2 + (w*7+i)%49) // 2..50: every bound is valid
				sent.Add(1)
			}
		}()
	}
	waitUntil(t, "patches under way", 30*time.Second, func() bool { return sent.Load() >= 12 })
	env.KillHandler(t)
	time.Sleep(300 * time.Millisecond) // a few more patches on the new handler
	stop.Store(true)
	wg.Wait()

	var v struct {
		Outbound struct {
			MaxScheduledTasksPerService int `json:"maxScheduledTasksPerService"`
		} `json:"outbound"`
		Interact struct {
			ACSConnectionStringSet        bool    `json:"acsConnectionStringSet"`
			ACSEndpoint                   *string `json:"acsEndpoint"`
			SessionRecoveryTimeoutSeconds int     `json:"sessionRecoveryTimeoutSeconds"`
		} `json:"interact"`
		AttendantConsole struct {
			ContactSearchFilter string `json:"contactSearchFilter"`
		} `json:"attendantConsole"`
	}
	status, _, raw := env.Do(t, http.MethodGet, faultPath("/settings"), nil)
	if status != http.StatusOK || json.Unmarshal(raw, &v) != nil {
		t.Fatalf("GET settings after the kill: %d %s", status, raw)
	}
	n := v.Outbound.MaxScheduledTasksPerService
	want := fmt.Sprintf("n=%d recovery=%d endpoint=https://r%d.communication.azure.com/ filter=department eq 'd%d'", n, n+5, n, n)
	endpoint := "<none>"
	if v.Interact.ACSEndpoint != nil {
		endpoint = *v.Interact.ACSEndpoint
	}
	got := fmt.Sprintf("n=%d recovery=%d endpoint=%s filter=%s", n, v.Interact.SessionRecoveryTimeoutSeconds, endpoint, v.AttendantConsole.ContactSearchFilter)
	if got != want || !v.Interact.ACSConnectionStringSet {
		t.Fatalf("settings after the kill: %s (connection string set %v); want one patch whole: %s", got, v.Interact.ACSConnectionStringSet, want)
	}
	if strings.Contains(string(raw), key) {
		t.Fatal("the settings reply shows the access key")
	}
	// The settings are writable as before.
	if s := patch(33); s != http.StatusOK {
		t.Errorf("PATCH after the restart: %d", s)
	}
}

type pollStatus struct {
	LastPoll *struct {
		StartedAt time.Time `json:"startedAt"`
		Users     int       `json:"users"`
		Errors    int       `json:"errors"`
		Error     *string   `json:"error"`
	} `json:"lastPoll"`
}

// The handler dies in the middle of a presence poll (Graph answers slowly):
// the next timer tick of the new handler polls every agent again, and
// their readings are fresh.
func TestHandlerKilledDuringPresencePoll(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds the handler and starts Azurite")
	}
	const agents = 1500 // three Graph calls
	f := startFaultEnv(t, agents, e2e.Options{Timers: true, Env: map[string]string{"PRESENCE_POLL_SCHEDULE": "*/5 * * * * *"}}, time.Second)
	// The first tick's calls are in flight: kill.
	waitUntil(t, "a poll calling Graph", 30*time.Second, func() bool { return f.sim.Stats().TokenRequests > 0 })
	time.Sleep(500 * time.Millisecond)
	if got := f.sim.Stats().PresenceCalls; got >= 3 {
		t.Logf("the poll had already finished %d calls before the kill", got)
	}
	f.env.KillHandler(t)
	restarted := time.Now()

	var st pollStatus
	waitUntil(t, "a poll of every agent after the restart", 60*time.Second, func() bool {
		getJSON(t, f.env, faultPath("/presence-tracking"), &st)
		p := st.LastPoll
		return p != nil && p.StartedAt.After(restarted) && p.Users == agents && p.Error == nil && p.Errors == 0
	})
	for i := 0; i < agents; i += agents / 15 {
		var r struct {
			Availability string `json:"availability"`
			Stale        bool   `json:"stale"`
			AgeSeconds   int    `json:"ageSeconds"`
		}
		getJSON(t, f.env, faultPath("/users/"+f.users[i]+"/presence"), &r)
		if r.Availability != "Available" || r.Stale || r.AgeSeconds > 30 {
			t.Errorf("user %d after the restart: %+v, want a fresh Available reading", i, r)
		}
	}
}

// reply is one answer seen while storage was down.
type reply struct {
	what, contentType string
	status            int
	body              []byte
}

// Table Storage is gone for 20 s, while route traffic runs and a presence
// poll is under way (Graph answers slowly). Azurite is stopped and started
// again on the same port with its data on disk, rather than paused with
// SIGSTOP: a stopped Azurite refuses connections, as storage that is down
// or unreachable does, so each storage call fails within its retries and
// the outage shows in the replies; a paused one accepts connections into
// the kernel's backlog and answers nothing, so every call waits out the
// SDK's try timeout (15 s, four tries) and the test would measure the SDK's
// retry timing, not what the handler answers meanwhile. While it is down,
// every reply is 200 (what the caches can answer) or a 503 problem+json,
// and the handler never dies; after, everything works and nothing written
// before is lost.
func TestTableStorageOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds the handler and starts Azurite")
	}
	az := testenv.NewStoppableAzurite(t)
	f := startFaultEnv(t, 5, e2e.Options{Tables: az.Conn}, 0)
	f.env.Invoke(t, "PresencePoll")
	if status, _, raw := f.env.Do(t, http.MethodPatch, faultPath("/settings"), `{"outbound":{"maxScheduledTasksPerService":7}}`, "Content-Type", "application/merge-patch+json"); status != http.StatusOK {
		t.Fatalf("PATCH settings: %d %s", status, raw)
	}
	var before faultTask
	status, _, raw := f.env.Do(t, http.MethodPost, faultPath("/services/support/outbound-tasks"), map[string]any{"destination": "+41440000001", "dueDateTimeUtc": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
	if status != http.StatusAccepted || json.Unmarshal(raw, &before) != nil {
		t.Fatalf("POST task: %d %s", status, raw)
	}
	pid := f.env.HandlerPID(t)

	// A poll with slow Graph calls is under way when storage goes.
	f.sim.SetLatency(3*time.Second, 0)
	if status, _, raw := f.env.Do(t, http.MethodPost, "/admin/functions/PresencePoll", map[string]string{"input": ""}); status != http.StatusAccepted {
		t.Fatalf("start a poll: %d %s", status, raw)
	}
	time.Sleep(500 * time.Millisecond)

	var mu sync.Mutex
	var during []reply
	var accepted []string // tasks admitted while storage was down
	record := func(what string, status int, h http.Header, body []byte) {
		mu.Lock()
		defer mu.Unlock()
		during = append(during, reply{what: what, status: status, contentType: h.Get("Content-Type"), body: body})
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	traffic := func(what string, do func(i int) (int, http.Header, []byte)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				status, h, body := do(i)
				record(what, status, h, body)
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	az.Stop()
	down := time.Now()
	traffic("route", func(i int) (int, http.Header, []byte) {
		return f.env.Do(t, http.MethodPost, faultPath("/services/support/route"), map[string]any{"conversationId": fmt.Sprintf("c-%d", i)})
	})
	traffic("route with reserve", func(i int) (int, http.Header, []byte) {
		return f.env.Do(t, http.MethodPost, faultPath("/services/support/route"), map[string]any{"conversationId": fmt.Sprintf("r-%d", i), "reserve": true})
	})
	traffic("health", func(i int) (int, http.Header, []byte) { return f.env.Do(t, http.MethodGet, "/api/health", nil) })
	traffic("settings", func(i int) (int, http.Header, []byte) {
		return f.env.Do(t, http.MethodGet, faultPath("/settings"), nil)
	})
	traffic("schedule", func(i int) (int, http.Header, []byte) {
		status, h, body := f.env.Do(t, http.MethodPost, faultPath("/services/support/outbound-tasks"), map[string]any{"destination": "+41440000002", "referenceId": fmt.Sprintf("outage-%d", i)})
		if status == http.StatusAccepted {
			mu.Lock()
			accepted = append(accepted, fmt.Sprintf("outage-%d", i))
			mu.Unlock()
		}
		return status, h, body
	})
	time.Sleep(10 * time.Second)
	// The timer fires while storage is down: the poll fails cleanly.
	out := f.env.InvokeWith(t, "PresencePoll", "")
	t.Logf("PresencePoll while storage was down: succeeded %v, %s", out.Succeeded, out.Error)
	if d := 20*time.Second - time.Since(down); d > 0 {
		time.Sleep(d)
	}
	stop.Store(true)
	wg.Wait()
	az.Start()
	f.sim.SetLatency(0, 0)

	// While it was down: 200 or a 503 problem, nothing else.
	seen503 := map[string]int{}
	for _, r := range during {
		switch {
		case r.status == http.StatusOK:
		case r.status == http.StatusServiceUnavailable && strings.HasPrefix(r.contentType, "application/problem+json"):
			var p struct {
				Status int    `json:"status"`
				Title  string `json:"title"`
			}
			if r.what != "health" && (json.Unmarshal(r.body, &p) != nil || p.Status != 503 || p.Title == "") {
				t.Errorf("%s: 503 with %s, want a problem with status and title", r.what, r.body)
			}
			seen503[r.what]++
		case r.what == "health" && r.status == http.StatusServiceUnavailable:
			seen503[r.what]++
		default:
			t.Errorf("%s while storage was down: %d %s %s, want 200 or a 503 problem+json", r.what, r.status, r.contentType, r.body)
		}
	}
	for _, what := range []string{"health", "schedule"} {
		if seen503[what] == 0 {
			t.Errorf("%s: no 503 while storage was down", what)
		}
	}
	t.Logf("replies while storage was down: %d, 503s by kind %v", len(during), seen503)
	if got := f.env.HandlerPID(t); got != pid {
		t.Fatalf("the handler was restarted during the outage (pid %d, then %d): it died", pid, got)
	}

	// After: full service, nothing lost.
	waitUntil(t, "health after the outage", 60*time.Second, func() bool {
		status, _, _ := f.env.Do(t, http.MethodGet, "/api/health", nil)
		return status == http.StatusOK
	})
	f.env.Invoke(t, "PresencePoll")
	var d struct {
		Agents []struct{ UserID string } `json:"agents"`
	}
	waitUntil(t, "a route that reserves an agent", 30*time.Second, func() bool {
		status, _, raw := f.env.Do(t, http.MethodPost, faultPath("/services/support/route"), map[string]any{"conversationId": "c-after", "reserve": true})
		return status == http.StatusOK && json.Unmarshal(raw, &d) == nil && len(d.Agents) == 1
	})
	var svc struct {
		Members []struct{ UserID string } `json:"members"`
	}
	getJSON(t, f.env, faultPath("/services/support"), &svc)
	if len(svc.Members) != 5 {
		t.Errorf("service after the outage: %d members, want 5", len(svc.Members))
	}
	var st struct {
		Outbound struct {
			MaxScheduledTasksPerService int `json:"maxScheduledTasksPerService"`
		} `json:"outbound"`
	}
	getJSON(t, f.env, faultPath("/settings"), &st)
	if st.Outbound.MaxScheduledTasksPerService != 7 {
		t.Errorf("settings after the outage: max %d, want 7", st.Outbound.MaxScheduledTasksPerService)
	}
	tasks := map[string]faultTask{}
	for _, tk := range listTasks(t, f.env) {
		tasks[tk.ID] = tk
		if tk.ReferenceID != nil {
			tasks[*tk.ReferenceID] = tk
		}
	}
	if tk, ok := tasks[before.ID]; !ok || tk.State != "Scheduled" {
		t.Errorf("the task scheduled before the outage: %+v (found %v), want it Scheduled", tk, ok)
	}
	for _, ref := range accepted {
		if _, ok := tasks[ref]; !ok {
			t.Errorf("task %s was accepted (202) during the outage and is gone", ref)
		}
	}
	var after faultTask
	status, _, raw = f.env.Do(t, http.MethodPost, faultPath("/services/support/outbound-tasks"), map[string]any{"destination": "+41440000003"})
	if status != http.StatusAccepted || json.Unmarshal(raw, &after) != nil {
		t.Errorf("POST task after the outage: %d %s", status, raw)
	}
}

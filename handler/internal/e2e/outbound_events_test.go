package e2e_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"switchboard/handler/dev/graphsim"
	"switchboard/handler/internal/e2e"
	"switchboard/handler/internal/testenv"
	"switchboard/handler/secrets"
)

// Outbound task events through the real handler, on Azurite and the
// Service Bus stand-in: a Power Automate trigger subscription gets each
// task's creation and each change of state (Scheduled, Queued, Cancelled
// for one nobody could take; Scheduled, InProgress, Completed for one an
// agent took), signed so that a Standard Webhooks library verifies them,
// in sequence order, each once; the handler stopped while an event waits
// for its retry (the receiver was down) delivers it after the restart,
// with the same webhook-id.
func TestOutboundTaskEventsSurviveARestart(t *testing.T) {
	const (
		tenant    = "6c2d8e3f-4a5b-4c6d-8e7f-8091a2b3c4d5"
		app       = "6c2d8e3f-0000-4000-8000-0000000000a1"
		appSecret = "e2e-secret"
	)
	tn := e2e.NewTenant(t, e2e.TenantOptions{Sim: graphsim.Options{Seed: 11}, ID: tenant, App: app, Secret: appSecret,
		Users: 1, Domain: "contoso-outbound.example", Available: true})
	member := tn.Users[0].ID
	sb := testenv.NewServiceBus(t, testenv.ServiceBusOptions{})
	tables := testenv.NewAzurite(t)
	settings := map[string]string{"ServiceBusConnection": sb, "ALLOW_PRIVATE_ENDPOINTS": "true", "SECRETS_KEY": secrets.GenerateKey()}
	env := tn.Start(t, e2e.Options{Env: settings, Tables: tables})
	base := "/api/tenants/" + tenant

	type delivery struct {
		id, subject, sequence, state, previous string
		valid                                  bool
		status                                 int
	}
	parse := func(d e2e.Delivery) delivery {
		var ce struct {
			ID, Subject, Sequence, Type string
			Data                        struct {
				State         string  `json:"state"`
				PreviousState *string `json:"previousState"`
			} `json:"data"`
		}
		_ = json.Unmarshal(d.Body, &ce)
		p := delivery{id: d.Header.Get("webhook-id"), subject: ce.Subject, sequence: ce.Sequence, state: ce.Data.State, previous: "null",
			valid:  d.Verified && ce.Type == "switchboard.outboundTask.stateChanged" && ce.ID == d.Header.Get("webhook-id"),
			status: d.Status}
		if ce.Data.PreviousState != nil {
			p.previous = *ce.Data.PreviousState
		}
		return p
	}
	var mu sync.Mutex
	failNext := map[string]bool{} // states whose next delivery is answered 503
	rcv := e2e.NewReceiver(t, func(d e2e.Delivery) int {
		mu.Lock()
		defer mu.Unlock()
		if state := parse(d).state; failNext[state] {
			failNext[state] = false
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	parseAll := func(raw []e2e.Delivery) []delivery {
		var ds []delivery
		for _, d := range raw {
			ds = append(ds, parse(d))
		}
		return ds
	}
	deliveries := func() []delivery { return parseAll(rcv.Deliveries()) }
	waitFor := func(what string, within time.Duration, ok func([]delivery) bool) []delivery {
		t.Helper()
		var ds []delivery
		rcv.WaitFor(t, what, within, func(raw []e2e.Delivery) bool {
			ds = parseAll(raw)
			return ok(ds)
		})
		return ds
	}
	delivered := func(ds []delivery, task, state string) *delivery {
		for i := range ds {
			if ds[i].subject == "outbound-tasks/"+task && ds[i].state == state && ds[i].status == http.StatusOK {
				return &ds[i]
			}
		}
		return nil
	}

	// The connector's trigger subscribes (events of outbound tasks only).
	status, hdr, raw := env.Do(t, http.MethodPost, base+"/subscriptions/triggers/outboundTask", map[string]any{"url": rcv.URL + "/flow"})
	if status != http.StatusCreated || !strings.Contains(hdr.Get("Location"), base+"/subscriptions/") {
		t.Fatalf("subscribe the trigger: %d %s (Location %q)", status, raw, hdr.Get("Location"))
	}
	var sub struct {
		ID     string   `json:"id"`
		Secret string   `json:"secret"`
		Events []string `json:"events"`
	}
	_ = json.Unmarshal(raw, &sub)
	rcv.SetSecret(sub.Secret)
	if len(sub.Events) != 1 || sub.Events[0] != "switchboard.outboundTask.*" {
		t.Fatalf("trigger subscribed to %v, want switchboard.outboundTask.*", sub.Events)
	}
	if status, _, raw := env.Do(t, http.MethodPut, base+"/services/support", map[string]any{"name": "Support", "members": []map[string]any{{"userId": member, "active": true}}}); status/100 != 2 {
		t.Fatalf("PUT service: %d %s", status, raw)
	}

	// Created (Scheduled), then Queued by the worker (no presence has been
	// polled yet: nobody can take it).
	status, _, raw = env.Do(t, http.MethodPost, base+"/services/support/outbound-tasks", map[string]any{"destination": "+41440000000", "maxQueueTimeSeconds": 600})
	if status != http.StatusAccepted {
		t.Fatalf("POST task: %d %s", status, raw)
	}
	var task struct{ ID string }
	_ = json.Unmarshal(raw, &task)
	waitFor("Scheduled and Queued delivered", 30*time.Second, func(ds []delivery) bool {
		return delivered(ds, task.ID, "Scheduled") != nil && delivered(ds, task.ID, "Queued") != nil
	})

	// The receiver is down for the cancellation's first attempt; the
	// handler stops while the event waits for its retry (10 s).
	mu.Lock()
	failNext["Cancelled"] = true
	mu.Unlock()
	if status, _, raw := env.Do(t, http.MethodDelete, base+"/services/support/outbound-tasks/"+task.ID, nil); status != http.StatusOK {
		t.Fatalf("DELETE task: %d %s", status, raw)
	}
	ds := waitFor("the cancellation's failed attempt", 30*time.Second, func(ds []delivery) bool {
		return len(ds) > 0 && ds[len(ds)-1].state == "Cancelled" && ds[len(ds)-1].status == http.StatusServiceUnavailable
	})
	failedID := ds[len(ds)-1].id
	// Until the failure is recorded and its retry scheduled.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var log struct {
			Value []struct {
				EventID   string  `json:"eventId"`
				State     string  `json:"state"`
				Attempts  int     `json:"attempts"`
				NextTryAt *string `json:"nextTryAt"`
			} `json:"value"`
		}
		_, _, raw := env.Do(t, http.MethodGet, base+"/subscriptions/"+sub.ID+"/deliveries", nil)
		_ = json.Unmarshal(raw, &log)
		if len(log.Value) > 0 && log.Value[0].EventID == failedID && log.Value[0].State == "pending" && log.Value[0].NextTryAt != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the failed attempt is not recorded as pending with a next try: %s", raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // the invocation ends and lets go of the lane
	env.Stop()

	// A new handler on the same tables and Service Bus.
	env2 := tn.Start(t, e2e.Options{Env: settings, Tables: tables})
	waitFor("the cancellation after the restart", 60*time.Second, func(ds []delivery) bool { return delivered(ds, task.ID, "Cancelled") != nil })
	if c := delivered(deliveries(), task.ID, "Cancelled"); c.id != failedID {
		t.Errorf("the retry's webhook-id %s, want the failed attempt's %s", c.id, failedID)
	}

	// The member's presence is polled (Available): a second task is taken
	// at once and completed.
	env2.Invoke(t, "PresencePoll")
	status, _, raw = env2.Do(t, http.MethodPost, base+"/services/support/outbound-tasks", map[string]any{"destination": "+41440000001"})
	if status != http.StatusAccepted {
		t.Fatalf("POST second task: %d %s", status, raw)
	}
	var second struct{ ID string }
	_ = json.Unmarshal(raw, &second)
	waitFor("the second task in progress", 30*time.Second, func(ds []delivery) bool { return delivered(ds, second.ID, "InProgress") != nil })
	if status, _, raw := env2.Do(t, http.MethodPost, base+"/services/support/outbound-tasks/"+second.ID+"/complete", map[string]any{"outcome": "Completed"}); status != http.StatusOK {
		t.Fatalf("complete: %d %s", status, raw)
	}
	ds = waitFor("the second task completed", 30*time.Second, func(ds []delivery) bool { return delivered(ds, second.ID, "Completed") != nil })

	// Every event once (2xx), verified, in order per task, with
	// previousState.
	order := map[string][]string{}
	seen := map[string]int{}
	for _, d := range ds {
		if !d.valid {
			t.Errorf("delivery %+v does not verify as a signed outboundTask.stateChanged CloudEvent", d)
		}
		if d.status == http.StatusOK {
			seen[d.id]++
			order[d.subject] = append(order[d.subject], d.previous+">"+d.state+"#"+strings.TrimLeft(d.sequence, "0"))
		}
	}
	for id, want := range map[string]string{
		task.ID:   "null>Scheduled#1 Scheduled>Queued#2 Queued>Cancelled#3",
		second.ID: "null>Scheduled#1 Scheduled>InProgress#2 InProgress>Completed#3",
	} {
		if got := strings.Join(order["outbound-tasks/"+id], " "); got != want {
			t.Errorf("task %s: delivered %q, want %q", id, got, want)
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s delivered %d times", id, n)
		}
	}
	var after struct {
		State            string `json:"state"`
		FailedDeliveries int    `json:"failedDeliveries"`
	}
	_, _, raw = env2.Do(t, http.MethodGet, base+"/subscriptions/"+sub.ID, nil)
	_ = json.Unmarshal(raw, &after)
	if after.State != "active" || after.FailedDeliveries != 0 {
		t.Errorf("subscription after the retry succeeded: %s", raw)
	}
}

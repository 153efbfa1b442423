package e2e_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"switchboard/handler/dev/graphsim"
	"switchboard/handler/internal/e2e"
	"switchboard/handler/internal/testenv"
	"switchboard/handler/secrets"
)

// Agent events through the real handler, on Azurite and the Service Bus
// stand-in: an agent lets an offer ring (ronaStarted), is reset
// (ronaEnded, EndedEarly), takes the conversation and is released into
// after-call work (afterCallWorkStarted), which ends at its time through
// its due message (afterCallWorkEnded, TimeEnded). Each arrives once,
// signed so that a Standard Webhooks library verifies it, in order.
func TestAgentEventsEndToEnd(t *testing.T) {
	const (
		tenant    = "7d3e9f4a-5b6c-4d7e-8f90-a1b2c3d4e5f6"
		app       = "7d3e9f4a-0000-4000-8000-0000000000a1"
		appSecret = "e2e-secret"
	)
	tn := e2e.NewTenant(t, e2e.TenantOptions{Sim: graphsim.Options{Seed: 12}, ID: tenant, App: app, Secret: appSecret,
		Users: 1, Domain: "contoso-agents.example", Available: true})
	agent := tn.Users[0].ID
	env := tn.Start(t, e2e.Options{Tables: testenv.NewAzurite(t), Env: map[string]string{
		"ServiceBusConnection": testenv.NewServiceBus(t, testenv.ServiceBusOptions{}), "ALLOW_PRIVATE_ENDPOINTS": "true",
		"SECRETS_KEY": secrets.GenerateKey(),
	}})
	base := "/api/tenants/" + tenant

	type delivery struct {
		id, typ, subject, state, previous, reason, conversation string
		valid                                                   bool
	}
	rcv := e2e.NewReceiver(t, func(e2e.Delivery) int { return http.StatusNoContent })
	parse := func(d e2e.Delivery) delivery {
		var ce struct {
			ID, Subject, Type string
			Data              struct {
				State          string `json:"state"`
				PreviousState  string `json:"previousState"`
				Reason         string `json:"reason"`
				ConversationID string `json:"conversationId"`
			} `json:"data"`
		}
		_ = json.Unmarshal(d.Body, &ce)
		return delivery{id: d.Header.Get("webhook-id"), typ: strings.TrimPrefix(ce.Type, "switchboard.agent."), subject: ce.Subject,
			state: ce.Data.State, previous: ce.Data.PreviousState, reason: ce.Data.Reason, conversation: ce.Data.ConversationID,
			valid: d.Verified && ce.ID == d.Header.Get("webhook-id")}
	}
	// waitFor waits for a delivery of type typ and returns all so far.
	waitFor := func(what string, within time.Duration, typ string) []delivery {
		t.Helper()
		var ds []delivery
		rcv.WaitFor(t, what, within, func(raw []e2e.Delivery) bool {
			ds = nil
			for _, d := range raw {
				ds = append(ds, parse(d))
			}
			return slices.ContainsFunc(ds, func(d delivery) bool { return d.typ == typ })
		})
		return ds
	}
	do := func(method, path string, body any, want int) []byte {
		t.Helper()
		status, _, raw := env.Do(t, method, base+path, body)
		if status != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, status, raw, want)
		}
		return raw
	}

	var sub struct{ Secret string }
	_ = json.Unmarshal(do(http.MethodPost, "/subscriptions", map[string]any{"url": rcv.URL + "/agents", "events": []string{"switchboard.agent.*"}}, http.StatusCreated), &sub)
	rcv.SetSecret(sub.Secret)
	do(http.MethodPut, "/services/support", map[string]any{"name": "Support", "members": []map[string]any{{"userId": agent}},
		"distribution": map[string]any{"ringSeconds": 5, "rona": map[string]any{"resetSeconds": 600}, "afterCallWorkSeconds": 5}}, http.StatusCreated)
	env.Invoke(t, "PresencePoll")

	do(http.MethodPost, "/services/support/queue", map[string]any{"conversationId": "ev-1"}, http.StatusAccepted)
	waitFor("ronaStarted after the offer rang 5 s", 20*time.Second, "ronaStarted")
	do(http.MethodPost, "/agents/"+agent+"/rona/reset", nil, http.StatusNoContent)
	waitFor("ronaEnded after the reset", 20*time.Second, "ronaEnded")
	// Offered again once free: accept, then release into after-call work.
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, _, raw := env.Do(t, http.MethodPost, base+"/conversations/ev-1/accept", map[string]any{"userId": agent})
		if status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("accept after the reset: %d %s", status, raw)
		}
		time.Sleep(200 * time.Millisecond)
	}
	do(http.MethodDelete, "/conversations/ev-1", nil, http.StatusNoContent)
	ds := waitFor("afterCallWorkEnded 5 s after the release", 30*time.Second, "afterCallWorkEnded")

	want := []string{
		"ronaStarted Offered>Rona ",
		"ronaEnded Rona>Free EndedEarly",
		"afterCallWorkStarted Conversation>AfterCallWork ",
		"afterCallWorkEnded AfterCallWork>Free TimeEnded",
	}
	var order []string
	seen := map[string]int{}
	for _, d := range ds {
		if !d.valid || d.subject != "agents/"+agent || d.conversation != "ev-1" {
			t.Errorf("delivery %+v: not a verified agent event of agents/%s about ev-1", d, agent)
		}
		seen[d.id]++
		order = append(order, d.typ+" "+d.previous+">"+d.state+" "+d.reason)
	}
	if strings.Join(order, "|") != strings.Join(want, "|") {
		t.Errorf("delivered\n  %s\nwant\n  %s", strings.Join(order, "\n  "), strings.Join(want, "\n  "))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s delivered %d times", id, n)
		}
	}
}

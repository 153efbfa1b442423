package e2e_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"switchboard/handler/dev/graphsim"
	"switchboard/handler/internal/e2e"
	"switchboard/handler/secrets"
)

// Events through the local runner and the real handler on Azurite: a
// webhook subscribed through the API receives the presence sources'
// stateChanged events of a poll, signed so that a Standard Webhooks library
// verifies them; the subscription's Location unsubscribes it; a receiver
// answering 410 Gone is unsubscribed.
func TestEventsEndToEnd(t *testing.T) {
	const (
		tenant   = "5b1c7d2e-3f4a-4b5c-9d6e-7f8091a2b3c4"
		app      = "5b1c7d2e-0000-4000-8000-0000000000a1"
		secret   = "e2e-secret"
		account1 = "presence1@switchboard-events.example"
		account2 = "presence2@switchboard-events.example"
	)
	tn := e2e.NewTenant(t, e2e.TenantOptions{Sim: graphsim.Options{Seed: 7}, ID: tenant, App: app, Secret: secret,
		Consent:  graphsim.TenantOptions{DelegatedConsent: true},
		Accounts: []e2e.Account{{UPN: account1, Password: "pw-1", MFA: true /* account 1 turns failing */}, {UPN: account2, Password: "pw-2"}},
		Users:    5, Domain: "contoso-events.example"})
	users := tn.Users

	env := tn.Start(t, e2e.Options{Env: map[string]string{"ALLOW_PRIVATE_ENDPOINTS": "true", "SECRETS_KEY": secrets.GenerateKey()}})
	base := "/api/tenants/" + tenant

	rcv := e2e.NewReceiver(t, func(d e2e.Delivery) int {
		if d.Path == "/gone" {
			return http.StatusGone
		}
		return http.StatusOK
	})

	status, hdr, raw := env.Do(t, http.MethodPost, base+"/subscriptions", map[string]any{
		"url": rcv.URL + "/hook", "events": []string{"switchboard.presenceSource.*"}, "description": "e2e"})
	if status != http.StatusCreated {
		t.Fatalf("POST subscriptions: %d %s", status, raw)
	}
	var sub struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	_ = json.Unmarshal(raw, &sub)
	rcv.SetSecret(sub.Secret)
	location := hdr.Get("Location")
	// Absolute, on the host the caller used (Power Automate calls it as
	// it is when the flow is turned off).
	if location != env.BaseURL+base+"/subscriptions/"+sub.ID {
		t.Fatalf("Location %q, want the absolute URL of the subscription under %s", location, env.BaseURL)
	}
	if status, _, raw := env.Do(t, http.MethodGet, base+"/subscriptions/"+sub.ID, nil); status != 200 || strings.Contains(string(raw), "whsec_") {
		t.Fatalf("GET subscription: %d %s (the secret must not come back)", status, raw)
	}
	// A second receiver answers 410 Gone: it is unsubscribed at its first
	// delivery.
	status, _, raw = env.Do(t, http.MethodPost, base+"/subscriptions", map[string]any{"url": rcv.URL + "/gone", "events": []string{"*"}})
	if status != http.StatusCreated {
		t.Fatalf("POST subscriptions: %d %s", status, raw)
	}
	var goneSub struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(raw, &goneSub)

	var members []map[string]any
	for _, u := range users {
		members = append(members, map[string]any{"userId": u.ID, "active": true})
	}
	if status, _, raw := env.Do(t, http.MethodPut, base+"/services/support", map[string]any{"name": "Support", "members": members}); status/100 != 2 {
		t.Fatalf("PUT service: %d %s", status, raw)
	}
	if status, _, raw := env.Do(t, http.MethodPatch, base+"/settings", `{"presenceTracking":{"trackOverGuestAccounts":true}}`, "Content-Type", "application/merge-patch+json"); status != http.StatusOK {
		t.Fatalf("PATCH settings: %d %s", status, raw)
	}
	env.Invoke(t, "PresencePoll")

	// account1 turns failing (MFA), account2 ok; the application source
	// is not tried while an account works.
	deadline := time.Now().Add(20 * time.Second)
	want := map[string]string{"presence-sources/account1": "failing", "presence-sources/account2": "ok"}
	for {
		seen := map[string]string{}
		for _, d := range rcv.Deliveries() {
			if d.Path == "/gone" {
				continue
			}
			var body map[string]any
			_ = json.Unmarshal(d.Body, &body)
			subject, _ := body["subject"].(string)
			data, _ := body["data"].(map[string]any)
			state, _ := data["state"].(string)
			seen[subject] = state
			if !d.Verified {
				t.Errorf("delivery %v does not verify with the subscription's secret", body)
			}
			if body["type"] != "switchboard.presenceSource.stateChanged" || body["specversion"] != "1.0" ||
				body["source"] != "/tenants/"+tenant || d.Header.Get("webhook-id") != body["id"] ||
				!strings.HasPrefix(d.Header.Get("Content-Type"), "application/cloudevents+json") {
				t.Errorf("delivery %v with headers %v is not the CloudEvent Standard Webhooks form", body, d.Header)
			}
		}
		if seen["presence-sources/account1"] == want["presence-sources/account1"] && seen["presence-sources/account2"] == want["presence-sources/account2"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events seen %v, want %v", seen, want)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Deleted at its first 410: it saw no second event.
	var ds struct {
		Value []struct {
			State      string `json:"state"`
			StatusCode int    `json:"statusCode"`
		} `json:"value"`
	}
	getJSON(t, env, base+"/subscriptions/"+sub.ID+"/deliveries", &ds)
	if len(ds.Value) < 2 || ds.Value[0].State != "delivered" || ds.Value[0].StatusCode != 200 {
		t.Fatalf("deliveries %+v, want the deliveries with 200", ds.Value)
	}

	// The Location unsubscribes (Power Automate turning a flow off).
	req, _ := http.NewRequest(http.MethodDelete, location, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE Location: %d, want 204", resp.StatusCode)
	}
	if status, _, _ := env.Do(t, http.MethodGet, base+"/subscriptions/"+sub.ID, nil); status != http.StatusNotFound {
		t.Fatalf("GET after DELETE: %d, want 404", status)
	}

	status, _, _ = env.Do(t, http.MethodGet, base+"/subscriptions/"+goneSub.ID, nil)
	calls := 0
	for _, d := range rcv.Deliveries() {
		if d.Path == "/gone" {
			calls++
		}
	}
	// Its two lanes (one per subject) may each have started a delivery
	// before the first 410 deleted it; none starts after.
	if status != http.StatusNotFound || calls < 1 || calls > 2 {
		t.Fatalf("the subscription whose receiver answered 410: GET %d after %d deliveries; want 404 after 1 or 2", status, calls)
	}
}

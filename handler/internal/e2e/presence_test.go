package e2e_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"switchboard/handler/dev/graphsim"
	"switchboard/handler/internal/e2e"
)

// Presence tracking through the local runner and the real handler, on
// Azurite, against the Graph/Entra simulator (trusted through
// SSL_CERT_FILE): the tracked users are a service's members, the timer
// reads them through presence account 2 when account 1 needs MFA, the
// status, Test UPN and user presence routes report it, and a malformed
// fan-out message is dropped, not redelivered into the dead-letter queue.
func TestPresenceEndToEnd(t *testing.T) {
	const (
		tenant   = "7e5a0c1d-2f3b-4c5d-8e9f-0a1b2c3d4e5f"
		app      = "7e5a0c1d-0000-4000-8000-0000000000a1"
		secret   = "e2e-secret"
		account1 = "presence1@switchboard-e2e.example"
		account2 = "presence2@switchboard-e2e.example"
	)
	tn := e2e.NewTenant(t, e2e.TenantOptions{Sim: graphsim.Options{Seed: 11}, ID: tenant, App: app, Secret: secret,
		Consent: graphsim.TenantOptions{DelegatedConsent: true},
		Accounts: []e2e.Account{
			{UPN: account1, Password: "pw-1", MFA: true}, // the tenant demands MFA of account 1
			{UPN: account2, Password: "pw-2"},
		},
		Users: 30, Domain: "contoso-e2e.example"})
	users := tn.Users
	tn.Sim.SetPresence(tenant, users[0].ID, "Busy", "InACall", false)

	env := tn.Start(t, e2e.Options{})
	base := "/api/tenants/" + tenant
	trackOverGuests(t, env, base, users)

	env.Invoke(t, "PresencePoll")

	var tracking struct {
		Sources []struct {
			Source    string `json:"source"`
			State     string `json:"state"`
			LastError *struct {
				Reason string `json:"reason"`
				Code   string `json:"code"`
			} `json:"lastError"`
		} `json:"sources"`
		AdminConsentURL string `json:"adminConsentUrl"`
		LastPoll        struct {
			Users   int      `json:"users"`
			Changed int      `json:"changed"`
			Calls   int      `json:"calls"`
			Sources []string `json:"sources"`
		} `json:"lastPoll"`
	}
	getJSON(t, env, base+"/presence-tracking", &tracking)
	if len(tracking.Sources) != 3 || tracking.Sources[0].State != "failing" || tracking.Sources[0].LastError == nil ||
		tracking.Sources[0].LastError.Reason != "mfa-required" || tracking.Sources[1].State != "ok" {
		t.Errorf("sources %+v: want account1 failing (mfa-required), account2 ok", tracking.Sources)
	}
	if p := tracking.LastPoll; p.Users != 30 || p.Changed != 30 || p.Calls != 1 || len(p.Sources) != 1 || p.Sources[0] != "account2" {
		t.Errorf("last poll %+v: want 30 users read through account2 in 1 Graph call (account 1 failed at its sign-in)", p)
	}
	if tracking.AdminConsentURL == "" {
		t.Error("no admin-consent URL")
	}

	var up struct {
		Availability, Activity, Source string
		Extended, Stale                bool
	}
	getJSON(t, env, base+"/users/"+users[0].ID+"/presence", &up)
	if up.Availability != "Busy" || up.Activity != "InACall" || up.Source != "account2" || !up.Extended || up.Stale {
		t.Errorf("user presence %+v", up)
	}

	status, _, raw := env.Do(t, http.MethodPost, base+"/presence-tracking/test", map[string]any{"upn": users[0].UPN, "account": 2})
	var test struct {
		OK       bool `json:"ok"`
		Presence struct{ Activity string }
	}
	if status != http.StatusOK || json.Unmarshal(raw, &test) != nil || !test.OK || test.Presence.Activity != "InACall" {
		t.Errorf("Test UPN: %d %s", status, raw)
	}

	env.Send(t, "presence-poll", "this is not a shard message")
	st := env.WaitQueue(t, "presence-poll", "the message to be handled", func(q e2e.QueueState) bool {
		return q.Active == 0 && q.Locked == 0 && q.Completed > 0
	})
	if st.DeadLettered != 0 {
		t.Errorf("the malformed message was dead-lettered (%d); it should be dropped at once", st.DeadLettered)
	}
}

// trackOverGuests makes users the active members of service "support" of
// the tenant at base and has the tenant's presence tracked over the guest
// accounts.
func trackOverGuests(t *testing.T, env *e2e.Env, base string, users []graphsim.User) {
	t.Helper()
	var members []map[string]any
	for _, u := range users {
		members = append(members, map[string]any{"userId": u.ID, "active": true})
	}
	if status, _, raw := env.Do(t, http.MethodPut, base+"/services/support", map[string]any{"name": "Support", "members": members}); status != http.StatusCreated && status != http.StatusOK {
		t.Fatalf("PUT service: %d %s", status, raw)
	}
	if status, _, raw := env.Do(t, http.MethodPatch, base+"/settings", `{"presenceTracking":{"trackOverGuestAccounts":true}}`, "Content-Type", "application/merge-patch+json"); status != http.StatusOK {
		t.Fatalf("PATCH settings: %d %s", status, raw)
	}
}

func getJSON(t *testing.T, env *e2e.Env, path string, v any) {
	t.Helper()
	status, _, raw := env.Do(t, http.MethodGet, path, nil)
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, status, raw)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, raw)
	}
}

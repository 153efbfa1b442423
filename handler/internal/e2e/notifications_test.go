package e2e_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"switchboard/handler/dev/graphsim"
	"switchboard/handler/internal/e2e"
	"switchboard/handler/richnotify"
)

// Presence change notifications through the local runner and the real
// handler: housekeeping subscribes (the simulator's handshake reaches
// PresenceNotifications through the runner), a presence change reaches the
// stored reading with no poll, and presence-tracking shows the
// subscription.
func TestPresenceNotificationsEndToEnd(t *testing.T) {
	const (
		tenant   = "7e5a0c1d-2f3b-4c5d-8e9f-0a1b2c3d4e60"
		app      = "7e5a0c1d-0000-4000-8000-0000000000a2"
		secret   = "e2e-secret"
		account1 = "presence1@switchboard-e2e.example"
	)
	tn := e2e.NewTenant(t, e2e.TenantOptions{Sim: graphsim.Options{Seed: 12}, ID: tenant, App: app, Secret: secret,
		Consent: graphsim.TenantOptions{DelegatedConsent: true}, Accounts: []e2e.Account{{UPN: account1, Password: "pw-1"}},
		Users: 5, Domain: "contoso-e2e.example"})
	sim, users := tn.Sim, tn.Users
	pemBytes, err := richnotify.GenerateCertificate("e2e")
	if err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(t.TempDir(), "notifications.pem")
	if err := os.WriteFile(certFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	env := tn.Start(t, e2e.Options{Env: map[string]string{
		"PRESENCE_NOTIFICATIONS_URL":         e2e.RunnerURL + "/api/presence-notifications",
		"PRESENCE_NOTIFICATIONS_CERTIFICATE": certFile,
	}})
	base := "/api/tenants/" + tenant
	trackOverGuests(t, env, base, users)
	env.Invoke(t, "PresencePoll")
	env.Invoke(t, "Housekeeping")

	var tracking struct {
		Notifications struct {
			State         string `json:"state"`
			Covered       int    `json:"covered"`
			Subscriptions []struct {
				Account int    `json:"account"`
				Users   int    `json:"users"`
				State   string `json:"state"`
			} `json:"subscriptions"`
		} `json:"notifications"`
	}
	getJSON(t, env, base+"/presence-tracking", &tracking)
	if n := tracking.Notifications; n.State != "active" || n.Covered != 5 || len(n.Subscriptions) != 1 || n.Subscriptions[0].Account != 1 {
		t.Fatalf("notifications %+v, want one active subscription of account 1 over the 5 agents", n)
	}

	sim.ResetStats()
	sim.SetPresence(tenant, users[2].ID, "Busy", "InACall", false)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var p struct {
			Activity string `json:"activity"`
			Stale    bool   `json:"stale"`
			Source   string `json:"source"`
		}
		getJSON(t, env, base+"/users/"+users[2].ID+"/presence", &p)
		if p.Activity == "InACall" {
			if p.Stale || p.Source != "account1" {
				t.Fatalf("reading %+v", p)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the notified change never reached the stored reading")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st := sim.Stats(); st.PresenceCalls != 0 || st.NotificationsSent == 0 {
		t.Fatalf("stats %+v: want the change by notification, no presence read", st)
	}
}

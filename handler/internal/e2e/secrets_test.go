package e2e_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"switchboard/handler/aztable"
	"switchboard/handler/dev/acstest"
	"switchboard/handler/dev/graphsim"
	"switchboard/handler/internal/e2e"
	"switchboard/handler/internal/testenv"
	"switchboard/handler/secrets"
)

// A SECRETS_KEY rotation through the real handler on Azurite: a tenant's
// ACS connection string and event subscription are sealed under the old
// key; the handler restarted with the new key (the old one as
// SECRETS_KEY_PREVIOUS) re-seals both in one Housekeeping run; restarted
// again without the previous key, the stored connection string still
// checks and the subscription's events are signed with the secret shown
// when it was created.
func TestSecretsKeyRotationEndToEnd(t *testing.T) {
	const (
		tenant    = "7d3e9f4a-5b6c-4d7e-8f90-a1b2c3d4e5f6"
		app       = "7d3e9f4a-0000-4000-8000-0000000000a1"
		appSecret = "e2e-secret"
	)
	tn := e2e.NewTenant(t, e2e.TenantOptions{Sim: graphsim.Options{Seed: 13}, ID: tenant, App: app, Secret: appSecret,
		Users: 1, Domain: "contoso-rotation.example"})
	member := tn.Users[0].ID
	fake := acstest.NewServer(t)
	certFile := tn.TrustAlso(t, fake.CertificatePEM())
	tables := testenv.NewAzurite(t)
	oldKey, newKey := secrets.GenerateKey(), secrets.GenerateKey()
	start := func(current, previous string) *e2e.Env {
		return tn.Start(t, e2e.Options{Tables: tables, Env: map[string]string{
			"SECRETS_KEY": current, "SECRETS_KEY_PREVIOUS": previous, "ALLOW_PRIVATE_ENDPOINTS": "true", "SSL_CERT_FILE": certFile,
		}})
	}
	base := "/api/tenants/" + tenant

	rcv := e2e.NewReceiver(t, func(e2e.Delivery) int { return http.StatusOK })

	// Under the old key.
	env := start(oldKey, "")
	if status, _, raw := env.Do(t, http.MethodPatch, base+"/settings", `{"interact":{"acsConnectionString":"`+fake.ConnectionString()+`"}}`,
		"Content-Type", "application/merge-patch+json"); status != http.StatusOK {
		t.Fatalf("PATCH the connection string: %d %s", status, raw)
	}
	status, _, raw := env.Do(t, http.MethodPost, base+"/subscriptions", map[string]any{"url": rcv.URL + "/hook", "events": []string{"switchboard.outboundTask.*"}})
	if status != http.StatusCreated {
		t.Fatalf("POST subscription: %d %s", status, raw)
	}
	var sub struct{ ID, Secret string }
	_ = json.Unmarshal(raw, &sub)
	rcv.SetSecret(sub.Secret)
	if status, _, raw := env.Do(t, http.MethodPut, base+"/services/support", map[string]any{"name": "Support", "members": []map[string]any{{"userId": member, "active": true}}}); status/100 != 2 {
		t.Fatalf("PUT service: %d %s", status, raw)
	}
	env.Stop()

	// Rotated: one Housekeeping run re-seals both.
	env = start(newKey, oldKey)
	out := env.Invoke(t, "Housekeeping")
	for _, want := range []string{
		"settings housekeeping: secrets: 1 rows, 1 re-sealed under the current key, 0 unreadable",
		"events housekeeping: subscription secrets: 1 rows, 1 re-sealed under the current key, 0 unreadable",
	} {
		if !strings.Contains(string(out.Reply), want) {
			t.Errorf("Housekeeping's log lacks %q: %s", want, out.Reply)
		}
	}
	env.Stop()
	current, _ := secrets.New(newKey, "")
	stored, err := aztable.Open(aztable.Options{ConnectionString: tables})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, row := range []struct{ table, pk, rk, prop string }{
		{"settings", tenant, "settings", "InteractAcsConnectionString"},
		{"events", "sub|" + tenant, sub.ID, "Secret"},
	} {
		tb, err := stored.Table(ctx, row.table)
		if err != nil {
			t.Fatal(err)
		}
		e, err := tb.Get(ctx, row.pk, row.rk)
		if err != nil {
			t.Fatalf("%s row: %v", row.table, err)
		}
		if v := e.String(row.prop); !strings.HasPrefix(v, "sb1:"+current.KeyID()+":") {
			t.Errorf("%s %s after Housekeeping = %q, want it sealed under the new key", row.table, row.prop, v)
		}
	}

	// SECRETS_KEY_PREVIOUS removed.
	env = start(newKey, "")
	status, _, raw = env.Do(t, http.MethodPost, base+"/settings/acs-check", map[string]string{"target": "interact"})
	var check struct{ OK bool }
	if err := json.Unmarshal(raw, &check); status != http.StatusOK || err != nil || !check.OK {
		t.Fatalf("ACS check of the stored string with the new key alone: %d %s", status, raw)
	}
	if status, _, raw := env.Do(t, http.MethodPost, base+"/services/support/outbound-tasks", map[string]any{"destination": "+41440000000", "maxQueueTimeSeconds": 600}); status != http.StatusAccepted {
		t.Fatalf("POST task: %d %s", status, raw)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, u := 0, 0
		for _, d := range rcv.Deliveries() {
			if d.Verified {
				v++
			} else {
				u++
			}
		}
		if u > 0 {
			t.Fatalf("%d deliveries do not verify with the subscription's secret", u)
		}
		if v > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no event delivered within 30 s of the task's creation")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

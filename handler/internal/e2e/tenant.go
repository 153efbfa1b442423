package e2e

import (
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"switchboard/handler/dev/graphsim"
	"switchboard/handler/internal/testenv"
)

// TenantOptions describe a simulated tenant (NewTenant).
type TenantOptions struct {
	// Sim configures the Graph simulator (Seed, Latency, ...).
	Sim graphsim.Options
	// ID is the tenant's id; App and Secret the presence app's client id
	// and secret, registered with public client flows.
	ID, App, Secret string
	// Consent is what the tenant granted besides the app's Presence.Read.All
	// (AppConsent is always set). Guests are added for Accounts.
	Consent graphsim.TenantOptions
	// Accounts are the presence accounts, in order (PRESENCE_ACCOUNT1_...,
	// PRESENCE_ACCOUNT2_...), made guests of the tenant.
	Accounts []Account
	// Users is how many users to add, in Domain.
	Users  int
	Domain string
	// Available sets every user's presence Available.
	Available bool
}

// Account is a presence account of the simulator.
type Account struct {
	UPN, Password string
	// MFA: the tenant demands MFA of this account, so its sign-in fails.
	MFA bool
}

// Tenant is a Graph simulator (Graph and Entra) with one tenant whose
// presence app has consent: what a handler under test polls.
type Tenant struct {
	Sim   *graphsim.Sim
	ID    string
	Users []graphsim.User
	opts  TenantOptions
}

// NewTenant starts the Graph simulator with the tenant of o; it is closed
// when the test ends. It skips under -short, as Start does.
func NewTenant(t testing.TB, o TenantOptions) *Tenant {
	t.Helper()
	testenv.SkipShort(t, "the handler behind the local runner")
	sim, err := graphsim.Start(o.Sim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	sim.AddApp(o.App, o.Secret, true)
	consent := o.Consent
	consent.AppConsent = true
	for _, a := range o.Accounts {
		sim.AddAccount(a.UPN, a.Password, a.MFA)
		consent.Guests = append(consent.Guests, a.UPN)
	}
	sim.AddTenant(o.ID, consent)
	tn := &Tenant{Sim: sim, ID: o.ID, opts: o}
	if o.Users > 0 {
		tn.Users = sim.AddUsers(o.ID, o.Domain, o.Users)
	}
	if o.Available {
		for _, u := range tn.Users {
			sim.SetPresence(o.ID, u.ID, "Available", "Available", false)
		}
	}
	return tn
}

// UserIDs are the ids of the tenant's users, in order.
func (tn *Tenant) UserIDs() []string {
	ids := make([]string, len(tn.Users))
	for i, u := range tn.Users {
		ids[i] = u.ID
	}
	return ids
}

// Settings are the app settings that make a handler use the simulator as
// Graph and Entra with the tenant's presence app and accounts.
func (tn *Tenant) Settings() map[string]string {
	s := map[string]string{
		"GRAPH_BASE_URL":             tn.Sim.GraphURL(),
		"AZURE_AUTHORITY_HOST":       tn.Sim.AuthorityURL(),
		"SSL_CERT_FILE":              tn.Sim.CertFile(),
		"PRESENCE_APP_CLIENT_ID":     tn.opts.App,
		"PRESENCE_APP_CLIENT_SECRET": tn.opts.Secret,
	}
	for i, a := range tn.opts.Accounts {
		n := strconv.Itoa(i + 1)
		s["PRESENCE_ACCOUNT"+n+"_UPN"] = a.UPN
		s["PRESENCE_ACCOUNT"+n+"_PASSWORD"] = a.Password
	}
	return s
}

// Start starts a handler (Start) on the tenant's Settings, with o.Env laid
// over them.
func (tn *Tenant) Start(t testing.TB, o Options) *Env {
	t.Helper()
	env := tn.Settings()
	maps.Copy(env, o.Env)
	o.Env = env
	return Start(t, o)
}

// TrustAlso writes a certificate file trusting the simulator and the
// certificates pem (another fake's), for SSL_CERT_FILE.
func (tn *Tenant) TrustAlso(t testing.TB, pem []byte) string {
	t.Helper()
	simCerts, err := os.ReadFile(tn.Sim.CertFile())
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "certs.pem")
	if err := os.WriteFile(file, append(append(simCerts, '\n'), pem...), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

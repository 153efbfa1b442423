// Command graphsim runs the Microsoft Graph and Entra simulator (package
// graphsim) on its own, with a demo tenant whose agents change presence
// over time, and prints the settings that point a handler at it.
//
//	graphsim [-agents 50] [-change 0.1] [-every 10s] [-latency 100ms] [-graph addr] [-login addr]
//	graphsim -demo [-api http://127.0.0.1:7071] [-trickle 4s] -- command args...
//
// With a command after "--" (`make run` passes the local runner), the
// command runs with those settings in its environment (GRAPH_BASE_URL,
// AZURE_AUTHORITY_HOST, SSL_CERT_FILE, the presence app and accounts,
// API_AUTH=none); with -demo, once the app answers on -api, graphsim
// creates the demo services through the API, switches the demo tenant to
// tracking over guest accounts, fires a first presence poll, and starts
// the demo trickle: a conversation enqueued every -trickle, offers
// answered by the demo agents (trickle.go). Only -demo starts it; the
// production wiring has no such thing.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"switchboard/handler/dev/acstest"
	"switchboard/handler/dev/graphsim"
	"switchboard/handler/richnotify"
)

// The demo deployment: one presence app, two presence accounts, one
// customer tenant that invited both and consented to everything.
const (
	demoTenant    = "d3e0d3e0-0000-4000-8000-000000000001"
	demoApp       = "d3e0d3e0-0000-4000-8000-0000000000a1"
	demoSecret    = "demo-app-secret"
	demoAccount1  = "presence1@switchboard-demo.example"
	demoAccount2  = "presence2@switchboard-demo.example"
	demoPassword1 = "demo-password-1"
	demoPassword2 = "demo-password-2"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "graphsim:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("graphsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	agents := fs.Int("agents", 50, "agents in the demo tenant")
	change := fs.Float64("change", 0.1, "fraction of the agents whose presence changes at each step")
	every := fs.Duration("every", 10*time.Second, "how often presences change")
	latency := fs.Duration("latency", 100*time.Millisecond, "Graph latency (plus up to as much again at random)")
	graphAddr := fs.String("graph", "127.0.0.1:0", "Graph listen address")
	loginAddr := fs.String("login", "127.0.0.1:0", "Entra listen address")
	demo := fs.Bool("demo", false, "after the command's app answers on -api: create the demo services, enable guest tracking, fire a poll")
	trickleEvery := fs.Duration("trickle", 4*time.Second,
		"with -demo: enqueue a demo conversation this often and have the demo agents answer offers (0: off)")
	api := fs.String("api", "http://127.0.0.1:7071", "the app's base URL (with -demo; default from the command's -port)")
	notifications := fs.Bool(
		"notifications",
		true,
		"give the app a generated certificate and its own URL for presence change notifications (PRESENCE_NOTIFICATIONS_URL)",
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	command := fs.Args()
	if len(command) > 0 && command[0] == "--" {
		command = command[1:]
	}
	apiSet := false
	fs.Visit(func(f *flag.Flag) { apiSet = apiSet || f.Name == "api" })
	if port := portArg(command); port != "" && !apiSet {
		*api = "http://127.0.0.1:" + port // the local runner's -port
	}

	if *demo {
		// The first thing `make run` prints: where to click.
		fmt.Fprintf(stderr, "Switchboard web page (demo tenant selected): %s\n", pageURL(*api))
	}
	sim, err := graphsim.Start(graphsim.Options{Seed: 2026, Latency: *latency, Jitter: *latency, GraphAddr: *graphAddr, LoginAddr: *loginAddr})
	if err != nil {
		return err
	}
	defer sim.Close()
	sim.AddApp(demoApp, demoSecret, true)
	sim.AddAccount(demoAccount1, demoPassword1, false)
	sim.AddAccount(demoAccount2, demoPassword2, false)
	sim.AddTenant(
		demoTenant,
		graphsim.TenantOptions{
			DelegatedConsent: true,
			AppConsent:       true,
			UserReadConsent:  true,
			MeetingsConsent:  true,
			Guests:           []string{demoAccount1, demoAccount2},
		},
	)
	// The agents have onmicrosoft.com addresses and, like the rest of the
	// directory, a department and a preferred language, so that seed 004's
	// example contact search filter means something.
	users := sim.AddUsers(demoTenant, "contosodemo.onmicrosoft.com", *agents)
	addDemoDirectory(sim)
	// The user Interact's meetings are organised for, with the
	// application access policy a Teams admin would grant.
	organizer := sim.AddUsers(demoTenant, "contoso-demo.example", 1)[0]
	sim.GrantMeetingPolicy(demoTenant, organizer.ID, true)
	// A fake ACS resource for Interact and the Assistant, trusted beside
	// the simulator's certificate.
	fakeACS, err := acstest.Start()
	if err != nil {
		return err
	}
	defer fakeACS.Close()
	certFile, err := withCert(sim.CertFile(), fakeACS.CertificatePEM())
	if err != nil {
		return err
	}
	sim.Change(demoTenant, 0.6)
	go sim.RandomWalk(ctx, *every, *change)

	env := map[string]string{
		"GRAPH_BASE_URL":             sim.GraphURL(),
		"AZURE_AUTHORITY_HOST":       sim.AuthorityURL(),
		"SSL_CERT_FILE":              certFile,
		"ACS_CONNECTION_STRING":      fakeACS.ConnectionString(),
		"PRESENCE_APP_CLIENT_ID":     demoApp,
		"PRESENCE_APP_CLIENT_SECRET": demoSecret,
		"PRESENCE_ACCOUNT1_UPN":      demoAccount1,
		"PRESENCE_ACCOUNT1_PASSWORD": demoPassword1,
		"PRESENCE_ACCOUNT2_UPN":      demoAccount2,
		"PRESENCE_ACCOUNT2_PASSWORD": demoPassword2,
		"API_AUTH":                   "none",
	}
	if *notifications {
		// A demo certificate for rich notifications; the app's own route
		// (through the runner) is the notification URL, so the simulator
		// notifies it 0.5-1.5 s after each presence change.
		pemBytes, err := richnotify.GenerateCertificate("switchboard demo presence notifications")
		if err != nil {
			return err
		}
		dir, err := os.MkdirTemp("", "graphsim-demo")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		certFile := filepath.Join(dir, "notifications.pem")
		if err := os.WriteFile(certFile, pemBytes, 0o600); err != nil {
			return err
		}
		env["PRESENCE_NOTIFICATIONS_URL"] = strings.TrimRight(*api, "/") + "/api/presence-notifications"
		env["PRESENCE_NOTIFICATIONS_CERTIFICATE"] = certFile
	}
	fmt.Fprintf(stderr, "graphsim: Graph at %s, Entra at %s, demo tenant %s with %d agents (%.0f%% change presence every %s)\n",
		sim.GraphURL(), sim.AuthorityURL(), demoTenant, len(users), *change*100, *every)
	if len(command) == 0 {
		for _, k := range sortedKeys(env) {
			fmt.Fprintf(stdout, "export %s=%q\n", k, env[k])
		}
		<-ctx.Done()
		return nil
	}

	cmd := exec.Command(command[0], command[1:]...)
	cmd.Stdout, cmd.Stderr, cmd.Stdin = stdout, stderr, os.Stdin
	cmd.Env = os.Environ()
	for _, k := range sortedKeys(env) {
		cmd.Env = append(cmd.Env, k+"="+env[k])
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if *demo {
		go func() {
			widgetKey, err := setUpDemo(ctx, *api, users, organizer.ID, fakeACS.ConnectionString())
			if err != nil {
				fmt.Fprintln(stderr, "graphsim: demo set-up:", err)
				return
			}
			if *trickleEvery > 0 {
				fmt.Fprintf(stderr, "graphsim: demo trickle: a conversation every %s into support or sales; the demo agents answer most offers\n", *trickleEvery)
				go func() { _ = newTrickle(*api, demoTenant, demoServices, *trickleEvery, stderr).run(ctx) }()
			}
			fmt.Fprintf(stderr, `graphsim: demo ready. The web page: %[4]s
Or try:
  curl -s %[1]s/api/tenants/%[2]s/presence-tracking
  curl -s %[1]s/api/tenants/%[2]s/services/support
  curl -s -X POST %[1]s/api/tenants/%[2]s/services/support/route -H 'Content-Type: application/json' -d '{"conversationId":"c-1","reserve":true}'
  curl -s %[1]s/api/tenants/%[2]s/users/%[3]s/presence
  curl -s '%[1]s/api/tenants/%[2]s/attendant/search?q=ag&top=5&asUser=%[3]s'
  curl -s -X PATCH %[1]s/api/tenants/%[2]s/settings -H 'Content-Type: application/merge-patch+json' \
    -d "{\"attendantConsole\":{\"contactSearchFilter\":\"endsWith(userPrincipalName,'onmicrosoft.com') and preferredLanguage eq 'en-GB'\"}}"
  curl -s -X POST %[1]s/api/interact/%[2]s/sessions -H 'X-Widget-Key: %[5]s' -H 'Content-Type: application/json' -d '{
	"serviceId":"support",
	"customer":{"displayName":"Ada"},
}'
  curl -s -X POST '%[1]s/api/tenants/%[2]s/assistant/token?asUser=%[3]s'
Events to a local webhook (it subscribes itself, verifies each signature and prints the events):
  go run ./handler/dev/cmd/eventsink -api %[1]s -tenant %[2]s
`, *api, demoTenant, users[0].ID, pageURL(*api), widgetKey)
		}()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		// The terminal's Ctrl-C reached the command too; a SIGTERM is
		// passed on.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(40 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		return nil
	}
}

// demoServices are the services setUpDemo creates.
var demoServices = []string{"support", "sales"}

// setUpDemo waits for the app, then creates two services over the demo
// agents (overlapping: some agents serve both), switches the tenant to
// tracking over guest accounts, enables Interact (the fake ACS, meetings for
// organizer) and fires a presence poll. It returns the widget key.
func setUpDemo(ctx context.Context, api string, users []graphsim.User, organizer, acsConnectionString string) (string, error) {
	client := &http.Client{Timeout: 30 * time.Second}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		resp, err := client.Get(api + "/api/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("the app did not answer on %s within 5 minutes", api)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	call := func(method, path, contentType string, body any, out ...any) error {
		b, _ := json.Marshal(body)
		req, err := http.NewRequestWithContext(ctx, method, api+path, bytes.NewReader(b))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", contentType)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 300 {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 500))
			return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(msg)))
		}
		if len(out) > 0 {
			return json.NewDecoder(resp.Body).Decode(out[0])
		}
		return nil
	}
	members := func(from, to int) []map[string]any {
		var out []map[string]any
		for _, u := range users[min(from, len(users)):min(to, len(users))] {
			out = append(out, map[string]any{"userId": u.ID, "active": true})
		}
		return out
	}
	third := len(users) / 3
	services := []struct {
		id   string
		body map[string]any
	}{
		{"support", map[string]any{"name": "Support", "members": members(0, 2*third+1),
			"distribution": map[string]any{"deliverWhileBusy": true, "deliverWhileAway": false, "order": "LongestIdle", "holdSeconds": 30,
				"ringSeconds": 15, "afterCallWorkSeconds": 10, "rona": map[string]any{"enabled": true, "resetSeconds": 30}}}},
		{"sales", map[string]any{"name": "Sales", "members": members(third, len(users)),
			"distribution": map[string]any{"deliverWhileBusy": false, "deliverWhileAway": false, "order": "RoundRobin", "holdSeconds": 30,
				"ringSeconds": 15, "afterCallWorkSeconds": 10, "rona": map[string]any{"enabled": true, "resetSeconds": 30}}}},
	}
	for _, s := range services {
		if err := call(http.MethodPut, "/api/tenants/"+demoTenant+"/services/"+s.id, "application/json", s.body); err != nil {
			return "", err
		}
	}
	if err := call(http.MethodPatch, "/api/tenants/"+demoTenant+"/settings", "application/merge-patch+json",
		map[string]any{"presenceTracking": map[string]any{"trackOverGuestAccounts": true}}); err != nil {
		fmt.Fprintln(os.Stderr, "graphsim: demo: enabling tracking over guest accounts failed (presence is read with application permission):", err)
	}
	var st struct {
		Interact struct {
			WidgetKey string `json:"widgetKey"`
		} `json:"interact"`
	}
	if err := call(http.MethodPatch, "/api/tenants/"+demoTenant+"/settings", "application/merge-patch+json",
		map[string]any{"interact": map[string]any{"enabled": true, "acsConnectionString": acsConnectionString, "o365UserId": organizer}}, &st); err != nil {
		return "", fmt.Errorf("enabling Interact: %w", err)
	}
	if err := call(http.MethodPost, "/admin/functions/PresencePoll?wait=true", "application/json", map[string]any{"input": ""}); err != nil {
		return "", err
	}
	// Housekeeping creates the presence subscriptions (when notifications
	// are on) right away rather than at its next minute.
	return st.Interact.WidgetKey, call(http.MethodPost, "/admin/functions/Housekeeping", "application/json", map[string]any{"input": ""})
}

// withCert writes a certificate file holding certFile's certificates and
// pemBytes, for SSL_CERT_FILE.
func withCert(certFile string, pemBytes []byte) (string, error) {
	raw, err := os.ReadFile(certFile)
	if err != nil {
		return "", err
	}
	out := strings.TrimSuffix(certFile, ".pem") + "-with-acs.pem"
	return out, os.WriteFile(out, append(append(raw, '\n'), pemBytes...), 0o600)
}

// pageURL is the web page (SPEC section 15) with the demo tenant chosen.
func pageURL(api string) string {
	return strings.TrimSuffix(api, "/") + "/api/ui/?tenant=" + demoTenant + "#/services/support"
}

// addDemoDirectory adds people who are not agents: the reception and the
// back office (onmicrosoft.com addresses, several languages) and a
// partner's staff (another domain), whom a contact search finds or, under
// the seed's example filter, does not.
func addDemoDirectory(sim *graphsim.Sim) {
	people := []struct{ given, surname, domain, title, dept, lang string }{
		{"Anna", "Meier", "contosodemo.onmicrosoft.com", "Receptionist", "Reception", "en-GB"},
		{"Andreas", "Keller", "contosodemo.onmicrosoft.com", "Accountant", "Billing", "de-CH"},
		{"Amélie", "Dubois", "contosodemo.onmicrosoft.com", "Team lead", "Support", "fr-CH"},
		{"Oliver", "O'Brien", "contosodemo.onmicrosoft.com", "Head of sales", "Sales", "en-GB"},
		{"Sophie", "Turner", "contosodemo.onmicrosoft.com", "Assistant", "Reception", "en-US"},
		{"Agnes", "Partner", "fabrikam-partner.example", "Consultant", "External", "en-GB"},
		{"Aaron", "Vendor", "fabrikam-partner.example", "Engineer", "External", "de-CH"},
	}
	for _, p := range people {
		upn := strings.ToLower(strings.NewReplacer("'", "", "é", "e").Replace(p.given+"."+p.surname)) + "@" + p.domain
		sim.AddUser(demoTenant, graphsim.User{UPN: upn, DisplayName: p.given + " " + p.surname, Profile: graphsim.Profile{
			GivenName: p.given, Surname: p.surname, Mail: upn, JobTitle: p.title, Department: p.dept, PreferredLanguage: p.lang}})
	}
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

// portArg returns the value of a -port flag among args, or "".
func portArg(args []string) string {
	for i, a := range args {
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "port" {
			continue
		}
		if hasValue {
			return value
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// Package browsertest drives the real web page in headless Chromium
// (Debian's chromium, which `make test` installs when missing) against the
// handler behind the local runner, on Azurite, with presence from the
// Graph simulator. One browser serves every test; its traffic goes through
// a proxy on loopback that refuses everything but the app.
package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"switchboard/handler/dev/graphsim"
	"switchboard/handler/internal/e2e"
	"switchboard/handler/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	tenant   = "b1e5b1e5-0000-4000-8000-000000000001"
	app      = "b1e5b1e5-0000-4000-8000-0000000000a1"
	secret   = "browser-secret"
	account1 = "presence1@switchboard-browser.example"
	account2 = "presence2@switchboard-browser.example"
)

// site is the app, the simulator and one browser tab, shared by the tests.
type site struct {
	env   *e2e.Env
	sim   *graphsim.Sim
	users []graphsim.User
	ctx   context.Context // the tab

	// authority is the Entra stand-in the sign-in tests use; the proxy
	// tunnels to it and the browser accepts its certificate.
	authority *fakeAuthority
	entra     *e2e.Env // the same app with Entra sign-in

	mu       sync.Mutex
	problems []string // console errors, exceptions, refused requests since the last take
	refused  []string
	allowed  map[string]bool // host:port the proxy forwards to
}

// allow lets the browser reach another app started by a test.
func (s *site) allow(appURL string) {
	u, _ := url.Parse(appURL)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.allowed[u.Host] = true
}

// pageURL is the page for the test tenant, at #/fragment.
func (s *site) pageURL(fragment string) string {
	return s.env.BaseURL + "/api/ui/?tenant=" + tenant + "#/" + fragment
}

func (s *site) report(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.problems = append(s.problems, fmt.Sprintf(format, args...))
}

// takeProblems returns what went wrong in the page since the last call.
func (s *site) takeProblems() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.problems
	s.problems = nil
	return p
}

func startSite(t *testing.T) *site {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: `make test` (or `make chromium`) installs Debian's chromium package")
	}
	sim, err := graphsim.Start(graphsim.Options{Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	sim.AddApp(app, secret, true)
	sim.AddAccount(account1, "pw-1", false)
	sim.AddAccount(account2, "pw-2", false)
	// User.Read.All too: the settings page checks contact search filters
	// with it (without it every check says the permission is missing).
	sim.AddTenant(tenant, graphsim.TenantOptions{DelegatedConsent: true, AppConsent: true, UserReadConsent: true, Guests: []string{account1, account2}})
	users := sim.AddUsers(tenant, "contoso-browser.example", 6)
	sim.SetPresence(tenant, users[0].ID, "Busy", "InACall", false)
	sim.SetPresence(tenant, users[1].ID, "Available", "Available", false)
	sim.SetPresence(tenant, users[2].ID, "Away", "Away", false)

	env := e2e.Start(t, e2e.Options{Env: map[string]string{
		"GRAPH_BASE_URL": sim.GraphURL(), "AZURE_AUTHORITY_HOST": sim.AuthorityURL(), "SSL_CERT_FILE": sim.CertFile(),
		"PRESENCE_APP_CLIENT_ID": app, "PRESENCE_APP_CLIENT_SECRET": secret,
		"PRESENCE_ACCOUNT1_UPN": account1, "PRESENCE_ACCOUNT1_PASSWORD": "pw-1",
		"PRESENCE_ACCOUNT2_UPN": account2, "PRESENCE_ACCOUNT2_PASSWORD": "pw-2",
	}})
	s := &site{env: env, sim: sim, users: users, allowed: map[string]bool{}, authority: startAuthority(t)}
	s.allow(env.BaseURL)
	s.entra = startEntraApp(t, s)
	var members []map[string]any
	for _, u := range users {
		members = append(members, map[string]any{"userId": u.ID, "active": true})
	}
	s.must(t, http.MethodPut, "/services/support", map[string]any{"name": "Support", "members": members,
		"distribution": map[string]any{"deliverWhileBusy": false, "order": "LongestIdle"}})
	s.must(t, http.MethodPatch, "/settings", map[string]any{"presenceTracking": map[string]any{"trackOverGuestAccounts": true}})
	env.Invoke(t, "PresencePoll")

	proxy := newProxy(t, s)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-features", "AutofillServerCommunication,OptimizationHints,Translate,MediaRouter"),
		chromedp.Flag("disable-client-side-phishing-detection", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("proxy-server", proxy),
		// Loopback goes through the proxy too.
		chromedp.Flag("proxy-bypass-list", "<-loopback>"),
		// The fake authority's certificate only, not any other untrusted one.
		chromedp.Flag("ignore-certificate-errors-spki-list", s.authority.SPKI()),
		chromedp.WindowSize(1280, 800),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil { // starts the browser and opens the tab
		t.Fatalf("starting chromium: %v", err)
	}
	err = chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				s.report("console.%s: %s", ev.Type, strings.Join(parts, " "))
			}
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			s.report("exception: %s (%s:%d)", msg, d.URL, d.LineNumber)
		case *log.EventEntryAdded:
			e := ev.Entry
			if e.Level != log.EntryLevelError {
				return
			}
			// The browser logs every API reply of 4xx (a refused value, a
			// route of a capability not deployed yet), which the pages
			// show where they belong; a 5xx or any other failed load is a
			// defect.
			if e.Source == log.EntrySourceNetwork && strings.Contains(e.URL, "/api/tenants/") && strings.Contains(e.Text, "status of 4") {
				return
			}
			s.report("log (%s): %s %s", e.Source, e.Text, e.URL)
		case *page.EventJavascriptDialogOpening:
			// The listener must not send commands itself.
			go func() {
				_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
			}()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, log.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: name}, Setting: "granted", Origin: env.BaseURL}); err != nil {
			t.Fatalf("granting %s: %v", name, err)
		}
	}
	s.ctx = ctx
	return s
}

// newProxy is the browser's only way out: it forwards plain-HTTP requests
// for the app (s.allowed), tunnels CONNECT to the fake authority (loopback
// TLS) and refuses everything else before connecting anywhere.
func newProxy(t *testing.T, s *site) string {
	t.Helper()
	forward := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.Out.URL.Scheme, r.Out.URL.Host = "http", r.In.URL.Host
		r.Out.Host = r.In.URL.Host
	}, ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
		s.report("proxy: %s %s: %v", r.Method, r.URL, err)
		w.WriteHeader(http.StatusBadGateway)
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodConnect && r.Host == s.authority.Host() {
			tunnel(w, r.Host)
			return
		}
		s.mu.Lock()
		ok := r.Method != http.MethodConnect && r.URL.Scheme == "http" && s.allowed[r.URL.Host]
		if !ok {
			s.refused = append(s.refused, r.Method+" "+r.Host+r.URL.Path)
		}
		s.mu.Unlock()
		if !ok {
			http.Error(w, "the test proxy allows only the app", http.StatusForbidden)
			return
		}
		forward.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// tunnel joins the browser's connection to host (the fake authority, on
// loopback) for a CONNECT.
func tunnel(w http.ResponseWriter, host string) {
	upstream, err := net.Dial("tcp", host)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		upstream.Close()
		return
	}
	_, _ = conn.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
	go func() {
		// Whatever the browser sent after the CONNECT is buffered.
		_, _ = io.Copy(upstream, buf)
		upstream.Close()
	}()
	_, _ = io.Copy(conn, upstream)
	conn.Close()
}

func (s *site) must(t *testing.T, method, path string, body any) []byte {
	t.Helper()
	ct := "application/json"
	if method == http.MethodPatch {
		ct = "application/merge-patch+json"
	}
	raw, _ := json.Marshal(body)
	status, _, reply := s.env.Do(t, method, "/api/tenants/"+tenant+path, raw, "Content-Type", ct)
	if status >= 300 {
		t.Fatalf("%s %s: %d %s", method, path, status, reply)
	}
	return reply
}

func (s *site) settings(t *testing.T) map[string]any {
	t.Helper()
	status, _, raw := s.env.Do(t, http.MethodGet, "/api/tenants/"+tenant+"/settings", nil)
	var out map[string]any
	if status != http.StatusOK || json.Unmarshal(raw, &out) != nil {
		t.Fatalf("GET settings: %d %s", status, raw)
	}
	return out
}

func (s *site) run(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, 45*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		s.fail(t, what, err)
	}
}

func (s *site) fail(t *testing.T, what string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second) // a page without main
	defer cancel()
	html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("main")))
	t.Fatalf("%s: %v\nmain: %.3000s", what, err, html)
}

// get runs an action that returns a value.
func get[T any](t *testing.T, s *site, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, 45*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		s.fail(t, what, err)
	}
	return v
}

// eval evaluates a JavaScript expression, awaiting a promise.
func eval[T any](t *testing.T, s *site, expr string) T {
	t.Helper()
	return get(t, s, "evaluate "+expr, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// open navigates to a page and waits for sel to be visible.
func (s *site) open(t *testing.T, fragment, sel string) {
	t.Helper()
	s.run(t, "open "+fragment, chromedp.Navigate(s.pageURL(fragment)), chromedp.WaitVisible(chromedp.CSS(sel)))
}

// waitFor polls a JavaScript condition until it holds (at most 30 s).
func (s *site) waitFor(t *testing.T, what, cond string) {
	t.Helper()
	get(t, s, "wait for "+what, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(30*time.Second), chromedp.WithPollingInterval(100*time.Millisecond)))
}

func textOf(sel string) string {
	return fmt.Sprintf(`(document.querySelector(%q)?.textContent || "")`, sel)
}

func screenshotDir(t *testing.T) string {
	dir := os.Getenv("UI_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(testenv.RepoRoot(t), "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

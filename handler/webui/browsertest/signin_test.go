package browsertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"switchboard/handler/internal/e2e"
)

// startEntraApp starts a second app on the same tables, with Entra
// sign-in against the fake authority, for the sign-in tests.
func startEntraApp(t *testing.T, s *site) *e2e.Env {
	t.Helper()
	env := e2e.Start(t, e2e.Options{Tables: s.env.Tables, Env: map[string]string{
		"API_AUTH": "entra", "API_AUDIENCE": apiAudience, "UI_CLIENT_ID": uiClientID,
		"AZURE_AUTHORITY_HOST": s.authority.URL(), "SSL_CERT_FILE": s.authority.certFile,
	}})
	s.allow(env.BaseURL)
	return env
}

// With Entra sign-in the page loads MSAL.js under its CSP, offers Sign in
// and calls no API without a token.
func signInOffered(t *testing.T, s *site) {
	env := s.entra
	s.takeProblems()
	s.run(t, "open", navigate(env.BaseURL+"/api/ui/#/settings"), waitVisible(`#who button`))
	if got := eval[string](t, s, textOf("#who button")); got != "Sign in" {
		t.Errorf("header button %q, want Sign in", got)
	}
	if !eval[bool](t, s, `typeof msal === "object" && typeof msal.PublicClientApplication === "function"`) {
		t.Error("MSAL.js is not loaded")
	}
	if got := eval[string](t, s, textOf("main h1")); got != "Sign in" {
		t.Errorf("page heading %q, want Sign in", got)
	}
	if p := s.takeProblems(); len(p) > 0 {
		t.Errorf("page problems: %v", p)
	}
	status, hdr, _ := env.Do(t, http.MethodGet, "/api/ui/", nil)
	if csp := hdr.Get("Content-Security-Policy"); status != http.StatusOK || !strings.Contains(csp, "connect-src 'self' "+strings.TrimSuffix(s.authority.URL(), "/")) {
		t.Errorf("CSP %q: want connect-src 'self' and the authority", csp)
	}
}

// signIn starts a fresh browser session on the Entra app's page (MSAL
// keeps its cache in sessionStorage), clicks Sign in, and waits, through
// the authority's redirects, for the page to show ready.
func (s *site) signIn(t *testing.T, env *e2e.Env, fragment, ready string) {
	t.Helper()
	before := s.authority.signInCount()
	s.run(t, "open", navigate(env.BaseURL+"/api/ui/#/"+fragment), waitVisible(`#who button`))
	eval[bool](t, s, `(sessionStorage.clear(), localStorage.clear(), true)`)
	s.run(t, "a fresh session", navigate("about:blank"), navigate(env.BaseURL+"/api/ui/#/"+fragment), waitVisible(`#who button`))
	s.waitFor(t, "Sign in offered", textOf("#who button")+` === "Sign in"`)
	s.run(t, "sign in", click(`#who button`), waitVisible(ready))
	if got := s.authority.signInCount(); got != before+1 {
		t.Fatalf("%d sign-ins at the authority, want 1", got-before)
	}
}

// Signed in as a Supervisor, the settings page (Admin only, read and
// write: SPEC section 9) says so and offers nothing to change, and the
// service editor shows the service read-only: every field and every
// button that writes is disabled and says why, and a write forced past
// them is refused by the API and shown as "your role does not allow
// this". Signed in as an Admin, the settings page saves.
func supervisorReadOnly(t *testing.T, s *site) {
	env := s.entra
	stored := s.settings(t)["outbound"].(map[string]any)["maxScheduledTasksPerService"]
	s.takeProblems()

	s.authority.signInAs("Supervisor")
	s.signIn(t, env, "settings", "main .alert.info[role=status]")
	if got := eval[string](t, s, textOf("#who span")); got != "supervisor@contoso-browser.example" {
		t.Errorf("signed in as %q, want the supervisor", got)
	}
	notice := eval[string](t, s, textOf("main .alert.info[role=status]"))
	if !strings.Contains(notice, "Your role (Supervisor) does not allow the tenant settings") || !strings.Contains(notice, "Switchboard.Admin") {
		t.Errorf("settings notice %q, want the role and the role needed", notice)
	}
	if n := eval[int](t, s, `document.querySelectorAll("main input, main select, main textarea, main button, main .alert.error").length`); n != 0 {
		t.Errorf("the settings page shows a Supervisor %d fields, buttons or errors, want none", n)
	}

	const name = `input[data-field="name"]`
	service := func() (body string) {
		status, _, raw := s.env.Do(t, http.MethodGet, "/api/tenants/"+tenant+"/services/support", nil)
		if status != http.StatusOK {
			t.Fatalf("GET service: %d %s", status, raw)
		}
		return string(raw)
	}
	var svc struct{ Name string }
	before := service()
	_ = json.Unmarshal([]byte(before), &svc)
	s.run(t, "open the service", navigate(env.BaseURL+"/api/ui/#/services/support"), waitVisible(name))
	s.waitFor(t, "the service's name", fmt.Sprintf(`document.querySelector(%q).value === %q`, name, svc.Name))
	if n := eval[int](t, s, `document.querySelectorAll("main input[data-member]").length`); n != len(s.users) {
		t.Errorf("the editor lists %d members, want %d", n, len(s.users))
	}
	writable := eval[[]string](t, s, `[...document.querySelectorAll("main form input, main form select, main form textarea")]
		.filter(e => !e.disabled && !e.readOnly).map(e => e.dataset.field || e.getAttribute("aria-label") || e.id)`)
	if len(writable) > 0 {
		t.Errorf("a Supervisor can edit %v", writable)
	}
	if enabled := eval[[]string](t, s, `[...document.querySelectorAll("main form button")].filter(b => !b.disabled).map(b => b.textContent)`); len(enabled) > 0 {
		t.Errorf("buttons %v are enabled for a Supervisor", enabled)
	}
	if got := eval[string](t, s, textOf("#edit-h ~ .alert.info")); !strings.Contains(got, "can read this service but not change it") {
		t.Errorf("editor notice %q, want why it is read-only", got)
	}
	// Forced past the disabled controls, the write reaches the API, which
	// refuses it; the page says so and nothing changes.
	eval[bool](t, s, fmt.Sprintf(`(() => { const i = document.querySelector(%q); i.disabled = false; i.value = "Renamed";
		const b = document.querySelector("#edit-h ~ .sticky-actions button[type=submit]"); b.disabled = false; b.click(); return true; })()`, name))
	s.waitFor(t, "the refusal", `[...document.querySelectorAll("main .alert.error")].some(e => e.textContent.startsWith("Your role does not allow this"))`)
	if after := service(); after != before {
		t.Errorf("after the refused write the service is\n%s\nwas\n%s", after, before)
	}

	s.authority.signInAs("Admin")
	s.signIn(t, env, "settings", capInput)
	if got := eval[string](t, s, textOf("#who span")); got != "admin@contoso-browser.example" {
		t.Errorf("signed in as %q, want the admin", got)
	}
	if got := value(t, s, capInput); got != fmt.Sprint(stored) {
		t.Errorf("the cap shows %q, want the stored %v", got, stored)
	}
	if eval[bool](t, s, fmt.Sprintf(`document.querySelector(%q).disabled || document.querySelector("main form button[type=submit]").disabled`, capInput)) {
		t.Error("the settings are read-only for an Admin")
	}
	s.run(t, "save 29", setValue(capInput, "29"), click(`main form button[type=submit]`))
	s.waitFor(t, "Saved", `[...document.querySelectorAll(".alert.ok")].some(e => e.textContent === "Saved.")`)
	if got := s.settings(t)["outbound"].(map[string]any)["maxScheduledTasksPerService"]; got != float64(29) {
		t.Errorf("after an Admin's save the cap is %v, want 29", got)
	}
	if p := s.takeProblems(); len(p) > 0 {
		t.Errorf("page problems: %v", p)
	}
}

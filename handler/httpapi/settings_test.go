package httpapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"switchboard/handler/acs"
	"switchboard/handler/dev/acstest"
	"switchboard/handler/secrets"
	"switchboard/handler/settings"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

const settingsPath = "/api/tenants/" + tenant + "/settings"

// settingsEnv is the real Router with the settings API over in-memory
// tables, a fake ACS resource, and a record of every response body and
// log line (to search them for secrets).
type settingsEnv struct {
	t      *testing.T
	router *Router
	acs    *acstest.Server

	mu     sync.Mutex
	bodies bytes.Buffer
	logs   bytes.Buffer
}

func newSettingsEnv(t *testing.T) *settingsEnv {
	t.Helper()
	return newSettingsEnvWith(t, nil)
}

// newSettingsEnvWith serves the settings with accounts reporting the
// presence accounts' status.
func newSettingsEnvWith(t *testing.T, accounts PresenceAccounts) *settingsEnv {
	t.Helper()
	e := &settingsEnv{t: t, acs: acstest.NewServer(t)}
	log := slog.New(slog.NewJSONHandler(lockedWriter{&e.mu, &e.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	svc, err := settings.New(context.Background(), settings.Options{
		Tables:      store.NewMemoryTables(),
		Secrets:     mustKeyring(t),
		Account1UPN: "presence1@switchboard.example",
		Account2UPN: "presence2@switchboard.example",
		ACS:         acs.New(acs.Options{AllowPrivate: true, RootCAs: e.acs.CertPool()}),
		// The fake ACS is on loopback, as ALLOW_PRIVATE_ENDPOINTS allows.
		AllowPrivateEndpoints: true,
		Log:                   log,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.router = NewRouter(log, fakeVerifier{tid: tenant})
	(&SettingsAPI{Service: svc, Accounts: accounts}).Register(e.router)
	return e
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// call sends a request with a valid token and the given headers (name,
// value pairs) and decodes a JSON reply into out when out is not nil.
func (e *settingsEnv) call(method, path, body string, out any, hdr ...string) *httptest.ResponseRecorder {
	e.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer good")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	e.router.ServeHTTP(rec, req)
	e.mu.Lock()
	e.bodies.Write(rec.Body.Bytes())
	e.mu.Unlock()
	if out != nil && rec.Code < 300 {
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			e.t.Fatalf("%s %s: reply is not JSON: %v (%s)", method, path, err, rec.Body)
		}
	}
	return rec
}

// problem decodes a problem reply and checks its media type.
func (e *settingsEnv) problem(rec *httptest.ResponseRecorder) problemBody {
	e.t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		e.t.Errorf("Content-Type %q, want application/problem+json (%s)", ct, rec.Body)
	}
	var p problemBody
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		e.t.Fatalf("problem is not JSON: %s", rec.Body)
	}
	return p
}

func TestSettingsAPIDefaultsAndShape(t *testing.T) {
	e := newSettingsEnv(t)
	var got map[string]map[string]any
	rec := e.call(http.MethodGet, settingsPath, "", &got)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET: %d %s", rec.Code, rec.Body)
	}
	etag := rec.Header().Get("ETag")
	if !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) || len(etag) < 3 {
		t.Errorf("ETag %q is not a quoted strong ETag", etag)
	}
	want := map[string]map[string]any{
		"outbound": {"maxScheduledTasksPerService": 20.0},
		"interact": {"enabled": false, "acsConnectionStringSet": false, "acsEndpoint": nil, "o365UserId": nil,
			"sessionRecoveryTimeoutSeconds": 20.0, "authorization": "None"},
		"assistant":        {"useOwnAcsInstance": false, "acsConnectionStringSet": false, "acsEndpoint": nil},
		"attendantConsole": {"contactSearchFilter": "", "teamVisibility": "AllMembers"},
		"presenceTracking": {"trackOverGuestAccounts": false, "account1Upn": "presence1@switchboard.example", "account2Upn": "presence2@switchboard.example"},
	}
	for sec, fields := range want {
		for name, w := range fields {
			if g, ok := got[sec][name]; !ok || fmt.Sprint(g) != fmt.Sprint(w) {
				t.Errorf("%s.%s = %v (present %v), want %v", sec, name, g, ok, w)
			}
		}
	}
	if key, _ := got["interact"]["widgetKey"].(string); len(key) != 36 {
		t.Errorf("interact.widgetKey = %q, want a GUID", key)
	}
	status, _ := got["presenceTracking"]["account1Status"].(map[string]any)
	if status["state"] != "unknown" {
		t.Errorf("account1Status = %v, want state unknown", status)
	}
	if len(got) != len(want) {
		t.Errorf("sections = %d, want %d: %v", len(got), len(want), got)
	}
	// Unchanged since: 304.
	if rec := e.call(http.MethodGet, settingsPath, "", nil, "If-None-Match", etag); rec.Code != http.StatusNotModified || rec.Header().Get("ETag") != etag {
		t.Errorf("GET If-None-Match: %d, ETag %q; want 304, %q", rec.Code, rec.Header().Get("ETag"), etag)
	}
}

func TestSettingsAPIBounds(t *testing.T) {
	e := newSettingsEnv(t)
	tests := []struct {
		field     string // dotted
		value     string
		wantOK    bool
		wantRange string
	}{
		{"outbound.maxScheduledTasksPerService", "1", true, ""},
		{"outbound.maxScheduledTasksPerService", "50", true, ""},
		{"outbound.maxScheduledTasksPerService", "0", false, "from 1 to 50"},
		{"outbound.maxScheduledTasksPerService", "51", false, "from 1 to 50"},
		{"outbound.maxScheduledTasksPerService", "20.5", false, "from 1 to 50"},
		{"outbound.maxScheduledTasksPerService", `"20"`, false, "from 1 to 50"},
		{"interact.sessionRecoveryTimeoutSeconds", "5", true, ""},
		{"interact.sessionRecoveryTimeoutSeconds", "60", true, ""},
		{"interact.sessionRecoveryTimeoutSeconds", "4", false, "from 5 to 60"},
		{"interact.sessionRecoveryTimeoutSeconds", "61", false, "from 5 to 60"},
		{"interact.authorization", `"VerifyToken"`, true, ""},
		{"interact.authorization", `"verifyToken"`, false, "None, VerifyToken, VerifyTokenAndTenant"},
		{"attendantConsole.teamVisibility", `"NoMembers"`, true, ""},
		{"attendantConsole.teamVisibility", `"Nobody"`, false, "NoMembers, OwnMembers, AllMembers"},
	}
	for _, tt := range tests {
		t.Run(tt.field+"="+tt.value, func(t *testing.T) {
			sec, name, _ := strings.Cut(tt.field, ".")
			body := fmt.Sprintf(`{%q: {%q: %s}}`, sec, name, tt.value)
			var got map[string]map[string]any
			rec := e.call(http.MethodPatch, settingsPath, body, &got, "Content-Type", "application/merge-patch+json")
			if tt.wantOK {
				if rec.Code != http.StatusOK {
					t.Fatalf("PATCH %s: %d %s", body, rec.Code, rec.Body)
				}
				if g := fmt.Sprint(got[sec][name]); g != strings.Trim(tt.value, `"`) {
					t.Errorf("%s = %s, want %s", tt.field, g, tt.value)
				}
				if rec.Header().Get("ETag") == "" {
					t.Error("PATCH reply without ETag")
				}
				return
			}
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("PATCH %s: %d %s, want 400", body, rec.Code, rec.Body)
			}
			p := e.problem(rec)
			if p.Field != tt.field || p.Type != "validation-error" || !strings.Contains(p.Title, tt.wantRange) || !strings.Contains(p.Title, tt.field) {
				t.Errorf("problem = %+v; want field %s, type validation-error, a title naming it and %q", p, tt.field, tt.wantRange)
			}
		})
	}
}

func TestSettingsAPIPatchRequests(t *testing.T) {
	e := newSettingsEnv(t)
	tests := []struct {
		name        string
		body        string
		contentType string
		wantStatus  int
		wantField   string
		wantTitle   string
	}{
		{"application/json", `{"presenceTracking":{"trackOverGuestAccounts":true}}`, "application/json; charset=utf-8", http.StatusOK, "", ""},
		{"no content type", `{"presenceTracking":{"trackOverGuestAccounts":false}}`, "", http.StatusOK, "", ""},
		{"JSON Patch", `[{"op":"replace","path":"/outbound/maxScheduledTasksPerService","value":3}]`, "application/json-patch+json", http.StatusBadRequest, "", "RFC 6902"},
		{"text", `{}`, "text/plain", http.StatusBadRequest, "", "not supported"},
		{"empty body", ``, "application/merge-patch+json", http.StatusBadRequest, "", "empty"},
		{"read-only widget key", `{"interact":{"widgetKey":"0f3e2d1c-0000-4000-8000-000000000001"}}`, "application/merge-patch+json", http.StatusBadRequest, "interact.widgetKey", "read-only"},
		{"read-only account", `{"presenceTracking":{"account1Upn":"me@contoso.com"}}`, "application/merge-patch+json", http.StatusBadRequest, "presenceTracking.account1Upn", "read-only"},
		{"unknown", `{"interact":{"enable":true}}`, "application/merge-patch+json", http.StatusBadRequest, "interact.enable", "unknown setting"},
		{"interact without ACS", `{"interact":{"enabled":true}}`, "application/merge-patch+json", http.StatusBadRequest, "interact.enabled", "ACS connection string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.contentType != "" {
				hdr = []string{"Content-Type", tt.contentType}
			}
			rec := e.call(http.MethodPatch, settingsPath, tt.body, nil, hdr...)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d (%s), want %d", rec.Code, rec.Body, tt.wantStatus)
			}
			if tt.wantStatus == http.StatusOK {
				return
			}
			p := e.problem(rec)
			if p.Field != tt.wantField || !strings.Contains(p.Title, tt.wantTitle) {
				t.Errorf("problem = %+v; want field %q and %q in the title", p, tt.wantField, tt.wantTitle)
			}
		})
	}
}

func TestSettingsAPIIfMatch(t *testing.T) {
	e := newSettingsEnv(t)
	rec := e.call(http.MethodGet, settingsPath, "", nil)
	etag := rec.Header().Get("ETag")
	rec = e.call(http.MethodPatch, settingsPath, `{"outbound":{"maxScheduledTasksPerService":10}}`, nil, "Content-Type", "application/merge-patch+json", "If-Match", etag)
	if rec.Code != http.StatusOK || rec.Header().Get("ETag") == etag {
		t.Fatalf("PATCH with the current ETag: %d, ETag %q", rec.Code, rec.Header().Get("ETag"))
	}
	rec = e.call(http.MethodPatch, settingsPath, `{"outbound":{"maxScheduledTasksPerService":11}}`, nil, "Content-Type", "application/merge-patch+json", "If-Match", etag)
	if rec.Code != http.StatusPreconditionFailed {
		t.Fatalf("PATCH with a stale ETag: %d %s, want 412", rec.Code, rec.Body)
	}
	if p := e.problem(rec); p.Type != "precondition-failed" {
		t.Errorf("problem type %q, want precondition-failed", p.Type)
	}
	var got settings.View
	e.call(http.MethodGet, settingsPath, "", &got)
	if got.Outbound.MaxScheduledTasksPerService != 10 {
		t.Errorf("max = %d after the stale patch, want 10", got.Outbound.MaxScheduledTasksPerService)
	}
}

// Concurrent PATCHes with the same ETag: exactly one 200, the rest 412.
func TestSettingsAPIConcurrentPatches(t *testing.T) {
	e := newSettingsEnv(t)
	etag := e.call(http.MethodGet, settingsPath, "", nil).Header().Get("ETag")
	const n = 12
	codes := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			body := fmt.Sprintf(`{"interact":{"sessionRecoveryTimeoutSeconds":%d}}`, 5+i)
			codes[i] = e.call(http.MethodPatch, settingsPath, body, nil, "Content-Type", "application/merge-patch+json", "If-Match", etag).Code
		})
	}
	close(start)
	wg.Wait()
	ok, failed := 0, 0
	for _, c := range codes {
		switch c {
		case http.StatusOK:
			ok++
		case http.StatusPreconditionFailed:
			failed++
		}
	}
	if ok != 1 || failed != n-1 {
		t.Errorf("statuses %v: %d × 200 and %d × 412, want 1 and %d", codes, ok, failed, n-1)
	}
}

func TestSettingsAPIWidgetKeyRefresh(t *testing.T) {
	e := newSettingsEnv(t)
	var before, after, again settings.View
	etag := e.call(http.MethodGet, settingsPath, "", &before).Header().Get("ETag")
	rec := e.call(http.MethodPost, settingsPath+"/widget-key/refresh", "", &after)
	if rec.Code != http.StatusOK {
		t.Fatalf("refresh: %d %s", rec.Code, rec.Body)
	}
	if after.Interact.WidgetKey == before.Interact.WidgetKey || len(after.Interact.WidgetKey) != 36 {
		t.Errorf("widget key %q -> %q, want a new GUID", before.Interact.WidgetKey, after.Interact.WidgetKey)
	}
	if got := rec.Header().Get("ETag"); got == "" || got == etag {
		t.Errorf("ETag after refresh %q (before %q)", got, etag)
	}
	e.call(http.MethodGet, settingsPath, "", &again)
	if again.Interact.WidgetKey != after.Interact.WidgetKey {
		t.Errorf("GET after refresh shows %q, want %q", again.Interact.WidgetKey, after.Interact.WidgetKey)
	}
	if rec := e.call(http.MethodPost, settingsPath+"/widget-key/refresh", "", nil, "If-Match", etag); rec.Code != http.StatusPreconditionFailed {
		t.Errorf("refresh with a stale ETag: %d, want 412", rec.Code)
	}
}

// The ACS connection strings go in and never come out: not in any reply
// (settings, check results, errors) and not in the log.
func TestSettingsAPISecretsNeverReturned(t *testing.T) {
	e := newSettingsEnv(t)
	key := base64.StdEncoding.EncodeToString(e.acs.Key)
	good := e.acs.ConnectionString()
	wrongKey := []byte("a-key-of-some-other-acs-resource")
	wrong := e.acs.ConnectionStringWithKey(wrongKey)
	secrets := []string{key, base64.StdEncoding.EncodeToString(wrongKey), "accesskey="}

	patch := func(body string, wantStatus int) {
		t.Helper()
		if rec := e.call(http.MethodPatch, settingsPath, body, nil, "Content-Type", "application/merge-patch+json"); rec.Code != wantStatus {
			t.Fatalf("PATCH %d, want %d: %s", rec.Code, wantStatus, rec.Body)
		}
	}
	patch(`{"interact":{"enabled":true,"acsConnectionString":"`+good+`"},"assistant":{"useOwnAcsInstance":true,"acsConnectionString":"`+wrong+`"}}`, http.StatusOK)
	patch(`{"interact":{"acsConnectionString":"`+strings.Replace(good, "https", "ftp", 1)+`"}}`, http.StatusBadRequest)
	patch(`{"interact":{"acsConnectionString":"`+good+`!"}}`, http.StatusBadRequest)
	patch(`{"assistant":{"acsConnectionString":null}}`, http.StatusBadRequest) // still in use

	var v settings.View
	e.call(http.MethodGet, settingsPath, "", &v)
	if !v.Interact.ACSConnectionStringSet || v.Interact.ACSEndpoint == nil || *v.Interact.ACSEndpoint != e.acs.URL+"/" || !v.Assistant.ACSConnectionStringSet {
		t.Errorf("view = %+v / %+v; want both strings marked set, interact's endpoint shown", v.Interact, v.Assistant)
	}
	e.call(http.MethodPost, settingsPath+"/widget-key/refresh", "", nil)

	checks := []struct {
		name       string
		body       string
		wantStatus int
		wantOK     bool
		wantReason string
	}{
		{"stored interact (empty body)", "", http.StatusOK, true, ""},
		{"stored assistant", `{"target":"assistant"}`, http.StatusOK, false, "access-key-refused"},
		{"given string", `{"connectionString":"` + good + `"}`, http.StatusOK, true, ""},
		{"given wrong string", `{"connectionString":"` + wrong + `"}`, http.StatusOK, false, "access-key-refused"},
		{"malformed given string", `{"connectionString":"` + good + `;extra=1"}`, http.StatusBadRequest, false, ""},
		{"both", `{"connectionString":"` + good + `","target":"interact"}`, http.StatusBadRequest, false, ""},
		{"unknown field", `{"connection":"` + good + `"}`, http.StatusBadRequest, false, ""},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			var res settings.ACSCheckResult
			rec := e.call(http.MethodPost, settingsPath+"/acs-check", c.body, &res, "Content-Type", "application/json")
			if rec.Code != c.wantStatus {
				t.Fatalf("status %d (%s), want %d", rec.Code, rec.Body, c.wantStatus)
			}
			if c.wantStatus != http.StatusOK {
				return
			}
			if res.OK != c.wantOK || res.Reason != c.wantReason || res.Endpoint != e.acs.URL+"/" || res.Message == "" {
				t.Errorf("result %+v; want ok %v, reason %q, endpoint %s/", res, c.wantOK, c.wantReason, e.acs.URL)
			}
		})
	}
	// Disable and remove: the flags follow.
	patch(`{"assistant":{"useOwnAcsInstance":false,"acsConnectionString":null}}`, http.StatusOK)
	e.call(http.MethodGet, settingsPath, "", &v)
	if v.Assistant.ACSConnectionStringSet || v.Assistant.ACSEndpoint != nil {
		t.Errorf("assistant after removal: %+v", v.Assistant)
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range secrets {
		if strings.Contains(e.bodies.String(), s) {
			t.Errorf("a response body holds %q:\n%s", s, e.bodies.String())
		}
		if strings.Contains(e.logs.String(), s) {
			t.Errorf("the log holds %q:\n%s", s, e.logs.String())
		}
	}
	if !strings.Contains(e.logs.String(), "acs check") {
		t.Errorf("the log has no check lines; the search above proves nothing:\n%s", e.logs.String())
	}
}

func TestSettingsAPINeedsTheTenantsToken(t *testing.T) {
	e := newSettingsEnv(t)
	for _, route := range []struct{ method, path string }{
		{http.MethodGet, settingsPath},
		{http.MethodPatch, settingsPath},
		{http.MethodPost, settingsPath + "/widget-key/refresh"},
		{http.MethodPost, settingsPath + "/acs-check"},
	} {
		req := httptest.NewRequest(route.method, route.path, strings.NewReader(`{}`))
		rec := httptest.NewRecorder()
		e.router.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("%s %s without a token: %d, want 401", route.method, route.path, rec.Code)
		}
		other := strings.Replace(route.path, tenant, "11111111-2222-4333-8444-555555555555", 1)
		req = httptest.NewRequest(route.method, other, strings.NewReader(`{}`))
		req.Header.Set("Authorization", "Bearer good")
		rec = httptest.NewRecorder()
		e.router.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden {
			t.Errorf("%s %s with another tenant's token: %d, want 403", route.method, other, rec.Code)
		}
	}
}

// fakeAccounts reports fixed presence account status.
type fakeAccounts struct {
	mu     sync.Mutex
	status [2]switchboard.AccountStatus
	err    error
}

func (f *fakeAccounts) AccountStatus(ctx context.Context, tenantID string) ([2]switchboard.AccountStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status, f.err
}

// The settings answers (GET, PATCH, widget key refresh) show the presence
// accounts' status as presence reports it; when presence cannot say, the
// settings are answered with the status unknown.
func TestSettingsShowPresenceAccountStatus(t *testing.T) {
	yes := true
	at := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	accounts := &fakeAccounts{status: [2]switchboard.AccountStatus{
		{State: switchboard.AccountOK, InvitedAsGuest: &yes, PermissionGranted: &yes, LastSuccessAt: at},
		{State: switchboard.AccountFailing, LastErrorAt: at, LastErrorReason: "not-invited", LastError: "the account is not a guest of the tenant"},
	}}
	e := newSettingsEnvWith(t, accounts)
	check := func(name string, v switchboard.SettingsView) {
		t.Helper()
		a1, a2 := v.PresenceTracking.Account1Status, v.PresenceTracking.Account2Status
		if a1.State != "ok" || a1.InvitedAsGuest == nil || !*a1.InvitedAsGuest || a1.LastSuccessAt == nil || !a1.LastSuccessAt.Equal(at) || a1.LastError != nil {
			t.Errorf("%s: account 1 = %+v", name, a1)
		}
		if a2.State != "failing" || a2.LastErrorReason == nil || *a2.LastErrorReason != "not-invited" || a2.LastErrorAt == nil {
			t.Errorf("%s: account 2 = %+v", name, a2)
		}
	}
	var v switchboard.SettingsView
	if rec := e.call(http.MethodGet, settingsPath, "", &v); rec.Code != http.StatusOK {
		t.Fatalf("GET: %d %s", rec.Code, rec.Body)
	}
	check("GET", v)
	v = switchboard.SettingsView{}
	if rec := e.call(http.MethodPatch, settingsPath, `{"presenceTracking":{"trackOverGuestAccounts":true}}`, &v, "Content-Type", "application/merge-patch+json"); rec.Code != http.StatusOK {
		t.Fatalf("PATCH: %d %s", rec.Code, rec.Body)
	}
	check("PATCH", v)
	v = switchboard.SettingsView{}
	if rec := e.call(http.MethodPost, settingsPath+"/widget-key/refresh", "", &v); rec.Code != http.StatusOK {
		t.Fatalf("refresh: %d %s", rec.Code, rec.Body)
	}
	check("widget key refresh", v)

	accounts.mu.Lock()
	accounts.err = errors.New("status table unreachable")
	accounts.mu.Unlock()
	v = switchboard.SettingsView{}
	if rec := e.call(http.MethodGet, settingsPath, "", &v); rec.Code != http.StatusOK {
		t.Fatalf("GET with a failing status source: %d %s", rec.Code, rec.Body)
	}
	if v.PresenceTracking.Account1Status.State != switchboard.AccountUnknown {
		t.Errorf("state with a failing source = %q, want unknown", v.PresenceTracking.Account1Status.State)
	}
	e.mu.Lock()
	logs := e.logs.String()
	e.mu.Unlock()
	if !strings.Contains(logs, "presence account status unavailable") {
		t.Errorf("a failing status source is not logged:\n%s", logs)
	}
}

// An account the deployment does not have is not-configured, whatever
// presence reports.
func TestSettingsMissingAccountIsNotConfigured(t *testing.T) {
	e := &settingsEnv{t: t, acs: acstest.NewServer(t)}
	svc, err := settings.New(context.Background(), settings.Options{
		Tables: store.NewMemoryTables(), Secrets: mustKeyring(t), Account1UPN: "presence1@switchboard.example", ACS: acs.New(acs.Options{AllowPrivate: true, RootCAs: e.acs.CertPool()}), AllowPrivateEndpoints: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.router = NewRouter(slog.New(slog.DiscardHandler), fakeVerifier{tid: tenant})
	(&SettingsAPI{Service: svc, Accounts: &fakeAccounts{status: [2]switchboard.AccountStatus{{State: switchboard.AccountOK}, {State: switchboard.AccountOK}}}}).Register(e.router)
	var v switchboard.SettingsView
	if rec := e.call(http.MethodGet, settingsPath, "", &v); rec.Code != http.StatusOK {
		t.Fatalf("GET: %d %s", rec.Code, rec.Body)
	}
	if got := v.PresenceTracking.Account1Status.State; got != switchboard.AccountOK {
		t.Errorf("account 1 = %q, want ok", got)
	}
	if got := v.PresenceTracking.Account2Status.State; got != switchboard.AccountNotConfigured || v.PresenceTracking.Account2UPN != nil {
		t.Errorf("account 2 = %q (upn %v), want not-configured and no upn", got, v.PresenceTracking.Account2UPN)
	}
}

func mustKeyring(t *testing.T) *secrets.Keyring {
	t.Helper()
	k, err := secrets.New(secrets.GenerateKey(), "")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

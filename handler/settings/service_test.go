package settings_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"switchboard/handler/acs"
	"switchboard/handler/dev/acstest"
	"switchboard/handler/internal/testenv"
	"switchboard/handler/secrets"
	"switchboard/handler/settings"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

const tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"

var ctx = context.Background()

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// unexpectedACS is the ACS checker of tests that check no connection
// string with ACS.
type unexpectedACS struct{ t *testing.T }

func (u unexpectedACS) Check(context.Context, string) error {
	u.t.Error("ACS was asked to check a connection string")
	return errors.New("unexpected ACS check")
}

type fixture struct {
	svc  *settings.Service
	logs *syncBuffer
}

func newService(t *testing.T, tables store.Tables, o settings.Options) fixture {
	t.Helper()
	logs := &syncBuffer{}
	o.Tables = tables
	if o.Secrets == nil {
		o.Secrets = testKeyring(t, secrets.GenerateKey(), "")
	}
	if o.ACS == nil {
		o.ACS = unexpectedACS{t}
	}
	o.Log = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	svc, err := settings.New(ctx, o)
	if err != nil {
		t.Fatalf("settings.New: %v", err)
	}
	t.Cleanup(func() {
		if strings.Contains(logs.String(), secretKey) || strings.Contains(strings.ToLower(logs.String()), "accesskey=") {
			t.Errorf("the log holds a connection string:\n%s", logs)
		}
	})
	return fixture{svc: svc, logs: logs}
}

func TestGetStoresDefaultsOnFirstRead(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		f := newService(t, tables, settings.Options{Account1UPN: "presence1@switchboard.example"})
		if _, err := f.svc.Lookup(ctx, tenant); err != nil {
			t.Fatal(err)
		}
		v, etag, err := f.svc.Get(ctx, tenant)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if v.Outbound.MaxScheduledTasksPerService != 20 || v.Interact.SessionRecoveryTimeoutSeconds != 20 || v.Interact.Authorization != "None" {
			t.Errorf("defaults = %d / %d / %s, want 20 / 20 / None", v.Outbound.MaxScheduledTasksPerService, v.Interact.SessionRecoveryTimeoutSeconds, v.Interact.Authorization)
		}
		if v.AttendantConsole.TeamVisibility != "AllMembers" || v.Interact.Enabled || v.Interact.ACSConnectionStringSet {
			t.Errorf("defaults: %+v", v)
		}
		if len(v.Interact.WidgetKey) != 36 || etag == "" {
			t.Fatalf("widget key %q, etag %q: want a GUID and an ETag", v.Interact.WidgetKey, etag)
		}
		if got, want := *v.PresenceTracking.Account1UPN, "presence1@switchboard.example"; got != want {
			t.Errorf("account1Upn = %q, want %q", got, want)
		}
		if got, want := v.PresenceTracking.Account1Status.State, settings.AccountUnknown; got != want {
			t.Errorf("account 1 state = %q, want %q (no status source wired)", got, want)
		}
		if v.PresenceTracking.Account2UPN != nil || v.PresenceTracking.Account2Status.State != settings.AccountNotConfigured {
			t.Errorf("account 2 = %v, %+v; want null and not-configured", v.PresenceTracking.Account2UPN, v.PresenceTracking.Account2Status)
		}
		again, etag2, err := f.svc.Get(ctx, tenant)
		if err != nil {
			t.Fatal(err)
		}
		if again.Interact.WidgetKey != v.Interact.WidgetKey || etag2 != etag {
			t.Errorf("second read: key %q etag %q, want the stored %q %q", again.Interact.WidgetKey, etag2, v.Interact.WidgetKey, etag)
		}
	})
}

func TestConcurrentFirstReadsAgree(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		f := newService(t, tables, settings.Options{})
		const n = 8
		keys := make([]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				v, _, err := f.svc.Get(ctx, tenant)
				keys[i], errs[i] = v.Interact.WidgetKey, err
			})
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil || keys[i] != keys[0] {
				t.Errorf("reader %d: key %q, %v; want %q", i, keys[i], errs[i], keys[0])
			}
		}
	})
}

func TestPatchWithETags(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		f := newService(t, tables, settings.Options{})
		_, etag, err := f.svc.Get(ctx, tenant)
		if err != nil {
			t.Fatal(err)
		}
		v, etag2, err := f.svc.Patch(ctx, tenant, []byte(`{"outbound":{"maxScheduledTasksPerService":50}}`), etag)
		if err != nil {
			t.Fatalf("Patch with the current ETag: %v", err)
		}
		if v.Outbound.MaxScheduledTasksPerService != 50 || etag2 == etag {
			t.Errorf("after patch: max %d, etag %q (was %q)", v.Outbound.MaxScheduledTasksPerService, etag2, etag)
		}
		_, _, err = f.svc.Patch(ctx, tenant, []byte(`{"outbound":{"maxScheduledTasksPerService":1}}`), etag)
		if got, want := switchboard.ErrorCode(err), switchboard.EPRECONDITION; got != want {
			t.Fatalf("Patch with a stale ETag: code %q (%v), want %q", got, err, want)
		}
		// No condition, any, a list holding the current ETag, the ETag
		// without its quotes.
		for _, ifMatch := range []func(string) string{
			func(string) string { return "" },
			func(string) string { return "*" },
			func(cur string) string { return `"nope", ` + cur },
			func(cur string) string { return strings.Trim(cur, `"`) },
		} {
			im := ifMatch(etag2)
			_, next, err := f.svc.Patch(ctx, tenant, []byte(`{"interact":{"sessionRecoveryTimeoutSeconds":60}}`), im)
			if err != nil {
				t.Fatalf("Patch with If-Match %q: %v", im, err)
			}
			etag2 = next
		}
		// An invalid patch writes nothing.
		_, _, err = f.svc.Patch(ctx, tenant, []byte(`{"outbound":{"maxScheduledTasksPerService":2},"interact":{"sessionRecoveryTimeoutSeconds":61}}`), etag2)
		if !switchboard.IsCode(err, switchboard.EINVALID) {
			t.Fatalf("invalid patch: %v", err)
		}
		v, etag3, err := f.svc.Get(ctx, tenant)
		if err != nil || etag3 != etag2 || v.Outbound.MaxScheduledTasksPerService != 50 {
			t.Errorf("after a refused patch: max %d etag %q (%v); want 50, %q", v.Outbound.MaxScheduledTasksPerService, etag3, err, etag2)
		}
	})
}

func TestPatchBeforeFirstRead(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		f := newService(t, tables, settings.Options{})
		if _, _, err := f.svc.Patch(ctx, tenant, []byte(`{}`), `"made-up"`); !switchboard.IsCode(err, switchboard.EPRECONDITION) {
			t.Errorf("conditional patch of unstored settings: %v, want EPRECONDITION", err)
		}
		v, _, err := f.svc.Patch(ctx, tenant, []byte(`{"presenceTracking":{"trackOverGuestAccounts":true}}`), "")
		if err != nil {
			t.Fatal(err)
		}
		if len(v.Interact.WidgetKey) != 36 {
			t.Errorf("first write without a widget key: %q", v.Interact.WidgetKey)
		}
		if on, err := f.svc.TrackOverGuestAccounts(ctx, tenant); err != nil || !on {
			t.Errorf("TrackOverGuestAccounts = %v, %v; want true", on, err)
		}
	})
}

// Of concurrent patches with the same ETag exactly one wins; the others
// get EPRECONDITION.
func TestConcurrentPatchesSameETag(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		f := newService(t, tables, settings.Options{})
		_, etag, err := f.svc.Get(ctx, tenant)
		if err != nil {
			t.Fatal(err)
		}
		const n = 10
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				_, _, errs[i] = f.svc.Patch(ctx, tenant, fmt.Appendf(nil, `{"outbound":{"maxScheduledTasksPerService":%d}}`, i+1), etag)
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Errorf("patches %d and %d both won", winner, i)
				}
				winner = i
			case !switchboard.IsCode(err, switchboard.EPRECONDITION):
				t.Errorf("patch %d: %v, want EPRECONDITION", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("no patch won")
		}
		v, _, err := f.svc.Get(ctx, tenant)
		if err != nil || v.Outbound.MaxScheduledTasksPerService != winner+1 {
			t.Errorf("stored max = %d (%v), want the winner's %d", v.Outbound.MaxScheduledTasksPerService, err, winner+1)
		}
	})
}

// Unconditional concurrent patches of different settings all land: none
// is lost to another's read-modify-write.
func TestConcurrentUnconditionalPatchesLoseNothing(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		f := newService(t, tables, settings.Options{})
		patches := []string{
			`{"outbound":{"maxScheduledTasksPerService":33}}`,
			`{"interact":{"sessionRecoveryTimeoutSeconds":44}}`,
			`{"interact":{"authorization":"VerifyToken"}}`,
			`{"attendantConsole":{"teamVisibility":"OwnMembers"}}`,
			`{"presenceTracking":{"trackOverGuestAccounts":true}}`,
		}
		var wg sync.WaitGroup
		for _, p := range patches {
			wg.Go(func() {
				if _, _, err := f.svc.Patch(ctx, tenant, []byte(p), ""); err != nil {
					t.Errorf("patch %s: %v", p, err)
				}
			})
		}
		wg.Wait()
		s, err := f.svc.Lookup(ctx, tenant)
		if err != nil {
			t.Fatal(err)
		}
		if s.Outbound.MaxScheduledTasksPerService != 33 || s.Interact.SessionRecoveryTimeoutSeconds != 44 || s.Interact.Authorization != "VerifyToken" ||
			s.AttendantConsole.TeamVisibility != "OwnMembers" || !s.PresenceTracking.TrackOverGuestAccounts {
			t.Errorf("a concurrent patch was lost: %+v", s)
		}
	})
}

func TestRefreshWidgetKey(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		f := newService(t, tables, settings.Options{})
		v, etag, err := f.svc.Get(ctx, tenant)
		if err != nil {
			t.Fatal(err)
		}
		r, etag2, err := f.svc.RefreshWidgetKey(ctx, tenant, "")
		if err != nil {
			t.Fatalf("RefreshWidgetKey: %v", err)
		}
		if r.Interact.WidgetKey == v.Interact.WidgetKey || len(r.Interact.WidgetKey) != 36 || etag2 == etag {
			t.Errorf("refresh: key %q -> %q, etag %q -> %q; want a new GUID and ETag", v.Interact.WidgetKey, r.Interact.WidgetKey, etag, etag2)
		}
		if _, _, err := f.svc.RefreshWidgetKey(ctx, tenant, etag); !switchboard.IsCode(err, switchboard.EPRECONDITION) {
			t.Errorf("refresh with a stale ETag: %v, want EPRECONDITION", err)
		}
		again, _, _ := f.svc.Get(ctx, tenant)
		if again.Interact.WidgetKey != r.Interact.WidgetKey {
			t.Errorf("stored key %q, want %q", again.Interact.WidgetKey, r.Interact.WidgetKey)
		}
	})
}

func TestConnectionStringsAreWriteOnly(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		f := newService(t, tables, settings.Options{})
		v, _, err := f.svc.Patch(ctx, tenant, []byte(`{"interact":{"enabled":true,"acsConnectionString":"`+connString()+`"}}`), "")
		if err != nil {
			t.Fatal(err)
		}
		if !v.Interact.ACSConnectionStringSet || v.Interact.ACSEndpoint == nil || *v.Interact.ACSEndpoint != "https://contoso.communication.azure.com/" {
			t.Errorf("interact view = %+v, want the string marked set with its endpoint", v.Interact)
		}
		if v.Assistant.ACSConnectionStringSet || v.Assistant.ACSEndpoint != nil {
			t.Errorf("assistant view = %+v, want nothing set", v.Assistant)
		}
		if s := fmt.Sprintf("%+v", v); strings.Contains(s, secretKey) {
			t.Errorf("view holds the key: %s", s)
		}
		// A malformed string is refused without being repeated.
		_, _, err = f.svc.Patch(ctx, tenant, []byte(`{"assistant":{"acsConnectionString":"endpoint=http://x/;accesskey=`+secretKey+`"}}`), "")
		if !switchboard.IsCode(err, switchboard.EINVALID) || strings.Contains(err.Error(), secretKey) {
			t.Errorf("malformed string: %v", err)
		}
	})
}

// TestAccountStatusIsTheHTTPLayers: the service knows which presence
// accounts the deployment has, not how they fare (the presence capability
// reports that, and the HTTP layer shows it: httpapi's
// TestSettingsShowPresenceAccountStatus).
func TestAccountStatusIsTheHTTPLayers(t *testing.T) {
	f := newService(t, store.NewMemoryTables(), settings.Options{Account1UPN: "p1@switchboard.example"})
	v, _, err := f.svc.Get(ctx, tenant)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := v.PresenceTracking.Account1Status.State, settings.AccountUnknown; got != want {
		t.Errorf("configured account's state = %q, want %q", got, want)
	}
	if got, want := v.PresenceTracking.Account2Status.State, settings.AccountNotConfigured; got != want {
		t.Errorf("missing account's state = %q, want %q", got, want)
	}
	if v.PresenceTracking.Account2UPN != nil {
		t.Errorf("account2Upn = %q, want null", *v.PresenceTracking.Account2UPN)
	}
}

func TestLookupNeverWrites(t *testing.T) {
	tables := store.NewMemoryTables()
	f := newService(t, tables, settings.Options{})
	st, err := f.svc.Lookup(ctx, tenant)
	if err != nil || st != settings.Defaults() {
		t.Fatalf("Lookup = %+v, %v; want the defaults", st, err)
	}
	if n, err := f.svc.MaxScheduledTasksPerService(ctx, tenant); err != nil || n != 20 {
		t.Errorf("MaxScheduledTasksPerService = %d, %v; want 20", n, err)
	}
	tb, _ := tables.Table(ctx, settings.TableName)
	page, err := tb.Query(ctx, store.Query{})
	if err != nil || len(page.Entities) != 0 {
		t.Errorf("rows after lookups: %d (%v), want 0", len(page.Entities), err)
	}
}

func TestCheckACS(t *testing.T) {
	fake := acstest.NewServer(t)
	f := newService(t, store.NewMemoryTables(), settings.Options{ACS: acs.New(acs.Options{AllowPrivate: true, RootCAs: fake.CertPool()}), AllowPrivateEndpoints: true})
	good := fake.ConnectionString()
	wrong := fake.ConnectionStringWithKey([]byte("a-key-acs-does-not-know-at-all"))
	if _, _, err := f.svc.Patch(ctx, tenant, []byte(`{"interact":{"acsConnectionString":"`+good+`"},"assistant":{"acsConnectionString":"`+wrong+`"}}`), ""); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		req        settings.ACSCheckRequest
		wantOK     bool
		wantReason string
		wantTarget string
		wantField  string // an error naming this field
	}{
		{name: "given string", req: settings.ACSCheckRequest{ConnectionString: good}, wantOK: true},
		{name: "given string, wrong key", req: settings.ACSCheckRequest{ConnectionString: wrong}, wantReason: "access-key-refused"},
		{name: "stored interact by default", req: settings.ACSCheckRequest{}, wantOK: true, wantTarget: "interact"},
		{name: "stored assistant", req: settings.ACSCheckRequest{Target: "assistant"}, wantReason: "access-key-refused", wantTarget: "assistant"},
		{name: "unknown target", req: settings.ACSCheckRequest{Target: "Interact"}, wantField: "target"},
		{name: "both", req: settings.ACSCheckRequest{ConnectionString: good, Target: "interact"}, wantField: "target"},
		{name: "malformed", req: settings.ACSCheckRequest{ConnectionString: "endpoint=https://x.communication.azure.com/"}, wantField: "connectionString"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := f.svc.CheckACS(ctx, tenant, tt.req)
			if tt.wantField != "" {
				if !switchboard.IsCode(err, switchboard.EINVALID) || switchboard.ErrorField(err) != tt.wantField {
					t.Fatalf("CheckACS = %+v, %v; want EINVALID on %s", res, err, tt.wantField)
				}
				return
			}
			if err != nil {
				t.Fatalf("CheckACS: %v", err)
			}
			if res.OK != tt.wantOK || res.Reason != tt.wantReason || res.Target != tt.wantTarget || res.Endpoint != fake.URL+"/" || res.Message == "" {
				t.Errorf("result = %+v; want ok %v, reason %q, target %q, endpoint %s/", res, tt.wantOK, tt.wantReason, tt.wantTarget, fake.URL)
			}
			if strings.Contains(res.Message, "accesskey") {
				t.Errorf("message holds the connection string: %s", res.Message)
			}
		})
	}
	// Nothing stored for a tenant: the target is named.
	other := "11111111-2222-4333-8444-555555555555"
	if _, err := f.svc.CheckACS(ctx, other, settings.ACSCheckRequest{Target: "assistant"}); switchboard.ErrorField(err) != "target" {
		t.Errorf("check of an unset string: %v, want EINVALID on target", err)
	}
	if created, live, _ := fake.Counts(); created != 2 || live != 0 {
		t.Errorf("fake ACS: %d identities created, %d left; want 2 and 0", created, live)
	}
}

// Without ALLOW_PRIVATE_ENDPOINTS a stored connection string must name an
// ACS host on 443 (SPEC section 5); with it, a loopback fake is fine.
func TestPatchRefusesEndpointsThatAreNotACS(t *testing.T) {
	const key = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seQ=="
	tests := []struct {
		name         string
		allowPrivate bool
		endpoint     string
		wantOK       bool
	}{
		{"ACS host", false, "https://contoso.communication.azure.com/", true},
		{"Azure Government ACS host", false, "https://contoso.communication.azure.us/", true},
		{"loopback", false, "https://127.0.0.1:8443/", false},
		{"other host", false, "https://files.contoso.example/", false},
		{"ACS host on another port", false, "https://contoso.communication.azure.com:8443/", false},
		{"loopback with private endpoints allowed", true, "http://127.0.0.1:8443/", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newService(t, store.NewMemoryTables(), settings.Options{AllowPrivateEndpoints: tt.allowPrivate})
			_, _, err := f.svc.Patch(ctx, tenant, []byte(`{"assistant":{"acsConnectionString":"endpoint=`+tt.endpoint+`;accesskey=`+key+`"}}`), "")
			if tt.wantOK {
				if err != nil {
					t.Fatalf("Patch: %v", err)
				}
				return
			}
			if got, want := switchboard.ErrorField(err), "assistant.acsConnectionString"; got != want || !switchboard.IsCode(err, switchboard.EINVALID) {
				t.Fatalf("Patch = %v (field %q), want EINVALID on %s", err, got, want)
			}
			st, err := f.svc.Lookup(ctx, tenant)
			if err != nil || st.Assistant.ACSConnectionString.IsSet() {
				t.Errorf("after the refused patch: set %v (%v), want nothing stored", st.Assistant.ACSConnectionString.IsSet(), err)
			}
		})
	}
}

func TestNewRefusesMissingDependencies(t *testing.T) {
	if _, err := settings.New(ctx, settings.Options{ACS: unexpectedACS{t}}); err == nil {
		t.Error("New without tables: no error")
	}
	k := testKeyring(t, secrets.GenerateKey(), "")
	if _, err := settings.New(ctx, settings.Options{Tables: store.NewMemoryTables(), Secrets: k}); err == nil {
		t.Error("New without an ACS checker: no error")
	}
	if _, err := settings.New(ctx, settings.Options{Tables: store.NewMemoryTables(), ACS: unexpectedACS{t}}); err == nil || !strings.Contains(err.Error(), "keyring") {
		t.Errorf("New without a keyring: %v, want an error naming it", err)
	}
}

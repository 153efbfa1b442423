package e2e_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"switchboard/handler/dev/acstest"
	"switchboard/handler/internal/e2e"
)

// The settings over HTTP, through the local runner's front, on Azurite:
// defaults, both bounds of both ranges, values just outside them, ETags
// under concurrency, the widget key refresh, the ACS check against a local
// fake ACS (trusted through SSL_CERT_FILE), and no secret in any reply or
// in the handler's log.
func TestSettingsEndToEnd(t *testing.T) {
	fake := acstest.NewServer(t)
	certFile := filepath.Join(t.TempDir(), "fake-acs.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: fake.Certificate().Raw})
	if err := os.WriteFile(certFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	env := e2e.Start(t, e2e.Options{Env: map[string]string{"SSL_CERT_FILE": certFile}})
	const tenant = "5b1b8f34-3c39-4c27-9b55-2f6a1f0c8e11"
	path := "/api/tenants/" + tenant + "/settings"

	var bodies bytes.Buffer // every reply, searched for secrets at the end
	do := func(method, p, body string, hdr ...string) (int, http.Header, []byte) {
		t.Helper()
		var b any
		if body != "" {
			b = body
		}
		status, h, raw := env.Do(t, method, p, b, hdr...)
		bodies.Write(raw)
		return status, h, raw
	}
	mergePatch := func(body string, hdr ...string) (int, http.Header, []byte) {
		t.Helper()
		return do(http.MethodPatch, path, body, append([]string{"Content-Type", "application/merge-patch+json"}, hdr...)...)
	}

	// Defaults on first read: 20 / 20 / None, with an ETag and a widget key.
	status, h, raw := do(http.MethodGet, path, "")
	if status != http.StatusOK {
		t.Fatalf("GET: %d %s", status, raw)
	}
	var v struct {
		Outbound struct {
			MaxScheduledTasksPerService int `json:"maxScheduledTasksPerService"`
		} `json:"outbound"`
		Interact struct {
			Enabled                       bool    `json:"enabled"`
			ACSConnectionStringSet        bool    `json:"acsConnectionStringSet"`
			ACSEndpoint                   *string `json:"acsEndpoint"`
			WidgetKey                     string  `json:"widgetKey"`
			SessionRecoveryTimeoutSeconds int     `json:"sessionRecoveryTimeoutSeconds"`
			Authorization                 string  `json:"authorization"`
		} `json:"interact"`
	}
	decode := func(raw []byte) {
		t.Helper()
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("settings reply: %v (%s)", err, raw)
		}
	}
	decode(raw)
	if got := fmt.Sprintf("%d / %d / %s", v.Outbound.MaxScheduledTasksPerService, v.Interact.SessionRecoveryTimeoutSeconds, v.Interact.Authorization); got != "20 / 20 / None" {
		t.Errorf("defaults = %s, want 20 / 20 / None", got)
	}
	etag := h.Get("ETag")
	if etag == "" || len(v.Interact.WidgetKey) != 36 {
		t.Fatalf("ETag %q, widget key %q", etag, v.Interact.WidgetKey)
	}

	// Both bounds of both ranges are accepted; just outside is refused
	// with the field named.
	ranges := []struct {
		section, name string
		lo, hi        int
	}{
		{"outbound", "maxScheduledTasksPerService", 1, 50},
		{"interact", "sessionRecoveryTimeoutSeconds", 5, 60},
	}
	for _, r := range ranges {
		field := r.section + "." + r.name
		for _, n := range []int{r.lo, r.hi} {
			status, _, raw := mergePatch(fmt.Sprintf(`{%q:{%q:%d}}`, r.section, r.name, n))
			if status != http.StatusOK {
				t.Errorf("%s = %d: %d %s, want 200", field, n, status, raw)
			}
		}
		for _, n := range []int{r.lo - 1, r.hi + 1} {
			status, h, raw := mergePatch(fmt.Sprintf(`{%q:{%q:%d}}`, r.section, r.name, n))
			var p struct{ Type, Title, Field string }
			_ = json.Unmarshal(raw, &p)
			if status != http.StatusBadRequest || p.Field != field || h.Get("Content-Type") != "application/problem+json" ||
				!strings.Contains(p.Title, fmt.Sprintf("from %d to %d", r.lo, r.hi)) {
				t.Errorf("%s = %d: %d %s %s, want 400 problem naming %s and its range", field, n, status, h.Get("Content-Type"), raw, field)
			}
		}
	}

	// Concurrent PATCHes with the same ETag: exactly one wins.
	_, h, _ = do(http.MethodGet, path, "")
	etag = h.Get("ETag")
	const n = 8
	codes := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			req, _ := http.NewRequest(http.MethodPatch, env.BaseURL+path, strings.NewReader(fmt.Sprintf(`{"outbound":{"maxScheduledTasksPerService":%d}}`, 10+i)))
			req.Header.Set("Content-Type", "application/merge-patch+json")
			req.Header.Set("If-Match", etag)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Errorf("concurrent PATCH %d: %v", i, err)
				return
			}
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, resp.Body)
			codes[i] = resp.StatusCode
		})
	}
	close(start)
	wg.Wait()
	won, stale := 0, 0
	for _, c := range codes {
		switch c {
		case http.StatusOK:
			won++
		case http.StatusPreconditionFailed:
			stale++
		}
	}
	if won != 1 || stale != n-1 {
		t.Errorf("concurrent PATCHes with one ETag: statuses %v, want one 200 and %d × 412", codes, n-1)
	}

	// Widget key refresh.
	before := v.Interact.WidgetKey
	status, _, raw = do(http.MethodPost, path+"/widget-key/refresh", "")
	if status != http.StatusOK {
		t.Fatalf("refresh: %d %s", status, raw)
	}
	decode(raw)
	if v.Interact.WidgetKey == before || len(v.Interact.WidgetKey) != 36 {
		t.Errorf("widget key %q -> %q, want a new GUID", before, v.Interact.WidgetKey)
	}

	// Secrets: set, checked, never returned.
	key := base64.StdEncoding.EncodeToString(fake.Key)
	status, _, raw = mergePatch(`{"interact":{"enabled":true,"acsConnectionString":"` + fake.ConnectionString() + `"}}`)
	if status != http.StatusOK {
		t.Fatalf("PATCH connection string: %d %s", status, raw)
	}
	decode(raw)
	if !v.Interact.Enabled || !v.Interact.ACSConnectionStringSet || v.Interact.ACSEndpoint == nil || *v.Interact.ACSEndpoint != fake.URL+"/" {
		t.Errorf("interact after setting the string: %+v", v.Interact)
	}
	// ALLOW_PRIVATE_ENDPOINTS (set by the example settings) allows http
	// and loopback, never another scheme.
	status, _, raw = mergePatch(`{"assistant":{"acsConnectionString":"` + strings.Replace(fake.ConnectionString(), "https:", "ftp:", 1) + `"}}`)
	if status != http.StatusBadRequest {
		t.Errorf("ftp endpoint: %d %s, want 400", status, raw)
	}
	var res struct {
		OK       bool
		Endpoint string
		Reason   string
		Message  string
	}
	status, _, raw = do(http.MethodPost, path+"/acs-check", "")
	if err := json.Unmarshal(raw, &res); status != http.StatusOK || err != nil || !res.OK || res.Endpoint != fake.URL+"/" {
		t.Errorf("ACS check of the stored string: %d %s, want 200 ok", status, raw)
	}
	wrong := fake.ConnectionStringWithKey([]byte("not-the-resource-key-at-all-0000"))
	status, _, raw = do(http.MethodPost, path+"/acs-check", `{"connectionString":"`+wrong+`"}`, "Content-Type", "application/json")
	res = struct {
		OK       bool
		Endpoint string
		Reason   string
		Message  string
	}{}
	if err := json.Unmarshal(raw, &res); status != http.StatusOK || err != nil || res.OK || res.Reason != "access-key-refused" {
		t.Errorf("ACS check of a wrong key: %d %s, want 200 with reason access-key-refused", status, raw)
	}
	do(http.MethodGet, path, "")

	if !strings.Contains(env.Output(), "acs check") {
		t.Errorf("the handler's output has no ACS check line: searching it for secrets proves nothing")
	}
	for _, secret := range []string{key, base64.StdEncoding.EncodeToString([]byte("not-the-resource-key-at-all-0000")), "accesskey="} {
		if strings.Contains(bodies.String(), secret) {
			t.Errorf("a reply holds %q", secret)
		}
		if strings.Contains(env.Output(), secret) {
			t.Errorf("the handler's or runner's output holds %q", secret)
		}
	}
}

package graphsim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	testTenant = "88888888-8888-8888-8888-888888888888"
	testApp    = "99999999-9999-9999-9999-999999999999"
)

func newSim(t *testing.T) (*Sim, []User) {
	t.Helper()
	s, err := Start(Options{Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	s.AddApp(testApp, "s3cret", true)
	s.AddAccount("p1@ops.example", "pw", false)
	s.AddTenant(testTenant, TenantOptions{DelegatedConsent: true, AppConsent: true, Guests: []string{"p1@ops.example"}})
	return s, s.AddUsers(testTenant, "contoso.example", 700)
}

// token asks the token endpoint and returns the reply.
func token(t *testing.T, s *Sim, form url.Values) (int, map[string]any) {
	t.Helper()
	form.Set("client_id", testApp)
	form.Set("scope", "https://graph.microsoft.com/.default")
	resp, err := s.HTTPClient().PostForm(s.AuthorityURL()+testTenant+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func appToken(t *testing.T, s *Sim) string {
	t.Helper()
	status, m := token(t, s, url.Values{"grant_type": {"client_credentials"}, "client_secret": {"s3cret"}})
	if status != 200 {
		t.Fatalf("token: %d %v", status, m)
	}
	return m["access_token"].(string)
}

func presences(t *testing.T, s *Sim, tok string, ids []string) (*http.Response, []byte) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"ids": ids})
	req, _ := http.NewRequest(http.MethodPost, s.GraphURL()+"/communications/getPresencesByUserId", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := s.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func ids(users []User, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = users[i%len(users)].ID
	}
	return out
}

func TestGraphEnforces(t *testing.T) {
	s, users := newSim(t)
	tok := appToken(t, s)
	cases := []struct {
		name   string
		tok    string
		ids    int
		want   int
		before func()
	}{
		{name: "no token", tok: "", ids: 1, want: 401},
		{name: "a token it did not issue", tok: "forged", ids: 1, want: 401},
		{name: "650 ids", tok: tok, ids: 650, want: 200},
		{name: "651 ids", tok: tok, ids: 651, want: 400},
		{name: "an injected 503", tok: tok, ids: 1, want: 503, before: func() { s.InjectFaults(testTenant, Fault{Status: 503, RetryAfter: 2}, 1) }},
		{name: "application consent revoked", tok: tok, ids: 1, want: 403, before: func() {
			s.AddTenant(testTenant, TenantOptions{DelegatedConsent: true, Guests: []string{"p1@ops.example"}})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before()
			}
			resp, body := presences(t, s, tc.tok, ids(users, tc.ids))
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, body)
			}
			if tc.want != 200 && !strings.Contains(resp.Header.Get("Content-Type"), "json") {
				t.Errorf("error reply of type %q, want a JSON OData error", resp.Header.Get("Content-Type"))
			}
			if tc.want == 200 {
				var m struct{ Value []map[string]any }
				if err := json.Unmarshal(body, &m); err != nil || len(m.Value) != 650 {
					t.Errorf("%d presences (%v)", len(m.Value), err)
				}
			}
		})
	}
}

func TestThrottlingSaysWhenToComeBack(t *testing.T) {
	s, users := newSim(t)
	tok := appToken(t, s)
	s.SetThrottle(2, 3*time.Second)
	for i := 0; i < 2; i++ {
		if resp, body := presences(t, s, tok, ids(users, 1)); resp.StatusCode != 200 {
			t.Fatalf("call %d: %d %s", i, resp.StatusCode, body)
		}
	}
	resp, _ := presences(t, s, tok, ids(users, 1))
	wait, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != 429 || err != nil || wait < 1 || wait > 3 {
		t.Errorf("third call: %d Retry-After %q, want 429 with 1 to 3 s", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func TestPasswordGrant(t *testing.T) {
	cases := []struct {
		name     string
		setup    func(*Sim)
		user, pw string
		want     int // AADSTS code; 0 for a token
	}{
		{"a guest with consent", nil, "p1@ops.example", "pw", 0},
		{"wrong password", nil, "p1@ops.example", "nope", 50126},
		{"unknown account", nil, "ghost@ops.example", "pw", 50034},
		{"not a guest", func(s *Sim) { s.AddTenant(testTenant, TenantOptions{DelegatedConsent: true}) }, "p1@ops.example", "pw", 50020},
		{"MFA", func(s *Sim) { s.SetAccount("p1@ops.example", "pw", true) }, "p1@ops.example", "pw", 50076},
		{"no delegated consent", func(s *Sim) { s.AddTenant(testTenant, TenantOptions{Guests: []string{"p1@ops.example"}}) }, "p1@ops.example", "pw", 65001},
		{"public client flows off", func(s *Sim) { s.AddApp(testApp, "s3cret", false) }, "p1@ops.example", "pw", 7000218},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newSim(t)
			if tc.setup != nil {
				tc.setup(s)
			}
			status, m := token(t, s, url.Values{"grant_type": {"password"}, "username": {tc.user}, "password": {tc.pw}})
			if tc.want == 0 {
				if status != 200 || m["access_token"] == nil || m["id_token"] == nil || m["client_info"] == nil {
					t.Errorf("%d %v: want a token with id_token and client_info", status, m)
				}
				return
			}
			codes, _ := m["error_codes"].([]any)
			if status < 400 || len(codes) != 1 || codes[0] != float64(tc.want) || !strings.HasPrefix(m["error_description"].(string), fmt.Sprintf("AADSTS%d:", tc.want)) {
				t.Errorf("%d %v: want AADSTS%d", status, m, tc.want)
			}
		})
	}
}

func TestCertFileTrustsTheSimulatorAndTheSystem(t *testing.T) {
	s, _ := newSim(t)
	b, err := os.ReadFile(s.CertFile())
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "BEGIN CERTIFICATE"); n < 1 {
		t.Fatalf("%d certificates in %s", n, s.CertFile())
	}
	if _, err := os.Stat("/etc/ssl/certs/ca-certificates.crt"); err == nil && strings.Count(string(b), "BEGIN CERTIFICATE") < 2 {
		t.Error("the system roots are missing from the certificate file: SSL_CERT_FILE replaces them")
	}
}

// After RevokeSessions, a token issued before answers 401 with a
// continuous access evaluation challenge; a token issued after works.
func TestRevokedSessionsAreChallenged(t *testing.T) {
	s, users := newSim(t)
	form := func() url.Values {
		return url.Values{"grant_type": {"password"}, "username": {"p1@ops.example"}, "password": {"pw"}}
	}
	status, m := token(t, s, form())
	if status != 200 {
		t.Fatalf("token: %d %v", status, m)
	}
	before := m["access_token"].(string)
	time.Sleep(10 * time.Millisecond)
	s.RevokeSessions("p1@ops.example")
	resp, body := presences(t, s, before, ids(users, 1))
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401: %s", resp.StatusCode, body)
	}
	h := resp.Header.Get("WWW-Authenticate")
	if !strings.HasPrefix(h, "Bearer ") || !strings.Contains(h, `error="insufficient_claims"`) || !strings.Contains(h, `claims="`) {
		t.Fatalf("WWW-Authenticate %q, want a Bearer insufficient_claims challenge with claims", h)
	}
	time.Sleep(10 * time.Millisecond)
	_, m = token(t, s, form())
	if resp, body := presences(t, s, m["access_token"].(string), ids(users, 1)); resp.StatusCode != http.StatusOK {
		t.Errorf("a token issued after the revocation: %d %s, want 200", resp.StatusCode, body)
	}
}

package browsertest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"switchboard/handler/internal/e2e"
)

// fakeAuthority is an Entra stand-in on loopback TLS serving the signing
// keys the handler fetches at start; the returned file trusts it.
func fakeAuthority(t *testing.T) (authority, certFile string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/common/discovery/v2.0/keys" {
			http.NotFound(w, r)
			return
		}
		enc := base64.RawURLEncoding.EncodeToString
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "k1",
			"n": enc(key.N.Bytes()), "e": enc(big.NewInt(int64(key.E)).Bytes()),
		}}})
	}))
	t.Cleanup(srv.Close)
	certFile = filepath.Join(t.TempDir(), "authority.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(certFile, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	return srv.URL + "/", certFile
}

// With Entra sign-in the page loads MSAL.js under its CSP, offers Sign in
// and calls no API without a token.
func signInOffered(t *testing.T, s *site) {
	authority, certFile := fakeAuthority(t)
	env := e2e.Start(t, e2e.Options{Tables: s.env.Tables, Env: map[string]string{
		"API_AUTH": "entra", "API_AUDIENCE": "api://switchboard-browser", "UI_CLIENT_ID": "b1e5b1e5-0000-4000-8000-0000000000c1",
		"AZURE_AUTHORITY_HOST": authority, "SSL_CERT_FILE": certFile,
	}})
	s.allow(env.BaseURL)
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
	if csp := hdr.Get("Content-Security-Policy"); status != http.StatusOK || !strings.Contains(csp, "connect-src 'self' "+strings.TrimSuffix(authority, "/")) {
		t.Errorf("CSP %q: want connect-src 'self' and the authority", csp)
	}
}

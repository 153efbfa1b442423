package e2e_test

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
	"time"

	"github.com/golang-jwt/jwt/v5"

	"switchboard/handler/dev/acstest"
	"switchboard/handler/internal/e2e"
)

const (
	interactTenant = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	otherTenant    = "11111111-2222-4333-8444-555555555555"
	widgetAudience = "6e74172b-be56-4843-9ff4-e66a39bb12e3"
	agentUser      = "0f3e2d1c-0000-4000-8000-00000000000a"
)

// jwks publishes one RSA key over TLS as Entra publishes its keys.
type jwks struct {
	srv *httptest.Server
	key *rsa.PrivateKey
}

func newJWKS(t *testing.T) *jwks {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	j := &jwks{key: k}
	j.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/common/discovery/v2.0/keys" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{"kty": "RSA", "use": "sig", "kid": "k1",
			"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()), "e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes())}}})
	}))
	t.Cleanup(j.srv.Close)
	return j
}

func (j *jwks) token(t *testing.T, tid string, exp time.Time, key *rsa.PrivateKey) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"aud": widgetAudience, "iss": j.srv.URL + "/" + tid + "/v2.0",
		"tid": tid, "oid": agentUser, "sub": "s", "nbf": time.Now().Add(-time.Hour).Unix(), "exp": exp.Unix()})
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// certFile writes the certificates of the local fakes for SSL_CERT_FILE.
func certFile(t *testing.T, servers ...*httptest.Server) string {
	t.Helper()
	var out []byte
	for _, s := range servers {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})...)
	}
	p := filepath.Join(t.TempDir(), "fakes.pem")
	if err := os.WriteFile(p, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The widget's checks through the local runner, in their order, with the
// widget's tokens verified against a local key publication (API_AUTH=none
// concerns tenant routes only); and the Assistant's tokens from the
// deployment's ACS or the tenant's own, one identity per user and
// resource, against fake ACS resources that check every signature.
func TestInteractEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds the handler and starts Azurite")
	}
	tenantACS, deploymentACS := acstest.NewServer(t), acstest.NewServer(t)
	keys := newJWKS(t)
	env := e2e.Start(t, e2e.Options{Env: map[string]string{
		"SSL_CERT_FILE":         certFile(t, tenantACS.Server, deploymentACS.Server, keys.srv),
		"AZURE_AUTHORITY_HOST":  keys.srv.URL + "/",
		"API_AUDIENCE":          widgetAudience,
		"ACS_CONNECTION_STRING": deploymentACS.ConnectionString(),
	}})
	settingsPath := "/api/tenants/" + interactTenant + "/settings"
	patch := func(body string) map[string]any {
		t.Helper()
		status, _, raw := env.Do(t, "PATCH", settingsPath, body, "Content-Type", "application/merge-patch+json")
		if status != http.StatusOK {
			t.Fatalf("PATCH settings: %d %s", status, raw)
		}
		var v map[string]any
		_ = json.Unmarshal(raw, &v)
		return v
	}
	sessions := "/api/interact/" + interactTenant + "/sessions"
	create := func(hdr ...string) (int, map[string]any) {
		t.Helper()
		status, _, raw := env.Do(t, "POST", sessions, map[string]any{"serviceId": "support"}, hdr...)
		var v map[string]any
		_ = json.Unmarshal(raw, &v)
		return status, v
	}

	// 1. Interact disabled (a tenant without settings too): 403, whatever the key.
	if status, v := create("X-Widget-Key", "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"); status != 403 || v["type"] != "interact-disabled" {
		t.Fatalf("disabled: %d %v", status, v)
	}
	st := patch(`{"interact": {"enabled": true, "acsConnectionString": "` + tenantACS.ConnectionString() + `"}}`)
	key := st["interact"].(map[string]any)["widgetKey"].(string)

	// A browser's preflight reaches the handler through the host's route.
	if status, h, raw := env.Do(t, "OPTIONS", sessions, nil, "Origin", "https://shop.example", "Access-Control-Request-Method", "POST"); status != 204 || h.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("preflight: %d %v %s", status, h, raw)
	}

	// 2. The widget key.
	for _, k := range []string{"", "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"} {
		if status, v := create("X-Widget-Key", k); status != 401 || v["type"] != "invalid-widget-key" {
			t.Errorf("widget key %q: %d %v, want 401 invalid-widget-key", k, status, v)
		}
	}
	// With the key and authorization None the checks pass: what is missing
	// now is interact.o365UserId.
	if status, v := create("X-Widget-Key", key); status != 409 || v["type"] != "interact-not-configured" || v["field"] != "interact.o365UserId" {
		t.Errorf("not configured: %d %v, want 409 naming interact.o365UserId", status, v)
	}

	// 3. The authorization modes.
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, mode := range []string{"VerifyToken", "VerifyTokenAndTenant"} {
		patch(`{"interact": {"authorization": "` + mode + `"}}`)
		otherStatus, otherType := 409, "interact-not-configured" // passes the checks
		if mode == "VerifyTokenAndTenant" {
			otherStatus, otherType = 403, "token-tenant-mismatch"
		}
		cases := []struct {
			name   string
			hdr    []string
			status int
			typ    string
			says   string
		}{
			{"no token", nil, 401, "invalid-token", "Bearer"},
			{"expired", []string{"Authorization", "Bearer " + keys.token(t, interactTenant, now.Add(-time.Hour), keys.key)}, 401, "invalid-token", "expired"},
			{"unknown key", []string{"Authorization", "Bearer " + keys.token(t, interactTenant, now.Add(time.Hour), other)}, 401, "invalid-token", "signature"},
			{"another tenant", []string{"Authorization", "Bearer " + keys.token(t, otherTenant, now.Add(time.Hour), keys.key)}, otherStatus, otherType, ""},
			{"good", []string{"Authorization", "Bearer " + keys.token(t, interactTenant, now.Add(time.Hour), keys.key)}, 409, "interact-not-configured", ""},
		}
		for _, c := range cases {
			status, v := create(append([]string{"X-Widget-Key", key}, c.hdr...)...)
			title, _ := v["title"].(string)
			if status != c.status || v["type"] != c.typ || !strings.Contains(title, c.says) {
				t.Errorf("%s, %s: %d %v, want %d %s saying %q", mode, c.name, status, v, c.status, c.typ, c.says)
			}
		}
	}

	// The Assistant: the deployment's ACS, then the tenant's own.
	token := func() map[string]any {
		t.Helper()
		status, _, raw := env.Do(t, "POST", "/api/tenants/"+interactTenant+"/assistant/token?asUser="+agentUser, nil)
		if status != 200 {
			t.Fatalf("assistant token: %d %s", status, raw)
		}
		var v struct {
			ACS map[string]any `json:"acs"`
		}
		_ = json.Unmarshal(raw, &v)
		return v.ACS
	}
	d1, d2 := token(), token()
	if d1["endpoint"] != deploymentACS.URL+"/" || d1["userId"] != d2["userId"] || d1["token"] == d2["token"] {
		t.Errorf("deployment ACS twice: %v then %v; want its endpoint, one identity, two tokens", d1["userId"], d2["userId"])
	}
	if created, _, _ := deploymentACS.Counts(); created != 1 || deploymentACS.Issued() != 2 {
		t.Errorf("deployment ACS: %d identities, %d tokens; want 1 and 2", created, deploymentACS.Issued())
	}
	patch(`{"assistant": {"useOwnAcsInstance": true, "acsConnectionString": "` + tenantACS.ConnectionString() + `"}}`)
	o1, o2 := token(), token()
	if o1["endpoint"] != tenantACS.URL+"/" || o1["userId"] != o2["userId"] {
		t.Errorf("own ACS twice: %v at %v, then %v; want the tenant's endpoint and one identity", o1["userId"], o1["endpoint"], o2["userId"])
	}
	if _, _, refused := tenantACS.Counts(); refused != 0 {
		t.Errorf("the tenant's ACS refused %d signatures", refused)
	}
	for _, secret := range []string{d1["token"].(string), o1["token"].(string), tenantACS.ConnectionString(), deploymentACS.ConnectionString()} {
		if strings.Contains(env.Output(), secret) {
			t.Errorf("a token or connection string is in the handler's output")
		}
	}
}

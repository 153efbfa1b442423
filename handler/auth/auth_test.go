package auth_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"switchboard/handler/auth"
	"switchboard/handler/httpapi"
	"switchboard/handler/switchboard"
)

const (
	tenantA  = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	tenantB  = "11111111-2222-4333-8444-555555555555"
	audience = "6e74172b-be56-4843-9ff4-e66a39bb12e3"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// idp is a local stand-in for Entra ID's key publication: a JWKS served
// over TLS, with keys generated here.
type idp struct {
	srv *httptest.Server

	mu      sync.Mutex
	keys    map[string]*rsa.PrivateKey
	fetches int
}

var (
	keyOnce sync.Once
	keyPool []*rsa.PrivateKey
)

// testKey returns one of a few RSA keys generated once per test binary.
func testKey(t *testing.T, i int) *rsa.PrivateKey {
	t.Helper()
	keyOnce.Do(func() {
		for range 3 {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			keyPool = append(keyPool, k)
		}
	})
	return keyPool[i]
}

func newIDP(t *testing.T) *idp {
	t.Helper()
	p := &idp{keys: map[string]*rsa.PrivateKey{"key-1": testKey(t, 0)}}
	p.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.fetches++
		var keys []map[string]string
		for kid, k := range p.keys {
			keys = append(keys, map[string]string{
				"kty": "RSA", "use": "sig", "kid": kid,
				"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
				"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes()),
			})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": keys})
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *idp) addKey(kid string, k *rsa.PrivateKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys[kid] = k
}

func (p *idp) authority() string { return p.srv.URL + "/" }

func (p *idp) verifier(t *testing.T, authority string) *auth.Verifier {
	t.Helper()
	v, err := auth.New(t.Context(), auth.Options{
		AuthorityHost: authority,
		Audience:      audience,
		JWKSURL:       p.srv.URL + "/common/discovery/v2.0/keys",
		HTTPClient:    p.srv.Client(),
		Now:           func() time.Time { return t0 },
		Log:           slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	return v
}

// token returns a token signed by key under kid with the given claims on
// top of valid defaults (a nil value removes a claim).
func token(t *testing.T, method jwt.SigningMethod, key any, kid string, issuer string, over map[string]any) string {
	t.Helper()
	c := jwt.MapClaims{
		"aud":   audience,
		"iss":   issuer,
		"tid":   tenantA,
		"oid":   "0f3e2d1c-0000-4000-8000-000000000001",
		"sub":   "subject-1",
		"azp":   "a0a0a0a0-0000-4000-8000-00000000000a",
		"iat":   t0.Add(-5 * time.Minute).Unix(),
		"nbf":   t0.Add(-5 * time.Minute).Unix(),
		"exp":   t0.Add(55 * time.Minute).Unix(),
		"ver":   "2.0",
		"roles": []string{"Switchboard.Admin"},
	}
	for k, v := range over {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("signing: %v", err)
	}
	return s
}

func TestVerify(t *testing.T) {
	p := newIDP(t)
	v := p.verifier(t, p.authority())
	v2 := p.authority() + tenantA + "/v2.0"
	rs := jwt.SigningMethodRS256
	k1 := testKey(t, 0)
	publicDER := k1.N.Bytes() // what an alg-confusion attacker would use as an HMAC secret
	tests := []struct {
		name    string
		token   string
		wantErr string // "" for a valid token
	}{
		{name: "valid v2.0", token: token(t, rs, k1, "key-1", v2, nil)},
		{name: "valid v1.0 issuer on a non-public authority", token: token(t, rs, k1, "key-1", p.authority()+tenantA+"/", map[string]any{"ver": "1.0"})},
		{name: "application id URI audience", token: token(t, rs, k1, "key-1", v2, map[string]any{"aud": "api://" + audience})},
		{name: "audience list holding ours", token: token(t, rs, k1, "key-1", v2, map[string]any{"aud": []string{"other", audience}})},
		{name: "expired", token: token(t, rs, k1, "key-1", v2, map[string]any{"exp": t0.Add(-2 * time.Minute).Unix()}), wantErr: "expired"},
		{name: "expired within leeway", token: token(t, rs, k1, "key-1", v2, map[string]any{"exp": t0.Add(-30 * time.Second).Unix()})},
		{name: "no expiry", token: token(t, rs, k1, "key-1", v2, map[string]any{"exp": nil}), wantErr: "no expiry"},
		{name: "not yet valid", token: token(t, rs, k1, "key-1", v2, map[string]any{"nbf": t0.Add(5 * time.Minute).Unix()}), wantErr: "not valid yet"},
		{name: "wrong audience", token: token(t, rs, k1, "key-1", v2, map[string]any{"aud": "https://graph.microsoft.com"}), wantErr: "another audience"},
		{name: "wrong issuer", token: token(t, rs, k1, "key-1", "https://evil.example/"+tenantA+"/v2.0", nil), wantErr: "issuer"},
		{name: "issuer of another tenant", token: token(t, rs, k1, "key-1", p.authority()+tenantB+"/v2.0", nil), wantErr: "issuer"},
		{name: "public v1.0 issuer on a non-public authority", token: token(t, rs, k1, "key-1", "https://sts.windows.net/"+tenantA+"/", nil), wantErr: "issuer"},
		{name: "no tid", token: token(t, rs, k1, "key-1", v2, map[string]any{"tid": nil}), wantErr: "no tenant id"},
		{name: "no kid", token: token(t, rs, k1, "", v2, nil), wantErr: "names no signing key (kid)"},
		{name: "empty kid", token: kidless(t, token(t, rs, k1, "key-1", v2, nil), ""), wantErr: "names no signing key (kid)"},
		{name: "unknown kid", token: token(t, rs, testKey(t, 1), "key-404", v2, nil), wantErr: `signing key "key-404"`},
		{name: "known kid, other key", token: token(t, rs, testKey(t, 1), "key-1", v2, nil), wantErr: "signature is invalid"},
		{name: "alg none", token: token(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "key-1", v2, nil), wantErr: `"none"`},
		{name: "HS256 keyed with the public key", token: token(t, jwt.SigningMethodHS256, publicDER, "key-1", v2, nil), wantErr: `"HS256"`},
		{name: "RS512", token: token(t, jwt.SigningMethodRS512, k1, "key-1", v2, nil), wantErr: `"RS512"`},
		{name: "garbage", token: "not.a.jwt", wantErr: "well-formed"},
		{name: "tampered payload", token: tamper(t, token(t, rs, k1, "key-1", v2, nil)), wantErr: "signature is invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pr, err := v.Verify(context.Background(), tt.token)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if got, want := pr.TenantID, tenantA; got != want {
					t.Errorf("TenantID = %q, want %q", got, want)
				}
				if pr.ObjectID == "" || pr.Subject == "" || pr.AppID == "" {
					t.Errorf("principal %+v lacks oid, sub or azp", pr)
				}
				if !pr.HasRole("Switchboard.Admin") || len(pr.Roles) != 1 {
					t.Errorf("roles = %v, want the token's [Switchboard.Admin]", pr.Roles)
				}
				return
			}
			if got, want := switchboard.ErrorCode(err), switchboard.EUNAUTHORIZED; got != want {
				t.Fatalf("code = %q (%v), want %q", got, err, want)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not say %q", err, tt.wantErr)
			}
		})
	}
}

// kidless re-signs tok's header with kid set to kid (an empty string).
func kidless(t *testing.T, tok, kid string) string {
	t.Helper()
	parsed, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	parsed.Header["kid"] = kid
	out, err := parsed.SignedString(testKey(t, 0))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// tamper changes the token's payload (tid) and keeps the signature.
func tamper(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	payload = []byte(strings.Replace(string(payload), tenantA, tenantB, 1))
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

func TestPublicCloudIssuers(t *testing.T) {
	p := newIDP(t)
	v := p.verifier(t, "https://login.microsoftonline.com/")
	k := testKey(t, 0)
	for _, iss := range []string{"https://login.microsoftonline.com/" + tenantA + "/v2.0", "https://sts.windows.net/" + tenantA + "/"} {
		if _, err := v.Verify(context.Background(), token(t, jwt.SigningMethodRS256, k, "key-1", iss, nil)); err != nil {
			t.Errorf("issuer %s: %v", iss, err)
		}
	}
	if _, err := v.Verify(context.Background(), token(t, jwt.SigningMethodRS256, k, "key-1", "https://login.microsoftonline.com/"+tenantA+"/", nil)); err == nil {
		t.Errorf("v1.0 issuer on login.microsoftonline.com accepted; Entra issues v1.0 tokens from sts.windows.net")
	}
}

// Entra rotates its keys: a token signed with a key published after the
// verifier started is accepted once the keys are fetched again.
func TestRotatedKeyIsFetched(t *testing.T) {
	p := newIDP(t)
	v := p.verifier(t, p.authority())
	p.addKey("key-2", testKey(t, 2))
	tok := token(t, jwt.SigningMethodRS256, testKey(t, 2), "key-2", p.authority()+tenantA+"/v2.0", nil)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("Verify with a rotated key: %v", err)
	}
	p.mu.Lock()
	fetches := p.fetches
	p.mu.Unlock()
	if fetches != 2 {
		t.Errorf("JWKS fetched %d times, want 2 (start, then the unknown kid)", fetches)
	}
	// Made-up key ids do not refetch again within the minute.
	for range 5 {
		bad := token(t, jwt.SigningMethodRS256, testKey(t, 1), "made-up", p.authority()+tenantA+"/v2.0", nil)
		if _, err := v.Verify(context.Background(), bad); err == nil {
			t.Fatal("token with a made-up kid accepted")
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fetches != 2 {
		t.Errorf("JWKS fetched %d times after made-up kids, want still 2", p.fetches)
	}
}

func TestAudiences(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{audience, []string{audience, "api://" + audience}},
		{"api://" + audience, []string{"api://" + audience, audience}},
		{"https://contoso.com/switchboard", []string{"https://contoso.com/switchboard"}},
		{"api://switchboard", []string{"api://switchboard"}},
	}
	for _, tt := range tests {
		if got := auth.Audiences(tt.in); strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("Audiences(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNewRefusesMissingAudience(t *testing.T) {
	if _, err := auth.New(t.Context(), auth.Options{AuthorityHost: "https://login.microsoftonline.com/"}); !switchboard.IsCode(err, switchboard.EINVALID) {
		t.Fatalf("New without audience = %v, want EINVALID", err)
	}
}

// The Router with the real verifier: no token is 401, another tenant's
// token 403, the route's tenant's token reaches the handler.
func TestRouterChecksTheTenant(t *testing.T) {
	p := newIDP(t)
	v := p.verifier(t, p.authority())
	rt := httpapi.NewRouter(slog.New(slog.NewTextHandler(io.Discard, nil)), v)
	rt.Tenant("GET /api/tenants/{t}/settings", func(w http.ResponseWriter, r *http.Request) error {
		pr, _ := httpapi.PrincipalFrom(r.Context())
		return httpapi.WriteJSON(w, http.StatusOK, map[string]string{"tid": pr.TenantID})
	})
	k := testKey(t, 0)
	tokA := token(t, jwt.SigningMethodRS256, k, "key-1", p.authority()+tenantA+"/v2.0", nil)
	tokB := token(t, jwt.SigningMethodRS256, k, "key-1", p.authority()+tenantB+"/v2.0", map[string]any{"tid": tenantB})
	expired := token(t, jwt.SigningMethodRS256, k, "key-1", p.authority()+tenantA+"/v2.0", map[string]any{"exp": t0.Add(-time.Hour).Unix()})
	noRole := token(t, jwt.SigningMethodRS256, k, "key-1", p.authority()+tenantA+"/v2.0", map[string]any{"roles": nil})
	flowRole := token(t, jwt.SigningMethodRS256, k, "key-1", p.authority()+tenantA+"/v2.0", map[string]any{"roles": []string{"Switchboard.Flow"}})
	tests := []struct {
		name       string
		auth       string
		wantStatus int
		wantType   string
	}{
		{"no token", "", http.StatusUnauthorized, "unauthorized"},
		{"not bearer", "Basic dXNlcjpwYXNz", http.StatusUnauthorized, "unauthorized"},
		{"expired", "Bearer " + expired, http.StatusUnauthorized, "unauthorized"},
		{"other tenant", "Bearer " + tokB, http.StatusForbidden, "forbidden"},
		{"own tenant", "Bearer " + tokA, http.StatusOK, ""},
		{"own tenant, no role", "Bearer " + noRole, http.StatusForbidden, "forbidden"},
		{"own tenant, another role", "Bearer " + flowRole, http.StatusForbidden, "forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/api/tenants/"+tenantA+"/settings", nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			rt.ServeHTTP(rec, req)
			if got := rec.Code; got != tt.wantStatus {
				t.Fatalf("status = %d (%s), want %d", got, rec.Body, tt.wantStatus)
			}
			if tt.wantType == "" {
				if !strings.Contains(rec.Body.String(), tenantA) {
					t.Errorf("body %s does not carry the caller's tenant", rec.Body)
				}
				return
			}
			var prob struct{ Type, Title string }
			if err := json.Unmarshal(rec.Body.Bytes(), &prob); err != nil {
				t.Fatalf("problem body: %v (%s)", err, rec.Body)
			}
			if prob.Type != tt.wantType || prob.Title == "" {
				t.Errorf("problem = %+v, want type %q with a title", prob, tt.wantType)
			}
			if strings.Contains(tt.name, "role") && !strings.Contains(prob.Title, "Switchboard.Admin") {
				t.Errorf("title %q does not name the role the settings need", prob.Title)
			}
		})
	}
}

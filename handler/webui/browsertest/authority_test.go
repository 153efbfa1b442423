package browsertest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// fakeAuthority is an Entra stand-in on loopback TLS: the signing keys the
// handler fetches at start, and the OpenID metadata, authorize and token
// endpoints MSAL.js uses for the authorization code flow with PKCE. It
// signs everyone in at once (no login form) as the user of the role the
// test chose, and checks what a real authority checks: the client, the
// redirect URI, the PKCE verifier, one use per code.
type fakeAuthority struct {
	srv      *httptest.Server
	key      *rsa.PrivateKey
	certFile string // trusts srv, for the handler's SSL_CERT_FILE
	clientID string // the page's SPA client (UI_CLIENT_ID)
	audience string // the API's (API_AUDIENCE)
	tenant   string

	mu      sync.Mutex
	role    string            // app role of whoever signs in next: "Supervisor", "Admin"
	codes   map[string]grant  // authorization codes not yet redeemed
	renew   map[string]string // refresh token → role
	signIns int
}

type grant struct {
	role, nonce, challenge, redirectURI, scope string
}

const (
	uiClientID  = "b1e5b1e5-0000-4000-8000-0000000000c1"
	apiAudience = "api://switchboard-browser"
)

func startAuthority(t *testing.T) *fakeAuthority {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	a := &fakeAuthority{key: key, clientID: uiClientID, audience: apiAudience, tenant: tenant, role: "Supervisor",
		codes: map[string]grant{}, renew: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /common/discovery/v2.0/keys", a.keys)
	mux.HandleFunc("GET /organizations/v2.0/.well-known/openid-configuration", a.metadata)
	mux.HandleFunc("GET /organizations/oauth2/v2.0/authorize", a.authorize)
	mux.HandleFunc("POST /organizations/oauth2/v2.0/token", a.token)
	mux.HandleFunc("OPTIONS /", a.preflight)
	a.srv = httptest.NewTLSServer(mux)
	t.Cleanup(a.srv.Close)
	a.certFile = filepath.Join(t.TempDir(), "authority.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.srv.Certificate().Raw})
	if err := os.WriteFile(a.certFile, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	return a
}

// URL is AZURE_AUTHORITY_HOST for the handler (with its trailing slash).
func (a *fakeAuthority) URL() string { return a.srv.URL + "/" }

// Host is the authority's host:port, which the browser's proxy tunnels to.
func (a *fakeAuthority) Host() string { u, _ := url.Parse(a.srv.URL); return u.Host }

// SPKI is the base64 SHA-256 of the certificate's public key, which
// Chromium is told to accept (and no other untrusted certificate).
func (a *fakeAuthority) SPKI() string {
	sum := sha256.Sum256(a.srv.Certificate().RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// signInAs sets the app role of whoever signs in next.
func (a *fakeAuthority) signInAs(role string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.role = role
}

func (a *fakeAuthority) signInCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.signIns
}

func (a *fakeAuthority) keys(w http.ResponseWriter, r *http.Request) {
	enc := base64.RawURLEncoding.EncodeToString
	writeJSON(w, map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "k1",
		"n": enc(a.key.N.Bytes()), "e": enc(big.NewInt(int64(a.key.E)).Bytes()),
	}}})
}

func (a *fakeAuthority) metadata(w http.ResponseWriter, r *http.Request) {
	a.cors(w, r)
	base := a.srv.URL + "/organizations/oauth2/v2.0/"
	writeJSON(w, map[string]any{
		"issuer": a.srv.URL + "/{tenantid}/v2.0", "authorization_endpoint": base + "authorize", "token_endpoint": base + "token",
		"end_session_endpoint": base + "logout", "jwks_uri": a.srv.URL + "/common/discovery/v2.0/keys",
		"response_modes_supported": []string{"query", "fragment", "form_post"}, "response_types_supported": []string{"code"},
		"code_challenge_methods_supported": []string{"S256"},
	})
}

// authorize signs the user in at once and sends the code back to the
// redirect URI, as Entra does after a login form.
func (a *fakeAuthority) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect := q.Get("redirect_uri")
	if q.Get("client_id") != a.clientID || !strings.HasPrefix(redirect, "http://127.0.0.1:") || !strings.HasSuffix(redirect, "/api/ui/redirect.html") ||
		q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
		http.Error(w, "AADSTS50011: unexpected client, redirect URI or PKCE parameters", http.StatusBadRequest)
		return
	}
	code := randomToken()
	a.mu.Lock()
	a.codes[code] = grant{role: a.role, nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), redirectURI: redirect, scope: q.Get("scope")}
	a.mu.Unlock()
	reply := url.Values{"code": {code}, "state": {q.Get("state")}, "client_info": {a.clientInfo(a.role)}, "session_state": {randomToken()}}
	sep := "#"
	if q.Get("response_mode") == "query" {
		sep = "?"
	}
	http.Redirect(w, r, redirect+sep+reply.Encode(), http.StatusFound)
}

func (a *fakeAuthority) token(w http.ResponseWriter, r *http.Request) {
	a.cors(w, r)
	if err := r.ParseForm(); err != nil || r.PostForm.Get("client_id") != a.clientID {
		oauthError(w, "invalid_client", "AADSTS700016: unknown client")
		return
	}
	var g grant
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		a.mu.Lock()
		var ok bool
		g, ok = a.codes[r.PostForm.Get("code")]
		delete(a.codes, r.PostForm.Get("code"))
		a.mu.Unlock()
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if !ok || base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge || r.PostForm.Get("redirect_uri") != g.redirectURI {
			oauthError(w, "invalid_grant", "AADSTS70008: the code is unknown, used, or its PKCE verifier does not match")
			return
		}
		a.mu.Lock()
		a.signIns++
		a.mu.Unlock()
	case "refresh_token":
		a.mu.Lock()
		role, ok := a.renew[r.PostForm.Get("refresh_token")]
		a.mu.Unlock()
		if !ok {
			oauthError(w, "invalid_grant", "AADSTS700082: the refresh token is unknown")
			return
		}
		g = grant{role: role, scope: r.PostForm.Get("scope")}
	default:
		oauthError(w, "unsupported_grant_type", "AADSTS70003: unsupported grant type")
		return
	}
	refresh := randomToken()
	a.mu.Lock()
	a.renew[refresh] = g.role
	a.mu.Unlock()
	now := time.Now()
	user := a.user(g.role)
	common := jwt.MapClaims{"iss": a.srv.URL + "/" + a.tenant + "/v2.0", "tid": a.tenant, "oid": user.oid, "sub": user.oid,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(), "ver": "2.0"}
	access := jwt.MapClaims{"aud": a.audience, "azp": a.clientID, "roles": []string{"Switchboard." + g.role}, "scp": "access_as_user"}
	id := jwt.MapClaims{"aud": a.clientID, "preferred_username": user.upn, "name": g.role + " of the browser test"}
	if g.nonce != "" {
		id["nonce"] = g.nonce
	}
	for k, v := range common {
		access[k], id[k] = v, v
	}
	writeJSON(w, map[string]any{"token_type": "Bearer", "scope": g.scope, "expires_in": 3600, "ext_expires_in": 3600,
		"access_token": a.sign(access), "id_token": a.sign(id), "refresh_token": refresh, "client_info": a.clientInfo(g.role)})
}

type fakeUser struct{ oid, upn string }

// user is the signed-in person of a role: one per role, so that MSAL
// keeps them apart.
func (a *fakeAuthority) user(role string) fakeUser {
	oid := map[string]string{"Supervisor": "5e5e5e5e-0000-4000-8000-000000000001", "Admin": "adadadad-0000-4000-8000-000000000001"}[role]
	if oid == "" {
		oid = "0f0f0f0f-0000-4000-8000-000000000001"
	}
	return fakeUser{oid: oid, upn: strings.ToLower(role) + "@contoso-browser.example"}
}

func (a *fakeAuthority) clientInfo(role string) string {
	b, _ := json.Marshal(map[string]string{"uid": a.user(role).oid, "utid": a.tenant})
	return base64.RawURLEncoding.EncodeToString(b)
}

func (a *fakeAuthority) sign(c jwt.MapClaims) string {
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(a.key)
	if err != nil {
		panic(err)
	}
	return s
}

// cors lets the page (another origin) read the metadata and tokens, as
// Entra does for SPA clients.
func (a *fakeAuthority) cors(w http.ResponseWriter, r *http.Request) {
	if o := r.Header.Get("Origin"); strings.HasPrefix(o, "http://127.0.0.1:") {
		w.Header().Set("Access-Control-Allow-Origin", o)
		w.Header().Set("Vary", "Origin")
	}
}

func (a *fakeAuthority) preflight(w http.ResponseWriter, r *http.Request) {
	a.cors(w, r)
	w.Header().Set("Access-Control-Allow-Methods", "GET, POST")
	w.Header().Set("Access-Control-Allow-Headers", r.Header.Get("Access-Control-Request-Headers"))
	w.WriteHeader(http.StatusNoContent)
}

func oauthError(w http.ResponseWriter, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func randomToken() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

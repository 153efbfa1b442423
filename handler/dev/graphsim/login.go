package graphsim

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// loginHandler serves the Entra endpoints MSAL uses with instance discovery
// off: OpenID metadata, user realm (asked before a password grant) and the
// token endpoint.
func (s *Sim) loginHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		t := r.PathValue("tenant")
		base := strings.TrimSuffix(s.loginURL, "/")
		writeJSON(w, http.StatusOK, map[string]any{
			"authorization_endpoint":                base + "/" + t + "/oauth2/v2.0/authorize",
			"token_endpoint":                        base + "/" + t + "/oauth2/v2.0/token",
			"issuer":                                base + "/" + t + "/v2.0",
			"jwks_uri":                              base + "/" + t + "/discovery/v2.0/keys",
			"response_types_supported":              []string{"code", "id_token", "token"},
			"subject_types_supported":               []string{"pairwise"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"tenant_region_scope":                   "EU",
		})
	})
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", s.token)
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		// MSAL asks /common/UserRealm/{upn}; the casing varies by client.
		parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		if len(parts) == 3 && strings.EqualFold(parts[0], "common") && strings.EqualFold(parts[1], "userrealm") {
			upn := parts[2]
			_, domain, _ := strings.Cut(upn, "@")
			writeJSON(w, http.StatusOK, map[string]any{
				"ver":                 "1.0",
				"account_type":        "Managed",
				"domain_name":         domain,
				"cloud_instance_name": "microsoftonline.com",
				"cloud_audience_urn":  "urn:federation:MicrosoftOnline",
			})
			return
		}
		http.NotFound(w, r)
	})
	return mux
}

// oauthError writes an Entra error reply.
func oauthError(w http.ResponseWriter, status int, code string, aadsts int, description string) {
	writeJSON(w, status, map[string]any{
		"error": code,
		"error_description": fmt.Sprintf("AADSTS%d: %s Trace ID: 00000000-0000-0000-0000-000000000000 Correlation ID: "+
			"00000000-0000-0000-0000-000000000000 Timestamp: %s", aadsts, description, time.Now().UTC().Format("2006-01-02 15:04:05Z")),
		"error_codes":    []int{aadsts},
		"timestamp":      time.Now().UTC().Format("2006-01-02 15:04:05Z"),
		"trace_id":       "00000000-0000-0000-0000-000000000000",
		"correlation_id": "00000000-0000-0000-0000-000000000000",
	})
}

func (s *Sim) token(w http.ResponseWriter, r *http.Request) {
	tenantID := r.PathValue("tenant")
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.TokenRequests++
	fail := func(status int, code string, aadsts int, desc string) {
		s.stats.LoginFailures++
		oauthError(w, status, code, aadsts, desc)
	}
	clientID := r.PostForm.Get("client_id")
	a := s.apps[clientID]
	if a == nil {
		fail(http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory "+
			"'%s'.", clientID, tenantID))
		return
	}
	t := s.tenants[tenantID]
	if t == nil {
		fail(http.StatusBadRequest, "invalid_request", 90002, fmt.Sprintf("Tenant '%s' not found.", tenantID))
		return
	}
	if !strings.Contains(r.PostForm.Get("scope"), "/.default") {
		fail(http.StatusBadRequest, "invalid_scope", 70011, "The provided value for the input parameter 'scope' is not valid.")
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "password":
		if r.PostForm.Get("client_secret") != "" {
			fail(http.StatusUnauthorized, "invalid_client", 700025, "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.")
			return
		}
		if !a.publicClientFlows {
			fail(http.StatusUnauthorized, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
			return
		}
		upn := r.PostForm.Get("username")
		acc := s.accounts[lower(upn)]
		if acc == nil {
			fail(http.StatusBadRequest, "invalid_grant", 50034, fmt.Sprintf("The user account {EUII Hidden} does not exist in the %s directory. To "+
				"sign into this application, the account must be added to the directory.", tenantID))
			return
		}
		if acc.password != r.PostForm.Get("password") {
			fail(http.StatusBadRequest, "invalid_grant", 50126, "Error validating credentials due to invalid username or password.")
			return
		}
		if !t.guests[lower(upn)] {
			fail(http.StatusBadRequest, "invalid_grant", 50020, fmt.Sprintf("User account '{EUII Hidden}' from identity provider "+
				"'https://sts.windows.net/%s/' does not exist in tenant '%s' and cannot access the application '%s' in that tenant. The account "+
				"needs to be added as an external user in the tenant first.", acc.homeTenant, tenantID, clientID))
			return
		}
		if acc.mfa {
			fail(http.StatusBadRequest, "invalid_grant", 50076, "Due to a configuration change made by your administrator, or because you moved to "+
				"a new location, you must use multi-factor authentication to access the resource.")
			return
		}
		if !t.delegatedConsent {
			fail(http.StatusBadRequest, "invalid_grant", 65001, fmt.Sprintf("The user or administrator has not consented to use the application "+
				"with ID '%s'. Send an interactive authorization request for this user and resource.", clientID))
			return
		}
		s.stats.IssuedUserTok++
		s.issue(w, tokenInfo{tenant: tenantID, clientID: clientID, upn: acc.upn}, acc)
	case "client_credentials":
		if a.secret == "" || r.PostForm.Get("client_secret") != a.secret {
			fail(http.StatusUnauthorized, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request "+
				"is the client secret value, not the client secret ID.")
			return
		}
		// Without application consent the token is issued all the same,
		// without roles: Graph refuses it (403).
		s.stats.IssuedAppToken++
		s.issue(w, tokenInfo{tenant: tenantID, clientID: clientID}, nil)
	default:
		fail(http.StatusBadRequest, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
	}
}

// issue writes a token reply. Callers hold s.mu.
func (s *Sim) issue(w http.ResponseWriter, ti tokenInfo, acc *account) {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	tok := "graphsim." + hex.EncodeToString(b)
	ti.issued, ti.expires = time.Now(), time.Now().Add(time.Hour)
	s.tokens[tok] = ti
	reply := map[string]any{
		"token_type":     "Bearer",
		"expires_in":     3599,
		"ext_expires_in": 3599,
		"access_token":   tok,
		"scope":          "https://graph.microsoft.com/.default",
	}
	if acc != nil {
		// What MSAL needs to cache the account: an id token (it does not
		// check the signature) and client_info.
		enc := base64.RawURLEncoding
		header := enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
		claims, _ := json.Marshal(map[string]any{
			"aud": ti.clientID, "iss": strings.TrimSuffix(s.loginURL, "/") + "/" + ti.tenant + "/v2.0",
			"iat": time.Now().Unix(), "nbf": time.Now().Unix(), "exp": ti.expires.Unix(),
			"oid": acc.oid, "sub": acc.oid, "tid": ti.tenant, "preferred_username": acc.upn, "name": acc.upn, "ver": "2.0",
		})
		reply["id_token"] = header + "." + enc.EncodeToString(claims) + ".c2ln"
		info, _ := json.Marshal(map[string]string{"uid": acc.oid, "utid": acc.homeTenant})
		reply["client_info"] = enc.EncodeToString(info)
		reply["scope"] = "https://graph.microsoft.com/Presence.Read.All https://graph.microsoft.com/User.Read " +
			"https://graph.microsoft.com/User.ReadBasic.All https://graph.microsoft.com/.default openid profile offline_access"
	}
	writeJSON(w, http.StatusOK, reply)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func lower(s string) string { return strings.ToLower(s) }

// Package acstest is a local stand-in for an Azure Communication Services
// resource's Identity API, for tests: it serves TLS on loopback and checks
// every request's HMAC-SHA256 access-key signature the way ACS does,
// answering 401 to a wrong key, as ACS does. Request bodies are validated
// as ACS validates them: an unknown field or scope is a 400.
package acstest

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"switchboard/handler/acs"
)

// Server is a fake ACS resource.
type Server struct {
	*httptest.Server
	Key []byte

	mu         sync.Mutex
	identities map[string]bool
	created    int
	refused    int
	// Status, when set, is answered to every identity request after the
	// signature was checked (403 to simulate missing permissions, 500 ...).
	status int
}

// NewServer starts a fake ACS resource with a random access key; it stops
// when the test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	key := make([]byte, 64)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	s := &Server{Key: key, identities: map[string]bool{}}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	// Handshakes refused by clients that do not trust the certificate are
	// part of the tests, not news.
	s.Server.Config.ErrorLog = log.New(io.Discard, "", 0)
	s.Server.StartTLS()
	t.Cleanup(s.Close)
	return s
}

// ConnectionString returns the resource's connection string.
func (s *Server) ConnectionString() string {
	return "endpoint=" + s.URL + "/;accesskey=" + base64.StdEncoding.EncodeToString(s.Key)
}

// ConnectionStringWithKey returns the resource's endpoint with another key.
func (s *Server) ConnectionStringWithKey(key []byte) string {
	return "endpoint=" + s.URL + "/;accesskey=" + base64.StdEncoding.EncodeToString(key)
}

// AnswerStatus makes every later, correctly signed identity request fail
// with status (0: back to normal).
func (s *Server) AnswerStatus(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = status
}

// Counts returns how many identities were created, how many still exist,
// and how many requests were refused for their signature.
func (s *Server) Counts() (created, live, refused int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.created, len(s.identities), s.refused
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": message}})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", "unreadable body")
		return
	}
	if why := s.verify(r, body); why != "" {
		s.mu.Lock()
		s.refused++
		s.mu.Unlock()
		writeError(w, http.StatusUnauthorized, "Denied", "Denied by the resource provider. ("+why+")")
		return
	}
	if got := r.URL.Query().Get("api-version"); got != acs.APIVersion {
		writeError(w, http.StatusBadRequest, "InvalidApiVersion", "unsupported api-version "+got)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status != 0 {
		writeError(w, s.status, "Forced", http.StatusText(s.status))
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/identities":
		// The Identity API's CommunicationIdentityCreateRequest.
		var req struct {
			CreateTokenWithScopes []string `json:"createTokenWithScopes"`
			ExpiresInMinutes      *int     `json:"expiresInMinutes"`
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if len(bytes.TrimSpace(body)) > 0 {
			if err := dec.Decode(&req); err != nil {
				writeError(w, http.StatusBadRequest, "InvalidRequestBody", "the request body is not a CommunicationIdentityCreateRequest: "+err.Error())
				return
			}
		}
		for _, scope := range req.CreateTokenWithScopes {
			if !tokenScopes[scope] {
				writeError(w, http.StatusBadRequest, "InvalidScope", "unknown token scope "+scope)
				return
			}
		}
		if m := req.ExpiresInMinutes; m != nil && (*m < 60 || *m > 1440) {
			writeError(w, http.StatusBadRequest, "InvalidExpiresInMinutes", "expiresInMinutes must be between 60 and 1440")
			return
		}
		id := fmt.Sprintf("8:acs:fake_%d", s.created+1)
		s.created++
		s.identities[id] = true
		reply := map[string]any{"identity": map[string]string{"id": id}}
		if len(req.CreateTokenWithScopes) > 0 {
			reply["accessToken"] = map[string]string{"token": "fake-token-" + id, "expiresOn": time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(reply)
	case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/identities/"):
		id := strings.TrimPrefix(r.URL.Path, "/identities/")
		if !s.identities[id] {
			writeError(w, http.StatusNotFound, "IdentityNotFound", "no such identity")
			return
		}
		delete(s.identities, id)
		w.WriteHeader(http.StatusNoContent)
	default:
		writeError(w, http.StatusNotFound, "NotFound", "no such resource")
	}
}

// tokenScopes are the scopes the Identity API issues tokens for.
var tokenScopes = map[string]bool{"chat": true, "voip": true, "chat.join": true, "chat.join.limited": true, "voip.join": true}

// CertPool returns a pool trusting the server's certificate, for
// acs.Options.RootCAs.
func (s *Server) CertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(s.Certificate())
	return pool
}

// verify checks the access-key signature as ACS does and returns why it
// fails, or "".
func (s *Server) verify(r *http.Request, body []byte) string {
	auth := r.Header.Get("Authorization")
	const prefix = "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature="
	if !strings.HasPrefix(auth, prefix) {
		return "Authorization is not HMAC-SHA256 with the signed headers x-ms-date;host;x-ms-content-sha256"
	}
	date := r.Header.Get("x-ms-date")
	t, err := http.ParseTime(date)
	if err != nil || !strings.HasSuffix(date, " GMT") {
		return "x-ms-date is not an RFC 1123 date in GMT"
	}
	if d := time.Since(t); d > 15*time.Minute || d < -15*time.Minute {
		return "x-ms-date is more than 15 minutes off"
	}
	sum := sha256.Sum256(body)
	hash := base64.StdEncoding.EncodeToString(sum[:])
	if r.Header.Get("x-ms-content-sha256") != hash {
		return "x-ms-content-sha256 does not match the body"
	}
	// Computed here from the documented string to sign, independently of
	// the client's code.
	mac := hmac.New(sha256.New, s.Key)
	fmt.Fprintf(mac, "%s\n%s\n%s;%s;%s", r.Method, r.URL.RequestURI(), date, r.Host, hash)
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	got := strings.TrimPrefix(auth, prefix)
	if !hmac.Equal([]byte(got), []byte(want)) {
		return "signature mismatch"
	}
	return ""
}

package interact_test

import (
	"bytes"
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
	"switchboard/handler/interact"
	"switchboard/handler/internal/fakeclock"
	"switchboard/handler/store"
)

const (
	tenant    = "5b1b8f34-3c39-4c27-9b55-2f6a1f0c8e11"
	other     = "11111111-2222-4333-8444-555555555555"
	widgetKey = "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"
	organizer = "0f3e2d1c-0000-4000-8000-0000000000aa"
	agentA    = "0f3e2d1c-0000-4000-8000-00000000000a"
	agentB    = "0f3e2d1c-0000-4000-8000-00000000000b"
	audience  = "6e74172b-be56-4843-9ff4-e66a39bb12e3"
	acsString = "endpoint=https://contoso.communication.azure.com/;accesskey=c2VjcmV0LWtleQ=="
	deployACS = "endpoint=https://operator.communication.azure.com/;accesskey=b3BlcmF0b3Ita2V5"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// env is the real Router with the Interact API over in-memory tables and
// hand-written fakes of distribution, ACS, Graph and the timer queue, the
// widget's tokens checked by the real JWKS verifier against a local key
// publication, on a fake clock.
type env struct {
	t        testing.TB
	clock    *fakeclock.Clock
	settings *fakeSettings
	acs      *fakeACS
	meetings *fakeMeetings
	dist     *fakeDistribution
	timers   *fakeTimers
	events   *fakeOutbox
	svc      *interact.Service
	router   *httpapi.Router
	idp      *idp
	logs     *bytes.Buffer
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvOn(t, store.NewMemoryTables())
}

// newEnvOn is newEnv over the given tables (memory or Azurite).
func newEnvOn(t testing.TB, tables store.Tables) *env {
	t.Helper()
	clock := fakeclock.New(t0)
	e := &env{t: t, clock: clock, settings: &fakeSettings{m: map[string]interact.TenantConfig{}},
		acs: &fakeACS{identities: map[string]string{}}, meetings: &fakeMeetings{},
		dist: newFakeDistribution(clock), timers: &fakeTimers{}, logs: &bytes.Buffer{}}
	e.settings.set(tenant, func(s *interact.TenantConfig) {
		s.Enabled = true
		s.ACSConnectionString = acsString
		s.O365UserID = organizer
		s.WidgetKey = widgetKey
	})
	log := slog.New(slog.NewJSONHandler(&lockedBuffer{b: e.logs}, nil))
	e.events = &fakeOutbox{tables: tables}
	svc, err := interact.New(context.Background(), interact.Options{
		Tables: tables, Settings: e.settings, ACS: e.acs, Meetings: e.meetings,
		Conversations: e.dist, Timers: e.timers, Now: clock.Now, Log: log, DeploymentACS: deployACS,
		Events: e.events,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	e.idp = newIDP(t)
	v, err := auth.New(t.Context(), auth.Options{
		AuthorityHost: e.idp.srv.URL + "/", Audience: audience,
		HTTPClient: e.idp.srv.Client(), Now: clock.Now, Log: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.router = httpapi.NewRouter(log, nil) // API_AUTH=none for the tenant routes
	(&httpapi.InteractAPI{Sessions: svc, Verifier: v}).Register(e.router)
	return e
}

type lockedBuffer struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// reply is a decoded response.
type reply struct {
	status int
	header http.Header
	body   []byte
	v      map[string]any
}

func (r reply) str(path ...string) string {
	var cur any = r.v
	for _, p := range path {
		m, _ := cur.(map[string]any)
		cur = m[p]
	}
	s, _ := cur.(string)
	return s
}

func (e *env) do(method, path string, body any, hdr ...string) reply {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req := httptest.NewRequest(method, path, rd)
	req.RemoteAddr = "127.0.0.1:50000"
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	e.router.ServeHTTP(rec, req)
	r := reply{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
	_ = json.Unmarshal(r.body, &r.v)
	return r
}

// create starts a session from the widget (widget key, no token).
func (e *env) create(body map[string]any, hdr ...string) reply {
	e.t.Helper()
	return e.do("POST", "/api/interact/"+tenant+"/sessions", body, append([]string{"X-Widget-Key", widgetKey}, hdr...)...)
}

// session is a created session as the widget holds it.
type session struct {
	id, resume, acsUser, token, meeting string
}

func (e *env) newSession(body map[string]any) session {
	e.t.Helper()
	r := e.create(body)
	if r.status != http.StatusCreated {
		e.t.Fatalf("create: %d %s", r.status, r.body)
	}
	return session{id: r.str("sessionId"), resume: r.str("resumeToken"), acsUser: r.str("acs", "userId"), token: r.str("acs", "token"), meeting: r.str("meeting", "joinUrl")}
}

func (e *env) customer(method string, s session, action string) reply {
	e.t.Helper()
	p := "/api/interact/" + tenant + "/sessions/" + s.id
	if action != "" {
		p += "/" + action
	}
	return e.do(method, p, nil, "X-Widget-Key", widgetKey, "X-Resume-Token", s.resume)
}

func (e *env) agentSide(s session, action string) reply {
	e.t.Helper()
	return e.do("POST", "/api/tenants/"+tenant+"/interact/sessions/"+s.id+"/"+action, nil)
}

// advance moves the clock and delivers the timer messages now due.
func (e *env) advance(d time.Duration) {
	e.t.Helper()
	e.clock.Advance(d)
	if _, err := e.timers.fire(context.Background(), e.svc, e.clock.Now()); err != nil {
		e.t.Fatalf("timer: %v", err)
	}
}

func (e *env) wantState(s session, want string) reply {
	e.t.Helper()
	r := e.customer("GET", s, "")
	if r.status != http.StatusOK || r.str("state") != want {
		e.t.Fatalf("GET session: %d %s, want state %s", r.status, r.body, want)
	}
	return r
}

// idp publishes signing keys (JWKS) over TLS, as Entra does, and signs
// tokens with them.
type idp struct {
	srv *httptest.Server
	key *rsa.PrivateKey
}

var (
	keyOnce sync.Once
	keys    [2]*rsa.PrivateKey
)

func newIDP(t testing.TB) *idp {
	t.Helper()
	keyOnce.Do(func() {
		for i := range keys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			keys[i] = k
		}
	})
	p := &idp{key: keys[0]}
	p.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/discovery/v2.0/keys") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "use": "sig", "kid": "key-1",
			"n": base64.RawURLEncoding.EncodeToString(p.key.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(p.key.E)).Bytes()),
		}}})
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// token signs an access token for tid, valid around now, with over laid on
// top; key 1 under kid "key-2" is a key the JWKS does not publish.
func (p *idp) token(t *testing.T, tid string, now time.Time, unknownKey bool, over map[string]any) string {
	t.Helper()
	c := jwt.MapClaims{
		"aud": audience, "iss": p.srv.URL + "/" + tid + "/v2.0", "tid": tid,
		"oid": agentA, "sub": "s", "iat": now.Add(-time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
	for k, v := range over {
		c[k] = v
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	key, kid := p.key, "key-1"
	if unknownKey {
		key, kid = keys[1], "key-2"
	}
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newEnvWithout is an env whose deployment has no ACS of its own.
func newEnvWithout(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	svc, err := interact.New(context.Background(), interact.Options{
		Tables: store.NewMemoryTables(), Settings: e.settings, ACS: e.acs, Meetings: e.meetings,
		Conversations: e.dist, Timers: e.timers, Now: e.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	e.router = httpapi.NewRouter(slog.New(slog.DiscardHandler), nil)
	(&httpapi.InteractAPI{Sessions: svc}).Register(e.router)
	return e
}

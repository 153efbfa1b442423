// Package graphsim simulates the two Microsoft services presence tracking
// talks to: the Microsoft Entra token endpoint (OpenID metadata, user
// realm, token endpoint for the password and client-credentials grants) and
// the Microsoft Graph endpoints Switchboard calls
// (POST /communications/getPresencesByUserId, GET /users/{id-or-upn},
// GET /users/{id}/presence). Both listen on loopback over TLS with a
// certificate the simulator generates, so the real azidentity and
// msgraph-sdk-go clients talk to it unchanged: only base URLs and trust
// differ from production.
//
// It enforces what the real services enforce as far as presence tracking
// can tell: bearer tokens it issued, the 650-id limit, per-account guest
// invitations, MFA and passwords, delegated and application consent per
// tenant, throttling per app per tenant with Retry-After, latency, and
// injected faults. Presences change over time with a seeded random walk.
// Tests, benchmarks and the local demo use it.
package graphsim

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a Sim.
type Options struct {
	// Seed makes user ids and random walks reproducible.
	Seed uint64
	// Latency is added to every Graph request, plus a uniform random part
	// up to Jitter.
	Latency time.Duration
	Jitter  time.Duration
	// ThrottleLimit is how many Graph requests one app may make per tenant
	// per ThrottleWindow before it gets 429 with Retry-After (0: no
	// throttling).
	ThrottleLimit  int
	ThrottleWindow time.Duration
	// CertDir is where the certificate file is written (default a new
	// temporary directory, removed by Close).
	CertDir string
	// GraphAddr and LoginAddr are the listen addresses (default
	// 127.0.0.1:0 each).
	GraphAddr, LoginAddr string
	Log                  *slog.Logger
}

// Sim is a running simulator.
type Sim struct {
	opts     Options
	log      *slog.Logger
	graph    *http.Server
	login    *http.Server
	graphURL string
	loginURL string
	certFile string
	pool     *x509.CertPool
	tmpDir   string

	mu       sync.Mutex
	rng      *mrand.Rand
	apps     map[string]*app      // by client id
	accounts map[string]*account  // by lower-case UPN
	tenants  map[string]*tenant   // by id
	tokens   map[string]tokenInfo // access token -> grant
	throttle map[string][]time.Time
	stats    Stats
	queries  []UserQuery

	// Change subscriptions (subscriptions.go).
	subs               map[string]*subscription
	maxGrant           time.Duration
	notifyLo, notifyHi time.Duration
	renewFaults        int
	now                atomic.Pointer[func() time.Time] // nil: the wall clock
	notifyClient       *http.Client
}

type app struct {
	clientID, secret  string
	publicClientFlows bool
}

type account struct {
	upn, password, oid string
	homeTenant         string
	mfa                bool
	// revokedAt is when the account's sessions were revoked (MFA turned
	// on, password reset, account disabled): Graph challenges tokens
	// issued before it, as continuous access evaluation does.
	revokedAt time.Time
}

type tenant struct {
	id               string
	delegatedConsent bool
	appConsent       bool
	userReadConsent  bool
	guests           map[string]bool // lower-case UPN of invited presence accounts
	users            map[string]*user
	byUPN            map[string]*user
	order            []*user // for random choice
	faults           []Fault
}

type user struct {
	id, upn, displayName string
	profile              Profile
	availability         string
	activity             string
	outOfOffice          bool
}

type tokenInfo struct {
	tenant   string
	clientID string
	upn      string // "" for an application token
	issued   time.Time
	expires  time.Time
}

// Stats counts what the simulator served.
type Stats struct {
	TokenRequests  int
	PresenceCalls  int // getPresencesByUserId requests answered 200
	PresenceIDs    int // ids asked for in them
	SingleReads    int // GET /users/{id}/presence answered 200
	UserReads      int
	Throttled      int
	Faults         int
	UserSearches   int // GET /users answered 200
	Unauthorized   int
	Forbidden      int
	BadRequests    int
	GraphRequests  int // every Graph request, whatever the answer
	LoginFailures  int
	IssuedAppToken int
	IssuedUserTok  int

	SubscriptionsCreated   int
	SubscriptionsRenewed   int
	SubscriptionsDeleted   int
	Reauthorized           int
	Conflicts              int // a second presence subscription refused (409)
	ValidationFailures     int
	NotificationsScheduled int
	NotificationsSent      int // change notifications answered 2xx
	LifecycleSent          int
	NotificationFailures   int
}

// Start starts the simulator.
func Start(o Options) (*Sim, error) {
	if o.ThrottleWindow <= 0 {
		o.ThrottleWindow = 30 * time.Second
	}
	if o.GraphAddr == "" {
		o.GraphAddr = "127.0.0.1:0"
	}
	if o.LoginAddr == "" {
		o.LoginAddr = "127.0.0.1:0"
	}
	s := &Sim{opts: o, log: o.Log, rng: mrand.New(mrand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15)),
		apps: map[string]*app{}, accounts: map[string]*account{}, tenants: map[string]*tenant{},
		tokens: map[string]tokenInfo{}, throttle: map[string][]time.Time{},
		subs: map[string]*subscription{}, notifyLo: 500 * time.Millisecond, notifyHi: 1500 * time.Millisecond,
		notifyClient: &http.Client{Timeout: 15 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	dir := o.CertDir
	if dir == "" {
		d, err := os.MkdirTemp("", "graphsim")
		if err != nil {
			return nil, err
		}
		dir, s.tmpDir = d, d
	}
	cert, certPEM, err := selfSigned()
	if err != nil {
		return nil, err
	}
	s.pool = x509.NewCertPool()
	s.pool.AppendCertsFromPEM(certPEM)
	// The file a handler process trusts through SSL_CERT_FILE: ours plus
	// the system roots (SSL_CERT_FILE replaces them).
	bundle := append([]byte{}, certPEM...)
	for _, sys := range []string{"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"} {
		if b, err := os.ReadFile(sys); err == nil {
			bundle = append(bundle, '\n')
			bundle = append(bundle, b...)
			break
		}
	}
	s.certFile = filepath.Join(dir, "graphsim-ca.pem")
	if err := os.WriteFile(s.certFile, bundle, 0o644); err != nil {
		return nil, err
	}
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12}

	gl, err := net.Listen("tcp", o.GraphAddr)
	if err != nil {
		return nil, err
	}
	ll, err := net.Listen("tcp", o.LoginAddr)
	if err != nil {
		gl.Close()
		return nil, err
	}
	s.graphURL = "https://" + gl.Addr().String() + "/v1.0"
	s.loginURL = "https://" + ll.Addr().String() + "/"
	s.graph = &http.Server{Handler: s.graphHandler(), TLSConfig: tlsCfg.Clone(), ReadHeaderTimeout: 10 * time.Second}
	s.login = &http.Server{Handler: s.loginHandler(), TLSConfig: tlsCfg.Clone(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.graph.ServeTLS(gl, "", "") }()
	go func() { _ = s.login.ServeTLS(ll, "", "") }()
	return s, nil
}

// Close stops the simulator.
func (s *Sim) Close() {
	_ = s.graph.Close()
	_ = s.login.Close()
	if s.tmpDir != "" {
		_ = os.RemoveAll(s.tmpDir)
	}
}

// GraphURL is the Graph base URL (GRAPH_BASE_URL), ending in /v1.0.
func (s *Sim) GraphURL() string { return s.graphURL }

// AuthorityURL is the Entra authority host (AZURE_AUTHORITY_HOST).
func (s *Sim) AuthorityURL() string { return s.loginURL }

// CertFile is a PEM file trusting the simulator and the system roots
// (SSL_CERT_FILE for a handler process).
func (s *Sim) CertFile() string { return s.certFile }

// HTTPClient returns a client that trusts the simulator (in-process
// tests, where SSL_CERT_FILE was read before the simulator existed).
func (s *Sim) HTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: s.pool, MinVersion: tls.VersionTLS12}
	tr.ForceAttemptHTTP2 = true
	tr.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}

// Stats returns the counters.
func (s *Sim) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// ResetStats zeroes the counters.
func (s *Sim) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats = Stats{}
}

// SetLatency changes the Graph latency.
func (s *Sim) SetLatency(latency, jitter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.Latency, s.opts.Jitter = latency, jitter
}

// SetThrottle changes the throttling limit (0: none) and window.
func (s *Sim) SetThrottle(limit int, window time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.ThrottleLimit = limit
	if window > 0 {
		s.opts.ThrottleWindow = window
	}
	s.throttle = map[string][]time.Time{}
}

// AddApp registers an app (the presence app registration) with a client
// secret, allowing public client flows (ROPC) unless told otherwise.
func (s *Sim) AddApp(clientID, secret string, publicClientFlows bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apps[clientID] = &app{clientID: clientID, secret: secret, publicClientFlows: publicClientFlows}
}

// AddAccount registers a presence account in its home tenant.
func (s *Sim) AddAccount(upn, password string, mfa bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accounts[lower(upn)] = &account{upn: upn, password: password, oid: s.newID(), homeTenant: "00000000-0000-0000-0000-0000000000aa", mfa: mfa}
}

// SetAccount changes a presence account's password and MFA requirement.
func (s *Sim) SetAccount(upn, password string, mfa bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.accounts[lower(upn)]; a != nil {
		a.password, a.mfa = password, mfa
	}
}

// RevokeSessions revokes the presence account's sessions, as Entra ID
// does on a critical event (MFA turned on, password reset, account
// disabled): Graph answers every later request with a token issued before
// now 401 with a continuous access evaluation challenge (WWW-Authenticate
// error="insufficient_claims" and the claims to ask a new token with).
func (s *Sim) RevokeSessions(upn string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.accounts[lower(upn)]; a != nil {
		a.revokedAt = time.Now()
	}
}

// TenantOptions is what a tenant's admin has done.
type TenantOptions struct {
	DelegatedConsent bool     // granted Presence.Read.All etc. (delegated)
	AppConsent       bool     // granted Presence.Read.All (application)
	UserReadConsent  bool     // granted User.Read.All (application): GET /users with an app token
	Guests           []string // presence accounts invited as guests
}

// AddTenant adds (or reconfigures) a customer tenant.
func (s *Sim) AddTenant(id string, o TenantOptions) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tenants[id]
	if t == nil {
		t = &tenant{id: id, users: map[string]*user{}, byUPN: map[string]*user{}}
		s.tenants[id] = t
	}
	t.delegatedConsent, t.appConsent, t.userReadConsent = o.DelegatedConsent, o.AppConsent, o.UserReadConsent
	t.guests = map[string]bool{}
	for _, g := range o.Guests {
		t.guests[lower(g)] = true
	}
}

// User is a user of a simulated tenant.
type User struct {
	ID, UPN, DisplayName string
	Profile
}

// Profile is what the directory knows of a user beyond its name: the
// properties GET /users returns and filters on.
type Profile struct {
	GivenName, Surname, Mail, JobTitle, Department, PreferredLanguage string
}

// demoLanguages and demoDepartments give AddUsers' users something to
// filter on (seed 004's example filter names preferredLanguage).
var (
	demoLanguages   = []string{"en-GB", "en-GB", "de-CH", "fr-CH", "en-US"}
	demoDepartments = []string{"Support", "Sales", "Billing", "Reception"}
)

// AddUsers adds n users named agentN@domain ("Agent N", given name Agent,
// surname N), Available, with a department and a preferred language that
// go round Support, Sales, Billing, Reception and en-GB, en-GB, de-CH,
// fr-CH, en-US, and returns them.
func (s *Sim) AddUsers(tenantID, domain string, n int) []User {
	s.mu.Lock()
	base := len(s.mustTenant(tenantID).order)
	s.mu.Unlock()
	out := make([]User, 0, n)
	for i := 0; i < n; i++ {
		k := base + i + 1
		out = append(out, s.AddUser(tenantID, User{UPN: fmt.Sprintf("agent%d@%s", k, domain), DisplayName: fmt.Sprintf("Agent %d", k),
			Profile: Profile{GivenName: "Agent", Surname: fmt.Sprint(k), Mail: fmt.Sprintf("agent%d@%s", k, domain), JobTitle: "Agent",
				Department: demoDepartments[(k-1)%len(demoDepartments)], PreferredLanguage: demoLanguages[(k-1)%len(demoLanguages)]}}))
	}
	return out
}

// AddUser adds one user, Available, with a new id unless u.ID is set, and
// returns it.
func (s *Sim) AddUser(tenantID string, u User) User {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.mustTenant(tenantID)
	if u.ID == "" {
		u.ID = s.newID()
	}
	nu := &user{id: lower(u.ID), upn: u.UPN, displayName: u.DisplayName, profile: u.Profile, availability: "Available", activity: "Available"}
	t.users[nu.id] = nu
	t.byUPN[lower(nu.upn)] = nu
	t.order = append(t.order, nu)
	u.ID = nu.id
	return u
}

func (s *Sim) mustTenant(id string) *tenant {
	t := s.tenants[id]
	if t == nil {
		panic("graphsim: unknown tenant " + id)
	}
	return t
}

// SetPresence sets one user's presence.
func (s *Sim) SetPresence(tenantID, userID, availability, activity string, outOfOffice bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tenants[tenantID]; t != nil {
		if u := t.users[userID]; u != nil {
			if u.availability != availability || u.activity != activity || u.outOfOffice != outOfOffice {
				u.availability, u.activity, u.outOfOffice = availability, activity, outOfOffice
				s.notifyChanged(t, u)
			}
		}
	}
}

// Presence returns one user's presence as the simulator holds it.
func (s *Sim) Presence(tenantID, userID string) (availability, activity string, outOfOffice bool, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tenants[tenantID]; t != nil {
		if u := t.users[userID]; u != nil {
			return u.availability, u.activity, u.outOfOffice, true
		}
	}
	return "", "", false, false
}

// states is the random walk's distribution of presences: mostly available
// or in calls and meetings, as in a contact centre's day.
var states = []struct {
	availability, activity string
	weight                 int
}{
	{"Available", "Available", 40},
	{"Busy", "InACall", 18},
	{"Busy", "InAMeeting", 10},
	{"Busy", "InAConferenceCall", 4},
	{"Busy", "Busy", 4},
	{"AvailableIdle", "Available", 4},
	{"Away", "Away", 6},
	{"BeRightBack", "BeRightBack", 4},
	{"DoNotDisturb", "Presenting", 2},
	{"DoNotDisturb", "Focusing", 2},
	{"BusyIdle", "Busy", 1},
	{"Offline", "OffWork", 5},
}

// Change moves fraction of the tenant's users to another presence and
// returns how many changed.
func (s *Sim) Change(tenantID string, fraction float64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tenants[tenantID]
	if t == nil || len(t.order) == 0 {
		return 0
	}
	n := int(float64(len(t.order))*fraction + 0.5)
	changed := 0
	for _, i := range s.rng.Perm(len(t.order))[:n] {
		u := t.order[i]
		for {
			st := s.pick()
			if st.availability != u.availability || st.activity != u.activity {
				u.availability, u.activity = st.availability, st.activity
				s.notifyChanged(t, u)
				changed++
				break
			}
		}
	}
	return changed
}

func (s *Sim) pick() struct{ availability, activity string } {
	total := 0
	for _, st := range states {
		total += st.weight
	}
	r := s.rng.IntN(total)
	for _, st := range states {
		if r < st.weight {
			return struct{ availability, activity string }{st.availability, st.activity}
		}
		r -= st.weight
	}
	return struct{ availability, activity string }{"Available", "Available"}
}

// RandomWalk changes fraction of every tenant's users every interval
// until ctx is done.
func (s *Sim) RandomWalk(ctx context.Context, every time.Duration, fraction float64) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.mu.Lock()
			ids := make([]string, 0, len(s.tenants))
			for id := range s.tenants {
				ids = append(ids, id)
			}
			s.mu.Unlock()
			for _, id := range ids {
				s.Change(id, fraction)
			}
		}
	}
}

// Fault is an injected failure of one Graph request.
type Fault struct {
	Status      int    // HTTP status (default 500)
	Body        string // reply body (default a Graph error)
	ContentType string // default application/json
	// RetryAfter is sent as Retry-After (seconds) when set.
	RetryAfter int
	// Malformed answers 200 with a body that is not valid JSON.
	Malformed bool
}

// InjectFaults makes the tenant's next n Graph requests fail with f.
func (s *Sim) InjectFaults(tenantID string, f Fault, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tenants[tenantID]; t != nil {
		for i := 0; i < n; i++ {
			t.faults = append(t.faults, f)
		}
	}
}

func (s *Sim) newID() string {
	b := make([]byte, 16)
	for i := range b {
		b[i] = byte(s.rng.IntN(256))
	}
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func selfSigned() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "graphsim local Graph and Entra simulator"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	return cert, certPEM, err
}

package acs_test

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"switchboard/handler/acs"
	"switchboard/handler/switchboard"
)

func TestCheckEndpoint(t *testing.T) {
	tests := []struct {
		name     string
		endpoint string
		allowed  bool
	}{
		{"public cloud", "https://contoso.communication.azure.com/", true},
		{"with a region label", "https://contoso.unitedstates.communication.azure.com/", true},
		{"explicit 443", "https://contoso.communication.azure.com:443/", true},
		{"Azure Government", "https://contoso.communication.azure.us/", true},
		{"Azure China", "https://contoso.communication.azure.cn/", true},
		{"another host", "https://evil.example/", false},
		{"suffix inside another host", "https://contoso.communication.azure.com.evil.example/", false},
		{"suffix without a resource", "https://communication.azure.com/", false},
		{"lookalike suffix", "https://contoso.xcommunication.azure.com/", false},
		{"other port", "https://contoso.communication.azure.com:8443/", false},
		{"http", "http://contoso.communication.azure.com/", false},
		{"IPv4 literal", "https://127.0.0.1/", false},
		{"IPv6 literal", "https://[::1]/", false},
		{"metadata address", "https://169.254.169.254/", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, err := acs.ParseConnectionString("endpoint=" + tt.endpoint + ";accesskey=" + testKey)
			if err != nil {
				t.Fatalf("ParseConnectionString: %v", err)
			}
			err = cs.CheckEndpoint(false)
			if got := err == nil; got != tt.allowed {
				t.Fatalf("CheckEndpoint(false) = %v, want allowed %v", err, tt.allowed)
			}
			if err != nil {
				if got, want := switchboard.ErrorType(err), acs.TypeNotAllowed; got != want {
					t.Errorf("type = %q, want %q", got, want)
				}
				if got, want := switchboard.ErrorField(err), "connectionString"; got != want {
					t.Errorf("field = %q, want %q", got, want)
				}
			}
			if err := cs.CheckEndpoint(true); err != nil {
				t.Errorf("CheckEndpoint(true) = %v, want nil: ALLOW_PRIVATE_ENDPOINTS lifts the rules", err)
			}
		})
	}
}

// fakeResolver answers every lookup with addrs, whatever the name: the
// test decides what an ACS host resolves to without any DNS.
type fakeResolver struct {
	mu      sync.Mutex
	addrs   []netip.Addr
	lookups []string
}

func (r *fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lookups = append(r.lookups, host)
	return r.addrs, nil
}

// refusingDialer records every address it is asked for and connects to
// none: a refusal must be decided before any dial, and any non-loopback
// address fails the test outright.
type refusingDialer struct {
	t     *testing.T
	mu    sync.Mutex
	dials []string
}

func (d *refusingDialer) dial(_ context.Context, _, addr string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dials = append(d.dials, addr)
	host, _, _ := net.SplitHostPort(addr)
	if a, err := netip.ParseAddr(host); err != nil || !a.IsLoopback() {
		d.t.Errorf("dial of non-loopback address %s", addr)
	}
	return nil, errors.New("refusingDialer connects nowhere")
}

// The SSRF probes: endpoints a tenant admin might give to reach inside
// the deployment's network. Each is refused before any connection is
// made, with a fixed sentence.
func TestCheckRefusesBeforeAnyConnection(t *testing.T) {
	const acsHost = "https://contoso.communication.azure.com/"
	tests := []struct {
		name        string
		endpoint    string
		resolves    []string // what the fake resolver answers
		wantLookups bool     // whether the host rule lets the lookup happen
		wantType    string
	}{
		{"ACS name resolving to loopback", acsHost, []string{"127.0.0.1"}, true, acs.TypeNotAllowed},
		{"ACS name resolving to IPv6 loopback", acsHost, []string{"::1"}, true, acs.TypeNotAllowed},
		{"ACS name resolving to a private address", acsHost, []string{"10.0.0.5"}, true, acs.TypeNotAllowed},
		{"ACS name resolving to the metadata service", acsHost, []string{"169.254.169.254"}, true, acs.TypeNotAllowed},
		{"ACS name resolving to the unspecified address", acsHost, []string{"0.0.0.0"}, true, acs.TypeNotAllowed},
		{"ACS name resolving to a mapped private address", acsHost, []string{"::ffff:192.168.0.10"}, true, acs.TypeNotAllowed},
		{"ACS name with one private address among public ones", acsHost, []string{"203.0.113.7", "10.0.0.5"}, true, acs.TypeNotAllowed},
		{"loopback literal", "https://127.0.0.1/", nil, false, acs.TypeNotAllowed},
		{"metadata literal", "https://169.254.169.254/", nil, false, acs.TypeNotAllowed},
		{"internal name", "https://storage.internal/", nil, false, acs.TypeNotAllowed},
		{"ACS name on another port", "https://contoso.communication.azure.com:8443/", nil, false, acs.TypeNotAllowed},
		{"plain http", "http://contoso.communication.azure.com/", nil, false, acs.TypeNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := &fakeResolver{}
			for _, a := range tt.resolves {
				res.addrs = append(res.addrs, netip.MustParseAddr(a))
			}
			d := &refusingDialer{t: t}
			c := acs.New(acs.Options{Resolver: res, Dial: d.dial})
			err := c.Check(context.Background(), "endpoint="+tt.endpoint+";accesskey="+testKey)
			if got := switchboard.ErrorType(err); got != tt.wantType {
				t.Fatalf("type = %q (%v), want %q", got, err, tt.wantType)
			}
			if !switchboard.IsCode(err, switchboard.EINVALID) {
				t.Errorf("code = %q, want %q", switchboard.ErrorCode(err), switchboard.EINVALID)
			}
			if len(d.dials) != 0 {
				t.Errorf("dialled %v: the refusal must come before any connection", d.dials)
			}
			if got := len(res.lookups) > 0; got != tt.wantLookups {
				t.Errorf("lookups %v; want a lookup %v", res.lookups, tt.wantLookups)
			}
			msg := switchboard.ErrorMessage(err)
			for _, a := range tt.resolves {
				if strings.Contains(msg, a) {
					t.Errorf("message %q names the resolved address %s", msg, a)
				}
			}
		})
	}
}

// A public address passes the rules and is dialled as resolved (not
// looked up again), so a DNS answer cannot change between check and dial.
func TestCheckDialsTheCheckedAddress(t *testing.T) {
	res := &fakeResolver{addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}
	d := &refusingDialer{t: t}
	// AllowPrivate off and a loopback answer: refused. The same with the
	// rules lifted dials exactly the resolved address, nothing else.
	err := acs.New(acs.Options{Resolver: res, Dial: d.dial}).Check(context.Background(), "endpoint=https://contoso.communication.azure.com/;accesskey="+testKey)
	if got, want := switchboard.ErrorType(err), acs.TypeNotAllowed; got != want || len(d.dials) != 0 {
		t.Fatalf("type %q, dials %v; want %q and none", got, d.dials, want)
	}
	err = acs.New(acs.Options{AllowPrivate: true, Dial: d.dial}).Check(context.Background(), "endpoint=https://127.0.0.1:1/;accesskey="+testKey)
	if got, want := switchboard.ErrorType(err), acs.TypeUnreachable; got != want {
		t.Fatalf("type = %q (%v), want %q", got, err, want)
	}
	if got, want := strings.Join(d.dials, ","), "127.0.0.1:1"; got != want {
		t.Errorf("dials = %s, want %s", got, want)
	}
}

func TestCheckDoesNotFollowRedirects(t *testing.T) {
	var hits int
	var mu sync.Mutex
	target := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"identity":{"id":"x"},"accessToken":{"token":"y"}}`))
	}))
	defer target.Close()
	redirector := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	defer redirector.Close()
	pool := x509.NewCertPool()
	pool.AddCert(target.Certificate())
	pool.AddCert(redirector.Certificate())
	err := acs.New(acs.Options{AllowPrivate: true, RootCAs: pool}).Check(context.Background(), "endpoint="+redirector.URL+";accesskey="+testKey)
	if got, want := switchboard.ErrorType(err), acs.TypeNotACS; got != want {
		t.Fatalf("type = %q (%v), want %q", got, err, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if hits != 0 {
		t.Errorf("the redirect target got %d requests, want 0", hits)
	}
}

// Whatever answers, its reply text and the transport's error text stay
// out of the result: the caller picked the endpoint, and either could
// carry what the endpoint saw inside the network.
func TestCheckReturnsOnlyAFixedSentence(t *testing.T) {
	const remote = "remote-text-from-inside"
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusBadGateway} {
		s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(`{"error":{"code":"` + remote + `","message":"` + remote + `"}}`))
		}))
		pool := x509.NewCertPool()
		pool.AddCert(s.Certificate())
		err := acs.New(acs.Options{AllowPrivate: true, RootCAs: pool}).Check(context.Background(), "endpoint="+s.URL+";accesskey="+testKey)
		s.Close()
		if err == nil || strings.Contains(err.Error(), remote) {
			t.Errorf("%d: error %v; want one without the reply's text", status, err)
		}
	}
	// A port nobody listens on: the transport's "connection refused" and
	// the address stay out.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	err = acs.New(acs.Options{AllowPrivate: true}).Check(context.Background(), "endpoint=https://"+addr+";accesskey="+testKey)
	if got, want := switchboard.ErrorType(err), acs.TypeUnreachable; got != want {
		t.Fatalf("type = %q (%v), want %q", got, err, want)
	}
	if msg := err.Error(); strings.Contains(msg, "refused") || strings.Contains(msg, addr) || strings.Contains(msg, "dial") {
		t.Errorf("error %q carries the transport's text", msg)
	}
}

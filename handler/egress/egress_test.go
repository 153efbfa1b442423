package egress

import (
	"context"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"

	"switchboard/handler/switchboard"
)

// stubResolver answers from a fixed table and never asks DNS.
type stubResolver map[string][]string

func (s stubResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	ips, ok := s[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var out []netip.Addr
	for _, ip := range ips {
		out = append(out, netip.MustParseAddr(ip))
	}
	return out, nil
}

// loopbackOnly is a dialer that records every address it is asked for and
// fails the test for any outside 127.0.0.0/8, so no packet leaves loopback.
type loopbackOnly struct {
	t     *testing.T
	mu    sync.Mutex
	dials []string
}

func (d *loopbackOnly) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.dials = append(d.dials, addr)
	d.mu.Unlock()
	host, _, _ := net.SplitHostPort(addr)
	if a, err := netip.ParseAddr(host); err != nil || !a.IsLoopback() || !a.Is4() {
		d.t.Errorf("dial to %s: only 127.0.0.0/8 may be dialled in tests", addr)
		return nil, &net.OpError{Op: "dial", Err: net.UnknownNetworkError("refused by test")}
	}
	return (&net.Dialer{}).DialContext(ctx, network, addr)
}

func (d *loopbackOnly) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.dials)
}

func TestCheckURLRefusesBeforeAnyConnection(t *testing.T) {
	d := &loopbackOnly{t: t}
	g := Guard{
		Resolver: stubResolver{
			"hooks.example.net":    {"192.0.2.10"}, // the test never dials it: CheckURL only resolves
			"intranet.example.net": {"10.1.2.3"},
			"metadata.example.net": {"169.254.169.254"},
			"mixed.example.net":    {"192.0.2.10", "172.16.0.5"},
			"v6local.example.net":  {"fd00::1"},
			"cgnat.example.net":    {"100.64.0.1"},
			"mapped.example.net":   {"::ffff:127.0.0.1"},
		},
		Dial: d.dial,
	}
	cases := []struct {
		name, url, reason string
	}{
		{"http", "http://hooks.example.net/x", ReasonScheme},
		{"ftp", "ftp://hooks.example.net/x", ReasonScheme},
		{"relative", "/hooks", ReasonURL},
		{"user info", "https://user:pw@hooks.example.net/", ReasonURL},
		{"loopback literal", "https://127.0.0.1:8443/", ReasonAddress},
		{"loopback v6", "https://[::1]/", ReasonAddress},
		{"localhost", "https://localhost/", ReasonAddress},
		{"unspecified", "https://0.0.0.0/", ReasonAddress},
		{"name to private", "https://intranet.example.net/", ReasonAddress},
		{"name to link-local", "https://metadata.example.net/latest", ReasonAddress},
		{"one of two private", "https://mixed.example.net/", ReasonAddress},
		{"unique local v6", "https://v6local.example.net/", ReasonAddress},
		{"carrier-grade NAT", "https://cgnat.example.net/", ReasonAddress},
		{"mapped loopback", "https://mapped.example.net/", ReasonAddress},
		{"unknown name", "https://nowhere.example.net/", ReasonNotFound},
	}
	for _, c := range cases {
		_, err := g.CheckURL(context.Background(), "url", c.url)
		if !switchboard.IsCode(err, switchboard.EINVALID) || switchboard.ErrorType(err) != c.reason || switchboard.ErrorField(err) != "url" {
			t.Errorf("%s: CheckURL(%q) = %v (type %q); want EINVALID %s on field url", c.name, c.url, err, switchboard.ErrorType(err), c.reason)
		}
	}
	if _, err := g.CheckURL(context.Background(), "url", "https://hooks.example.net/events"); err != nil {
		t.Errorf("public host refused: %v", err)
	}
	if n := d.count(); n != 0 {
		t.Fatalf("CheckURL dialled %d times; it must decide without connecting", n)
	}
}

func TestClientRefusesAtEveryConnection(t *testing.T) {
	// A name that was public when the subscription was saved and now
	// resolves to loopback (DNS rebinding) is refused at dial time.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	d := &loopbackOnly{t: t}
	g := Guard{Resolver: stubResolver{"rebound.example.net": {"127.0.0.1"}}, Dial: d.dial}
	_, err := g.Client(5e9).Get("http://rebound.example.net:" + port + "/")
	if err == nil || !strings.Contains(err.Error(), "loopback") || !Refused(err) {
		t.Fatalf("GET through the guard to a name on loopback: err = %v, want a refusal (Refused)", err)
	}
	if n := d.count(); n != 0 {
		t.Fatalf("the guard dialled %d times before refusing", n)
	}

	// With AllowPrivate (local development) the same call goes through, to
	// the checked address.
	g.AllowPrivate = true
	resp, err := g.Client(5e9).Get("http://rebound.example.net:" + port + "/")
	if err != nil {
		t.Fatalf("AllowPrivate: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || d.count() != 1 {
		t.Fatalf("AllowPrivate: status %d after %d dials; want 204 after 1", resp.StatusCode, d.count())
	}
}

func TestClientFollowsNoRedirect(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/next" {
			t.Error("the redirect was followed")
		}
		http.Redirect(w, r, "/next", http.StatusFound)
	}))
	defer srv.Close()
	d := &loopbackOnly{t: t}
	g := Guard{AllowPrivate: true, Dial: d.dial}
	resp, err := g.Client(5e9).Get(srv.URL + "/first")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("status %d, want the 302 itself", resp.StatusCode)
	}
	u, _ := url.Parse(srv.URL)
	if _, err := g.CheckURL(context.Background(), "url", u.String()); err != nil {
		t.Fatalf("AllowPrivate: CheckURL(%s) = %v", u, err)
	}
}

func TestPublic(t *testing.T) {
	for ip, want := range map[string]bool{
		"192.0.2.1": true, "2001:db8::1": true, "127.0.0.1": false, "127.8.9.1": false, "10.0.0.1": false,
		"172.31.255.255": false, "192.168.1.1": false, "169.254.1.1": false, "fe80::1": false, "::1": false,
		"0.0.0.0": false, "::": false, "224.0.0.1": false, "100.100.1.1": false, "::ffff:10.0.0.1": false,
		"20.42.6.1": true, "2603:1030::1": true, "::ffff:127.0.0.1": false, "255.255.255.255": false, "0.1.2.3": false,
		"192.0.0.8": false, "198.18.0.1": false, "240.0.0.1": false, "64:ff9b::a00:1": false, "::a00:1": false,
	} {
		if got := Public(netip.MustParseAddr(ip)); got != want {
			t.Errorf("Public(%s) = %v, want %v", ip, got, want)
		}
	}
}

// The client trusts RootCAs, and only them: a TLS receiver with a
// certificate outside them is not reached, and Refused tells that failure
// from the guard's own refusal.
func TestClientTrustsRootCAs(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }))
	defer srv.Close()
	d := &loopbackOnly{t: t}
	g := Guard{AllowPrivate: true, Dial: d.dial}
	_, err := g.Client(5e9).Get(srv.URL)
	if err == nil || Refused(err) {
		t.Fatalf("GET of a server outside the trusted certificates: %v; want a TLS failure, not a refusal", err)
	}
	g.RootCAs = x509.NewCertPool()
	g.RootCAs.AddCert(srv.Certificate())
	resp, err := g.Client(5e9).Get(srv.URL)
	if err != nil {
		t.Fatalf("with its certificate trusted: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("status %d, want 204", resp.StatusCode)
	}
}

// Package egress decides whether the app may call a URL that a tenant
// chose (an event subscription's receiver, an ACS endpoint), and dials only
// addresses it has checked: a name is resolved once, every address it resolves to must be
// public, and the connection goes to a checked address, so that a DNS
// answer that changes between the check and the dial (rebinding) cannot
// reach the app's own network.
package egress

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"switchboard/handler/switchboard"
)

// Resolver looks names up; net.DefaultResolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// DialFunc opens a connection; (&net.Dialer{}).DialContext is one.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Guard checks URLs and dials checked addresses. The zero value refuses
// private addresses and uses the system resolver, dialer and trusted
// certificates.
type Guard struct {
	// AllowPrivate (ALLOW_PRIVATE_ENDPOINTS, local development and tests
	// only) allows http, and hosts on loopback, private and link-local
	// addresses.
	AllowPrivate bool
	Resolver     Resolver
	// Dial is called only with an address that passed the rules.
	Dial DialFunc
	// RootCAs are the certificates Client trusts (nil: the system's, which
	// honour SSL_CERT_FILE).
	RootCAs *x509.CertPool
}

// Refusal codes, stable for callers and tests.
const (
	ReasonScheme   = "scheme-not-allowed"
	ReasonURL      = "url-malformed"
	ReasonAddress  = "address-not-allowed"
	ReasonNotFound = "host-not-found"
)

// CheckURL returns the parsed URL when the app may call it: https (http
// too with AllowPrivate), a host, no user info, and a host that resolves
// only to public addresses. A refusal is EINVALID on field, with Type one of
// the Reason codes; a failing lookup is EUNAVAILABLE.
func (g Guard) CheckURL(ctx context.Context, field, raw string) (*url.URL, error) {
	const op = "egress.CheckURL"
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Hostname() == "" || u.Opaque != "" {
		return nil, &switchboard.Error{Code: switchboard.EINVALID, Op: op, Field: field, Type: ReasonURL, Message: "the URL is malformed: an " +
			"absolute https URL with a host is required"}
	}
	if u.User != nil {
		return nil, &switchboard.Error{Code: switchboard.EINVALID, Op: op, Field: field, Type: ReasonURL, Message: "the URL must not carry a user name or password"}
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && g.AllowPrivate:
	default:
		return nil, &switchboard.Error{Code: switchboard.EINVALID, Op: op, Field: field, Type: ReasonScheme, Message: "the URL must use https"}
	}
	if _, err := g.resolve(ctx, u.Hostname()); err != nil {
		return nil, withField(err, field)
	}
	return u, nil
}

func withField(err error, field string) error {
	if e, ok := err.(*switchboard.Error); ok {
		c := *e
		c.Field = field
		return &c
	}
	return err
}

// resolve returns the addresses of host, all of them allowed, or an error.
func (g Guard) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	const op = "egress.resolve"
	host = strings.TrimSuffix(host, ".")
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
			addrs = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
		} else {
			r := g.Resolver
			if r == nil {
				r = net.DefaultResolver
			}
			lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			found, err := r.LookupNetIP(lctx, "ip", host)
			if err != nil {
				var dnsErr *net.DNSError
				if de, ok := err.(*net.DNSError); ok {
					dnsErr = de
				}
				if dnsErr != nil && dnsErr.IsNotFound {
					return nil, &switchboard.Error{Code: switchboard.EINVALID, Op: op, Type: ReasonNotFound, Message: "the URL's host name does not resolve"}
				}
				return nil, &switchboard.Error{Code: switchboard.EUNAVAILABLE, Op: op, Message: "the URL's host name could not be looked up now"}
			}
			addrs = found
		}
	}
	if len(addrs) == 0 {
		return nil, &switchboard.Error{Code: switchboard.EINVALID, Op: op, Type: ReasonNotFound, Message: "the URL's host name does not resolve"}
	}
	for _, a := range addrs {
		if !g.AllowPrivate && !Public(a) {
			return nil, &switchboard.Error{Code: switchboard.EINVALID, Op: op, Type: ReasonAddress,
				Message: "the URL's host is on a loopback, private, link-local or unspecified address; only public hosts can be called"}
		}
	}
	return addrs, nil
}

// Public reports whether a is an address the app may call from Azure: not
// loopback, private (RFC 1918, RFC 4193), link-local (the metadata
// services), unspecified, multicast, one of the other ranges that are not
// the Internet (nonPublic), or an IPv4-mapped form of those.
func Public(a netip.Addr) bool {
	a = a.Unmap()
	switch {
	case !a.IsValid(), a.IsLoopback(), a.IsPrivate(), a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast(),
		a.IsInterfaceLocalMulticast(), a.IsMulticast(), a.IsUnspecified():
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// nonPublic are further ranges that are not the Internet: "this network",
// carrier-grade NAT shared space, IETF protocol assignments, benchmarking,
// reserved and the limited broadcast, NAT64 and IPv4-compatible IPv6.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("::/96"),
}

// Refused reports whether err (from a request made with Client, or from
// DialContext) is the guard refusing an address, decided before any
// connection was opened.
func Refused(err error) bool {
	var e *switchboard.Error
	return errors.As(err, &e) && e.Type == ReasonAddress
}

// DialContext resolves addr's host, refuses it unless every address is
// allowed, and dials the first address that answers. It is the dialer of
// the guard's HTTP client, so that the check holds at every connection, not
// only when a URL is saved.
func (g Guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("egress: %w", err)
	}
	addrs, err := g.resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	dial := g.Dial
	if dial == nil {
		dial = (&net.Dialer{Timeout: 10 * time.Second}).DialContext
	}
	var last error
	for _, a := range addrs {
		c, err := dial(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
		if err == nil {
			return c, nil
		}
		last = err
	}
	return nil, last
}

// Client returns an HTTP client that dials through the guard, follows no
// redirect (a receiver could point it anywhere), trusts RootCAs and gives
// up after timeout.
func (g Guard) Client(timeout time.Duration) *http.Client {
	tr := &http.Transport{
		DialContext: g.DialContext,
		// No proxy: it would connect on our behalf, past the rules.
		Proxy:                 nil,
		TLSClientConfig:       &tls.Config{RootCAs: g.RootCAs, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   10,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

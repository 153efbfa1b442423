// Package acs talks to Azure Communication Services: it parses an ACS
// connection string and checks that it works by creating an identity with
// a VoIP token, signed with the resource's access key (HMAC-SHA256, as ACS
// documents for access-key authentication). Nothing here ever puts the
// access key (or the connection string, which holds it) into an error
// message or a log line.
package acs

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"time"

	"switchboard/handler/egress"
	"switchboard/handler/switchboard"
)

// APIVersion is the Identity API version the check uses.
const APIVersion = "2023-10-01"

// Problem types of Check's errors, stable: the settings API returns them as
// the reason of a failed check.
const (
	TypeMalformed          = switchboard.ACSTypeMalformed
	TypeUnreachable        = "acs-unreachable"
	TypeKeyRefused         = "acs-access-key-refused"
	TypeInsufficientRights = "acs-insufficient-permissions"
	TypeNotACS             = "acs-endpoint-not-acs"
	TypeNotAllowed         = switchboard.ACSTypeNotAllowed
	TypeUnexpected         = "acs-unexpected-response"
)

// ConnectionString is a parsed ACS connection string; the type and its
// parser are domain vocabulary (settings validates with them without
// importing this adapter).
type ConnectionString = switchboard.ACSConnectionString

// ParseConnectionString is switchboard.ParseACSConnectionString.
func ParseConnectionString(s string) (ConnectionString, error) {
	return switchboard.ParseACSConnectionString(s)
}

// Sign adds the access-key authentication headers to req for body: x-ms-date,
// x-ms-content-sha256 and Authorization, as ACS documents ("Sign an HTTP
// request with HMAC"): the signature is the base64 HMAC-SHA256, keyed with
// the decoded access key, of
//
//	VERB "\n" path-and-query "\n" x-ms-date ";" host ";" x-ms-content-sha256
func Sign(req *http.Request, body []byte, key []byte, now time.Time) {
	date := now.UTC().Format(http.TimeFormat)
	sum := sha256.Sum256(body)
	contentHash := base64.StdEncoding.EncodeToString(sum[:])
	host := req.URL.Host
	if req.Host != "" {
		host = req.Host
	}
	req.Header.Set("x-ms-date", date)
	req.Header.Set("x-ms-content-sha256", contentHash)
	req.Header.Set("Authorization", "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature="+
		Signature(key, req.Method, req.URL.RequestURI(), date, host, contentHash))
}

// Signature returns the base64 HMAC-SHA256 of the string ACS signs.
func Signature(key []byte, method, pathAndQuery, date, host, contentHash string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(method + "\n" + pathAndQuery + "\n" + date + ";" + host + ";" + contentHash))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Options configures a Client.
type Options struct {
	// AllowPrivate (ALLOW_PRIVATE_ENDPOINTS: local development and tests
	// only) lifts the endpoint's host, port and address rules.
	AllowPrivate bool
	// RootCAs are the certificates trusted for the endpoint (nil: the
	// system's, which honour SSL_CERT_FILE).
	RootCAs *x509.CertPool
	// Resolver and Dial are how the client finds and connects to the
	// endpoint (nil: net.DefaultResolver and a net.Dialer). Dial is called
	// only with an address that passed the address rules.
	Resolver egress.Resolver
	Dial     egress.DialFunc
	Now      func() time.Time
	// Timeout bounds one check (default 20 s).
	Timeout time.Duration
}

// Client checks ACS connection strings. Any tenant admin picks the endpoint,
// so a check must not become a way to reach the deployment's own network:
// the endpoint must be an ACS host on port 443 (CheckEndpoint), and the
// connection goes through egress.Guard, the rules of every tenant-chosen
// URL: every address the host resolves to must be public, and the address
// dialled is the one checked (no second lookup to rebind). Redirects are
// not followed, and a failed check says only its reason in a fixed
// sentence, never the transport's text or the remote reply.
type Client struct {
	http         *http.Client
	allowPrivate bool
	now          func() time.Time
	timeout      time.Duration
}

// New returns a Client configured by o.
func New(o Options) *Client {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Timeout <= 0 {
		o.Timeout = 20 * time.Second
	}
	g := egress.Guard{AllowPrivate: o.AllowPrivate, Resolver: o.Resolver, Dial: o.Dial, RootCAs: o.RootCAs}
	return &Client{http: g.Client(o.Timeout), allowPrivate: o.AllowPrivate, now: o.Now, timeout: o.Timeout}
}

// identityReply is the part of a "create identity" reply the check reads.
type identityReply struct {
	Identity struct {
		ID string `json:"id"`
	} `json:"identity"`
	AccessToken struct {
		Token string `json:"token"`
	} `json:"accessToken"`
}

// Check verifies that connString can issue a token: it creates an ACS
// identity with a VoIP token, then deletes that identity again (best
// effort: a leftover identity costs nothing and holds no data).
//
// Returns EINVALID (Type TypeMalformed, Field "connectionString") for a
// malformed string, EINVALID (TypeNotAllowed) for an endpoint the rules
// refuse (CheckEndpoint, or an address that is not public), EUNAVAILABLE
// (TypeUnreachable) when the endpoint cannot be reached or fails (5xx, 429,
// timeout), EUNAUTHORIZED (TypeKeyRefused) when ACS refuses the access key
// (401), EFORBIDDEN (TypeInsufficientRights) on 403, EINVALID (TypeNotACS)
// when the endpoint answers like something that is not an ACS resource
// (404, other 4xx, a redirect), and EUNAVAILABLE (TypeUnexpected) for a
// reply the check cannot read. Messages are fixed sentences per reason.
func (c *Client) Check(ctx context.Context, connString string) error {
	const op = "acs.Check"
	cs, err := ParseConnectionString(connString)
	if err != nil {
		return err
	}
	if err := cs.CheckEndpoint(c.allowPrivate); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	body := []byte(`{"createTokenWithScopes":["voip"]}`)
	status, reply, err := c.do(ctx, cs, http.MethodPost, "identities", body)
	if egress.Refused(err) {
		return checkError(switchboard.EINVALID, op, TypeNotAllowed, "The endpoint resolves to a loopback, private or link-local address; it was not contacted.")
	}
	if err != nil {
		return checkError(switchboard.EUNAVAILABLE, op, TypeUnreachable, "The endpoint could not be reached (no connection, no TLS with a trusted "+
			"certificate, or no reply in time); try again later.")
	}
	if status != http.StatusCreated && status != http.StatusOK {
		return statusError(op, status)
	}
	var id identityReply
	if err := json.Unmarshal(reply, &id); err != nil || id.Identity.ID == "" || id.AccessToken.Token == "" {
		return checkError(switchboard.EUNAVAILABLE, op, TypeUnexpected, "The endpoint answered without an identity and token: it does not behave "+
			"like Azure Communication Services.")
	}
	// The identity was only a probe: remove it (and its token) again.
	_, _, _ = c.do(ctx, cs, http.MethodDelete, "identities/"+url.PathEscape(id.Identity.ID), nil)
	return nil
}

func (c *Client) do(ctx context.Context, cs ConnectionString, method, path string, body []byte) (int, []byte, error) {
	u := cs.Endpoint + path + "?api-version=" + APIVersion
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	Sign(req, body, cs.AccessKey, c.now())
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, reply, nil
}

func checkError(code, op, typ, message string) error {
	return &switchboard.Error{Code: code, Op: op, Type: typ, Message: message}
}

// statusError classifies an ACS error reply by its status alone: the
// reply's text comes from whatever answered, which the caller chose, so it
// is not passed on.
func statusError(op string, status int) error {
	switch {
	case status == http.StatusUnauthorized:
		return checkError(switchboard.EUNAUTHORIZED, op, TypeKeyRefused, "The endpoint refused the access key (401): the key is wrong, was "+
			"regenerated, or belongs to another resource.")
	case status == http.StatusForbidden:
		return checkError(switchboard.EFORBIDDEN, op, TypeInsufficientRights, "The endpoint accepted the key but refused to issue a token (403): "+
			"insufficient permissions.")
	case status == http.StatusTooManyRequests || status >= 500:
		return checkError(switchboard.EUNAVAILABLE, op, TypeUnreachable, "The endpoint is busy or failing (429 or 5xx); try again later.")
	case status >= 300 && status < 400:
		return checkError(switchboard.EINVALID, op, TypeNotACS, "The endpoint answered with a redirect, which is not followed: it does not look "+
			"like an Azure Communication Services resource.")
	case status >= 400:
		return checkError(switchboard.EINVALID, op, TypeNotACS, "The endpoint refused the identity request (4xx): it does not look like an Azure "+
			"Communication Services resource.")
	}
	return checkError(switchboard.EUNAVAILABLE, op, TypeUnexpected, "The endpoint answered the identity request with an unexpected status.")
}

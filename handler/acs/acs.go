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
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

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

// Client checks ACS connection strings.
type Client struct {
	http    *http.Client
	now     func() time.Time
	timeout time.Duration
}

// NewClient returns a Client that sends its requests through hc (nil: a
// client of its own; tests pass one that trusts their fake's certificate).
func NewClient(hc *http.Client, now func() time.Time) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 20 * time.Second}
	}
	if now == nil {
		now = time.Now
	}
	return &Client{http: hc, now: now, timeout: 20 * time.Second}
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
// malformed string, EUNAVAILABLE (TypeUnreachable) when the endpoint cannot
// be reached or fails (5xx, 429, timeout), EUNAUTHORIZED (TypeKeyRefused)
// when ACS refuses the access key (401), EFORBIDDEN (TypeInsufficientRights)
// on 403, EINVALID (TypeNotACS) when the endpoint answers like something
// that is not an ACS resource (404, other 4xx), and EUNAVAILABLE
// (TypeUnexpected) for a reply the check cannot read.
func (c *Client) Check(ctx context.Context, connString string) error {
	const op = "acs.Check"
	cs, err := ParseConnectionString(connString)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	body := []byte(`{"createTokenFor":["voip"]}`)
	status, reply, err := c.do(ctx, cs, http.MethodPost, "identities", body)
	if err != nil {
		return checkError(switchboard.EUNAVAILABLE, op, TypeUnreachable, "could not reach %s: %v", cs.Endpoint, transportReason(err))
	}
	if status != http.StatusCreated && status != http.StatusOK {
		return statusError(op, cs.Endpoint, status, reply)
	}
	var id identityReply
	if err := json.Unmarshal(reply, &id); err != nil || id.Identity.ID == "" || id.AccessToken.Token == "" {
		return checkError(switchboard.EUNAVAILABLE, op, TypeUnexpected, "%s answered %d without an identity and token: it does not behave like Azure Communication Services", cs.Endpoint, status)
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

func checkError(code, op, typ, format string, args ...any) error {
	e := switchboard.Errorf(code, op, format, args...)
	e.Type = typ
	return e
}

// statusError classifies an ACS error reply. ACS error bodies are
// {"error": {"code": "...", "message": "..."}}; their text holds no secret.
func statusError(op, endpoint string, status int, reply []byte) error {
	detail := ""
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(reply, &body) == nil && (body.Error.Code != "" || body.Error.Message != "") {
		detail = fmt.Sprintf(" (ACS says: %s %s)", clip(body.Error.Code, 64), clip(body.Error.Message, 200))
	}
	switch {
	case status == http.StatusUnauthorized:
		return checkError(switchboard.EUNAUTHORIZED, op, TypeKeyRefused, "%s refused the access key (401): the key is wrong, was regenerated, or belongs to another resource%s", endpoint, detail)
	case status == http.StatusForbidden:
		return checkError(switchboard.EFORBIDDEN, op, TypeInsufficientRights, "%s accepted the request but refused to issue a token (403): insufficient permissions%s", endpoint, detail)
	case status == http.StatusTooManyRequests || status >= 500:
		return checkError(switchboard.EUNAVAILABLE, op, TypeUnreachable, "%s failed with %d; try again later%s", endpoint, status, detail)
	case status >= 400:
		return checkError(switchboard.EINVALID, op, TypeNotACS, "%s answered %d to an identity request: it does not look like an Azure Communication Services resource%s", endpoint, status, detail)
	}
	return checkError(switchboard.EUNAVAILABLE, op, TypeUnexpected, "%s answered %d to an identity request, expected 201", endpoint, status)
}

func clip(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// transportReason says briefly why a request did not get a reply.
func transportReason(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "no reply in time"
	case errors.Is(err, context.Canceled):
		return "the request was cancelled"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

package graph

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"

	"switchboard/handler/switchboard"
)

func ioNopCloser(r io.Reader) io.ReadCloser { return io.NopCloser(r) }

// signInReasons maps Entra (AADSTS) error codes to what a tenant admin (or
// the deployment's operator) can do about them. Codes from
// https://learn.microsoft.com/entra/identity-platform/reference-error-codes.
var signInReasons = map[int]struct {
	reason  switchboard.SourceReason
	message string
}{
	50020: {switchboard.SourceNotInvited, "the presence account is not a guest of this tenant: invite it as an external user"},
	50034: {switchboard.SourceNotInvited, "the presence account does not exist in this tenant: invite it as an external user"},
	51004: {switchboard.SourceNotInvited, "the presence account is not in this tenant's directory: invite it as an external user"},
	90072: {switchboard.SourceNotInvited, "the presence account is not a guest of this tenant: invite it as an external user"},
	50076: {switchboard.SourceMFARequired, "the tenant requires multi-factor authentication for the presence account: exclude it from MFA, e.g. " +
		"with a Conditional Access policy limited to trusted locations"},
	50079: {switchboard.SourceMFARequired, "the tenant requires the presence account to register for multi-factor authentication: exclude it from MFA"},
	50072: {switchboard.SourceMFARequired, "the tenant requires the presence account to enrol in multi-factor authentication: exclude it from MFA"},
	50074: {switchboard.SourceMFARequired, "the tenant requires strong authentication of the presence account: exclude it from MFA"},
	50158: {switchboard.SourceMFARequired, "an external security challenge (MFA) is required for the presence account: exclude it"},
	50126: {switchboard.SourceWrongPassword, "the presence account's password is wrong: the deployment's operator must update it"},
	50055: {switchboard.SourceSignInBlocked, "the presence account's password has expired: the deployment's operator must renew it"},
	50053: {switchboard.SourceSignInBlocked, "the presence account is locked after too many sign-ins, or blocked for suspicious activity"},
	50057: {switchboard.SourceSignInBlocked, "the presence account is disabled"},
	53003: {switchboard.SourceSignInBlocked, "a Conditional Access policy of the tenant blocks the presence account's sign-in"},
	530035: {switchboard.SourceSignInBlocked, "the tenant's security defaults block the presence account's sign-in (legacy or unsafe " +
		"authentication): exclude it or use Conditional Access"},
	50131:  {switchboard.SourceSignInBlocked, "a Conditional Access policy of the tenant blocks the sign-in"},
	500213: {switchboard.SourceSignInBlocked, "the tenant's cross-tenant access policy does not let the presence account in"},
	65001: {switchboard.SourcePermissionNotGranted, "the delegated permissions (Presence.Read.All, User.Read, User.ReadBasic.All) are not " +
		"granted: open the admin-consent URL as a tenant admin"},
	65004:  {switchboard.SourcePermissionNotGranted, "consent to the presence app was declined: open the admin-consent URL as a tenant admin"},
	650056: {switchboard.SourcePermissionNotGranted, "the presence app is not consented in this tenant: open the admin-consent URL as a tenant admin"},
	700016: {
		switchboard.SourcePermissionNotGranted,
		"the presence app is not known in this tenant: a tenant admin must consent to it first (admin-consent URL)",
	},
	7000218: {switchboard.SourceAppMisconfigured, "the presence app does not allow public client flows, which presence accounts need: the " +
		"deployment's operator must enable them"},
	700025:  {switchboard.SourceAppMisconfigured, "the presence app is a public client and must not send a secret"},
	7000215: {switchboard.SourceAppMisconfigured, "the presence app's client secret is wrong: the deployment's operator must update it"},
	7000222: {switchboard.SourceAppMisconfigured, "the presence app's client secret has expired: the deployment's operator must renew it"},
	70002:   {switchboard.SourceAppMisconfigured, "the presence app's credentials are invalid"},
	70001:   {switchboard.SourceAppMisconfigured, "the presence app is disabled"},
	// An unknown tenant is, for a multi-tenant app, most often one that
	// never consented (or a mistyped id): the tenant admin's to fix.
	90002: {switchboard.SourcePermissionNotGranted, "Microsoft Entra ID knows no such tenant, or the presence app was never consented there: check " +
		"the tenant id and open the admin-consent URL as a tenant admin"},
	50196: {switchboard.SourceThrottled, "Microsoft Entra ID throttled the sign-ins (too many requests)"},
}

var aadsts = regexp.MustCompile(`AADSTS(\d+)`)

// classify turns an SDK or Entra error into a SourceError.
func classify(src switchboard.PresenceSource, err error) *switchboard.SourceError {
	var se *switchboard.SourceError
	if errors.As(err, &se) {
		c := *se
		c.Source = src
		return &c
	}
	var afe *azidentity.AuthenticationFailedError
	if errors.As(err, &afe) {
		return signInError(src, afe)
	}
	var ode *odataerrors.ODataError
	if errors.As(err, &ode) {
		code, msg := "", ""
		if m := ode.GetErrorEscaped(); m != nil {
			code, msg = deref(m.GetCode()), deref(m.GetMessage())
		}
		return httpError(src, ode.ResponseStatusCode, ode.ResponseHeaders, code, msg, err)
	}
	var api *abs.ApiError
	if errors.As(err, &api) {
		return httpError(src, api.ResponseStatusCode, api.ResponseHeaders, "", api.Message, err)
	}
	if isContextErr(err) {
		return &switchboard.SourceError{Source: src, Reason: switchboard.SourceGraphError, Message: "Microsoft Graph did not answer in time", Err: err}
	}
	// A credential that could not even ask (Entra unreachable, bad
	// authority) fails before any HTTP status.
	msg := switchboard.RedactURLs(err.Error())
	if m := aadsts.FindStringSubmatch(msg); m != nil {
		code, _ := strconv.Atoi(m[1])
		if r, ok := signInReasons[code]; ok {
			return &switchboard.SourceError{Source: src, Reason: r.reason, Message: r.message, Code: "AADSTS" + m[1], Err: err}
		}
	}
	if strings.Contains(msg, "authentication failed") || strings.Contains(msg, "Credential") {
		return &switchboard.SourceError{Source: src, Reason: switchboard.SourceSignInError, Message: "the sign-in to Microsoft Entra ID " +
			"failed: " + firstLine(msg), Err: err}
	}
	return &switchboard.SourceError{Source: src, Reason: switchboard.SourceGraphError, Message: "the request to Microsoft Graph " +
		"failed: " + firstLine(msg), Err: err}
}

// signInError reads Entra's error reply: {"error", "error_description",
// "error_codes": [50076]}.
func signInError(src switchboard.PresenceSource, afe *azidentity.AuthenticationFailedError) *switchboard.SourceError {
	if afe.RawResponse == nil {
		return &switchboard.SourceError{Source: src, Reason: switchboard.SourceSignInError, Message: "Microsoft Entra ID could not be reached for " +
			"the sign-in", Transient: true, Err: afe}
	}
	body, _ := runtime.Payload(afe.RawResponse)
	var reply struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
		Codes       []int  `json:"error_codes"`
	}
	_ = json.Unmarshal(body, &reply)
	codes := reply.Codes
	if len(codes) == 0 {
		if m := aadsts.FindStringSubmatch(reply.Description); m != nil {
			c, _ := strconv.Atoi(m[1])
			codes = []int{c}
		}
	}
	for _, c := range codes {
		if r, ok := signInReasons[c]; ok {
			return &switchboard.SourceError{Source: src, Reason: r.reason, Message: r.message, Code: fmt.Sprintf("AADSTS%d", c), Status: 0, Err: afe}
		}
	}
	msg := firstLine(reply.Description)
	if msg == "" {
		msg = fmt.Sprintf("Microsoft Entra ID answered %d", afe.RawResponse.StatusCode)
	}
	code := ""
	if len(codes) > 0 {
		code = fmt.Sprintf("AADSTS%d", codes[0])
	}
	// Entra failing (5xx) or busy (429) is not the source's fault.
	st := afe.RawResponse.StatusCode
	transient := st >= 500 || st == http.StatusTooManyRequests
	return &switchboard.SourceError{
		Source:    src,
		Reason:    switchboard.SourceSignInError,
		Message:   "the sign-in failed: " + msg,
		Code:      code,
		Transient: transient,
		Err:       afe,
	}
}

// httpError classifies a Graph error reply.
func httpError(src switchboard.PresenceSource, status int, headers *abs.ResponseHeaders, code, msg string, err error) *switchboard.SourceError {
	se := &switchboard.SourceError{Source: src, Status: status, Code: code, Err: err}
	detail := firstLine(msg)
	switch {
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		se.Reason = switchboard.SourceThrottled
		se.RetryAfter = retryAfter(headers)
		se.Message = fmt.Sprintf("Microsoft Graph is throttling this tenant's requests (HTTP %d)", status)
	case status == http.StatusForbidden:
		se.Reason = switchboard.SourcePermissionNotGranted
		if src == switchboard.SourceApplication {
			se.Message = "Graph refused the read: application permission Presence.Read.All is not granted in this tenant (a tenant admin can grant it)"
		} else {
			se.Message = "Graph refused the read: grant the delegated permissions with the admin-consent URL; if they are granted, guest access " +
				"restrictions may hide users from the presence account (assign it the Directory Readers role)"
		}
	case status == http.StatusUnauthorized:
		se.Reason = switchboard.SourceSignInError
		se.Message = "Graph did not accept the sign-in token: " + detail
	case status == http.StatusNotFound:
		se.Reason = switchboard.SourceGraphError
		se.Message = "Graph found no such resource: " + detail
	case status >= 500:
		se.Reason = switchboard.SourceGraphError
		se.Message = fmt.Sprintf("Microsoft Graph failed (HTTP %d): %s", status, detail)
	default:
		se.Reason = switchboard.SourceGraphError
		se.Message = fmt.Sprintf("Microsoft Graph refused the request (HTTP %d): %s", status, detail)
	}
	return se
}

// retryAfter reads Retry-After: seconds or an HTTP date.
func retryAfter(h *abs.ResponseHeaders) time.Duration {
	if h == nil {
		return 0
	}
	for _, name := range []string{"Retry-After", "retry-after"} {
		for _, v := range h.Get(name) {
			v = strings.TrimSpace(v)
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				return time.Duration(n) * time.Second
			}
			if t, err := http.ParseTime(v); err == nil {
				return time.Until(t)
			}
		}
	}
	return 0
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

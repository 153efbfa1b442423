// Package auth verifies the Entra ID (Azure AD) access tokens that callers
// of tenant routes present: RS256 signatures against the issuer's published
// keys (JWKS), the audience, the validity window and the issuer of the
// token's own tenant. The Router then checks that the token's tenant (tid)
// is the route's. Function keys are the Functions host's business, not
// this package's.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"switchboard/handler/switchboard"
)

// DefaultLeeway is the clock skew allowed on exp and nbf.
const DefaultLeeway = time.Minute

// Options configures a Verifier.
type Options struct {
	// AuthorityHost is the Entra authority, https://login.microsoftonline.com/
	// in the public cloud (AZURE_AUTHORITY_HOST).
	AuthorityHost string
	// Audience is the expected aud (API_AUDIENCE): the API's application
	// (client) id or its application id URI. A bare GUID also accepts
	// api://<GUID> and the other way round: v2.0 tokens carry the client
	// id, v1.0 tokens the application id URI, and the API takes both.
	Audience string
	// JWKSURL is where the signing keys are published; default
	// {AuthorityHost}common/discovery/v2.0/keys (v1.0 and v2.0 tokens are
	// signed with the same keys).
	JWKSURL string
	// HTTPClient fetches the keys (nil: a client with a 10 s timeout).
	HTTPClient *http.Client
	// Now is the clock (nil: time.Now); Leeway the allowed skew on exp and
	// nbf (0: DefaultLeeway).
	Now    func() time.Time
	Leeway time.Duration
	// Log receives failures to fetch the keys (nil: discarded).
	Log *slog.Logger
}

// Verifier is an switchboard.Verifier for Entra access tokens.
type Verifier struct {
	keys      keyfunc.Keyfunc
	parser    *jwt.Parser
	audiences []string
	authority string // with a trailing slash
	v1Issuer  string // prefix of v1.0 issuers: https://sts.windows.net/ in the public cloud
}

var _ switchboard.Verifier = (*Verifier)(nil)

// New returns a Verifier. It fetches the signing keys once now (a failure is
// logged, not returned: the keys are fetched again when a token names an
// unknown key, at most once a minute) and refreshes them hourly until ctx
// ends.
func New(ctx context.Context, o Options) (*Verifier, error) {
	const op = "auth.New"
	if strings.TrimSpace(o.Audience) == "" {
		return nil, switchboard.Errorf(switchboard.EINVALID, op, "an audience (API_AUDIENCE) is required")
	}
	authority := o.AuthorityHost
	if authority == "" {
		authority = "https://login.microsoftonline.com/"
	}
	if !strings.HasSuffix(authority, "/") {
		authority += "/"
	}
	au, err := url.Parse(authority)
	if err != nil || au.Scheme != "https" || au.Host == "" {
		return nil, switchboard.Errorf(switchboard.EINVALID, op, "authority host %q is not an https URL", authority)
	}
	jwksURL := o.JWKSURL
	if jwksURL == "" {
		jwksURL = authority + "common/discovery/v2.0/keys"
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	keys, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{jwksURL}, keyfunc.Override{
		Client:          hc,
		HTTPTimeout:     10 * time.Second,
		RefreshInterval: time.Hour,
		// A token naming an unknown key refetches the keys (Entra rotates
		// them), at most once a minute; a request never waits for that
		// budget (a flood of made-up key ids must not stall the API).
		RefreshUnknownKID: rate.NewLimiter(rate.Every(time.Minute), 1),
		RateLimitWaitMax:  time.Second,
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(ctx context.Context, err error) {
				log.Error("auth: fetching the token signing keys failed", "url", u, "err", err)
			}
		},
	})
	if err != nil {
		return nil, switchboard.Errorf(switchboard.EINVALID, op, "signing keys at %q: %v", jwksURL, err)
	}
	now := o.Now
	if now == nil {
		now = time.Now
	}
	leeway := o.Leeway
	if leeway <= 0 {
		leeway = DefaultLeeway
	}
	v := &Verifier{
		keys:      keys,
		audiences: Audiences(o.Audience),
		authority: authority,
		v1Issuer:  v1IssuerPrefix(au.Host, authority),
	}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(now),
		jwt.WithExpirationRequired(),
		jwt.WithAudience(v.audiences...),
	)
	return v, nil
}

// Audiences returns the aud values accepted for audience: itself, and for
// a bare GUID also api://<GUID> (and for api://<GUID> the bare GUID).
func Audiences(audience string) []string {
	audience = strings.TrimSpace(audience)
	out := []string{audience}
	if _, err := uuid.Parse(audience); err == nil && len(audience) == 36 {
		out = append(out, "api://"+audience)
	} else if id, ok := strings.CutPrefix(audience, "api://"); ok {
		if _, err := uuid.Parse(id); err == nil && len(id) == 36 {
			out = append(out, id)
		}
	}
	return out
}

// v1IssuerPrefix returns the prefix of v1.0 token issuers for an authority:
// sts.windows.net in the public cloud, sts.chinacloudapi.cn in Azure China,
// and for any other authority (sovereign clouds, local fakes) the
// authority itself: https://<authority>/<tid>/.
func v1IssuerPrefix(host, authority string) string {
	switch strings.ToLower(host) {
	case "login.microsoftonline.com", "login.windows.net", "login.microsoft.com":
		return "https://sts.windows.net/"
	case "login.chinacloudapi.cn", "login.partner.microsoftonline.cn":
		return "https://sts.chinacloudapi.cn/"
	}
	return authority
}

// errNoKID refuses a token whose header names no signing key.
var errNoKID = errors.New("auth: the token names no signing key (kid)")

// claims are the parts of an Entra access token the API reads.
type claims struct {
	jwt.RegisteredClaims
	TenantID string `json:"tid"`
	ObjectID string `json:"oid"`
	AZP      string `json:"azp"`
	AppID    string `json:"appid"`
	// Roles are the app roles assigned to the user or granted to the
	// application (SPEC section 9).
	Roles []string `json:"roles"`
}

// Verify checks token and returns its caller. Returns EUNAUTHORIZED, with a
// message saying what is wrong, for a malformed token, an algorithm other
// than RS256, an unknown signing key, a bad signature, an expired or not
// yet valid token, a wrong audience, a missing tid, or an issuer other
// than the Entra issuer of the token's tenant.
func (v *Verifier) Verify(ctx context.Context, token string) (switchboard.Principal, error) {
	var c claims
	keyOf := v.keys.KeyfuncCtx(ctx)
	_, err := v.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		// Entra signs every token under a named key. Without a kid the
		// key set would fall back to whichever key it holds, so a token
		// could be checked against a key it never named.
		if kid, _ := t.Header["kid"].(string); kid == "" {
			return nil, errNoKID
		}
		return keyOf(t)
	})
	if err != nil {
		return switchboard.Principal{}, unauthorized(v.describe(token, err))
	}
	tid := strings.ToLower(c.TenantID)
	if u, err := uuid.Parse(tid); err != nil || len(tid) != 36 || u.String() != tid {
		return switchboard.Principal{}, unauthorized("the token has no tenant id (tid)")
	}
	if !v.validIssuer(c.Issuer, tid) {
		return switchboard.Principal{}, unauthorized(fmt.Sprintf(
			"the token's issuer %q is not Entra ID's issuer for tenant %s (%s)",
			clip(c.Issuer),
			tid,
			v.authority+tid+"/v2.0",
		))
	}
	p := switchboard.Principal{TenantID: tid, ObjectID: strings.ToLower(c.ObjectID), Subject: c.Subject, AppID: c.AZP, Roles: c.Roles}
	if p.AppID == "" {
		p.AppID = c.AppID
	}
	return p, nil
}

func (v *Verifier) validIssuer(iss, tid string) bool {
	return iss == v.authority+tid+"/v2.0" || iss == v.v1Issuer+tid+"/"
}

func unauthorized(msg string) error {
	return &switchboard.Error{Code: switchboard.EUNAUTHORIZED, Op: "auth.Verify", Message: msg}
}

// describe turns a jwt error into a message for the caller.
func (v *Verifier) describe(token string, err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "the bearer token is not a well-formed JWT"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if alg := headerString(token, "alg"); alg != "RS256" {
			return fmt.Sprintf("the token is signed with %q; only RS256 is accepted", clip(alg))
		}
		return "the token's signature is invalid"
	case errors.Is(err, errNoKID):
		return "the token names no signing key (kid)"
	case errors.Is(err, keyfunc.ErrKeyfunc), errors.Is(err, jwt.ErrTokenUnverifiable):
		if alg := headerString(token, "alg"); alg != "RS256" {
			return fmt.Sprintf("the token is signed with %q; only RS256 is accepted", clip(alg))
		}
		kid := headerString(token, "kid")
		if kid == "" {
			return "the token names no signing key (kid)"
		}
		return fmt.Sprintf("the token's signing key %q is not one of Entra ID's published keys", clip(kid))
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && strings.Contains(err.Error(), "exp"):
		return "the token has no expiry (exp)"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "the token has expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "the token is not valid yet (nbf)"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "the token was issued in the future (iat)"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return fmt.Sprintf("the token is for another audience; this API is %s", strings.Join(v.audiences, " or "))
	}
	return "the token is invalid: " + err.Error()
}

// headerString reads a header parameter of token without verifying it (for
// error messages only).
func headerString(token, name string) string {
	t, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
	if err != nil || t == nil {
		return ""
	}
	s, _ := t.Header[name].(string)
	return s
}

func clip(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}

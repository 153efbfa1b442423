package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"

	"switchboard/handler/switchboard"
)

// InteractAPI serves the Interact widget's public routes and the agent
// side's and Assistant's tenant routes.
type InteractAPI struct {
	Sessions switchboard.InteractSessions
	// Verifier checks the widget's bearer tokens in the VerifyToken modes:
	// the same JWKS verifier the API uses. Nil when the deployment has no
	// API_AUDIENCE: then no token passes.
	Verifier switchboard.Verifier
}

// Register adds the routes to rt.
func (a *InteractAPI) Register(rt *Router) {
	rt.Anonymous("POST /api/interact/{t}/sessions", a.widget(a.create))
	rt.Anonymous("GET /api/interact/{t}/sessions/{id}", a.widget(a.customer(a.Sessions.Get)))
	rt.Anonymous("POST /api/interact/{t}/sessions/{id}/leave", a.widget(a.customer(a.Sessions.Leave)))
	rt.Anonymous("POST /api/interact/{t}/sessions/{id}/rejoin", a.widget(a.customer(a.Sessions.Rejoin)))
	for _, p := range []string{
		"/api/interact/{t}/sessions",
		"/api/interact/{t}/sessions/{id}",
		"/api/interact/{t}/sessions/{id}/leave",
		"/api/interact/{t}/sessions/{id}/rejoin",
	} {
		rt.Anonymous("OPTIONS "+p, preflight)
	}
	rt.Tenant("POST /api/tenants/{t}/interact/sessions/{id}/agent-left", a.agent(a.Sessions.AgentLeft))
	rt.Tenant("POST /api/tenants/{t}/interact/sessions/{id}/agent-rejoined", a.agent(a.Sessions.AgentRejoined))
	rt.Tenant("POST /api/tenants/{t}/interact/sessions/{id}/end", a.agent(a.Sessions.End))
	rt.Tenant("POST /api/tenants/{t}/assistant/token", a.assistantToken)
}

// The widget runs on the customer's own web site, so its routes answer
// cross-origin requests from any origin: they carry no cookies (the widget
// key and resume token are headers), so an origin gains nothing it could
// not do without a browser.
func allowCrossOrigin(h http.Header) {
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "Location, Retry-After")
}

// preflight answers a browser's CORS preflight of a widget route.
func preflight(w http.ResponseWriter, r *http.Request) error {
	allowCrossOrigin(w.Header())
	w.Header().Set("Access-Control-Allow-Methods", "GET, POST")
	w.Header().Set("Access-Control-Allow-Headers", "Content-Type, X-Widget-Key, X-Resume-Token, Authorization")
	w.Header().Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func widgetError(code, typ, msg string) error {
	return &switchboard.Error{Code: code, Op: "interact.check", Type: typ, Message: msg}
}

// widget runs the widget's three checks, in this order: Interact enabled,
// the widget key, the tenant's authorization mode.
func (a *InteractAPI) widget(h func(w http.ResponseWriter, r *http.Request, tenant string) error) HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		allowCrossOrigin(w.Header())
		tenant, err := TenantID(r)
		if err != nil {
			return err
		}
		g, err := a.Sessions.Gate(r.Context(), tenant)
		if err != nil {
			return err
		}
		if !g.Enabled {
			return widgetError(switchboard.EFORBIDDEN, switchboard.InteractTypeDisabled, "Interact is not enabled for this tenant")
		}
		if !checkWidgetKey(r.Header.Get("X-Widget-Key"), g.WidgetKey) {
			return widgetError(
				switchboard.EUNAUTHORIZED,
				switchboard.InteractTypeInvalidWidgetKey,
				"the X-Widget-Key header is missing or not this tenant's widget key",
			)
		}
		if err := a.checkToken(r.Context(), r, tenant, g.Authorization); err != nil {
			return err
		}
		return h(w, r, tenant)
	}
}

func (a *InteractAPI) checkToken(ctx context.Context, r *http.Request, tenant, mode string) error {
	if mode != switchboard.InteractAuthorizationVerifyToken && mode != switchboard.InteractAuthorizationVerifyTokenAndTenant {
		return nil
	}
	token, ok := bearer(r)
	if !ok {
		return widgetError(
			switchboard.EUNAUTHORIZED,
			switchboard.InteractTypeInvalidToken,
			"this tenant's widget needs Authorization: Bearer with an Entra access token",
		)
	}
	if a.Verifier == nil {
		return widgetError(
			switchboard.EUNAUTHORIZED,
			switchboard.InteractTypeInvalidToken,
			"this deployment cannot verify tokens: API_AUDIENCE is not configured",
		)
	}
	p, err := a.Verifier.Verify(ctx, token)
	if err != nil {
		return widgetError(switchboard.EUNAUTHORIZED, switchboard.InteractTypeInvalidToken, switchboard.ErrorMessage(err))
	}
	if mode == switchboard.InteractAuthorizationVerifyTokenAndTenant && !strings.EqualFold(p.TenantID, tenant) {
		return widgetError(switchboard.EFORBIDDEN, switchboard.InteractTypeTenantMismatch, "the token was issued by another tenant")
	}
	return nil
}

// checkWidgetKey compares in constant time (of the keys' hashes, so the
// length does not tell either); a GUID in any case.
func checkWidgetKey(got, want string) bool {
	if want == "" {
		return false
	}
	g, w := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(got)))), sha256.Sum256([]byte(strings.ToLower(want)))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// ClientAddress is the caller's address: X-Forwarded-For's first (the
// Functions front end sets it), else the peer.
func ClientAddress(r *http.Request) string {
	if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
		first, _, _ := strings.Cut(xff, ",")
		if first = strings.TrimSpace(first); first != "" {
			if host, _, err := net.SplitHostPort(first); err == nil {
				return host
			}
			return first
		}
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// tooMany answers a refused new session: 429 with Retry-After.
func tooMany(w http.ResponseWriter, r *http.Request, rl *switchboard.InteractRateLimited) {
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(rl.RetryAfter.Seconds()))))
	writeProblem(
		w,
		http.StatusTooManyRequests,
		problem{Type: switchboard.InteractTypeTooManySessions, Title: rl.Message, Status: http.StatusTooManyRequests, Instance: r.URL.Path},
	)
}

func (a *InteractAPI) create(w http.ResponseWriter, r *http.Request, tenant string) error {
	var in switchboard.InteractCreateRequest
	if err := DecodeJSON(r, &in); err != nil {
		return err
	}
	in.ClientAddress = ClientAddress(r)
	v, err := a.Sessions.Create(r.Context(), tenant, in)
	var rl *switchboard.InteractRateLimited
	if errors.As(err, &rl) {
		tooMany(w, r, rl)
		return nil
	}
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/interact/"+tenant+"/sessions/"+v.SessionID)
	return WriteJSON(w, http.StatusCreated, v)
}

// customer serves a route of the session's customer: X-Resume-Token.
func (a *InteractAPI) customer(
	op func(ctx context.Context, tenant, id, resumeToken string) (switchboard.InteractSessionView, error),
) func(w http.ResponseWriter, r *http.Request, tenant string) error {
	return func(w http.ResponseWriter, r *http.Request, tenant string) error {
		v, err := op(r.Context(), tenant, r.PathValue("id"), strings.TrimSpace(r.Header.Get("X-Resume-Token")))
		if err != nil {
			return err
		}
		return WriteJSON(w, http.StatusOK, v)
	}
}

func (a *InteractAPI) agent(op func(ctx context.Context, c switchboard.InteractAgentCall) (switchboard.InteractSessionView, error)) HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		tenant, err := TenantID(r)
		if err != nil {
			return err
		}
		c := switchboard.InteractAgentCall{Tenant: tenant, Session: r.PathValue("id")}
		if AgentOnly(r.Context()) {
			// Role Agent without Flow: only the session's own agent.
			if c.AsAgent, err = Caller(r); err != nil {
				return err
			}
		}
		v, err := op(r.Context(), c)
		if err != nil {
			return err
		}
		return WriteJSON(w, http.StatusOK, v)
	}
}

func (a *InteractAPI) assistantToken(w http.ResponseWriter, r *http.Request) error {
	tenant, err := TenantID(r)
	if err != nil {
		return err
	}
	user, err := Caller(r)
	if err != nil {
		return err
	}
	v, err := a.Sessions.AssistantToken(r.Context(), tenant, user)
	if err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, map[string]any{"acs": v})
}

// Package httpapi serves Switchboard's HTTP API (SPEC section 6) as the
// Functions host forwards it (enableForwardingHttpRequest: the original
// request arrives at its original /api/... path). It is the only place that
// maps domain error codes to HTTP statuses; every error is rendered as
// application/problem+json (RFC 9457).
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"

	"switchboard/handler/switchboard"
)

// MaxBodyBytes bounds every request body.
const MaxBodyBytes = 1 << 20

// HandlerFunc serves one route; a returned error is rendered as a problem.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Router is the API's http.Handler: a net/http ServeMux with problem
// rendering, panic recovery and Entra authentication of tenant routes.
type Router struct {
	mux      *http.ServeMux
	verifier switchboard.Verifier
	log      *slog.Logger
	patterns []string // the tenant routes, as registered
}

// NewRouter returns a Router. A nil verifier turns tenant authentication off
// (API_AUTH=none, local development only).
func NewRouter(log *slog.Logger, verifier switchboard.Verifier) *Router {
	return &Router{mux: http.NewServeMux(), verifier: verifier, log: log}
}

type principalKey struct{}

// PrincipalFrom returns the verified caller of a tenant route, if any.
func PrincipalFrom(ctx context.Context) (switchboard.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(switchboard.Principal)
	return p, ok
}

// Anonymous registers a route that needs no token (health).
func (rt *Router) Anonymous(pattern string, h HandlerFunc) {
	rt.mux.Handle(pattern, rt.wrap(h))
}

// Tenant registers a route under /api/tenants/{t}/...: {t} must be a GUID,
// and unless authentication is off the caller's Entra token must be valid,
// issued by that tenant, and carry one of the app roles the route's row of
// routeAccess names (with authentication off every role is the caller's,
// and ?asUser= names the user).
func (rt *Router) Tenant(pattern string, h HandlerFunc) {
	if !strings.Contains(pattern, "{t}") {
		panic("httpapi: tenant route without {t}: " + pattern)
	}
	if _, ok := routeAccess[pattern]; !ok {
		rt.log.Error("httpapi: tenant route without app roles in routeAccess: it refuses every caller", "route", pattern)
	}
	rt.patterns = append(rt.patterns, pattern)
	rt.mux.Handle(pattern, rt.wrap(func(w http.ResponseWriter, r *http.Request) error {
		tenant, err := TenantID(r)
		if err != nil {
			return err
		}
		var p switchboard.Principal
		if rt.verifier == nil {
			if p, err = localPrincipal(r, tenant); err != nil {
				return err
			}
		} else {
			token, ok := bearer(r)
			if !ok {
				return &switchboard.Error{Code: switchboard.EUNAUTHORIZED, Op: "auth", Message: "a bearer token (Entra ID) is required"}
			}
			if p, err = rt.verifier.Verify(r.Context(), token); err != nil {
				return err
			}
			if !strings.EqualFold(p.TenantID, tenant) {
				return &switchboard.Error{Code: switchboard.EFORBIDDEN, Op: "auth", Message: "the token was issued for another tenant"}
			}
		}
		ctx, err := authorize(r.Context(), r, pattern, p)
		if err != nil {
			return err
		}
		return h(w, r.WithContext(context.WithValue(ctx, principalKey{}, p)))
	}))
}

// TenantRoutes returns the patterns of the tenant routes registered so far.
func (rt *Router) TenantRoutes() []string { return slices.Clone(rt.patterns) }

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return "", false
	}
	return strings.TrimSpace(token), true
}

// ServeHTTP implements http.Handler. Unknown routes and methods get problem
// replies too.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := rt.mux.Handler(r); pattern == "" {
		rt.mux.ServeHTTP(&problemOnError{ResponseWriter: w, r: r}, r)
		return
	}
	rt.mux.ServeHTTP(w, r)
}

// problemOnError turns the mux's plain-text 404 and 405 into problems.
type problemOnError struct {
	http.ResponseWriter
	r       *http.Request
	written bool
}

func (p *problemOnError) WriteHeader(status int) {
	if p.written {
		return
	}
	p.written = true
	title := "no such route"
	if status == http.StatusMethodNotAllowed {
		title = "method not allowed on this route"
	}
	p.ResponseWriter.Header().Del("X-Content-Type-Options")
	writeProblem(
		p.ResponseWriter,
		status,
		problem{Type: strings.ToLower(strings.ReplaceAll(http.StatusText(status), " ", "-")), Title: title, Status: status, Instance: p.r.URL.Path},
	)
}

func (p *problemOnError) Write(b []byte) (int, error) {
	if !p.written {
		p.WriteHeader(http.StatusNotFound)
	}
	return len(b), nil
}

func (rt *Router) wrap(h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				rt.log.Error("handler panicked", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				rt.Error(w, r, switchboard.Errorf(switchboard.EINTERNAL, "http", "panic"))
			}
		}()
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		if err := h(w, r); err != nil {
			rt.Error(w, r, err)
		}
	})
}

// problem is an RFC 9457 problem detail.
type problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Field    string `json:"field,omitempty"`
	Instance string `json:"instance,omitempty"`
}

var codeStatus = map[string]struct {
	status int
	typ    string
}{
	switchboard.EINVALID:      {http.StatusBadRequest, "validation-error"},
	switchboard.ENOTFOUND:     {http.StatusNotFound, "not-found"},
	switchboard.ECONFLICT:     {http.StatusConflict, "conflict"},
	switchboard.EPRECONDITION: {http.StatusPreconditionFailed, "precondition-failed"},
	switchboard.EGONE:         {http.StatusGone, "gone"},
	switchboard.ELIMIT:        {http.StatusConflict, "limit-reached"},
	switchboard.EUNAUTHORIZED: {http.StatusUnauthorized, "unauthorized"},
	switchboard.EFORBIDDEN:    {http.StatusForbidden, "forbidden"},
	switchboard.EUNAVAILABLE:  {http.StatusServiceUnavailable, "service-unavailable"},
	switchboard.EINTERNAL:     {http.StatusInternalServerError, "internal-error"},
}

// Error renders err as a problem. Only internal and unavailable errors are
// logged: the rest are the caller's.
func (rt *Router) Error(w http.ResponseWriter, r *http.Request, err error) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		err = switchboard.Errorf(switchboard.EINVALID, "http", "request body larger than %d bytes", mbe.Limit)
	}
	code := switchboard.ErrorCode(err)
	cs, ok := codeStatus[code]
	if !ok {
		cs = codeStatus[switchboard.EINTERNAL]
	}
	if code == switchboard.EINTERNAL || code == switchboard.EUNAVAILABLE {
		rt.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "code", code, "err", err)
	}
	typ := switchboard.ErrorType(err)
	if typ == "" {
		typ = cs.typ
	}
	p := problem{
		Type:     typ,
		Title:    switchboard.ErrorMessage(err),
		Status:   cs.status,
		Detail:   switchboard.ErrorDetail(err),
		Field:    switchboard.ErrorField(err),
		Instance: r.URL.Path,
	}
	if code == switchboard.EUNAUTHORIZED {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	}
	writeProblem(w, cs.status, p)
}

func writeProblem(w http.ResponseWriter, status int, p problem) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}

// WriteJSON writes v as a JSON reply.
func WriteJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// DecodeJSON reads a JSON request body into dst. Unknown fields, trailing
// data and an empty body are EINVALID; so is a Content-Type other than JSON
// when one is given. For a type error the offending field is named.
func DecodeJSON(r *http.Request, dst any) error {
	const op = "http.DecodeJSON"
	if ct := r.Header.Get("Content-Type"); ct != "" && !isJSONContentType(ct) {
		return &switchboard.Error{Code: switchboard.EINVALID, Op: op, Message: fmt.Sprintf("Content-Type %q is not JSON", ct)}
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(op, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return &switchboard.Error{Code: switchboard.EINVALID, Op: op, Message: "trailing data after the JSON body"}
	}
	return nil
}

func isJSONContentType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(strings.ToLower(mt))
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// jsonError turns an encoding/json error into an EINVALID error that names
// the field where it can.
func jsonError(op string, err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return err
	}
	var ute *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.Is(err, io.EOF):
		return &switchboard.Error{Code: switchboard.EINVALID, Op: op, Message: "the request body is empty; a JSON object is required"}
	case errors.As(err, &ute):
		return &switchboard.Error{
			Code:    switchboard.EINVALID,
			Op:      op,
			Field:   ute.Field,
			Message: fmt.Sprintf("%s must be of type %s, not %s", fieldOrBody(ute.Field), jsonTypeName(ute.Type.Kind().String()), ute.Value),
		}
	case errors.As(err, &se):
		return &switchboard.Error{Code: switchboard.EINVALID, Op: op, Message: fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, err)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &switchboard.Error{Code: switchboard.EINVALID, Op: op, Field: field, Message: fmt.Sprintf("unknown field %q", field)}
	}
	return &switchboard.Error{Code: switchboard.EINVALID, Op: op, Message: "malformed JSON: " + err.Error()}
}

func fieldOrBody(f string) string {
	if f == "" {
		return "the body"
	}
	return f
}

func jsonTypeName(kind string) string {
	switch kind {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "number"
	case "bool":
		return "boolean"
	case "map", "struct":
		return "object"
	case "slice", "array":
		return "array"
	}
	return kind
}

// TenantID returns the route's {t}: an Entra tenant id (a GUID), lower case.
func TenantID(r *http.Request) (string, error) {
	t := r.PathValue("t")
	id, ok := switchboard.NormalizeGUID(t)
	if !ok {
		return "", &switchboard.Error{Code: switchboard.EINVALID, Op: "http", Field: "t", Message: fmt.Sprintf("tenant id %q is not a GUID", t)}
	}
	return id, nil
}

// PathID returns the route's {name} when it is a usable identifier: 1 to 128
// letters, digits and . _ : @ -, starting with a letter or digit.
func PathID(r *http.Request, name string) (string, error) {
	v := r.PathValue(name)
	if !switchboard.ValidID(v) {
		return "", &switchboard.Error{Code: switchboard.EINVALID, Op: "http", Field: name, Message: fmt.Sprintf("%s %q is not a valid id: 1-128 "+
			"letters, digits and . _ : @ -", name, v)}
	}
	return v, nil
}

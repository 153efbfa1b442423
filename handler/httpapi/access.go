package httpapi

import (
	"context"
	"net/http"
	"strings"

	"switchboard/handler/switchboard"
)

// Own says which of a route's resources an Agent may reach (SPEC section
// 9: "its own").
type Own int

const (
	// OwnNone: the route is not an Agent's.
	OwnNone Own = iota
	// OwnUser: the route's {u} must be the caller's oid.
	OwnUser
	// OwnMembership: the caller must be a member of the route's service;
	// the handler checks it (AgentOnly tells it to).
	OwnMembership
	// OwnSession: the caller must be the agent of the route's Interact
	// session; the handler checks it (AgentOnly tells it to).
	OwnSession
)

// access is who may call one route: any of roles, and an Agent for its own
// resources when own is set.
type access struct {
	roles []string
	own   Own
}

var (
	admin = switchboard.RoleAdmin
	super = switchboard.RoleSupervisor
	flow  = switchboard.RoleFlow
)

// routeAccess is the one route → roles table (SPEC section 9): every
// tenant route is in it, keyed by its pattern as registered with
// Router.Tenant (a test fails for a registered route missing here, and a
// route missing at run time is refused to everyone). Admin may do
// everything of its tenant; settings, presence tracking and writing
// services are Admin only; the Supervisor reads everything but secrets and
// cancels outbound tasks and ends conversations; the Flow role is what
// flows and bots do (route, release, outbound tasks, subscriptions); an
// Agent reads the services it is a member of and its own presence; any role
// searches contacts as the Attendant Console (SPEC section 13).
var routeAccess = map[string]access{
	"GET /api/tenants/{t}/settings":                         {roles: []string{admin}},
	"PATCH /api/tenants/{t}/settings":                       {roles: []string{admin}},
	"POST /api/tenants/{t}/settings/widget-key/refresh":     {roles: []string{admin}},
	"POST /api/tenants/{t}/settings/acs-check":              {roles: []string{admin}},
	"POST /api/tenants/{t}/settings/attendant-filter-check": {roles: []string{admin}},
	// The attendant is the caller (oid): any role may search.
	"GET /api/tenants/{t}/attendant/search":             {roles: switchboard.Roles},
	"GET /api/tenants/{t}/presence-tracking":            {roles: []string{admin}},
	"POST /api/tenants/{t}/presence-tracking/test":      {roles: []string{admin}},
	"GET /api/tenants/{t}/users/{u}/presence":           {roles: []string{admin, super}, own: OwnUser},
	"GET /api/tenants/{t}/services/{s}":                 {roles: []string{admin, super}, own: OwnMembership},
	"PUT /api/tenants/{t}/services/{s}":                 {roles: []string{admin}},
	"DELETE /api/tenants/{t}/services/{s}":              {roles: []string{admin}},
	"POST /api/tenants/{t}/services/{s}/sync":           {roles: []string{admin}},
	"POST /api/tenants/{t}/services/{s}/route":          {roles: []string{admin, flow}},
	"DELETE /api/tenants/{t}/conversations/{c}":         {roles: []string{admin, super, flow}},
	"POST /api/tenants/{t}/services/{s}/outbound-tasks": {roles: []string{admin, flow}},
	"GET /api/tenants/{t}/services/{s}/outbound-tasks":  {roles: []string{admin, super, flow}},
	"GET /api/tenants/{t}/services/{s}/outbound-tasks/{id}": {
		roles: []string{admin, super, flow}},
	"DELETE /api/tenants/{t}/services/{s}/outbound-tasks/{id}": {
		roles: []string{admin, super, flow}},
	"PATCH /api/tenants/{t}/services/{s}/outbound-tasks/{id}": {
		roles: []string{admin, flow}},
	"POST /api/tenants/{t}/services/{s}/outbound-tasks/{id}/complete": {
		roles: []string{admin, flow}},
	"POST /api/tenants/{t}/subscriptions":                     {roles: []string{admin, flow}},
	"GET /api/tenants/{t}/subscriptions":                      {roles: []string{admin, super, flow}},
	"GET /api/tenants/{t}/subscriptions/{id}":                 {roles: []string{admin, super, flow}},
	"DELETE /api/tenants/{t}/subscriptions/{id}":              {roles: []string{admin, flow}},
	"GET /api/tenants/{t}/subscriptions/{id}/deliveries":      {roles: []string{admin, super, flow}},
	"POST /api/tenants/{t}/subscriptions/triggers/{resource}": {roles: []string{admin, flow}},
	"GET /api/tenants/{t}/event-types":                        {roles: []string{admin, super, flow}},
	// Interact's agent side (SPEC section 12): flows, and the session's own
	// agent; the Assistant's token is an agent's (any role's caller, oid).
	"POST /api/tenants/{t}/interact/sessions/{id}/agent-left":     {roles: []string{admin, flow}, own: OwnSession},
	"POST /api/tenants/{t}/interact/sessions/{id}/agent-rejoined": {roles: []string{admin, flow}, own: OwnSession},
	"POST /api/tenants/{t}/interact/sessions/{id}/end":            {roles: []string{admin, flow}, own: OwnSession},
	"POST /api/tenants/{t}/assistant/token":                       {roles: []string{admin, switchboard.RoleAgent}},
	// Distribution (SPEC section 10). Accept and decline: an Agent for its
	// own offers only (the handler holds userId to the caller's oid when
	// AgentOnly).
	"POST /api/tenants/{t}/services/{s}/queue":             {roles: []string{admin, flow}},
	"GET /api/tenants/{t}/services/{s}/queue":              {roles: []string{admin, super, flow}},
	"GET /api/tenants/{t}/conversations/{c}":               {roles: []string{admin, super, flow}},
	"POST /api/tenants/{t}/conversations/{c}/accept":       {roles: []string{admin, flow}, own: OwnMembership},
	"POST /api/tenants/{t}/conversations/{c}/decline":      {roles: []string{admin, flow}, own: OwnMembership},
	"GET /api/tenants/{t}/agents/{u}":                      {roles: []string{admin, super, flow}, own: OwnUser},
	"POST /api/tenants/{t}/agents/{u}/rona/reset":          {roles: []string{admin, super}, own: OwnUser},
	"POST /api/tenants/{t}/agents/{u}/after-call-work/end": {roles: []string{admin, super}, own: OwnUser},
	"GET /api/tenants/{t}/services":                        {roles: switchboard.Roles},
}

// RouteRoles returns the roles that may call a tenant route (pattern as
// registered) and what an Agent may reach of it; ok is false for a route
// missing from the table.
func RouteRoles(pattern string) (roles []string, own Own, ok bool) {
	a, ok := routeAccess[pattern]
	return a.roles, a.own, ok
}

type agentOnlyKey struct{}

// AgentOnly reports whether the caller reaches the route only as an Agent
// for its own resources (OwnMembership): the handler must then check that
// the caller is a member of what it returns.
func AgentOnly(ctx context.Context) bool {
	v, _ := ctx.Value(agentOnlyKey{}).(bool)
	return v
}

// authorize checks the caller p against the route's row. It returns the
// context for the handler (marked AgentOnly where the handler has checks
// left), or EFORBIDDEN naming the roles the route needs.
func authorize(ctx context.Context, r *http.Request, pattern string, p switchboard.Principal) (context.Context, error) {
	a, ok := routeAccess[pattern]
	if !ok {
		// A route nobody wrote a row for is refused: fail closed.
		return ctx, &switchboard.Error{Code: switchboard.EFORBIDDEN, Op: "auth", Message: "this route has no app roles configured (httpapi " +
			"routeAccess): nobody may call it"}
	}
	for _, role := range a.roles {
		if p.HasRole(role) {
			return ctx, nil
		}
	}
	if a.own != OwnNone && p.HasRole(switchboard.RoleAgent) && p.ObjectID != "" {
		switch a.own {
		case OwnUser:
			if u, ok := switchboard.NormalizeGUID(r.PathValue("u")); ok && u == p.ObjectID {
				return ctx, nil
			}
			return ctx, forbidden(a, "an Agent may read only its own")
		case OwnMembership, OwnSession:
			return context.WithValue(ctx, agentOnlyKey{}, true), nil
		}
	}
	return ctx, forbidden(a, "")
}

// forbidden is the 403 of a caller without the route's roles: its title
// names them.
func forbidden(a access, why string) error {
	need := strings.Join(a.roles, " or ")
	switch a.own {
	case OwnUser:
		need += ", or " + switchboard.RoleAgent + " for the caller's own user"
	case OwnMembership:
		need += ", or " + switchboard.RoleAgent + " for a service the caller is a member of"
	case OwnSession:
		need += ", or " + switchboard.RoleAgent + " for a session the caller is the agent of"
	}
	msg := "this route needs the app role " + need
	if why != "" {
		msg = why + ": " + msg
	}
	return &switchboard.Error{Code: switchboard.EFORBIDDEN, Op: "auth", Message: msg}
}

// notMember is the 403 of an Agent asking for a service it is not a member
// of.
func notMember() error {
	return forbidden(routeAccess["GET /api/tenants/{t}/services/{s}"], "the caller is not a member of this service")
}

// localPrincipal is the caller with API_AUTH=none: every role, and the
// user ?asUser= names (an Entra object id), where a route needs one.
func localPrincipal(r *http.Request, tenant string) (switchboard.Principal, error) {
	p := switchboard.Principal{TenantID: tenant, Roles: switchboard.Roles}
	if v := r.URL.Query().Get("asUser"); v != "" {
		id, ok := switchboard.NormalizeGUID(v)
		if !ok {
			return p, switchboard.FieldError("auth", "asUser", "asUser must be an Entra object id (a GUID): the user to act as while API_AUTH=none")
		}
		p.ObjectID = id
	}
	return p, nil
}

// Caller returns the caller's object id (oid; with API_AUTH=none the
// ?asUser= parameter), for routes that act for a user. Returns EINVALID
// (field asUser) when there is none.
func Caller(r *http.Request) (string, error) {
	if p, ok := PrincipalFrom(r.Context()); ok && p.ObjectID != "" {
		return p.ObjectID, nil
	}
	return "", switchboard.FieldError("auth", "asUser", "this route acts for a user: the token has no oid (with API_AUTH=none, name the user with "+
		"?asUser=<object id>)")
}

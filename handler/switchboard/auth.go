package switchboard

import (
	"context"
	"slices"
)

// The app roles of the Switchboard app registration (SPEC section 9): a
// token's roles claim carries those assigned to the user, or granted to the
// calling application.
const (
	RoleAdmin      = "Switchboard.Admin"      // everything of its tenant
	RoleSupervisor = "Switchboard.Supervisor" // read all but secrets; operate agents, conversations, outbound tasks
	RoleAgent      = "Switchboard.Agent"      // its own services, state and offers
	RoleFlow       = "Switchboard.Flow"       // what flows and bots do: route, release, outbound tasks, subscriptions
)

// Roles lists the app roles.
var Roles = []string{RoleAdmin, RoleSupervisor, RoleAgent, RoleFlow}

// Principal is the verified caller of a tenant route.
type Principal struct {
	TenantID string   // tid
	ObjectID string   // oid, lower case: the user (an agent) or the calling application's service principal
	Subject  string   // sub
	AppID    string   // azp / appid
	Roles    []string // roles: the app roles of the caller
}

// HasRole reports whether the caller holds role.
func (p Principal) HasRole(role string) bool { return slices.Contains(p.Roles, role) }

// Verifier checks a bearer token (package auth implements it for Entra ID).
type Verifier interface {
	// Verify returns the token's caller. Returns EUNAUTHORIZED for a
	// missing, malformed, expired or wrongly signed token or a wrong
	// audience.
	Verify(ctx context.Context, token string) (Principal, error)
}

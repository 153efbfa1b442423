package switchboard

import "context"

// Principal is the verified caller of a tenant route.
type Principal struct {
	TenantID string // tid
	ObjectID string // oid
	Subject  string // sub
	AppID    string // azp / appid
}

// Verifier checks a bearer token (package auth implements it for Entra ID).
type Verifier interface {
	// Verify returns the token's caller. Returns EUNAUTHORIZED for a
	// missing, malformed, expired or wrongly signed token or a wrong
	// audience.
	Verify(ctx context.Context, token string) (Principal, error)
}

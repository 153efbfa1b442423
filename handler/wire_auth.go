package main

import (
	"context"

	"switchboard/handler/auth"
	"switchboard/handler/switchboard"
)

// newVerifier returns the Entra token verifier for tenant routes, or nil when
// API_AUTH=none (logged loudly: local development only). The signing keys
// come from {AZURE_AUTHORITY_HOST}common/discovery/v2.0/keys and are
// refreshed until ctx ends.
func newVerifier(ctx context.Context, a *app) (switchboard.Verifier, error) {
	if a.cfg.APIAuth == "none" {
		a.log.Warn("API_AUTH=none: tenant routes accept requests WITHOUT any token. Local development only; never run this in Azure.")
		return nil, nil
	}
	v, err := auth.New(ctx, auth.Options{
		AuthorityHost: a.cfg.AuthorityHost,
		Audience:      a.cfg.APIAudience,
		Now:           a.now,
		Log:           a.log,
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

package main

import (
	"context"

	"switchboard/handler/httpapi"
)

// newVerifier returns the Entra token verifier for tenant routes, or nil when
// API_AUTH=none (logged loudly: local development only).
func newVerifier(ctx context.Context, a *app) (httpapi.Verifier, error) {
	if a.cfg.APIAuth == "none" {
		a.log.Warn("API_AUTH=none: tenant routes accept requests WITHOUT any token. Local development only; never run this in Azure.")
		return nil, nil
	}
	return nil, nil // replaced by the Entra verifier (package auth)
}

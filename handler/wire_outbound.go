package main

import "context"

// wireOutbound registers the outbound capability's routes and functions.
func wireOutbound(ctx context.Context, a *app) error {
	return nil
}

package main

import "context"

// wireRouting registers the routing capability's routes and functions.
func wireRouting(ctx context.Context, a *app) error {
	return nil
}

package main

import "context"

// wirePresence registers the presence capability's routes and functions.
func wirePresence(ctx context.Context, a *app) error {
	return nil
}

package main

import "context"

// wireSettings registers the settings capability's routes and functions.
func wireSettings(ctx context.Context, a *app) error {
	return nil
}

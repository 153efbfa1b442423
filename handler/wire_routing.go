package main

import (
	"context"
	"errors"

	"switchboard/handler/functions"
	"switchboard/handler/httpapi"
	"switchboard/handler/routing"
)

// wireRouting registers the routing capability's routes and functions:
// Services, ServiceRoute, ServiceSync, Conversations (HTTP) and its
// Housekeeping job (expired holds, team sync). It sets a.routing and
// a.tracked.
func wireRouting(ctx context.Context, a *app) error {
	if a.presence == nil {
		return errors.New("routing: wired before the presence store")
	}
	// Team members are read with the presence app's application
	// permission (TeamMember.Read.All): without the app, a service with a
	// teamId is refused with 503.
	var teams routing.TeamDirectory
	if a.cfg.PresenceAppClientID != "" && a.graph != nil {
		teams = a.graph
	}
	engine, err := routing.New(ctx, routing.Options{
		Tables:     a.tables,
		Presence:   a.presence,
		Teams:      teams,
		StaleAfter: a.cfg.PresenceStaleAfter,
		Now:        a.now,
		Log:        a.log,
	})
	if err != nil {
		return err
	}
	(&httpapi.RoutingAPI{Engine: engine, Now: a.now, Conversations: lateConversations{a}}).Register(a.router)
	a.housekeeping = append(a.housekeeping, housekeepingJob{"routing", func(ctx context.Context, inv *functions.Invocation) error {
		rep, err := engine.Housekeep(ctx)
		inv.Logf("routing housekeeping: %d tenants, %d holds and %d conversations expired, %d teams synced, %d team syncs failed, stopped at deadline: %v",
			rep.Tenants, rep.HoldsExpired, rep.ConversationsExpired, rep.TeamsSynced, rep.TeamSyncFailures, rep.StoppedAtDeadline)
		return err
	}})
	a.routing = engine
	a.tracked = engine
	return nil
}

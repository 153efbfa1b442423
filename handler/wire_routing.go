package main

import (
	"context"
	"fmt"
	"time"

	"switchboard/handler/functions"
	"switchboard/handler/graph"
	"switchboard/handler/httpapi"
	"switchboard/handler/routing"
)

// routingHousekeepingBudget is how long one RoutingHousekeeping run may
// work: well inside the Functions timeout, and before the next tick.
const routingHousekeepingBudget = 50 * time.Second

// wireRouting registers the routing capability's routes and functions:
// Services, ServiceRoute, ServiceSync, Conversations (HTTP) and
// RoutingHousekeeping (timer: expired holds, team sync). It sets a.routing
// and a.tracked.
func wireRouting(ctx context.Context, a *app) error {
	if a.presence == nil {
		// Only until the presence capability is wired: routing reads every
		// decision's presence from it.
		a.log.Error("routing is not available: no presence store was wired")
		return nil
	}
	teams, err := teamDirectory(a)
	if err != nil {
		return fmt.Errorf("routing: Teams sync: %w", err)
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
	(&httpapi.RoutingAPI{Engine: engine, Now: a.now}).Register(a.router)
	a.dispatcher.Handle("RoutingHousekeeping", functions.TimerFunc("timer", func(ctx context.Context, inv *functions.Invocation, _ functions.Timer) error {
		ctx, cancel := context.WithTimeout(ctx, routingHousekeepingBudget)
		defer cancel()
		rep, err := engine.Housekeep(ctx)
		inv.Logf("routing housekeeping: %d tenants, %d holds and %d conversations expired, %d teams synced, %d team syncs failed, stopped at deadline: %v",
			rep.Tenants, rep.HoldsExpired, rep.ConversationsExpired, rep.TeamsSynced, rep.TeamSyncFailures, rep.StoppedAtDeadline)
		return err
	}))
	a.routing = engine
	a.tracked = engine
	return nil
}

// teamDirectory returns the Graph reader of Teams team members (the
// presence app, application permission TeamMember.Read.All), or nil when
// the deployment has no presence app: a service with a teamId is then
// refused with 503.
func teamDirectory(a *app) (routing.TeamDirectory, error) {
	if a.cfg.PresenceAppClientID == "" {
		return nil, nil
	}
	c, err := graph.New(graph.Options{
		BaseURL:         a.cfg.GraphBaseURL,
		AuthorityHost:   a.cfg.AuthorityHost,
		PublicAuthority: a.cfg.PublicAuthority(),
		ClientID:        a.cfg.PresenceAppClientID,
		ClientSecret:    a.cfg.PresenceAppClientSecret,
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

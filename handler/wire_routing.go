package main

import (
	"context"

	"switchboard/handler/functions"
	"switchboard/handler/httpapi"
	"switchboard/handler/routing"
)

// newRouting returns the routing engine over the presence store. Team
// members are read with the presence app's application permission
// (TeamMember.Read.All): without the app, a service with a teamId is
// refused with 503.
func newRouting(ctx context.Context, a *app) (*routing.Engine, error) {
	var teams routing.TeamDirectory
	if a.cfg.PresenceAppClientID != "" {
		teams = a.graph
	}
	return routing.New(ctx, routing.Options{
		Tables:     a.tables,
		Presence:   a.presenceStore,
		Teams:      teams,
		StaleAfter: a.cfg.PresenceStaleAfter,
		Events:     a.events, // the agent events, in the hold changes' batches
		Now:        a.now,
		Log:        a.log,
		Freed:      a.agentsFreed,
		Expiring:   a.holdsExpire,
	})
}

// wireRouting registers the routing capability's routes: Services,
// ServiceRoute, ServiceSync, Conversations (HTTP; distribution's
// conversations are ended there, and a queued conversation's skills used).
func wireRouting(a *app) {
	(&httpapi.RoutingAPI{Engine: a.routing, Now: a.now, Conversations: a.distribution}).Register(a.router)
}

// routingHousekeeping is routing's Housekeeping job: expired holds, team
// sync.
func routingHousekeeping(a *app) housekeepingJob {
	engine := a.routing
	return housekeepingJob{"routing", func(ctx context.Context, inv *functions.Invocation) error {
		rep, err := engine.Housekeep(ctx)
		inv.Logf("routing housekeeping: %d tenants, %d holds and %d conversations expired, %d teams synced, %d team syncs failed, stopped at deadline: %v",
			rep.Tenants, rep.HoldsExpired, rep.ConversationsExpired, rep.TeamsSynced, rep.TeamSyncFailures, rep.StoppedAtDeadline)
		if rep.MemberSetsDeleted > 0 {
			inv.Logf("routing housekeeping: %d replaced member sets deleted", rep.MemberSetsDeleted)
		}
		return err
	}}
}

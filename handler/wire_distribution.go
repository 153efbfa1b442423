package main

import (
	"context"
	"fmt"
	"time"

	"switchboard/handler/distribution"
	"switchboard/handler/functions"
	"switchboard/handler/httpapi"
	"switchboard/handler/job"
)

// newDistribution returns the waiting lines (SPEC section 10) over the
// routing engine, outbound tasks and the presence store, which tells it of
// changed readings.
func newDistribution(ctx context.Context, a *app) (*distribution.Service, error) {
	svc, err := distribution.New(ctx, distribution.Options{
		Tables:     a.tables,
		Agents:     a.routing,
		Presence:   a.presenceStore,
		Outbound:   a.outbound,
		Queue:      a.queue,
		QueueName:  a.cfg.DistributionQueue,
		Events:     a.events,
		Now:        a.now,
		Log:        a.log,
		StaleAfter: a.cfg.PresenceStaleAfter,
	})
	if err != nil {
		return nil, fmt.Errorf("distribution: %w", err)
	}
	if a.queue == nil {
		a.log.Warn("distribution: no queue configured; offers lapse, waits time out and RONA ends only at housekeeping (every minute)")
	}
	a.presenceStore.OnChange(svc.PresenceChanged)
	return svc, nil
}

// wireDistribution registers the waiting lines' routes (ServiceQueue,
// Conversations GET, ConversationAccept, ConversationDecline, Agent,
// AgentRonaReset, AgentAfterCallWorkEnd, ServicesList) and the Distributor
// (Service Bus trigger on DISTRIBUTION_QUEUE).
func wireDistribution(a *app) {
	svc := a.distribution
	(&httpapi.DistributionAPI{Service: svc, Now: a.now}).Register(a.router)
	a.dispatcher.Handle("Distributor", functions.ServiceBusFunc("message", func(ctx context.Context, inv *functions.Invocation, m functions.Message) error {
		// One due time and the distribution pass it starts: well inside the
		// queue's one-minute lock.
		ctx, run := job.Start(ctx, job.Options{Name: "Distributor", Budget: distributorBudget, Grace: 5 * time.Second, Log: a.log})
		out, err := svc.Handle(ctx, m.Body)
		run.Fail(err)
		run.Figure("messageId", m.MessageID, "delivery", m.DeliveryCount, "action", out.Action)
		inv.Logf("distributor: message %s (delivery %d): %s", m.MessageID, m.DeliveryCount, out)
		if out.Action == "dropped" {
			a.log.Warn("distributor: message dropped", "messageId", m.MessageID, "detail", out.Detail)
		}
		return run.Finish()
	}))
}

// distributionHousekeeping is distribution's Housekeeping job: due times
// whose messages were lost, ended conversations past their retention.
func distributionHousekeeping(a *app) housekeepingJob {
	svc := a.distribution
	return housekeepingJob{"distribution", func(ctx context.Context, inv *functions.Invocation) error {
		rep, err := svc.Housekeep(ctx)
		inv.Logf("distribution housekeeping: %s", rep)
		return err
	}}
}

// distributorBudget bounds one Distributor invocation.
const distributorBudget = 30 * time.Second

// agentsFreed tells distribution of agents a routing release let go (an
// outbound task completed, cancelled or failed; a route API conversation
// released): each gets its services' next item at once.
func (a *app) agentsFreed(tenant string, users []string) {
	if a.distribution != nil {
		a.distribution.Kick(tenant, nil, users)
	}
}

// holdsExpire tells distribution of a route API reservation that ends by
// itself (holdSeconds): it schedules a due time at its end, so that the
// agents get their services' next items when it runs out, not at the next
// housekeeping tick.
func (a *app) holdsExpire(tenant, conversationID string, users []string, expires time.Time) {
	if a.distribution != nil {
		a.distribution.HoldExpires(tenant, conversationID, users, expires)
	}
}

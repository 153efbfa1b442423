package main

import (
	"context"
	"fmt"

	"switchboard/handler/functions"
	"switchboard/handler/httpapi"
	"switchboard/handler/outbound"
	"switchboard/handler/routing"
)

// newOutbound returns the outbound service: it routes through the routing
// engine, takes its caps from the settings and records its events in the
// outbox.
func newOutbound(ctx context.Context, a *app) (*outbound.Service, error) {
	svc, err := outbound.New(ctx, outbound.Options{
		Tables:    a.tables,
		Queue:     a.queue,
		QueueName: a.cfg.OutboundQueue,
		Router:    a.routing,
		Services:  serviceChecker{a.routing},
		Limits:    a.settings,
		Events:    a.events, // switchboard.outboundTask.stateChanged
		Now:       a.now,
		Log:       a.log,
		// Waiting tasks are served by distribution's line: an agent a task
		// lets go (complete, cancel, housekeeping) is released through
		// routing, which tells distribution (agentsFreed), and the agent
		// gets its services' next item at once; distribution's
		// housekeeping serves every waiting line once a tick. The worker
		// does not retry every 10 s; its last try expires the task.
		ServedByLine: true,
	})
	if err != nil {
		return nil, fmt.Errorf("outbound: %w", err)
	}
	return svc, nil
}

// wireOutbound registers the outbound capability: the OutboundTasks,
// OutboundTask and OutboundTaskComplete routes and the OutboundWorker
// (Service Bus trigger on OUTBOUND_QUEUE).
func wireOutbound(a *app) {
	svc := a.outbound
	(&httpapi.OutboundAPI{Tasks: svc}).Register(a.router)

	a.dispatcher.Handle("OutboundWorker", functions.ServiceBusFunc("message", func(ctx context.Context, inv *functions.Invocation, m functions.Message) error {
		w, err := svc.Handle(ctx, m.Body)
		inv.Logf("outbound worker: message %s (delivery %d): %s", m.MessageID, m.DeliveryCount, w)
		switch {
		case err != nil:
			return err // retried; dead-lettered after the queue's MaxDeliveryCount
		case w.Action == outbound.ActionDropped:
			a.log.Warn("outbound worker: message dropped", "messageId", m.MessageID, "sequenceNumber", m.SequenceNumber, "detail", w.Detail)
		}
		return nil
	}))
}

// outboundHousekeeping is outbound's Housekeeping job.
func outboundHousekeeping(a *app) housekeepingJob {
	svc := a.outbound
	return housekeepingJob{"outbound", func(ctx context.Context, inv *functions.Invocation) error {
		rep, err := svc.Housekeep(ctx)
		inv.Logf("outbound housekeeping: %s", rep)
		return err
	}}
}

// serviceChecker tells outbound whether a service exists.
type serviceChecker struct{ e *routing.Engine }

func (c serviceChecker) CheckService(ctx context.Context, tenantID, serviceID string) error {
	_, err := c.e.GetService(ctx, tenantID, serviceID)
	return err
}

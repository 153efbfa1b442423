package main

import (
	"context"
	"errors"
	"fmt"

	"switchboard/handler/functions"
	"switchboard/handler/httpapi"
	"switchboard/handler/outbound"
	"switchboard/handler/routing"
)

// wireOutbound registers the outbound capability: the OutboundTasks,
// OutboundTask and OutboundTaskComplete routes, the OutboundWorker
// (Service Bus trigger on OUTBOUND_QUEUE) and its Housekeeping job.
func wireOutbound(ctx context.Context, a *app) error {
	if a.routing == nil || a.settings == nil {
		return errors.New("outbound: wired before routing or settings")
	}
	o := outbound.Options{
		Tables:    a.tables,
		Queue:     a.queue,
		QueueName: a.cfg.OutboundQueue,
		Router:    a.routing,
		Limits:    a.settings,
		Now:       a.now,
		Log:       a.log,
		// Distribution serves waiting tasks with the conversations, at
		// once when an agent is freed (no retry every 10 s).
		ServedByLine: true,
		AgentFreed:   a.agentFreed,
	}
	if e, ok := a.routing.(*routing.Engine); ok {
		o.Services = serviceChecker{e}
	}
	svc, err := outbound.New(ctx, o)
	if err != nil {
		return fmt.Errorf("outbound: %w", err)
	}
	(&httpapi.OutboundAPI{Tasks: svc}).Register(a.router)
	a.outbound = svc

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

	a.housekeeping = append(a.housekeeping, housekeepingJob{"outbound", func(ctx context.Context, inv *functions.Invocation) error {
		rep, err := svc.Housekeep(ctx)
		inv.Logf("outbound housekeeping: %s", rep)
		return err
	}})
	return nil
}

// serviceChecker tells outbound whether a service exists.
type serviceChecker struct{ e *routing.Engine }

func (c serviceChecker) CheckService(ctx context.Context, tenantID, serviceID string) error {
	_, err := c.e.GetService(ctx, tenantID, serviceID)
	return err
}

package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"switchboard/handler/functions"
	"switchboard/handler/httpapi"
	"switchboard/handler/outbound"
	"switchboard/handler/routing"
)

// housekeepingBudget is how long one Housekeeping run may work: well
// inside the Functions timeout, and before the next tick a minute later.
const housekeepingBudget = 45 * time.Second

// wireOutbound registers the outbound capability: the OutboundTasks,
// OutboundTask and OutboundTaskComplete routes, the OutboundWorker
// (Service Bus trigger on OUTBOUND_QUEUE) and the Housekeeping timer.
func wireOutbound(ctx context.Context, a *app) error {
	if a.routing == nil || a.settings == nil {
		// Only until routing and settings are wired: tasks are routed by
		// the one and capped by the other.
		a.log.Error("outbound tasks are not available: routing or settings were not wired")
		return nil
	}
	o := outbound.Options{
		Tables:    a.tables,
		Queue:     a.queue,
		QueueName: a.cfg.OutboundQueue,
		Router:    a.routing,
		Limits:    a.settings,
		Now:       a.now,
		Log:       a.log,
	}
	if e, ok := a.routing.(*routing.Engine); ok {
		o.Services = serviceChecker{e}
	}
	svc, err := outbound.New(ctx, o)
	if err != nil {
		return fmt.Errorf("outbound: %w", err)
	}
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

	// Housekeeping is a list of jobs, each with its share of the run;
	// one failing does not stop the others.
	jobs := []struct {
		name string
		run  func(ctx context.Context, inv *functions.Invocation) error
	}{
		{"outbound", func(ctx context.Context, inv *functions.Invocation) error {
			rep, err := svc.Housekeep(ctx)
			inv.Logf("outbound housekeeping: %s", rep)
			return err
		}},
	}
	a.dispatcher.Handle("Housekeeping", functions.TimerFunc("timer", func(ctx context.Context, inv *functions.Invocation, _ functions.Timer) error {
		ctx, cancel := context.WithTimeout(ctx, housekeepingBudget)
		defer cancel()
		var errs []error
		for _, j := range jobs {
			if err := j.run(ctx, inv); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", j.name, err))
			}
		}
		return errors.Join(errs...)
	}))
	return nil
}

// serviceChecker tells outbound whether a service exists.
type serviceChecker struct{ e *routing.Engine }

func (c serviceChecker) CheckService(ctx context.Context, tenantID, serviceID string) error {
	_, err := c.e.GetService(ctx, tenantID, serviceID)
	return err
}

package main

import (
	"context"
	"fmt"
	"time"

	"switchboard/handler/localqueue"
	"switchboard/handler/servicebus"
)

// wireQueue chooses the queue the handler sends to: Service Bus when
// ServiceBusConnection is configured, the local runner's in-process queue
// when LOCAL_QUEUE_URL is set, otherwise none (the presence poll then runs
// whole inside its timer, and outbound scheduling answers 503).
func wireQueue(ctx context.Context, a *app) error {
	switch {
	case a.cfg.ServiceBusConnection != "" || a.cfg.ServiceBusNamespace != "":
		q, err := servicebus.Open(servicebus.Options{
			ConnectionString: a.cfg.ServiceBusConnection,
			Namespace:        a.cfg.ServiceBusNamespace,
			ClientID:         a.cfg.ServiceBusClientID,
		})
		if err != nil {
			return fmt.Errorf("service bus: %w", err)
		}
		a.closers = append(a.closers, func() {
			closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = q.Close(closeCtx)
		})
		a.queue = q
		a.log.Info("queue: Service Bus")
	case a.cfg.LocalQueueURL != "":
		q, err := localqueue.New(a.cfg.LocalQueueURL, nil)
		if err != nil {
			return fmt.Errorf("local queue: %w", err)
		}
		a.queue = q
		a.log.Info("queue: the local runner's in-process queues")
	default:
		a.log.Warn("queue: none configured (ServiceBusConnection); outbound tasks cannot be scheduled and the presence poll is not fanned out")
	}
	return nil
}

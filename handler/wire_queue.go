package main

import (
	"context"
	"fmt"
	"time"

	"switchboard/handler/localqueue"
	"switchboard/handler/servicebus"
	"switchboard/handler/switchboard"
)

// openQueue returns the queue the handler sends to: Service Bus when
// ServiceBusConnection is configured, the local runner's in-process queue
// when LOCAL_QUEUE_URL is set, otherwise none (the presence poll then runs
// whole inside its timer, and outbound scheduling answers 503).
func openQueue(a *app) (switchboard.Queue, error) {
	switch {
	case a.cfg.ServiceBusConnection != "" || a.cfg.ServiceBusNamespace != "":
		q, err := servicebus.Open(servicebus.Options{
			ConnectionString: a.cfg.ServiceBusConnection,
			Namespace:        a.cfg.ServiceBusNamespace,
			ClientID:         a.cfg.ServiceBusClientID,
		})
		if err != nil {
			return nil, fmt.Errorf("service bus: %w", err)
		}
		a.closers = append(a.closers, func() {
			closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = q.Close(closeCtx)
		})
		a.log.Info("queue: Service Bus")
		return q, nil
	case a.cfg.LocalQueueURL != "":
		q, err := localqueue.New(a.cfg.LocalQueueURL, nil)
		if err != nil {
			return nil, fmt.Errorf("local queue: %w", err)
		}
		a.log.Info("queue: the local runner's in-process queues")
		return q, nil
	default:
		a.log.Warn("queue: none configured (ServiceBusConnection); outbound tasks cannot be scheduled and the presence poll is not fanned out")
	}
	return nil, nil
}

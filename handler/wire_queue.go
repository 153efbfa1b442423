package main

import "context"

// wireQueue chooses the queue the handler sends to: Service Bus when
// ServiceBusConnection is configured, the local runner's in-process queue
// when LOCAL_QUEUE_URL is set, otherwise none (the presence poll then runs
// whole inside its timer, and outbound scheduling answers 503).
func wireQueue(ctx context.Context, a *app) error {
	return nil
}

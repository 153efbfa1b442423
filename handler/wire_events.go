package main

import (
	"context"
	"fmt"
	"time"

	"switchboard/handler/egress"
	"switchboard/handler/events"
	"switchboard/handler/functions"
	"switchboard/handler/httpapi"
	"switchboard/handler/job"
	"switchboard/handler/secrets"
)

// wireSecrets opens the keyring of tenant secrets (SECRETS_KEY). Locally,
// without a key, it makes one for this run (logged): what it seals is gone
// with the process, as is make run's in-memory Azurite.
func wireSecrets(ctx context.Context, a *app) error {
	key := a.cfg.SecretsKey
	if key == "" {
		a.log.Warn("SECRETS_KEY is not set: tenant secrets are sealed under a key made for this run only (local development)")
		key = secrets.GenerateKey()
	}
	k, err := secrets.New(key, a.cfg.SecretsKeyPrevious)
	if err != nil {
		return fmt.Errorf("secrets: %w", err)
	}
	a.secrets = k
	return nil
}

// wireEvents registers the events capability: the subscription routes,
// the EventDelivery function on EVENTS_QUEUE and its Housekeeping job (the
// outbox sweep). It sets a.events, the outbox the other capabilities
// record their events through.
func wireEvents(ctx context.Context, a *app) error {
	if a.secrets == nil {
		return fmt.Errorf("events: wired before secrets")
	}
	svc, err := events.New(ctx, events.Options{
		Tables: a.tables, Queue: a.queue, QueueName: a.cfg.EventsQueue, Secrets: a.secrets,
		Guard: egress.Guard{AllowPrivate: a.cfg.AllowPrivateEndpoints},
		Now:   a.now, Log: a.log,
	})
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	if a.queue == nil {
		a.log.Warn("events: no queue configured (ServiceBusConnection): events are recorded but not delivered")
	}
	if a.cfg.AllowPrivateEndpoints {
		a.log.Warn("ALLOW_PRIVATE_ENDPOINTS=true: event subscriptions may name http URLs and loopback or private hosts. Local development only.")
	}
	(&httpapi.EventsAPI{Subscriptions: svc}).Register(a.router)
	a.dispatcher.Handle("EventDelivery", functions.ServiceBusFunc("message", func(ctx context.Context, inv *functions.Invocation, m functions.Message) error {
		rep, err := svc.Handle(ctx, m.Body)
		inv.Logf("event delivery: message %s (delivery %d): %s", m.MessageID, m.DeliveryCount, rep)
		return err
	}))
	a.housekeeping = append(a.housekeeping, housekeepingJob{"events", func(ctx context.Context, inv *functions.Invocation) error {
		n, err := svc.SweepOutbox(ctx, func() bool { return job.Near(ctx, 5*time.Second) })
		inv.Logf("events housekeeping: %d events handed over from the outbox", n)
		return err
	}})
	a.events = svc
	return nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"switchboard/handler/egress"
	"switchboard/handler/events"
	"switchboard/handler/functions"
	"switchboard/handler/httpapi"
	"switchboard/handler/job"
	"switchboard/handler/secrets"
)

// newSecrets opens the keyring of tenant secrets (SECRETS_KEY). Locally,
// without a key, it makes one for this run (logged): what it seals is gone
// with the process, as is make run's in-memory Azurite.
func newSecrets(a *app) (*secrets.Keyring, error) {
	key := a.cfg.SecretsKey
	if key == "" {
		a.log.Warn("SECRETS_KEY is not set: tenant secrets are sealed under a key made for this run only (local development)")
		key = secrets.GenerateKey()
	}
	k, err := secrets.New(key, a.cfg.SecretsKeyPrevious)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	return k, nil
}

// newEvents makes the events capability: the outbox the other capabilities
// record their events through, and their delivery to subscriptions.
func newEvents(ctx context.Context, a *app) (*events.Service, error) {
	svc, err := events.New(ctx, events.Options{
		Tables: a.tables, Queue: a.queue, QueueName: a.cfg.EventsQueue, Secrets: a.secrets,
		Guard: egress.Guard{AllowPrivate: a.cfg.AllowPrivateEndpoints},
		Now:   a.now, Log: a.log,
	})
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	if a.queue == nil {
		a.log.Warn("events: no queue configured (ServiceBusConnection): events are recorded but not delivered")
	}
	if a.cfg.AllowPrivateEndpoints {
		a.log.Warn("ALLOW_PRIVATE_ENDPOINTS=true: event subscriptions may name http URLs and loopback or private hosts. Local development only.")
	}
	return svc, nil
}

// wireEvents registers the subscription routes and the EventDelivery
// function on EVENTS_QUEUE.
func wireEvents(a *app) {
	svc := a.events
	(&httpapi.EventsAPI{Subscriptions: svc}).Register(a.router)
	a.dispatcher.Handle("EventDelivery", functions.ServiceBusFunc("message", func(ctx context.Context, inv *functions.Invocation, m functions.Message) error {
		rep, err := svc.Handle(ctx, m.Body)
		inv.Logf("event delivery: message %s (delivery %d): %s", m.MessageID, m.DeliveryCount, rep)
		return err
	}))
}

// eventsHousekeeping hands over what a crash left in the outbox, and
// re-seals under SECRETS_KEY the subscription secrets still sealed under
// SECRETS_KEY_PREVIOUS.
func eventsHousekeeping(a *app) housekeepingJob {
	svc := a.events
	return housekeepingJob{"events", func(ctx context.Context, inv *functions.Invocation) error {
		near := func() bool { return job.Near(ctx, 5*time.Second) }
		n, err := svc.SweepOutbox(ctx, near)
		inv.Logf("events housekeeping: %d events handed over from the outbox", n)
		if near() {
			return err
		}
		rep, rerr := svc.ResealSecrets(ctx, near)
		inv.Logf("events housekeeping: subscription secrets: %s", rep)
		return errors.Join(err, rerr)
	}}
}

package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"switchboard/handler/functions"
	"switchboard/handler/presence"
	"switchboard/handler/richnotify"
)

// notificationsWiring is what wirePresence keeps of the notifications.
type notificationsWiring struct {
	receiver   *presence.Notifications
	subscriber *presence.Subscriber
}

func (n *notificationsWiring) handleQueued(ctx context.Context, body []byte) error {
	m, err := presence.DecodeNotifyMessage(body)
	if err != nil {
		return nil // malformed: dropped, it would fail the same way again
	}
	return n.receiver.HandleQueued(ctx, m)
}

// newNotifications makes the presence subscriptions and the receiver of
// their notifications when PRESENCE_NOTIFICATIONS_URL is set (SPEC section
// 14); nil when it is not (polling only).
func newNotifications(a *app) (*notificationsWiring, error) {
	cfg := a.cfg
	if cfg.PresenceNotificationsURL == "" {
		a.log.Info("presence notifications: off (PRESENCE_NOTIFICATIONS_URL not set); presence is polled only")
		return nil, nil
	}
	pemBytes := []byte(cfg.PresenceNotificationsCertificate)
	if !strings.Contains(cfg.PresenceNotificationsCertificate, "-----BEGIN") {
		b, err := os.ReadFile(cfg.PresenceNotificationsCertificate)
		if err != nil {
			return nil, fmt.Errorf("PRESENCE_NOTIFICATIONS_CERTIFICATE is neither PEM nor a readable PEM file: %w", err)
		}
		pemBytes = b
	}
	cert, err := richnotify.ParseCertificate(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("PRESENCE_NOTIFICATIONS_CERTIFICATE: %w", err)
	}
	if time.Until(cert.X509().NotAfter) < 30*24*time.Hour {
		a.log.Warn("presence notifications: the certificate expires soon; renew it in Key Vault", "notAfter", cert.X509().NotAfter)
	}
	account1, account2, _ := presenceSources(cfg)
	sub, err := presence.NewSubscriber(presence.SubscriberOptions{
		Store: a.presenceStore, Graph: a.graph, Subs: a.graph, Tracked: a.routing, Settings: a.settings, Recent: a.routing,
		NotificationURL: cfg.PresenceNotificationsURL, Certificate: cert,
		Account1UPN: account1, Account2UPN: account2,
		ReconcileEvery: cfg.PresenceReconcileEvery, Now: a.now, Log: a.log,
	})
	if err != nil {
		return nil, err
	}
	recv, err := presence.NewNotifications(presence.NotificationsOptions{
		Store: a.presenceStore, Certificate: cert, Lifecycle: sub, Queue: a.queue, QueueName: cfg.PresenceQueue, Now: a.now, Log: a.log,
	})
	if err != nil {
		return nil, err
	}
	a.log.Info("presence notifications: on", "url", cfg.PresenceNotificationsURL, "certificate", cert.Thumbprint(), "reconcileEvery", cfg.PresenceReconcileEvery)
	return &notificationsWiring{receiver: recv, subscriber: sub}, nil
}

// notificationsHousekeeping is the subscriptions' share of Housekeeping:
// create, renew, re-create, reconcile, delete.
func notificationsHousekeeping(a *app) housekeepingJob {
	sub, recv := a.notifications.subscriber, a.notifications.receiver
	return housekeepingJob{"presence subscriptions", func(ctx context.Context, inv *functions.Invocation) error {
		rep, err := sub.Housekeep(ctx)
		c := recv.Counts()
		inv.Logf("presence subscriptions: %d tenants, %d created, %d renewed, %d deleted, %d reconciled, %d failed; notifications so far: %d "+
			"accepted, %d written, %d queued, %d lifecycle, rejected: %d malformed, %d unknown subscription, %d wrong client state, %d bad signature",
			rep.Tenants, rep.Created, rep.Renewed, rep.Deleted, rep.Reconciled, rep.Failed, c.Accepted, c.Written, c.Queued, c.Lifecycle,
			c.Malformed+c.MalformedBodies+c.NotCovered, c.UnknownSubscription, c.WrongClientState, c.BadSignature)
		return err
	}}
}

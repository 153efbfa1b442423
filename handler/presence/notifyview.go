package presence

import (
	"context"

	"switchboard/handler/switchboard"
)

// Notification states in the tracking view.
const (
	NotifyActive  = switchboard.NotificationsActive
	NotifyOff     = switchboard.NotificationsOff
	NotifyFailing = switchboard.NotificationsFailing
)

// The notifications part of the tracking view is domain vocabulary.
type (
	SubscriptionView  = switchboard.PresenceSubscriptionView
	NotificationsView = switchboard.PresenceNotificationsView
)

func (s *Service) notifications(ctx context.Context, tenant string, guest bool) (NotificationsView, error) {
	v := NotificationsView{State: NotifyOff}
	if !s.o.NotificationsConfigured || !guest {
		return v, nil
	}
	subs, err := s.o.Store.subscriptions(ctx, tenant, false)
	if err != nil {
		return v, switchboard.Wrap(switchboard.EUNAVAILABLE, "presence.Tracking", err)
	}
	now := s.o.Now()
	failing := false
	for _, src := range []switchboard.PresenceSource{switchboard.SourceAccount1, switchboard.SourceAccount2} {
		sub, ok := subs[src]
		if !ok {
			continue
		}
		state := NotifyActive
		if !sub.trusted(now) {
			state, failing = NotifyFailing, true
		} else {
			v.Covered += len(sub.Users)
		}
		v.Subscriptions = append(
			v.Subscriptions,
			SubscriptionView{Account: src.Account(), Source: src, Users: len(sub.Users), State: state, ExpiresAt: sub.ExpiresAt},
		)
		if sub.LastNotificationAt.After(v.LastNotificationAt) {
			v.LastNotificationAt = sub.LastNotificationAt
		}
		if sub.LastErrorAt.After(v.LastErrorAt) {
			v.LastError, v.LastErrorAt = sub.LastError, sub.LastErrorAt
		}
	}
	switch {
	case len(v.Subscriptions) == 0:
	case failing:
		v.State = NotifyFailing
	default:
		v.State = NotifyActive
	}
	return v, nil
}

package presence

// One Graph presence subscription's life: created (clearing one this
// deployment lost track of), renewed, marked failing, removed, its users
// read to reconcile, and Graph's lifecycle notifications.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"switchboard/handler/switchboard"
)

// Resource returns the subscription resource of users.
func Resource(users []string) string {
	quoted := make([]string, len(users))
	for i, u := range users {
		quoted[i] = "'" + u + "'"
	}
	return "/communications/presences?$filter=id in (" + strings.Join(quoted, ",") + ")"
}

func newClientState() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// create makes a subscription of src over users. untrusted is since when
// they have gone without a trusted subscription (zero: polls read them
// all along).
func (s *Subscriber) create(ctx context.Context, tenant string, src switchboard.PresenceSource, users []string, chosenAt, now, untrusted time.Time) error {
	req := switchboard.PresenceSubscriptionRequest{
		Resource: Resource(users), NotificationURL: s.o.NotificationURL, ClientState: newClientState(),
		Certificate: s.o.Certificate.PublicBase64(), CertificateID: s.o.Certificate.ID(), ExpiresAt: now.Add(s.o.Lifetime),
	}
	gs, err := s.o.Subs.CreateSubscription(ctx, tenant, src, req)
	if err != nil && switchboard.AsSourceError(src, err).Status == http.StatusConflict && s.clearLost(ctx, tenant, src) {
		// A presence subscription this deployment lost track of (its row
		// lost, or an instance that died between creating and saving it)
		// blocked the account: it is gone now, try once more.
		gs, err = s.o.Subs.CreateSubscription(ctx, tenant, src, req)
	}
	if err != nil {
		se := switchboard.AsSourceError(src, err)
		msg := fmt.Sprintf("creating the subscription failed: %s (%s)", se.Message, se.Reason)
		if se.Status == http.StatusConflict {
			msg = "Graph refused a second presence subscription of the account (409): one made earlier is still active; it lapses within 60 minutes"
		}
		sub := subState{Source: src, Users: users, ChosenAt: chosenAt, State: SubFailing, UntrustedAt: untrusted, LastError: msg, LastErrorAt: now}
		if serr := s.o.Store.saveSubscription(ctx, tenant, sub); serr != nil {
			return errors.Join(se, serr)
		}
		s.o.Log.Warn(
			"presence subscription: creation failed; its agents are polled",
			"tenant",
			tenant,
			"account",
			src,
			"reason",
			se.Reason,
			"status",
			se.Status,
		)
		if se.Disqualifies() {
			st := s.o.Store.sourceStatuses(tenant)[src]
			st.Source = src
			if err := s.o.Store.SaveSourceStatus(ctx, tenant, st.failed(now, se, s.o.RetryFailedAfter)); err != nil {
				s.o.Log.Warn("presence subscription: recording the account's failure failed", "tenant", tenant, "account", src, "err", err)
			}
		}
		return se
	}
	// Trusted only once its users were read after it started: a change
	// between the last poll and the subscription would be missed.
	sub := subState{Source: src, ID: gs.ID, ClientState: req.ClientState, Users: users, ExpiresAt: gs.ExpiresAt, ChosenAt: chosenAt,
		State: SubActive, NeedsRead: true, UntrustedAt: untrusted}
	if err := s.o.Store.saveSubscription(ctx, tenant, sub); err != nil {
		_ = s.o.Subs.DeleteSubscription(ctx, tenant, src, gs.ID)
		return err
	}
	s.o.Log.Info("presence subscription created", "tenant", tenant, "account", src, "users", len(users), "expiresAt", gs.ExpiresAt)
	return s.readUsers(ctx, tenant, sub)
}

// clearLost deletes the account's presence subscriptions in Graph that no
// row of this tenant names, and reports whether it deleted any.
func (s *Subscriber) clearLost(ctx context.Context, tenant string, src switchboard.PresenceSource) bool {
	held, err := s.o.Subs.ListSubscriptions(ctx, tenant, src)
	if err != nil {
		s.o.Log.Warn("presence subscription: listing the account's subscriptions failed", "tenant", tenant, "account", src, "err", err)
		return false
	}
	// Read again: another instance may have just saved the one it made.
	subs, err := s.o.Store.subscriptions(ctx, tenant, true)
	if err != nil {
		return false
	}
	deleted := false
	for _, g := range held {
		if !strings.HasPrefix(strings.TrimPrefix(g.Resource, "/"), "communications/presences") || g.ID == subs[src].ID {
			continue
		}
		if err := s.o.Subs.DeleteSubscription(ctx, tenant, src, g.ID); err == nil {
			s.o.Log.Info("presence subscription: deleted one this deployment had lost track of", "tenant", tenant, "account", src)
			deleted = true
		}
	}
	return deleted
}

func (s *Subscriber) renew(ctx context.Context, tenant string, sub subState, now time.Time) error {
	granted, err := s.o.Subs.RenewSubscription(ctx, tenant, sub.Source, sub.ID, now.Add(s.o.Lifetime))
	if err != nil {
		se := switchboard.AsSourceError(sub.Source, err)
		s.markFailing(ctx, tenant, sub, fmt.Sprintf("renewing the subscription failed: %s (%s)", se.Message, se.Reason), now)
		return se
	}
	return s.o.Store.mergeSubscription(ctx, tenant, sub.Source, map[string]any{"ExpiresAt": granted.UTC()}, func(x *subState) { x.ExpiresAt = granted })
}

// markFailing makes the subscription stop vouching for its users: the
// poll reads them again from its next tick.
func (s *Subscriber) markFailing(ctx context.Context, tenant string, sub subState, msg string, now time.Time) {
	switch {
	case sub.trusted(now):
		sub.UntrustedAt = now // polls skipped its users until now
	case sub.UntrustedAt.IsZero() && sub.ID != "" && sub.State == SubActive && !sub.NeedsRead:
		sub.UntrustedAt = sub.ExpiresAt // lapsed: trusted until it expired
	}
	sub.State, sub.LastError, sub.LastErrorAt = SubFailing, msg, now
	if err := s.o.Store.saveSubscription(ctx, tenant, sub); err != nil {
		s.o.Log.Warn("presence subscription: recording the failure failed", "tenant", tenant, "account", sub.Source, "err", err)
	}
}

func (s *Subscriber) deleteRemote(ctx context.Context, tenant string, sub subState) {
	if err := s.o.Subs.DeleteSubscription(ctx, tenant, sub.Source, sub.ID); err != nil {
		if se := switchboard.AsSourceError(sub.Source, err); se.Status != http.StatusNotFound {
			s.o.Log.Warn(
				"presence subscription: deleting it in Graph failed; it lapses at its expiry",
				"tenant",
				tenant,
				"account",
				sub.Source,
				"reason",
				se.Reason,
			)
		}
	}
}

func (s *Subscriber) remove(ctx context.Context, tenant string, sub subState) {
	if sub.ID != "" {
		s.deleteRemote(ctx, tenant, sub)
	}
	if err := s.o.Store.deleteSubscription(ctx, tenant, sub.Source); err != nil {
		s.o.Log.Warn("presence subscription: deleting its row failed", "tenant", tenant, "account", sub.Source, "err", err)
	}
	s.o.Log.Info("presence subscription removed", "tenant", tenant, "account", sub.Source)
}

// readUsers reads every user of sub through its account and writes what
// changed; the subscription then vouches for them again (ReadAt, and a
// pending missed cleared).
func (s *Subscriber) readUsers(ctx context.Context, tenant string, sub subState) error {
	at := s.o.Now()
	var all []NotifiedReading
	for lo := 0; lo < len(sub.Users); lo += switchboard.MaxPresenceIDsPerCall {
		ids := sub.Users[lo:min(lo+switchboard.MaxPresenceIDsPerCall, len(sub.Users))]
		readings, err := s.o.Graph.Presences(ctx, tenant, sub.Source, ids)
		if err != nil {
			se := switchboard.AsSourceError(sub.Source, err)
			s.o.Log.Warn("presence subscription: reading its users failed; the poll reads them", "tenant", tenant, "account", sub.Source, "reason", se.Reason)
			if se.Disqualifies() {
				// The account itself fails in this tenant (no longer a
				// guest, consent revoked, ...): its subscription vouches
				// for nothing, and the account pauses as after a poll.
				s.accountFailed(ctx, tenant, sub, se)
			}
			return se
		}
		got := map[string]switchboard.PresenceReading{}
		for _, r := range readings {
			got[r.UserID] = r
		}
		for _, id := range ids {
			r, ok := got[id]
			if !ok {
				r = switchboard.PresenceReading{UserID: id, Availability: switchboard.PresenceUnknown, Activity: switchboard.ActivityPresenceUnknown}
			}
			all = append(all, NotifiedReading{PresenceReading: r, Source: sub.Source, At: at})
		}
	}
	if _, err := s.o.Store.writeNotified(ctx, tenant, all); err != nil {
		return switchboard.Wrap(switchboard.EUNAVAILABLE, "presence.readUsers", err)
	}
	props := map[string]any{"ReadAt": at.UTC()}
	clear := sub.NeedsRead
	if clear {
		// Table Storage has no null (and no year 1): "trusted again at"
		// cancels the earlier UntrustedAt.
		props["NeedsRead"] = false
		props["TrustedAt"] = at.UTC()
	}
	return s.o.Store.mergeSubscription(ctx, tenant, sub.Source, props, func(x *subState) {
		x.ReadAt = at
		if clear && x.ID == sub.ID {
			x.NeedsRead, x.UntrustedAt, x.TrustedAt = false, time.Time{}, at
		}
	})
}

// accountFailed records a failure of the account itself: its
// subscription fails (its agents go back to polling) and the account's
// status pauses it, so that Maintain moves its agents to the other
// account when that one has none.
func (s *Subscriber) accountFailed(ctx context.Context, tenant string, sub subState, se *switchboard.SourceError) {
	now := s.o.Now()
	s.markFailing(ctx, tenant, sub, fmt.Sprintf("the presence account failed: %s (%s)", se.Message, se.Reason), now)
	st := s.o.Store.sourceStatuses(tenant)[sub.Source]
	st.Source = sub.Source
	if err := s.o.Store.SaveSourceStatus(ctx, tenant, st.failed(now, se, s.o.RetryFailedAfter)); err != nil {
		s.o.Log.Warn("presence subscription: recording the account's failure failed", "tenant", tenant, "account", sub.Source, "err", err)
	}
}

// Lifecycle implements LifecycleHandler. A missed or removed subscription
// stops vouching for its users at once (one write); the Graph work
// (reauthorize, re-create, read its users) runs asynchronously so that
// the notification is answered in time.
func (s *Subscriber) Lifecycle(ctx context.Context, tenant string, src switchboard.PresenceSource, event string) error {
	now := s.o.Now()
	switch event {
	case LifecycleMissed:
		if err := s.o.Store.mergeSubscription(ctx, tenant, src, map[string]any{"NeedsRead": true, "UntrustedAt": now.UTC()},
			func(x *subState) { x.NeedsRead, x.UntrustedAt = true, now }); err != nil {
			return err
		}
	case LifecycleSubscriptionRemoved:
		if err := s.o.Store.mergeSubscription(ctx, tenant, src, map[string]any{"State": SubFailing, "NeedsRead": true, "UntrustedAt": now.UTC(),
			"LastError": "Graph removed the subscription", "LastErrorAt": now.UTC()},
			func(x *subState) {
				x.State, x.NeedsRead, x.UntrustedAt, x.LastError, x.LastErrorAt = SubFailing, true, now, "Graph removed the subscription", now
			}); err != nil {
			return err
		}
	case LifecycleReauthorizationRequired:
	default:
		s.o.Log.Info("presence subscription: unknown lifecycle event ignored", "tenant", tenant, "event", event)
		return nil
	}
	s.o.Async(func(ctx context.Context) {
		if err := s.Act(ctx, tenant, src, event); err != nil {
			s.o.Log.Warn("presence subscription: lifecycle work failed; housekeeping retries", "tenant", tenant, "account", src, "event", event, "err", err)
		}
	})
	return nil
}

// Act does a lifecycle event's Graph work: reauthorize (renew when
// reauthorizing fails), re-create a removed subscription, or read the
// users of one that missed notifications.
func (s *Subscriber) Act(ctx context.Context, tenant string, src switchboard.PresenceSource, event string) error {
	switch event {
	case LifecycleReauthorizationRequired:
		unlock := s.lock(tenant)
		subs, err := s.o.Store.subscriptions(ctx, tenant, true)
		if err != nil {
			unlock()
			return err
		}
		sub, ok := subs[src]
		if !ok || sub.ID == "" {
			unlock()
			return nil
		}
		// Reauthorizing keeps the subscription with a fresh token; the
		// renewal after it (or instead of it, when Graph refuses it)
		// pushes the expiry out again.
		if rerr := s.o.Subs.ReauthorizeSubscription(ctx, tenant, src, sub.ID); rerr != nil {
			s.o.Log.Info("presence subscription: reauthorizing failed; renewing "+
				"instead", "tenant", tenant, "account", src, "reason", switchboard.AsSourceError(src, rerr).Reason)
		}
		err = s.renew(ctx, tenant, sub, s.o.Now())
		unlock()
		return err
	case LifecycleSubscriptionRemoved, LifecycleMissed:
		_, err := s.Maintain(ctx, tenant)
		return err
	}
	return nil
}

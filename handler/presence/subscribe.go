package presence

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"switchboard/handler/richnotify"
	"switchboard/handler/switchboard"
)

// Subscriptions manages Graph change subscriptions through a presence
// account (delegated tokens only: Graph refuses presence subscriptions
// with application permission). Every error is a *switchboard.SourceError; Status
// carries Graph's HTTP status (404: no such subscription; 409: the user
// already has a presence subscription of this application).
type Subscriptions interface {
	CreateSubscription(ctx context.Context, tenant string, src switchboard.PresenceSource, req switchboard.PresenceSubscriptionRequest) (switchboard.PresenceSubscription, error)
	// RenewSubscription asks for a new expiry and returns the granted one.
	RenewSubscription(ctx context.Context, tenant string, src switchboard.PresenceSource, id string, expiresAt time.Time) (time.Time, error)
	ReauthorizeSubscription(ctx context.Context, tenant string, src switchboard.PresenceSource, id string) error
	DeleteSubscription(ctx context.Context, tenant string, src switchboard.PresenceSource, id string) error
	// ListSubscriptions returns the subscriptions the account holds with
	// this application (to clear one this deployment lost track of).
	ListSubscriptions(ctx context.Context, tenant string, src switchboard.PresenceSource) ([]switchboard.PresenceSubscription, error)
}

// RoutingActivity tells which agents were most recently given a
// conversation (routing's holds and idle ledger know it).
type RoutingActivity interface {
	// LastRouted returns, per user, when the user was last given (or
	// last finished) a conversation; users never routed are absent.
	LastRouted(ctx context.Context, tenantID string) (map[string]time.Time, error)
}

// MaxSubscriptionUsers is the most ids one presence subscription covers.
const MaxSubscriptionUsers = 650

// SubscriberOptions configures a Subscriber. Store, Graph, Subs, Tracked,
// NotificationURL and Certificate are required.
type SubscriberOptions struct {
	Store    *Store
	Graph    Graph
	Subs     Subscriptions
	Tracked  switchboard.TrackedUsers
	Settings Settings
	Recent   RoutingActivity // nil: by user id only

	NotificationURL string
	Certificate     *richnotify.Certificate
	// Account1UPN, Account2UPN: "" when the account is not configured.
	Account1UPN, Account2UPN string

	Now func() time.Time
	Log *slog.Logger

	Lifetime         time.Duration // expiry asked for (default and at most 60 min)
	RenewBefore      time.Duration // renew when the granted expiry is this close (default 15 min)
	ChooseEvery      time.Duration // the covered set is re-chosen at most this often (default 15 min)
	ReconcileEvery   time.Duration // covered users are read this often (PRESENCE_RECONCILE_EVERY, default 5 min)
	RetryFailedAfter time.Duration // a failed account's subscription is tried again after (default 5 min)
	// MaxUsers per subscription (default 650; tests lower it).
	MaxUsers int
	// Async runs lifecycle work (nil: a goroutine).
	Async func(func(context.Context))
}

// Subscriber keeps one presence subscription per working presence account
// in every tenant that tracks over guest accounts (SPEC section 14).
type Subscriber struct {
	o SubscriberOptions

	locks sync.Map // tenant -> *sync.Mutex: one maintenance at a time per tenant in this process
}

// NewSubscriber returns a Subscriber.
func NewSubscriber(o SubscriberOptions) (*Subscriber, error) {
	if o.Store == nil || o.Graph == nil || o.Subs == nil || o.Tracked == nil || o.NotificationURL == "" || o.Certificate == nil {
		return nil, switchboard.Errorf(switchboard.EINTERNAL, "presence.NewSubscriber", "store, graph, subscriptions, tracked users, notification URL and certificate are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	defd(&o.Lifetime, 60*time.Minute)
	o.Lifetime = min(o.Lifetime, 60*time.Minute)
	defd(&o.RenewBefore, 15*time.Minute)
	defd(&o.ChooseEvery, 15*time.Minute)
	defd(&o.ReconcileEvery, 5*time.Minute)
	defd(&o.RetryFailedAfter, 5*time.Minute)
	if o.MaxUsers <= 0 || o.MaxUsers > MaxSubscriptionUsers {
		o.MaxUsers = MaxSubscriptionUsers
	}
	if o.Async == nil {
		o.Async = func(f func(context.Context)) {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				f(ctx)
			}()
		}
	}
	return &Subscriber{o: o}, nil
}

func (s *Subscriber) lock(tenant string) func() {
	m, _ := s.locks.LoadOrStore(tenant, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// accounts returns the configured presence accounts, in order.
func (s *Subscriber) accounts() []switchboard.PresenceSource {
	var out []switchboard.PresenceSource
	if s.o.Account1UPN != "" {
		out = append(out, switchboard.SourceAccount1)
	}
	if s.o.Account2UPN != "" {
		out = append(out, switchboard.SourceAccount2)
	}
	return out
}

// HousekeepingReport says what Housekeep did.
type HousekeepingReport struct {
	Tenants, Created, Renewed, Deleted, Reconciled, Failed int
}

// Housekeep maintains every tenant's subscriptions until ctx ends; one
// tenant failing does not stop the others.
func (s *Subscriber) Housekeep(ctx context.Context) (HousekeepingReport, error) {
	var rep HousekeepingReport
	tenants, err := s.o.Tracked.Tenants(ctx)
	if err != nil {
		return rep, switchboard.Wrap(switchboard.EUNAVAILABLE, "presence.Housekeep", err)
	}
	var errs []error
	for _, t := range tenants {
		if ctx.Err() != nil {
			break
		}
		r, err := s.Maintain(ctx, t)
		rep.Tenants++
		rep.Created += r.Created
		rep.Renewed += r.Renewed
		rep.Deleted += r.Deleted
		rep.Reconciled += r.Reconciled
		rep.Failed += r.Failed
		if err != nil {
			errs = append(errs, fmt.Errorf("tenant %s: %w", t, err))
		}
	}
	return rep, errors.Join(errs...)
}

// Maintain brings one tenant's subscriptions to what section 14 asks:
// none unless the tenant tracks over guest accounts; else one per working
// account over the chosen users, renewed before expiry, re-created after a
// failure or a new choice, and its users read every ReconcileEvery.
func (s *Subscriber) Maintain(ctx context.Context, tenant string) (HousekeepingReport, error) {
	defer s.lock(tenant)()
	var rep HousekeepingReport
	now := s.o.Now()
	subs, err := s.o.Store.subscriptions(ctx, tenant, true)
	if err != nil {
		return rep, err
	}
	guest := false
	if s.o.Settings != nil {
		if guest, err = s.o.Settings.TrackOverGuestAccounts(ctx, tenant); err != nil {
			return rep, err
		}
	}
	if !guest {
		for _, sub := range subs {
			s.remove(ctx, tenant, sub)
			rep.Deleted++
		}
		return rep, nil
	}

	statuses := s.o.Store.sourceStatuses(tenant)
	working := func(src switchboard.PresenceSource) bool {
		if statuses[src].RetryAt.After(now) {
			return false // the poll found the account broken: it pauses
		}
		sub, ok := subs[src]
		return !ok || sub.State != SubFailing || sub.ID != "" || now.Sub(sub.LastErrorAt) >= s.o.RetryFailedAfter
	}
	var live []switchboard.PresenceSource
	for _, src := range s.accounts() {
		if working(src) {
			live = append(live, src)
		}
	}
	for src, sub := range subs {
		if !slices.Contains(s.accounts(), src) {
			s.remove(ctx, tenant, sub)
			delete(subs, src)
			rep.Deleted++
		}
	}

	targets, chosenAt, err := s.targets(ctx, tenant, subs, live, now)
	if err != nil {
		return rep, err
	}
	var errs []error
	for _, src := range s.accounts() {
		sub, exists := subs[src]
		users, want := targets[src]
		if !want || len(users) == 0 {
			if exists && slices.Contains(live, src) {
				// Nothing to cover any more (fewer agents).
				s.remove(ctx, tenant, sub)
				rep.Deleted++
			} else if exists && sub.State != SubFailing {
				s.markFailing(ctx, tenant, sub, "the presence account is failing in this tenant; its agents are polled", now)
			}
			continue
		}
		switch {
		case exists && sub.ID != "" && sub.State == SubActive && sameUsers(sub.Users, users) && now.Before(sub.ExpiresAt):
			if sub.ExpiresAt.Sub(now) <= s.o.RenewBefore {
				if err := s.renew(ctx, tenant, sub, now); err != nil {
					errs = append(errs, err)
					rep.Failed++
					continue
				}
				rep.Renewed++
			}
		default:
			if exists && sub.ID != "" {
				s.deleteRemote(ctx, tenant, sub)
			}
			if err := s.create(ctx, tenant, src, users, chosenAt, now, untrustedSince(subs, users, now)); err != nil {
				errs = append(errs, err)
				rep.Failed++
				continue
			}
			rep.Created++
		}
	}
	// Reconciliation: the covered users are read every ReconcileEvery,
	// and at once after missed notifications.
	subs, err = s.o.Store.subscriptions(ctx, tenant, false)
	if err != nil {
		return rep, err
	}
	for _, sub := range subs {
		if sub.ID == "" || sub.State != SubActive {
			continue
		}
		if sub.NeedsRead || now.Sub(sub.ReadAt) >= s.o.ReconcileEvery {
			if err := s.readUsers(ctx, tenant, sub); err != nil {
				errs = append(errs, err)
				continue
			}
			rep.Reconciled++
		}
	}
	return rep, errors.Join(errs...)
}

// targets returns the users each live account's subscription covers. A
// new choice is made at most every ChooseEvery; in between, the sets stay
// as they are, and a set whose account stopped working moves to a live
// account that has none (or its users go back to polling).
func (s *Subscriber) targets(ctx context.Context, tenant string, subs map[switchboard.PresenceSource]subState, live []switchboard.PresenceSource, now time.Time) (map[switchboard.PresenceSource][]string, time.Time, error) {
	var lastChosen time.Time
	for _, sub := range subs {
		if sub.ChosenAt.After(lastChosen) && len(sub.Users) > 0 {
			lastChosen = sub.ChosenAt
		}
	}
	out := map[switchboard.PresenceSource][]string{}
	if !lastChosen.IsZero() && now.Sub(lastChosen) < s.o.ChooseEvery {
		// Trusted rows first, so that users a returning account still
		// lists, but which moved to the other account meanwhile, stay
		// where they are (a user is covered once).
		order := slices.Clone(s.accounts())
		sort.SliceStable(order, func(i, j int) bool { return subs[order[i]].trusted(now) && !subs[order[j]].trusted(now) })
		placed := map[string]bool{}
		var orphans [][]string
		for _, src := range order {
			sub, ok := subs[src]
			if !ok || len(sub.Users) == 0 {
				continue
			}
			var keep []string
			for _, u := range sub.Users {
				if !placed[u] {
					keep = append(keep, u)
					placed[u] = true
				}
			}
			switch {
			case len(keep) == 0:
			case slices.Contains(live, src):
				out[src] = keep
			default:
				orphans = append(orphans, keep)
			}
		}
		for _, src := range live {
			if _, has := out[src]; !has && len(orphans) > 0 {
				out[src], orphans = orphans[0], orphans[1:]
			}
		}
		return out, lastChosen, nil
	}
	users, err := s.o.Tracked.TrackedUsers(ctx, tenant)
	if err != nil {
		return nil, time.Time{}, switchboard.Wrap(switchboard.EUNAVAILABLE, "presence.Subscriber", err)
	}
	var last map[string]time.Time
	if s.o.Recent != nil {
		if last, err = s.o.Recent.LastRouted(ctx, tenant); err != nil {
			s.o.Log.Warn("presence subscriptions: routing activity unreadable; choosing by user id", "tenant", tenant, "err", err)
			last = nil
		}
	}
	chosen := ChooseCovered(users, last, len(live)*s.o.MaxUsers)
	return splitCovered(chosen, live, subs, s.o.MaxUsers), now, nil
}

// splitCovered spreads the chosen users over the live accounts, at most
// max each: an account keeps those of its current users that are still
// chosen (so that an unchanged set is only renewed, not re-created), and
// the rest fill the accounts in order.
func splitCovered(chosen []string, live []switchboard.PresenceSource, subs map[switchboard.PresenceSource]subState, maxUsers int) map[switchboard.PresenceSource][]string {
	out := map[switchboard.PresenceSource][]string{}
	placed := map[string]bool{}
	in := map[string]bool{}
	for _, u := range chosen {
		in[u] = true
	}
	for _, src := range live {
		for _, u := range subs[src].Users {
			if in[u] && !placed[u] && len(out[src]) < maxUsers {
				out[src] = append(out[src], u)
				placed[u] = true
			}
		}
	}
	for _, u := range chosen {
		if placed[u] {
			continue
		}
		for _, src := range live {
			if len(out[src]) < maxUsers {
				out[src] = append(out[src], u)
				placed[u] = true
				break
			}
		}
	}
	for src := range out {
		slices.Sort(out[src])
	}
	return out
}

// ChooseCovered returns the n users a tenant's subscriptions cover: those
// most recently given a conversation first, then by user id ascending.
func ChooseCovered(users []string, lastRouted map[string]time.Time, n int) []string {
	valid := make([]string, 0, len(users))
	for _, u := range users {
		if validUserID(u) {
			valid = append(valid, u)
		}
	}
	slices.Sort(valid)
	valid = slices.Compact(valid)
	sort.SliceStable(valid, func(i, j int) bool {
		a, b := lastRouted[valid[i]], lastRouted[valid[j]]
		return a.After(b)
	})
	return valid[:min(n, len(valid))]
}

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

// untrustedSince returns since when users have gone without a trusted
// subscription: zero when none vouched for any of them (polls read them
// all along), now when one did (polls skipped them until now).
func untrustedSince(subs map[switchboard.PresenceSource]subState, users []string, now time.Time) time.Time {
	var since time.Time
	for _, sub := range subs {
		if !slices.ContainsFunc(users, func(u string) bool { return slices.Contains(sub.Users, u) }) {
			continue
		}
		at := sub.UntrustedAt
		if sub.trusted(now) || (at.IsZero() && sub.ID != "" && sub.State == SubActive) {
			at = now
		}
		if at.After(since) {
			since = at
		}
	}
	return since
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
		s.o.Log.Warn("presence subscription: creation failed; its agents are polled", "tenant", tenant, "account", src, "reason", se.Reason, "status", se.Status)
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
			s.o.Log.Warn("presence subscription: deleting it in Graph failed; it lapses at its expiry", "tenant", tenant, "account", sub.Source, "reason", se.Reason)
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
			s.o.Log.Info("presence subscription: reauthorizing failed; renewing instead", "tenant", tenant, "account", src, "reason", switchboard.AsSourceError(src, rerr).Reason)
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

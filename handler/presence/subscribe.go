package presence

// The Subscriber: housekeeping brings each tenant's presence
// subscriptions to what section 14 asks (cover.go chooses whom they
// cover, subscription.go keeps each one, substate.go stores them).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
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
	CreateSubscription(
		ctx context.Context,
		tenant string,
		src switchboard.PresenceSource,
		req switchboard.PresenceSubscriptionRequest,
	) (switchboard.PresenceSubscription, error)
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
		return nil, switchboard.Errorf(switchboard.EINTERNAL, "presence.NewSubscriber", "store, graph, subscriptions, tracked users, notification "+
			"URL and certificate are required")
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
	guest, err := s.tracksOverGuestAccounts(ctx, tenant)
	if err != nil {
		return rep, err
	}
	if !guest {
		for _, sub := range subs {
			s.remove(ctx, tenant, sub)
			rep.Deleted++
		}
		return rep, nil
	}
	live := s.live(tenant, subs, now)
	rep.Deleted += s.removeUnconfigured(ctx, tenant, subs)
	targets, chosenAt, err := s.targets(ctx, tenant, subs, live, now)
	if err != nil {
		return rep, err
	}
	var errs []error
	for _, src := range s.accounts() {
		if err := s.maintainAccount(ctx, tenant, src, subs, live, targets[src], chosenAt, now, &rep); err != nil {
			errs = append(errs, err)
			rep.Failed++
		}
	}
	// Reconciliation: the covered users are read every ReconcileEvery,
	// and at once after missed notifications.
	subs, err = s.o.Store.subscriptions(ctx, tenant, false)
	if err != nil {
		return rep, err
	}
	errs = append(errs, s.reconcile(ctx, tenant, subs, now, &rep)...)
	return rep, errors.Join(errs...)
}

// tracksOverGuestAccounts returns the tenant's
// presenceTracking.trackOverGuestAccounts (false without settings).
func (s *Subscriber) tracksOverGuestAccounts(ctx context.Context, tenant string) (bool, error) {
	if s.o.Settings == nil {
		return false, nil
	}
	return s.o.Settings.TrackOverGuestAccounts(ctx, tenant)
}

// live returns the configured accounts that may hold a subscription now:
// not paused by the poll, and not failed less than RetryFailedAfter ago.
func (s *Subscriber) live(tenant string, subs map[switchboard.PresenceSource]subState, now time.Time) []switchboard.PresenceSource {
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
	return live
}

// removeUnconfigured removes (and drops from subs) the subscriptions of
// accounts the deployment no longer has, and returns how many.
func (s *Subscriber) removeUnconfigured(ctx context.Context, tenant string, subs map[switchboard.PresenceSource]subState) int {
	n := 0
	for src, sub := range subs {
		if !slices.Contains(s.accounts(), src) {
			s.remove(ctx, tenant, sub)
			delete(subs, src)
			n++
		}
	}
	return n
}

// maintainAccount brings src's subscription to cover users: removed when
// there is nothing left to cover, marked failing when its account is not
// live, renewed when only its expiry nears, else (re-)created. It returns
// the error of a renewal or creation that failed.
func (s *Subscriber) maintainAccount(ctx context.Context, tenant string, src switchboard.PresenceSource, subs map[switchboard.PresenceSource]subState,
	live []switchboard.PresenceSource, users []string, chosenAt, now time.Time, rep *HousekeepingReport) error {
	sub, exists := subs[src]
	if len(users) == 0 {
		if exists && slices.Contains(live, src) {
			// Nothing to cover any more (fewer agents).
			s.remove(ctx, tenant, sub)
			rep.Deleted++
		} else if exists && sub.State != SubFailing {
			s.markFailing(ctx, tenant, sub, "the presence account is failing in this tenant; its agents are polled", now)
		}
		return nil
	}
	if exists && sub.ID != "" && sub.State == SubActive && sameUsers(sub.Users, users) && now.Before(sub.ExpiresAt) {
		if sub.ExpiresAt.Sub(now) <= s.o.RenewBefore {
			if err := s.renew(ctx, tenant, sub, now); err != nil {
				return err
			}
			rep.Renewed++
		}
		return nil
	}
	if exists && sub.ID != "" {
		s.deleteRemote(ctx, tenant, sub)
	}
	if err := s.create(ctx, tenant, src, users, chosenAt, now, untrustedSince(subs, users, now)); err != nil {
		return err
	}
	rep.Created++
	return nil
}

// reconcile reads the users of every active subscription that missed
// notifications or was last read ReconcileEvery ago, and returns the
// errors of the reads that failed.
func (s *Subscriber) reconcile(
	ctx context.Context,
	tenant string,
	subs map[switchboard.PresenceSource]subState,
	now time.Time,
	rep *HousekeepingReport,
) []error {
	var errs []error
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
	return errs
}

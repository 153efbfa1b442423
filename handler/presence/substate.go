package presence

import (
	"slices"
	"strings"
	"time"

	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// Row keys of the subscription rows in the state partition: one per
// presence account, since Graph allows one presence subscription per user
// and application.
const subRowPrefix = "notify."

func subRowKey(src switchboard.PresenceSource) string { return subRowPrefix + string(src) }

// Subscription states.
const (
	SubActive  = "active"  // created or renewed, notifications flowing
	SubFailing = "failing" // creation, renewal or reauthorization failed, or Graph removed it
)

// subState is a presence account's subscription in a tenant, as the
// state partition holds it.
type subState struct {
	Source      switchboard.PresenceSource
	ID          string // Graph's subscription id; "" while none exists
	ClientState string // secret: compared with every notification, never shown
	Users       []string
	ExpiresAt   time.Time // as Graph granted it
	ChosenAt    time.Time // when Users was chosen (re-chosen at most every 15 min)
	State       string
	// UntrustedAt is when the subscription stopped vouching for its users
	// (a failure, missed or removed notifications); zero while trusted.
	UntrustedAt time.Time
	// NeedsRead: notifications were missed or the subscription was
	// removed, so its users' stored readings may be wrong until they are
	// read again; it vouches for nothing before then.
	NeedsRead bool
	// ReadAt is when every one of its users was last read from Graph
	// (reconciliation).
	ReadAt time.Time
	// TrustedAt is when it last began vouching again after a missed or
	// removed notice; an UntrustedAt not after it no longer counts.
	TrustedAt          time.Time
	LastNotificationAt time.Time
	LastError          string
	LastErrorAt        time.Time
	ETag               string
}

// trusted reports whether the subscription vouches for its users at now:
// active, not expired, nothing missed.
func (s subState) trusted(now time.Time) bool {
	return s.State == SubActive && s.ID != "" && !s.NeedsRead && now.Before(s.ExpiresAt)
}

func (s subState) entity(tenant string) store.Entity {
	props := map[string]any{
		"SubscriptionId": s.ID,
		"ClientState":    s.ClientState,
		"Users":          strings.Join(s.Users, ","),
		"State":          s.State,
		"NeedsRead":      s.NeedsRead,
		"LastError":      s.LastError,
	}
	for name, t := range map[string]time.Time{"ExpiresAt": s.ExpiresAt, "ChosenAt": s.ChosenAt, "UntrustedAt": s.UntrustedAt,
		"ReadAt": s.ReadAt, "TrustedAt": s.TrustedAt, "LastNotificationAt": s.LastNotificationAt, "LastErrorAt": s.LastErrorAt} {
		if !t.IsZero() {
			props[name] = t.UTC()
		}
	}
	return store.Entity{PartitionKey: tenant, RowKey: subRowKey(s.Source), Props: props, ETag: s.ETag}
}

func subStateFromEntity(src switchboard.PresenceSource, e store.Entity) subState {
	s := subState{
		Source:             src,
		ID:                 e.String("SubscriptionId"),
		ClientState:        e.String("ClientState"),
		State:              e.String("State"),
		NeedsRead:          e.Bool("NeedsRead"),
		LastError:          e.String("LastError"),
		ExpiresAt:          e.Time("ExpiresAt"),
		ChosenAt:           e.Time("ChosenAt"),
		UntrustedAt:        e.Time("UntrustedAt"),
		ReadAt:             e.Time("ReadAt"),
		TrustedAt:          e.Time("TrustedAt"),
		LastNotificationAt: e.Time("LastNotificationAt"),
		LastErrorAt:        e.Time("LastErrorAt"),
		ETag:               e.ETag,
	}
	if u := e.String("Users"); u != "" {
		s.Users = strings.Split(u, ",")
	}
	if !s.UntrustedAt.After(s.TrustedAt) {
		s.UntrustedAt = time.Time{}
	}
	return s
}

// coverage is what the subscription rows say about each covered user.
// A user can be in two rows for a while: a failing account's, whose users
// moved to the other account's new subscription.
type coverage struct {
	subs   map[switchboard.PresenceSource]subState
	byUser map[string][]switchboard.PresenceSource
}

func newCoverage(subs map[switchboard.PresenceSource]subState) coverage {
	c := coverage{subs: subs, byUser: map[string][]switchboard.PresenceSource{}}
	for _, src := range []switchboard.PresenceSource{switchboard.SourceAccount1, switchboard.SourceAccount2} {
		s, ok := subs[src]
		if !ok || (s.ID == "" && s.State != SubFailing) {
			continue
		}
		for _, u := range s.Users {
			c.byUser[u] = append(c.byUser[u], src)
		}
	}
	return c
}

// untrustedSince is when s stopped vouching for its users: UntrustedAt,
// or its expiry when it lapsed without renewal; zero when it never did.
func (s subState) untrustedSince() time.Time {
	if s.UntrustedAt.IsZero() && s.State == SubActive && s.ID != "" && !s.NeedsRead {
		return s.ExpiresAt
	}
	return s.UntrustedAt
}

// confirm returns the subscription row that speaks for user: a trusted
// one if any, else the one that stopped vouching last (the cautious
// choice for which polls count).
func (c coverage) confirm(user string, now time.Time) (sub subState, covered, trusted bool) {
	srcs := c.byUser[user]
	if len(srcs) == 0 {
		return subState{}, false, false
	}
	best := c.subs[srcs[0]]
	for _, src := range srcs {
		s := c.subs[src]
		if s.trusted(now) {
			return s, true, true
		}
		if s.untrustedSince().After(best.untrustedSince()) {
			best = s
		}
	}
	return best, true, false
}

// coveredUsers returns the users of trusted subscriptions at now.
func (c coverage) trustedUsers(now time.Time) map[string]bool {
	out := map[string]bool{}
	for _, s := range c.subs {
		if s.trusted(now) {
			for _, u := range s.Users {
				out[u] = true
			}
		}
	}
	return out
}

func sameUsers(a, b []string) bool {
	return slices.Equal(a, b)
}

// confirmCovered applies a subscription's word to a stored reading p: a
// user covered by a trusted subscription is confirmed now; one whose
// subscription stopped vouching is confirmed by its last full read, and
// by the shard's poll only when that poll came late enough to have read
// the user (polls skip users of trusted subscriptions).
func (s *Store) confirmCovered(cov coverage, p switchboard.Presence, st stored, shardConfirmedAt time.Time, now time.Time) switchboard.Presence {
	sub, covered, trusted := cov.confirm(p.UserID, now)
	if !covered {
		return p
	}
	if trusted {
		p.ConfirmedAt = now
		return p
	}
	confirmed := st.ChangedAt
	if sub.ReadAt.After(confirmed) {
		confirmed = sub.ReadAt
	}
	untrustedAt := sub.untrustedSince()
	if untrustedAt.Equal(sub.ExpiresAt) && sub.UntrustedAt.IsZero() && untrustedAt.After(confirmed) {
		// Lapsed without renewal: notifications flowed until it expired.
		confirmed = untrustedAt
	}
	switch {
	case untrustedAt.IsZero():
		// Never trusted (its creation failed): polls read the user.
		if shardConfirmedAt.After(confirmed) {
			confirmed = shardConfirmedAt
		}
	case shardConfirmedAt.After(untrustedAt.Add(s.pollMargin)) && shardConfirmedAt.After(confirmed):
		confirmed = shardConfirmedAt
	}
	p.ConfirmedAt = confirmed
	return p
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

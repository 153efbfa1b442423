package switchboard

import (
	"context"
	"time"
)

// Availability values Graph reports (presence.availability).
const (
	Available       = "Available"
	AvailableIdle   = "AvailableIdle"
	Away            = "Away"
	BeRightBack     = "BeRightBack"
	Busy            = "Busy"
	BusyIdle        = "BusyIdle"
	DoNotDisturb    = "DoNotDisturb"
	Offline         = "Offline"
	PresenceUnknown = "PresenceUnknown"
)

// Activity values that routing distinguishes (presence.activity); Graph
// reports more, and every value is stored as read.
const (
	ActivityAvailable               = "Available"
	ActivityInACall                 = "InACall"
	ActivityInAConferenceCall       = "InAConferenceCall"
	ActivityInAMeeting              = "InAMeeting"
	ActivityBusy                    = "Busy"
	ActivityPresenting              = "Presenting"
	ActivityFocusing                = "Focusing"
	ActivityUrgentInterruptionsOnly = "UrgentInterruptionsOnly"
	ActivityDoNotDisturb            = "DoNotDisturb"
	ActivityAway                    = "Away"
	ActivityBeRightBack             = "BeRightBack"
	ActivityOffWork                 = "OffWork"
	ActivityOutOfOffice             = "OutOfOffice"
	ActivityInactive                = "Inactive"
	ActivityOffline                 = "Offline"
	ActivityPresenceUnknown         = "PresenceUnknown"
)

// Presence sources: which credential a reading was taken through.
const (
	SourceAccount1    = "account1"
	SourceAccount2    = "account2"
	SourceApplication = "application"
)

// Presence is the stored Teams presence of one user.
type Presence struct {
	UserID       string
	Availability string
	Activity     string
	OutOfOffice  bool
	// Source is account1, account2 or application.
	Source string
	// Extended is true when the activity is known as Teams users inside the
	// tenant see it (read through a presence account); false for a basic
	// reading, of which only Availability is trusted (seed 000).
	Extended bool
	// ChangedAt is when this reading was first seen with these values.
	ChangedAt time.Time
	// ConfirmedAt is when a poll last confirmed it: per shard or per poll,
	// not rewritten per entity, so it is the later of ChangedAt and the
	// last successful poll of the user's shard.
	ConfirmedAt time.Time
}

// Age returns how old the reading is at now.
func (p Presence) Age(now time.Time) time.Duration { return now.Sub(p.ConfirmedAt) }

// Stale reports whether the reading is older than staleAfter at now.
func (p Presence) Stale(now time.Time, staleAfter time.Duration) bool {
	return p.ConfirmedAt.IsZero() || p.Age(now) > staleAfter
}

// PresenceStore is what routing needs of the presence store.
type PresenceStore interface {
	// Readings returns the stored readings of userIDs in tenantID, keyed by
	// user id; users never read are absent from the map. It is on the route
	// path: it must serve 1,000 users in a few milliseconds.
	Readings(ctx context.Context, tenantID string, userIDs []string) (map[string]Presence, error)
}

// TrackedUsers tells the presence poll whose presence to read.
type TrackedUsers interface {
	// Tenants returns every tenant that has tracked users.
	Tenants(ctx context.Context) ([]string, error)
	// TrackedUsers returns the ids of the tenant's tracked users (the
	// members of its services), sorted and without duplicates.
	TrackedUsers(ctx context.Context, tenantID string) ([]string, error)
}

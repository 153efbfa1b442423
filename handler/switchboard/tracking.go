package switchboard

import "time"

// The presence API's answers (SPEC sections 3, 6 and 14). Package presence
// produces them; the HTTP layer renders them.

// States of a presence source in the tracking view.
const (
	PresenceSourceOK            = "ok"             // the last attempt worked
	PresenceSourceFailing       = "failing"        // the last attempt failed (see the status for why)
	PresenceSourceUntested      = "untested"       // enabled, never tried yet
	PresenceSourceDisabled      = "disabled"       // configured, but the tenant does not track over guest accounts
	PresenceSourceNotConfigured = "not-configured" // the deployment has no credentials for it
)

// States of a tenant's change notifications in the tracking view.
const (
	NotificationsActive  = "active"  // every subscription vouches for its users
	NotificationsOff     = "off"     // not configured, the tenant does not track over guest accounts, or no subscription yet
	NotificationsFailing = "failing" // a subscription failed or missed notifications: its users are polled
)

// PresenceTracking is the presence tracking state of a tenant.
type PresenceTracking struct {
	TrackOverGuestAccounts bool
	Sources                []PresenceSourceView
	// AdminConsentURL grants the delegated permissions the presence
	// accounts use; ApplicationConsentURL grants what the app registration
	// asks for, application permission Presence.Read.All included.
	AdminConsentURL       string
	ApplicationConsentURL string
	LastPoll              *PresencePollFigures
	LastShardPoll         *PresencePollFigures
	Shards                int
	StaleAfter            time.Duration
	Notifications         PresenceNotificationsView
}

// PresenceSourceView is one source as a tenant admin sees it.
type PresenceSourceView struct {
	Source     PresenceSource
	Account    int    // 1 or 2 for the presence accounts, 0 for the application
	UPN        string // the presence account's user principal name
	Configured bool
	// Enabled: the poll uses it (configured and, for the presence
	// accounts, the tenant tracks over guest accounts).
	Enabled bool
	State   string
	Status  PresenceSourceStatus
}

// PresenceSourceStatus is how one source fares in one tenant.
type PresenceSourceStatus struct {
	Source        PresenceSource
	LastSuccessAt time.Time
	LastErrorAt   time.Time
	LastReason    SourceReason
	LastMessage   string
	LastCode      string
	// Invited is whether the presence account signed into the tenant as a
	// guest (nil while unknown; always nil for the application).
	Invited *bool
	// PermissionGranted is whether Graph let the source read presence (nil
	// while unknown).
	PermissionGranted *bool
	// RetryAt is when the poll tries the source again after a failure
	// that is the source's own (a wrong password retried every 30 s would
	// lock the account out): zero when it may be tried now.
	RetryAt             time.Time
	ConsecutiveFailures int
}

// Failing reports whether the last attempt failed.
func (st PresenceSourceStatus) Failing() bool { return st.LastErrorAt.After(st.LastSuccessAt) }

// PresencePollFigures are the figures of a tenant's last poll. Their JSON
// is how package presence stores them.
type PresencePollFigures struct {
	Kind      string        `json:"kind"` // "timer" or "shard" (a fanned-out shard)
	StartedAt time.Time     `json:"startedAt"`
	Duration  time.Duration `json:"duration"`
	Users     int           `json:"users"`   // users read
	Covered   int           `json:"covered"` // users not read: a trusted presence subscription vouches for them
	Changed   int           `json:"changed"` // readings written (changed, new or removed)
	Calls     int           `json:"calls"`   // Graph requests, retries included
	Errors    int           `json:"errors"`  // failed Graph requests and failed writes
	Throttled int           `json:"throttled"`
	// Shards polled, confirmed (every user read), left over, fanned out.
	Shards          int              `json:"shards"`
	ShardsConfirmed int              `json:"shardsConfirmed"`
	ShardsLeft      int              `json:"shardsLeft"`
	ShardsFannedOut int              `json:"shardsFannedOut"`
	Sources         []PresenceSource `json:"sources"` // sources that read something, in order
	Error           string           `json:"error,omitempty"`
}

// PresenceNotificationsView is the change notifications part of the
// tracking state.
type PresenceNotificationsView struct {
	State              string
	Subscriptions      []PresenceSubscriptionView
	Covered            int // users vouched for by a trusted subscription now
	LastNotificationAt time.Time
	LastError          string
	LastErrorAt        time.Time
}

// PresenceSubscriptionView is one presence subscription as a tenant admin
// sees it.
type PresenceSubscriptionView struct {
	Account   int
	Source    PresenceSource
	Users     int
	State     string
	ExpiresAt time.Time
}

// PresenceTestResult is the outcome of a Test UPN.
type PresenceTestResult struct {
	UPN      string
	Account  int
	Source   PresenceSource
	OK       bool
	User     *DirectoryUser
	Presence *PresenceReading
	Extended bool
	ReadAt   time.Time
	Error    *SourceError
}

// UserPresence is a stored reading with its age.
type UserPresence struct {
	Presence
	Age        time.Duration
	Stale      bool
	StaleAfter time.Duration
}

package switchboard

import "time"

// Services (routing): who can take a service's conversations and how they
// are distributed.

// Orders among eligible agents.
const (
	OrderLongestIdle = "LongestIdle" // the agent idle longest first
	OrderRoundRobin  = "RoundRobin"  // the next member after the last one chosen
	OrderBroadcast   = "Broadcast"   // the BroadcastSize longest-idle agents at once
)

// Distribution is how a service distributes its conversations.
type Distribution struct {
	// DeliverWhileBusy offers conversations to agents who are Busy (but
	// never in a call, where that can be seen). Off is the seeds' "Do not
	// distribute to user".
	DeliverWhileBusy bool
	// DeliverWhileAway offers conversations to agents who are Away or Be
	// right back.
	DeliverWhileAway bool
	Order            string
	// BroadcastSize is how many agents a Broadcast offers at once.
	BroadcastSize int
	// HoldSeconds is how long a reservation lasts unless the route request
	// says otherwise.
	HoldSeconds int

	// RingSeconds is how long an offer rings before it lapses (SPEC
	// section 10).
	RingSeconds int
	Rona        Rona
	// AfterCallWorkSeconds holds an agent out of distribution after a
	// released conversation.
	AfterCallWorkSeconds int
	Queue                QueueRules
}

// Rona is what a lapsed (or declined) offer does to its agent.
type Rona struct {
	Enabled      bool
	ResetSeconds int
	OnDecline    bool
}

// QueueRules are a service's waiting-line limits and what happens past them.
type QueueRules struct {
	MaxWaitSeconds int
	MaxLength      int
	OnTimeout      Overflow
	OnFull         Overflow
	OnNoAgents     Overflow
}

// Overflow actions.
const (
	ActionDisconnect = "Disconnect"
	ActionForward    = "Forward"
	ActionCallback   = "Callback"
	ActionQueue      = "Queue" // onNoAgents only: queue anyway
)

// Overflow is one overflow rule: an action and, for Forward (required) and
// Callback (optional, default the same service), the target service.
type Overflow struct {
	Action    string
	ServiceID string
}

// Member is a user of a service. An inactive member has opted out and is
// never offered the service's conversations.
type Member struct {
	UserID string
	Active bool
	// Skills are the member's skill levels (1-10) by name.
	Skills map[string]int
}

// Equal reports whether two members are the same (slices.EqualFunc).
func (m Member) Equal(o Member) bool {
	if m.UserID != o.UserID || m.Active != o.Active || len(m.Skills) != len(o.Skills) {
		return false
	}
	for k, v := range m.Skills {
		if o.Skills[k] != v {
			return false
		}
	}
	return true
}

// Want returns how many agents the service offers a conversation to at once.
func (d Distribution) Want() int {
	if d.Order == OrderBroadcast {
		return max(d.BroadcastSize, 1)
	}
	return 1
}

// Limits of a service definition.
const (
	MaxServiceNameLength = 200
	MaxServiceMembers    = 25000 // the size limit of a Microsoft Teams team
	MinBroadcastSize     = 1
	MaxBroadcastSize     = 50
	DefaultBroadcast     = 10
	MinHoldSeconds       = 5
	MaxHoldSeconds       = 3600
	DefaultHoldSeconds   = 30
	MaxPreferredUsers    = 10

	// SPEC section 10.
	MinRingSeconds          = 5
	MaxRingSeconds          = 180
	DefaultRingSeconds      = 20
	MinRonaResetSeconds     = 10
	MaxRonaResetSeconds     = 19200
	DefaultRonaResetSeconds = 600
	MaxAfterCallWorkSeconds = 3600
	MinMaxWaitSeconds       = 10
	MaxMaxWaitSeconds       = 2700
	DefaultMaxWaitSeconds   = 1200
	MinMaxLength            = 1
	MaxMaxLength            = 200
	DefaultMaxLength        = 50
	MaxSkillsPerMember      = 50
	MinSkillLevel           = 1
	MaxSkillLevel           = 10
)

// DefaultDistribution is the distribution of a service that sets nothing,
// and what services stored before a field existed read as.
func DefaultDistribution() Distribution {
	return Distribution{
		Order: OrderLongestIdle, BroadcastSize: DefaultBroadcast, HoldSeconds: DefaultHoldSeconds,
		RingSeconds: DefaultRingSeconds,
		Rona:        Rona{Enabled: true, ResetSeconds: DefaultRonaResetSeconds},
		Queue: QueueRules{
			MaxWaitSeconds: DefaultMaxWaitSeconds, MaxLength: DefaultMaxLength,
			OnTimeout: Overflow{Action: ActionDisconnect}, OnFull: Overflow{Action: ActionDisconnect}, OnNoAgents: Overflow{Action: ActionQueue},
		},
	}
}

// Service is a service: who can take its conversations and how they are
// distributed.
type Service struct {
	TenantID string
	ID       string
	Name     string
	// TeamID, when set, is the Microsoft Teams team whose members are the
	// service's members (synced through Graph); their Active flags are kept
	// across syncs.
	TeamID       string
	Members      []Member // sorted by user id
	Distribution Distribution

	CreatedAt time.Time
	UpdatedAt time.Time
	// LastTeamSync is when the team's members were last read successfully;
	// LastTeamSyncError is the failure of the last attempt since, if any.
	LastTeamSync      time.Time
	LastTeamSyncError string
	// LastTeamSyncAttempt is when the last sync that failed was tried.
	LastTeamSyncAttempt time.Time
	// ETag changes with every write of the service.
	ETag string
}

// ActiveCount returns the number of active members.
func (s Service) ActiveCount() int {
	n := 0
	for _, m := range s.Members {
		if m.Active {
			n++
		}
	}
	return n
}

// ServiceInput is a service as a caller defines it (PUT). Nil pointers take
// the defaults.
type ServiceInput struct {
	Name         *string
	Members      []MemberInput
	TeamID       *string
	Distribution DistributionInput
}

// MemberInput is one member as a caller gives it; Active defaults to true.
type MemberInput struct {
	UserID string
	Active *bool
	Skills map[string]int
}

// DistributionInput is a distribution as a caller gives it.
type DistributionInput struct {
	DeliverWhileBusy *bool
	DeliverWhileAway *bool
	Order            *string
	BroadcastSize    *int
	HoldSeconds      *int

	RingSeconds          *int
	Rona                 *RonaInput
	AfterCallWorkSeconds *int
	Queue                *QueueInput
}

// RonaInput is rona as a caller gives it.
type RonaInput struct {
	Enabled      *bool
	ResetSeconds *int
	OnDecline    *bool
}

// QueueInput is queue as a caller gives it.
type QueueInput struct {
	MaxWaitSeconds *int
	MaxLength      *int
	OnTimeout      *OverflowInput
	OnFull         *OverflowInput
	OnNoAgents     *OverflowInput
}

// OverflowInput is an overflow rule as a caller gives it.
type OverflowInput struct {
	Action    *string
	ServiceID *string
}

// CheckHoldSeconds returns EINVALID naming field unless s is a hold time a
// service or a route request may ask for.
func CheckHoldSeconds(op, field string, s int) error {
	if s < MinHoldSeconds || s > MaxHoldSeconds {
		return FieldError(op, field, "holdSeconds must be between %d and %d, not %d", MinHoldSeconds, MaxHoldSeconds, s)
	}
	return nil
}

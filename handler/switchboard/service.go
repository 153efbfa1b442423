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
}

// Member is a user of a service. An inactive member has opted out and is
// never offered the service's conversations.
type Member struct {
	UserID string
	Active bool
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
)

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
}

// DistributionInput is a distribution as a caller gives it.
type DistributionInput struct {
	DeliverWhileBusy *bool
	DeliverWhileAway *bool
	Order            *string
	BroadcastSize    *int
	HoldSeconds      *int
}

// CheckHoldSeconds returns EINVALID naming field unless s is a hold time a
// service or a route request may ask for.
func CheckHoldSeconds(op, field string, s int) error {
	if s < MinHoldSeconds || s > MaxHoldSeconds {
		return FieldError(op, field, "holdSeconds must be between %d and %d, not %d", MinHoldSeconds, MaxHoldSeconds, s)
	}
	return nil
}

package routing

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"switchboard/handler/switchboard"
)

// Limits of a service definition.
const (
	MaxNameLength      = 200
	MaxMembers         = 25000 // the size limit of a Microsoft Teams team
	MinBroadcastSize   = 1
	MaxBroadcastSize   = 50
	DefaultBroadcast   = 10
	MinHoldSeconds     = 5
	MaxHoldSeconds     = 3600
	DefaultHoldSeconds = 30
	MaxPreferredUsers  = 10
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

// NormalizeUserID returns an Entra object id in its canonical lower-case
// form, or false when u is not one.
func NormalizeUserID(u string) (string, bool) { return switchboard.NormalizeGUID(u) }

// validate checks in and returns the service it defines, members sorted by
// user id, every default applied. Errors are EINVALID and name the JSON
// field ("members[3].userId").
func (in ServiceInput) validate() (name, teamID string, members []Member, d Distribution, err error) {
	const op = "routing.PutService"
	if in.Name == nil || strings.TrimSpace(*in.Name) == "" {
		return "", "", nil, d, switchboard.FieldError(op, "name", "name is required")
	}
	name = strings.TrimSpace(*in.Name)
	if utf8.RuneCountInString(name) > MaxNameLength {
		return "", "", nil, d, switchboard.FieldError(op, "name", "name is longer than %d characters", MaxNameLength)
	}
	if in.TeamID != nil {
		teamID = strings.TrimSpace(*in.TeamID)
		if teamID != "" {
			id, ok := NormalizeUserID(teamID) // a team id is the group's object id: a GUID
			if !ok {
				return "", "", nil, d, switchboard.FieldError(op, "teamId", "teamId %q is not a Microsoft Teams team id (a GUID)", teamID)
			}
			teamID = id
		}
	}
	if len(in.Members) > MaxMembers {
		return "", "", nil, d, switchboard.FieldError(op, "members", "a service has at most %d members, not %d", MaxMembers, len(in.Members))
	}
	seen := make(map[string]int, len(in.Members))
	members = make([]Member, 0, len(in.Members))
	for i, m := range in.Members {
		id, ok := NormalizeUserID(m.UserID)
		if !ok {
			return "", "", nil, d, switchboard.FieldError(op, fmt.Sprintf("members[%d].userId", i), "userId %q is not an Entra object id (a GUID)", m.UserID)
		}
		if j, dup := seen[id]; dup {
			return "", "", nil, d, switchboard.FieldError(op, fmt.Sprintf("members[%d].userId", i), "user %s is listed twice (members[%d] and members[%d])", id, j, i)
		}
		seen[id] = i
		members = append(members, Member{UserID: id, Active: m.Active == nil || *m.Active})
	}
	slices.SortFunc(members, func(a, b Member) int { return strings.Compare(a.UserID, b.UserID) })
	d, err = in.Distribution.validate(op)
	return name, teamID, members, d, err
}

func (in DistributionInput) validate(op string) (Distribution, error) {
	d := Distribution{Order: OrderLongestIdle, BroadcastSize: DefaultBroadcast, HoldSeconds: DefaultHoldSeconds}
	if in.DeliverWhileBusy != nil {
		d.DeliverWhileBusy = *in.DeliverWhileBusy
	}
	if in.DeliverWhileAway != nil {
		d.DeliverWhileAway = *in.DeliverWhileAway
	}
	if in.Order != nil {
		switch *in.Order {
		case OrderLongestIdle, OrderRoundRobin, OrderBroadcast:
			d.Order = *in.Order
		default:
			return d, switchboard.FieldError(op, "distribution.order", "order %q is not one of LongestIdle, RoundRobin, Broadcast", *in.Order)
		}
	}
	if in.BroadcastSize != nil {
		if *in.BroadcastSize < MinBroadcastSize || *in.BroadcastSize > MaxBroadcastSize {
			return d, switchboard.FieldError(op, "distribution.broadcastSize", "broadcastSize must be between %d and %d, not %d", MinBroadcastSize, MaxBroadcastSize, *in.BroadcastSize)
		}
		d.BroadcastSize = *in.BroadcastSize
	}
	if in.HoldSeconds != nil {
		if err := CheckHoldSeconds(op, "distribution.holdSeconds", *in.HoldSeconds); err != nil {
			return d, err
		}
		d.HoldSeconds = *in.HoldSeconds
	}
	return d, nil
}

// CheckHoldSeconds returns EINVALID naming field unless s is a hold time a
// service or a route request may ask for.
func CheckHoldSeconds(op, field string, s int) error {
	if s < MinHoldSeconds || s > MaxHoldSeconds {
		return switchboard.FieldError(op, field, "holdSeconds must be between %d and %d, not %d", MinHoldSeconds, MaxHoldSeconds, s)
	}
	return nil
}

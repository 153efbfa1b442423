package routing

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"switchboard/handler/switchboard"
)

// Limits of a service definition.
const (
	MaxNameLength      = switchboard.MaxServiceNameLength
	MaxMembers         = switchboard.MaxServiceMembers
	MinBroadcastSize   = switchboard.MinBroadcastSize
	MaxBroadcastSize   = switchboard.MaxBroadcastSize
	DefaultBroadcast   = switchboard.DefaultBroadcast
	MinHoldSeconds     = switchboard.MinHoldSeconds
	MaxHoldSeconds     = switchboard.MaxHoldSeconds
	DefaultHoldSeconds = switchboard.DefaultHoldSeconds
	MaxPreferredUsers  = switchboard.MaxPreferredUsers
)

// A service and what a caller sends to define one are domain values
// (package switchboard): the HTTP layer takes and renders them.
type (
	Service           = switchboard.Service
	ServiceInput      = switchboard.ServiceInput
	MemberInput       = switchboard.MemberInput
	DistributionInput = switchboard.DistributionInput
)

// NormalizeUserID returns an Entra object id in its canonical lower-case
// form, or false when u is not one.
func NormalizeUserID(u string) (string, bool) { return switchboard.NormalizeGUID(u) }

// validate checks in and returns the service it defines, members sorted by
// user id, every default applied. Errors are EINVALID and name the JSON
// field ("members[3].userId").
func validateService(in ServiceInput) (name, teamID string, members []Member, d Distribution, err error) {
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
			id, ok := switchboard.NormalizeTeamID(teamID)
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
	d, err = validateDistribution(in.Distribution, op)
	return name, teamID, members, d, err
}

func validateDistribution(in DistributionInput, op string) (Distribution, error) {
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

// CheckHoldSeconds is switchboard.CheckHoldSeconds.
func CheckHoldSeconds(op, field string, sec int) error {
	return switchboard.CheckHoldSeconds(op, field, sec)
}

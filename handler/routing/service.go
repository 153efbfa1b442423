package routing

import (
	"fmt"
	"maps"
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

	// SPEC section 10.
	MinRingSeconds          = switchboard.MinRingSeconds
	MaxRingSeconds          = switchboard.MaxRingSeconds
	DefaultRingSeconds      = switchboard.DefaultRingSeconds
	MinRonaResetSeconds     = switchboard.MinRonaResetSeconds
	MaxRonaResetSeconds     = switchboard.MaxRonaResetSeconds
	DefaultRonaResetSeconds = switchboard.DefaultRonaResetSeconds
	MaxAfterCallWorkSeconds = switchboard.MaxAfterCallWorkSeconds
	MinMaxWaitSeconds       = switchboard.MinMaxWaitSeconds
	MaxMaxWaitSeconds       = switchboard.MaxMaxWaitSeconds
	DefaultMaxWaitSeconds   = switchboard.DefaultMaxWaitSeconds
	MinMaxLength            = switchboard.MinMaxLength
	MaxMaxLength            = switchboard.MaxMaxLength
	DefaultMaxLength        = switchboard.DefaultMaxLength
	MaxSkillsPerMember      = switchboard.MaxSkillsPerMember
	MinSkillLevel           = switchboard.MinSkillLevel
	MaxSkillLevel           = switchboard.MaxSkillLevel
)

// DefaultDistribution is switchboard.DefaultDistribution.
func DefaultDistribution() Distribution { return switchboard.DefaultDistribution() }

// A service and what a caller sends to define one are domain values
// (package switchboard): the HTTP layer takes and renders them.
type (
	Service           = switchboard.Service
	ServiceInput      = switchboard.ServiceInput
	MemberInput       = switchboard.MemberInput
	DistributionInput = switchboard.DistributionInput
	RonaInput         = switchboard.RonaInput
	QueueInput        = switchboard.QueueInput
	OverflowInput     = switchboard.OverflowInput
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
			return "", "", nil, d, switchboard.FieldError(
				op,
				fmt.Sprintf("members[%d].userId", i),
				"user %s is listed twice (members[%d] and members[%d])",
				id,
				j,
				i,
			)
		}
		seen[id] = i
		skills, err := checkSkills(op, fmt.Sprintf("members[%d].skills", i), m.Skills)
		if err != nil {
			return "", "", nil, d, err
		}
		members = append(members, Member{UserID: id, Active: m.Active == nil || *m.Active, Skills: skills})
	}
	slices.SortFunc(members, func(a, b Member) int { return strings.Compare(a.UserID, b.UserID) })
	d, err = validateDistribution(in.Distribution, op)
	return name, teamID, members, d, err
}

func validateDistribution(in DistributionInput, op string) (Distribution, error) {
	d := DefaultDistribution()
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
			return d, switchboard.FieldError(op, "distribution.broadcastSize", "broadcastSize must be between %d and %d, not "+
				"%d", MinBroadcastSize, MaxBroadcastSize, *in.BroadcastSize)
		}
		d.BroadcastSize = *in.BroadcastSize
	}
	if in.HoldSeconds != nil {
		if err := CheckHoldSeconds(op, "distribution.holdSeconds", *in.HoldSeconds); err != nil {
			return d, err
		}
		d.HoldSeconds = *in.HoldSeconds
	}
	if in.RingSeconds != nil {
		if err := checkRange(op, "distribution.ringSeconds", *in.RingSeconds, MinRingSeconds, MaxRingSeconds); err != nil {
			return d, err
		}
		d.RingSeconds = *in.RingSeconds
	}
	if r := in.Rona; r != nil {
		if r.Enabled != nil {
			d.Rona.Enabled = *r.Enabled
		}
		if r.OnDecline != nil {
			d.Rona.OnDecline = *r.OnDecline
		}
		if r.ResetSeconds != nil {
			if err := checkRange(op, "distribution.rona.resetSeconds", *r.ResetSeconds, MinRonaResetSeconds, MaxRonaResetSeconds); err != nil {
				return d, err
			}
			d.Rona.ResetSeconds = *r.ResetSeconds
		}
	}
	if in.AfterCallWorkSeconds != nil {
		if err := checkRange(op, "distribution.afterCallWorkSeconds", *in.AfterCallWorkSeconds, 0, MaxAfterCallWorkSeconds); err != nil {
			return d, err
		}
		d.AfterCallWorkSeconds = *in.AfterCallWorkSeconds
	}
	if q := in.Queue; q != nil {
		if q.MaxWaitSeconds != nil {
			if err := checkRange(op, "distribution.queue.maxWaitSeconds", *q.MaxWaitSeconds, MinMaxWaitSeconds, MaxMaxWaitSeconds); err != nil {
				return d, err
			}
			d.Queue.MaxWaitSeconds = *q.MaxWaitSeconds
		}
		if q.MaxLength != nil {
			if err := checkRange(op, "distribution.queue.maxLength", *q.MaxLength, MinMaxLength, MaxMaxLength); err != nil {
				return d, err
			}
			d.Queue.MaxLength = *q.MaxLength
		}
		var err error
		if d.Queue.OnTimeout, err = validateOverflow(q.OnTimeout, op, "distribution.queue.onTimeout", d.Queue.OnTimeout, false); err != nil {
			return d, err
		}
		if d.Queue.OnFull, err = validateOverflow(q.OnFull, op, "distribution.queue.onFull", d.Queue.OnFull, false); err != nil {
			return d, err
		}
		if d.Queue.OnNoAgents, err = validateOverflow(q.OnNoAgents, op, "distribution.queue.onNoAgents", d.Queue.OnNoAgents, true); err != nil {
			return d, err
		}
	}
	return d, nil
}

// checkSkills validates a member's skills: at most MaxSkillsPerMember,
// names matching ^[a-z0-9][a-z0-9-]{0,39}$, levels 1-10. Nil for none.
func checkSkills(op, field string, skills map[string]int) (map[string]int, error) {
	if len(skills) == 0 {
		return nil, nil
	}
	if len(skills) > MaxSkillsPerMember {
		return nil, switchboard.FieldError(op, field, "a member has at most %d skills, not %d", MaxSkillsPerMember, len(skills))
	}
	names := make([]string, 0, len(skills))
	for n := range skills {
		names = append(names, n)
	}
	slices.Sort(names) // the first bad one named is the same every time
	for _, n := range names {
		if !switchboard.ValidSkillName(n) {
			return nil, switchboard.FieldError(
				op,
				field+"."+n,
				"skill name %q must be 1-40 lower-case letters, digits and -, starting with a letter or digit",
				n,
			)
		}
		if l := skills[n]; l < MinSkillLevel || l > MaxSkillLevel {
			return nil, switchboard.FieldError(op, field+"."+n, "skill level must be between %d and %d, not %d", MinSkillLevel, MaxSkillLevel, l)
		}
	}
	return maps.Clone(skills), nil
}

// CheckRequiredSkills is switchboard.CheckRequiredSkills.
func CheckRequiredSkills(op, field string, need []switchboard.Skill) error {
	return switchboard.CheckRequiredSkills(op, field, need)
}

func checkRange(op, field string, v, lo, hi int) error {
	if v < lo || v > hi {
		return switchboard.FieldError(op, field, "%s must be between %d and %d, not %d", field[strings.LastIndex(field, ".")+1:], lo, hi, v)
	}
	return nil
}

func validateOverflow(in *OverflowInput, op, field string, def Overflow, allowQueue bool) (Overflow, error) {
	if in == nil {
		return def, nil
	}
	o := Overflow{Action: def.Action}
	if in.Action != nil {
		o.Action = *in.Action
	}
	actions := "Disconnect, Forward, Callback"
	switch o.Action {
	case ActionDisconnect, ActionForward, ActionCallback:
	case ActionQueue:
		if !allowQueue {
			return o, switchboard.FieldError(op, field+".action", "action Queue applies to onNoAgents only; here it is one of %s", actions)
		}
	default:
		if allowQueue {
			actions = "Queue, " + actions
		}
		return o, switchboard.FieldError(op, field+".action", "action %q is not one of %s", o.Action, actions)
	}
	if in.ServiceID != nil && *in.ServiceID != "" {
		if !switchboard.ValidID(*in.ServiceID) {
			return o, switchboard.FieldError(op, field+".serviceId", "serviceId %q is not a valid service id", *in.ServiceID)
		}
		switch o.Action {
		case ActionForward, ActionCallback:
			o.ServiceID = *in.ServiceID
		default:
			return o, switchboard.FieldError(op, field+".serviceId", "serviceId applies to Forward and Callback only, not %s", o.Action)
		}
	}
	if o.Action == ActionForward && o.ServiceID == "" {
		return o, switchboard.FieldError(op, field+".serviceId", "Forward needs the serviceId of the target service")
	}
	return o, nil
}

// CheckHoldSeconds is switchboard.CheckHoldSeconds.
func CheckHoldSeconds(op, field string, sec int) error {
	return switchboard.CheckHoldSeconds(op, field, sec)
}

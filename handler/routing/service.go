package routing

import (
	"fmt"
	"maps"
	"regexp"
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

// skillName is the pattern of a skill name.
var skillName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)

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
		skills, err := checkSkills(op, fmt.Sprintf("members[%d].skills", i), m.Skills)
		if err != nil {
			return "", "", nil, d, err
		}
		members = append(members, Member{UserID: id, Active: m.Active == nil || *m.Active, Skills: skills})
	}
	slices.SortFunc(members, func(a, b Member) int { return strings.Compare(a.UserID, b.UserID) })
	d, err = in.Distribution.validate(op)
	return name, teamID, members, d, err
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
		if !skillName.MatchString(n) {
			return nil, switchboard.FieldError(op, field+"."+n, "skill name %q must be 1-40 lower-case letters, digits and -, starting with a letter or digit", n)
		}
		if l := skills[n]; l < MinSkillLevel || l > MaxSkillLevel {
			return nil, switchboard.FieldError(op, field+"."+n, "skill level must be between %d and %d, not %d", MinSkillLevel, MaxSkillLevel, l)
		}
	}
	return maps.Clone(skills), nil
}

// CheckRequiredSkills validates a conversation's required skills (the
// same names and levels as members' skills, each name once).
func CheckRequiredSkills(op, field string, need []switchboard.Skill) error {
	if len(need) > MaxSkillsPerMember {
		return switchboard.FieldError(op, field, "at most %d required skills, not %d", MaxSkillsPerMember, len(need))
	}
	seen := map[string]bool{}
	for i, s := range need {
		f := fmt.Sprintf("%s[%d]", field, i)
		if !skillName.MatchString(s.Name) {
			return switchboard.FieldError(op, f+".name", "skill name %q must be 1-40 lower-case letters, digits and -, starting with a letter or digit", s.Name)
		}
		if seen[s.Name] {
			return switchboard.FieldError(op, f+".name", "skill %q is required twice", s.Name)
		}
		seen[s.Name] = true
		if s.MinLevel < MinSkillLevel || s.MinLevel > MaxSkillLevel {
			return switchboard.FieldError(op, f+".minLevel", "minLevel must be between %d and %d, not %d", MinSkillLevel, MaxSkillLevel, s.MinLevel)
		}
	}
	return nil
}

func checkRange(op, field string, v, lo, hi int) error {
	if v < lo || v > hi {
		return switchboard.FieldError(op, field, "%s must be between %d and %d, not %d", field[strings.LastIndex(field, ".")+1:], lo, hi, v)
	}
	return nil
}

func (in *OverflowInput) validate(op, field string, def Overflow, allowQueue bool) (Overflow, error) {
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

func (in DistributionInput) validate(op string) (Distribution, error) {
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
		if d.Queue.OnTimeout, err = q.OnTimeout.validate(op, "distribution.queue.onTimeout", d.Queue.OnTimeout, false); err != nil {
			return d, err
		}
		if d.Queue.OnFull, err = q.OnFull.validate(op, "distribution.queue.onFull", d.Queue.OnFull, false); err != nil {
			return d, err
		}
		if d.Queue.OnNoAgents, err = q.OnNoAgents.validate(op, "distribution.queue.onNoAgents", d.Queue.OnNoAgents, true); err != nil {
			return d, err
		}
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

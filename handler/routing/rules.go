// Package routing decides who gets a customer's conversation (SPEC section
// 4): the services with their members and distribution settings, the
// presence rules as pure functions, the ordering among eligible agents, and
// atomic reservations of agents in Table Storage.
//
// The rules (this file, and decide.go with the ordering) do no I/O: they take domain
// values and the time, and return a verdict with a stable reason code and a
// sentence for people. The Engine (engine.go) reads what they need from the
// service store, the agent state store and the presence store, and writes
// only the holds it takes.
package routing

import (
	"fmt"
	"time"

	"switchboard/handler/switchboard"
)

// The orders, a service's distribution and its members are domain values
// (package switchboard): the HTTP layer renders them.
const (
	OrderLongestIdle = switchboard.OrderLongestIdle
	OrderRoundRobin  = switchboard.OrderRoundRobin
	OrderBroadcast   = switchboard.OrderBroadcast
)

type (
	Distribution = switchboard.Distribution
	Member       = switchboard.Member
	Rona         = switchboard.Rona
	QueueRules   = switchboard.QueueRules
	Overflow     = switchboard.Overflow
)

// Overflow actions (SPEC section 10).
const (
	ActionDisconnect = switchboard.ActionDisconnect
	ActionForward    = switchboard.ActionForward
	ActionCallback   = switchboard.ActionCallback
	ActionQueue      = switchboard.ActionQueue
)

// MaxUntilReleased bounds a hold taken until released (an outbound task in
// progress): one that was never released after this long is treated as
// leaked and expires, so that a lost release cannot take an agent out of
// distribution for good. It is an hour past the outbound in-progress limit
// (12 h, after which housekeeping fails the task and releases its agent),
// so an agent is never offered a call while its task still counts as in
// progress.
const MaxUntilReleased = 13 * time.Hour

// AgentState is what Switchboard itself knows of an agent: the conversation
// it holds, if any, and when its last routed conversation ended.
type AgentState struct {
	// ConversationID is the conversation the agent holds; "" when none.
	ConversationID string
	ServiceID      string
	HeldAt         time.Time
	// HoldExpiresAt ends the hold by itself; ignored when UntilReleased.
	HoldExpiresAt time.Time
	UntilReleased bool
	// Kind is what the hold is: a conversation (switchboard.HoldConversation),
	// a ringing offer, RONA or after-call work.
	Kind string
	// IdleSince is when the agent's last routed conversation ended (or its
	// last hold expired unused); zero when it never had one.
	IdleSince time.Time
}

// Holding reports whether the agent holds a conversation at now. An expired
// hold counts as free.
func (s AgentState) Holding(now time.Time) bool {
	if s.ConversationID == "" {
		return false
	}
	if s.UntilReleased {
		return now.Sub(s.HeldAt) < MaxUntilReleased
	}
	return now.Before(s.HoldExpiresAt)
}

// Verdict is the outcome of the rules for one member.
type Verdict struct {
	Eligible bool
	// Reason is one of the switchboard.Reason* codes when not eligible.
	Reason string
	// Message explains the verdict to people. For an eligible member it may
	// carry a caveat (a basic Busy reading may hide a call).
	Message string
}

func deliver(note string) Verdict { return Verdict{Eligible: true, Message: note} }

func exclude(reason, format string, args ...any) Verdict {
	if len(args) == 0 {
		return Verdict{Reason: reason, Message: format}
	}
	return Verdict{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Evaluate applies SPEC section 4 to one user: m is nil when the user is not
// a member of the service, p is nil when the user's presence was never
// read. The checks run in the order of the section: membership, the active
// flag, a conversation already held, freshness, then the presence table.
func Evaluate(m *Member, p *switchboard.Presence, st AgentState, d Distribution, now time.Time, staleAfter time.Duration) Verdict {
	return EvaluateSkills(m, p, st, nil, d, now, staleAfter)
}

// EvaluateSkills is Evaluate for a conversation that requires skills. The
// agent's hold comes after the active flag: a conversation
// (InConversation), a ringing offer (OfferPending), RONA, after-call work;
// then the skills (SkillMismatch), then freshness and presence. RONA ends
// with a presence reading of Offline (SPEC section 10), so an agent in
// RONA who reads Offline is Offline.
func EvaluateSkills(
	m *Member,
	p *switchboard.Presence,
	st AgentState,
	need []switchboard.Skill,
	d Distribution,
	now time.Time,
	staleAfter time.Duration,
) Verdict {
	holding := st.Holding(now)
	switch {
	case m == nil:
		return exclude(switchboard.ReasonNotMember, "not a member of this service")
	case !m.Active:
		return exclude(switchboard.ReasonNotActive, "a member who has opted out of this service (inactive)")
	case holding && st.Kind == switchboard.HoldConversation:
		return exclude(switchboard.ReasonInConversation, "already handling or holding a Switchboard conversation")
	case holding && st.Kind == switchboard.HoldOffer:
		return exclude(switchboard.ReasonOfferPending, "an offer is ringing for this agent (one offer at a time)")
	case holding && st.Kind == switchboard.HoldRona && !readsOffline(p, now, staleAfter):
		return exclude(switchboard.ReasonRona, "ring, no answer: let an offer ring out, held out of distribution until %s (or a "+
			"reset)", st.HoldExpiresAt.UTC().Format(time.RFC3339))
	case holding && st.Kind == switchboard.HoldAfterCallWork:
		return exclude(switchboard.ReasonAfterCallWork, "in after-call work until %s", st.HoldExpiresAt.UTC().Format(time.RFC3339))
	}
	if v, ok := skillVerdict(m, need); !ok {
		return v
	}
	switch {
	case p == nil:
		return exclude(switchboard.ReasonPresenceUnknown, "no presence reading yet: the presence poll has not read this user")
	case p.Stale(now, staleAfter):
		if p.ConfirmedAt.IsZero() {
			return exclude(switchboard.ReasonPresenceStale, "the presence reading has no confirmation time, so its freshness is unknown")
		}
		return exclude(switchboard.ReasonPresenceStale, "the presence reading is %d s old (limit %d s): the presence poll is behind or failing",
			int(p.Age(now)/time.Second), int(staleAfter/time.Second))
	}
	return PresenceVerdict(*p, d)
}

// PresenceVerdict is the presence table of SPEC section 4 for a fresh
// reading. An extended reading (read through a presence account) knows the
// activity, so Busy in a call is told apart from Busy in a meeting; a basic
// reading trusts only the availability.
//
// Decisions the table leaves open, taken here:
//   - activity OffWork is Offline whatever the availability (the table
//     lists OffWork as never);
//   - activity OutOfOffice (automatic replies on) follows the availability:
//     Teams shows "Available, Out of Office" for a user who is signed in and
//     working, and that user can take a call;
//   - an availability Graph does not document is never delivered, with
//     reason PresenceUnknown.
func PresenceVerdict(p switchboard.Presence, d Distribution) Verdict {
	desc := Describe(p)
	switch p.Availability {
	case switchboard.PresenceUnknown:
		return exclude(switchboard.ReasonPresenceUnknown, "Teams reports the presence as unknown")
	case switchboard.Offline:
		return exclude(switchboard.ReasonOffline, "%s in Teams", desc)
	}
	if p.Extended && p.Activity == switchboard.ActivityOffWork {
		return exclude(switchboard.ReasonOffline, "%s in Teams", desc)
	}
	switch p.Availability {
	case switchboard.DoNotDisturb:
		return exclude(switchboard.ReasonDoNotDisturb, "%s in Teams: never interrupted", desc)
	case switchboard.Available, switchboard.AvailableIdle:
		if p.Extended && inCall(p.Activity) {
			return exclude(switchboard.ReasonInACall, "%s (Teams)", desc)
		}
		return deliver("")
	case switchboard.Busy, switchboard.BusyIdle:
		if p.Extended {
			if inCall(p.Activity) {
				return exclude(switchboard.ReasonInACall, "%s (Teams)", desc)
			}
			if !d.DeliverWhileBusy {
				return exclude(switchboard.ReasonBusyNotDelivered, "%s: the service does not deliver while Busy", desc)
			}
			return deliver("")
		}
		if !d.DeliverWhileBusy {
			return exclude(switchboard.ReasonBusyNotDelivered, "Busy: the service does not deliver while Busy (\"Do not distribute to user\"); "+
				"without a presence account Teams does not tell whether the user is in a call")
		}
		return deliver("delivered while Busy: without a presence account Teams cannot show \"in a call\", so this may be a second call")
	case switchboard.Away, switchboard.BeRightBack:
		if p.Extended && inCall(p.Activity) {
			return exclude(switchboard.ReasonInACall, "%s (Teams)", desc)
		}
		if !d.DeliverWhileAway {
			return exclude(switchboard.ReasonAwayNotDelivered, "%s: the service does not deliver while Away or Be right back (Teams does not "+
				"report calls in Away or Be right back)", desc)
		}
		return deliver("delivered while Away or Be right back: Teams does not report calls in these states, so this may be a second call")
	}
	return exclude(switchboard.ReasonPresenceUnknown, "Teams reported an availability Switchboard does not know (%q)", p.Availability)
}

// readsOffline reports whether a fresh presence reading says Offline
// (which ends RONA).
func readsOffline(p *switchboard.Presence, now time.Time, staleAfter time.Duration) bool {
	return p != nil && !p.Stale(now, staleAfter) && (p.Availability == switchboard.Offline || p.Extended && p.Activity == switchboard.ActivityOffWork)
}

// skillVerdict checks the member's skills against need; ok is false, with
// the SkillMismatch verdict, when one is missing or below its level.
func skillVerdict(m *Member, need []switchboard.Skill) (Verdict, bool) {
	for _, s := range need {
		have, ok := m.Skills[s.Name]
		if !ok {
			return exclude(switchboard.ReasonSkillMismatch, "lacks the skill %q (level %d or more required)", s.Name, s.MinLevel), false
		}
		if have < s.MinLevel {
			return exclude(switchboard.ReasonSkillMismatch, "has %q at level %d; level %d or more required", s.Name, have, s.MinLevel), false
		}
	}
	return Verdict{}, true
}

func inCall(activity string) bool {
	return activity == switchboard.ActivityInACall || activity == switchboard.ActivityInAConferenceCall
}

var names = map[string]string{
	"Available":               "Available",
	"AvailableIdle":           "Available (idle)",
	"Away":                    "Away",
	"BeRightBack":             "Be right back",
	"Busy":                    "Busy",
	"BusyIdle":                "Busy (idle)",
	"DoNotDisturb":            "Do not disturb",
	"Offline":                 "Offline",
	"PresenceUnknown":         "Status unknown",
	"InACall":                 "in a call",
	"InAConferenceCall":       "in a conference call",
	"InAMeeting":              "in a meeting",
	"Presenting":              "presenting",
	"Focusing":                "focusing",
	"UrgentInterruptionsOnly": "urgent interruptions only",
	"OffWork":                 "off work",
	"OutOfOffice":             "out of office",
	"Inactive":                "inactive",
}

func name(v string) string {
	if n, ok := names[v]; ok {
		return n
	}
	return v
}

// Describe renders a presence as Teams users read it: "Busy, in a call".
// The activity is shown only for an extended reading and only where it
// adds to the availability.
func Describe(p switchboard.Presence) string {
	s := name(p.Availability)
	if !p.Extended || p.Activity == "" || p.Activity == p.Availability {
		return s
	}
	if p.Availability == switchboard.BusyIdle && p.Activity == switchboard.ActivityBusy ||
		p.Availability == switchboard.AvailableIdle && p.Activity == switchboard.ActivityAvailable {
		return s
	}
	return s + ", " + name(p.Activity)
}

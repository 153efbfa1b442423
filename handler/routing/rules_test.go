package routing

import (
	"fmt"
	"strings"
	"testing"
	"time"

	sb "switchboard/handler/switchboard"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

const staleAfter = 120 * time.Second

// when says under which service settings a presence is delivered.
type when int

const (
	always when = iota
	never
	ifBusy // the service delivers while Busy
	ifAway // the service delivers while Away / Be right back
)

// presenceRows is the table of SPEC section 4, one row per presence Graph
// reports, for extended (activity known) and basic (availability only)
// readings. reason is the code when not delivered; msg is a fragment the
// message must contain.
var presenceRows = []struct {
	name                   string
	extended               bool
	availability, activity string
	when                   when
	reason                 string
	msg                    string
}{
	// Available, AvailableIdle: deliver.
	{"extended Available", true, sb.Available, sb.ActivityAvailable, always, "", ""},
	{"extended AvailableIdle", true, sb.AvailableIdle, sb.ActivityAvailable, always, "", ""},
	{"extended Available, OutOfOffice", true, sb.Available, sb.ActivityOutOfOffice, always, "", ""},
	{"basic Available", false, sb.Available, "", always, "", ""},
	{"basic AvailableIdle", false, sb.AvailableIdle, "", always, "", ""},
	// Busy in a meeting, Busy (manual), BusyIdle: deliver if the service delivers while Busy.
	{"extended Busy, InAMeeting", true, sb.Busy, sb.ActivityInAMeeting, ifBusy, sb.ReasonBusyNotDelivered, "in a meeting"},
	{"extended Busy, Busy (manual)", true, sb.Busy, sb.ActivityBusy, ifBusy, sb.ReasonBusyNotDelivered, "does not deliver while Busy"},
	{"extended BusyIdle", true, sb.BusyIdle, sb.ActivityBusy, ifBusy, sb.ReasonBusyNotDelivered, "Busy (idle)"},
	{"extended Busy, OutOfOffice", true, sb.Busy, sb.ActivityOutOfOffice, ifBusy, sb.ReasonBusyNotDelivered, "out of office"},
	{"basic Busy", false, sb.Busy, "", ifBusy, sb.ReasonBusyNotDelivered, "Do not distribute to user"},
	{"basic BusyIdle", false, sb.BusyIdle, "", ifBusy, sb.ReasonBusyNotDelivered, "whether the user is in a call"},
	// Busy in a call: never (extended); a basic reading cannot see it and
	// reads as plain Busy whatever activity came with it.
	{"extended Busy, InACall", true, sb.Busy, sb.ActivityInACall, never, sb.ReasonInACall, "Busy, in a call"},
	{"extended Busy, InAConferenceCall", true, sb.Busy, sb.ActivityInAConferenceCall, never, sb.ReasonInACall, "in a conference call"},
	{"basic Busy with an untrusted InACall activity", false, sb.Busy, sb.ActivityInACall, ifBusy, sb.ReasonBusyNotDelivered, "Do not distribute to user"},
	// Away, BeRightBack: deliver if the service delivers while Away; say that Teams does not report calls there.
	{"extended Away", true, sb.Away, sb.ActivityAway, ifAway, sb.ReasonAwayNotDelivered, "Teams does not report calls in Away or Be right back"},
	{"extended BeRightBack", true, sb.BeRightBack, sb.ActivityBeRightBack, ifAway, sb.ReasonAwayNotDelivered, "Teams does not report calls in Away or Be right back"},
	{"basic Away", false, sb.Away, "", ifAway, sb.ReasonAwayNotDelivered, "Teams does not report calls in Away or Be right back"},
	{"basic BeRightBack", false, sb.BeRightBack, "", ifAway, sb.ReasonAwayNotDelivered, "Teams does not report calls in Away or Be right back"},
	// DoNotDisturb, whatever the activity: never.
	{"extended DoNotDisturb", true, sb.DoNotDisturb, sb.ActivityDoNotDisturb, never, sb.ReasonDoNotDisturb, "Do not disturb"},
	{"extended DoNotDisturb, Presenting", true, sb.DoNotDisturb, sb.ActivityPresenting, never, sb.ReasonDoNotDisturb, "presenting"},
	{"extended DoNotDisturb, Focusing", true, sb.DoNotDisturb, sb.ActivityFocusing, never, sb.ReasonDoNotDisturb, "focusing"},
	{"extended DoNotDisturb, UrgentInterruptionsOnly", true, sb.DoNotDisturb, sb.ActivityUrgentInterruptionsOnly, never, sb.ReasonDoNotDisturb, "urgent interruptions only"},
	{"basic DoNotDisturb", false, sb.DoNotDisturb, "", never, sb.ReasonDoNotDisturb, "Do not disturb"},
	// Offline, OffWork, PresenceUnknown: never.
	{"extended Offline", true, sb.Offline, sb.ActivityOffline, never, sb.ReasonOffline, "Offline"},
	{"extended Offline, OffWork", true, sb.Offline, sb.ActivityOffWork, never, sb.ReasonOffline, "off work"},
	{"extended Away, OffWork", true, sb.Away, sb.ActivityOffWork, never, sb.ReasonOffline, "off work"},
	{"extended Offline, OutOfOffice", true, sb.Offline, sb.ActivityOutOfOffice, never, sb.ReasonOffline, "out of office"},
	{"extended PresenceUnknown", true, sb.PresenceUnknown, sb.ActivityPresenceUnknown, never, sb.ReasonPresenceUnknown, "unknown"},
	{"basic Offline", false, sb.Offline, "", never, sb.ReasonOffline, "Offline"},
	{"basic PresenceUnknown", false, sb.PresenceUnknown, "", never, sb.ReasonPresenceUnknown, "unknown"},
	{"extended availability Graph does not document", true, "Sleeping", "Sleeping", never, sb.ReasonPresenceUnknown, "Sleeping"},
}

func TestEvaluatePresenceTable(t *testing.T) {
	for _, row := range presenceRows {
		for _, busy := range []bool{false, true} {
			for _, away := range []bool{false, true} {
				name := fmt.Sprintf("%s/deliverWhileBusy=%v/deliverWhileAway=%v", row.name, busy, away)
				t.Run(name, func(t *testing.T) {
					p := sb.Presence{UserID: "u", Availability: row.availability, Activity: row.activity, Extended: row.extended,
						Source: sb.SourceAccount1, ChangedAt: t0.Add(-time.Hour), ConfirmedAt: t0.Add(-10 * time.Second)}
					d := Distribution{DeliverWhileBusy: busy, DeliverWhileAway: away, Order: OrderLongestIdle}
					got := Evaluate(&Member{UserID: "u", Active: true}, &p, AgentState{}, d, t0, staleAfter)
					want := row.when == always || row.when == ifBusy && busy || row.when == ifAway && away
					if got.Eligible != want {
						t.Fatalf("eligible = %v (%s: %s), want %v", got.Eligible, got.Reason, got.Message, want)
					}
					if want {
						if got.Reason != "" {
							t.Errorf("reason = %q for an eligible member, want none", got.Reason)
						}
						return
					}
					if got.Reason != row.reason {
						t.Errorf("reason = %q, want %q", got.Reason, row.reason)
					}
					if !strings.Contains(got.Message, row.msg) {
						t.Errorf("message = %q, want it to contain %q", got.Message, row.msg)
					}
				})
			}
		}
	}
}

// Delivered while Busy on a basic reading, or while Away, the verdict
// warns of a possible second call.
func TestEvaluateCaveats(t *testing.T) {
	d := Distribution{DeliverWhileBusy: true, DeliverWhileAway: true}
	for _, tc := range []struct {
		name     string
		p        sb.Presence
		wantNote string
	}{
		{"basic Busy", sb.Presence{Availability: sb.Busy}, "cannot show \"in a call\""},
		{"extended Away", sb.Presence{Availability: sb.Away, Activity: sb.ActivityAway, Extended: true}, "Teams does not report calls"},
		{"extended Busy in a meeting", sb.Presence{Availability: sb.Busy, Activity: sb.ActivityInAMeeting, Extended: true}, ""},
		{"basic Available", sb.Presence{Availability: sb.Available}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.p.ConfirmedAt = t0
			got := Evaluate(&Member{UserID: "u", Active: true}, &tc.p, AgentState{}, d, t0, staleAfter)
			if !got.Eligible {
				t.Fatalf("not eligible: %s %s", got.Reason, got.Message)
			}
			if tc.wantNote == "" && got.Message != "" || !strings.Contains(got.Message, tc.wantNote) {
				t.Errorf("note = %q, want %q", got.Message, tc.wantNote)
			}
		})
	}
}

// The checks before the presence table: membership, active flag, a held
// conversation, a missing or stale reading. Each applies whatever the
// presence says (Available here), in that order.
func TestEvaluateBeforePresence(t *testing.T) {
	fresh := sb.Presence{Availability: sb.Available, Activity: sb.ActivityAvailable, Extended: true, ConfirmedAt: t0.Add(-30 * time.Second)}
	stale := fresh
	stale.ConfirmedAt = t0.Add(-121 * time.Second)
	atLimit := fresh
	atLimit.ConfirmedAt = t0.Add(-120 * time.Second)
	unconfirmed := fresh
	unconfirmed.ConfirmedAt = time.Time{}
	dnd := sb.Presence{Availability: sb.DoNotDisturb, ConfirmedAt: t0}
	active := &Member{UserID: "u", Active: true}
	holding := AgentState{ConversationID: "c-1", HeldAt: t0.Add(-10 * time.Second), HoldExpiresAt: t0.Add(20 * time.Second)}
	expired := AgentState{ConversationID: "c-1", HeldAt: t0.Add(-40 * time.Second), HoldExpiresAt: t0.Add(-10 * time.Second)}
	expiresNow := AgentState{ConversationID: "c-1", HeldAt: t0.Add(-30 * time.Second), HoldExpiresAt: t0}
	untilReleased := AgentState{ConversationID: "task:1", HeldAt: t0.Add(-2 * time.Hour), UntilReleased: true}
	leaked := AgentState{ConversationID: "task:1", HeldAt: t0.Add(-MaxUntilReleased), UntilReleased: true}

	for _, tc := range []struct {
		name       string
		m          *Member
		p          *sb.Presence
		st         AgentState
		wantReason string // "" for eligible
	}{
		{"non-member", nil, &fresh, AgentState{}, sb.ReasonNotMember},
		{"non-member who holds a conversation", nil, &fresh, holding, sb.ReasonNotMember},
		{"inactive member", &Member{UserID: "u"}, &fresh, AgentState{}, sb.ReasonNotActive},
		{"inactive member without a reading", &Member{UserID: "u"}, nil, AgentState{}, sb.ReasonNotActive},
		{"already holding a conversation", active, &fresh, holding, sb.ReasonInConversation},
		{"holding, and Do not disturb", active, &dnd, holding, sb.ReasonInConversation},
		{"handling an outbound task (held until released)", active, &fresh, untilReleased, sb.ReasonInConversation},
		{"held until released past the leak limit", active, &fresh, leaked, ""},
		{"expired hold counts as free", active, &fresh, expired, ""},
		{"hold expiring now counts as free", active, &fresh, expiresNow, ""},
		{"no presence reading", active, nil, AgentState{}, sb.ReasonPresenceUnknown},
		{"stale reading", active, &stale, AgentState{}, sb.ReasonPresenceStale},
		{"reading exactly at the staleness limit", active, &atLimit, AgentState{}, ""},
		{"reading never confirmed", active, &unconfirmed, AgentState{}, sb.ReasonPresenceStale},
		{"fresh Available", active, &fresh, AgentState{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Evaluate(tc.m, tc.p, tc.st, Distribution{}, t0, staleAfter)
			if got.Reason != tc.wantReason || got.Eligible != (tc.wantReason == "") {
				t.Fatalf("verdict = %+v, want reason %q", got, tc.wantReason)
			}
			if !got.Eligible && got.Message == "" {
				t.Error("no message for an excluded member")
			}
		})
	}
}

func TestStaleMessageSaysHowOld(t *testing.T) {
	p := sb.Presence{Availability: sb.Available, ConfirmedAt: t0.Add(-185 * time.Second)}
	got := Evaluate(&Member{UserID: "u", Active: true}, &p, AgentState{}, Distribution{}, t0, staleAfter)
	if want := "185 s old (limit 120 s)"; !strings.Contains(got.Message, want) {
		t.Errorf("message = %q, want it to contain %q", got.Message, want)
	}
}

func TestDescribe(t *testing.T) {
	for _, tc := range []struct {
		p    sb.Presence
		want string
	}{
		{sb.Presence{Availability: sb.Busy, Activity: sb.ActivityInACall, Extended: true}, "Busy, in a call"},
		{sb.Presence{Availability: sb.Busy, Activity: sb.ActivityInACall}, "Busy"},
		{sb.Presence{Availability: sb.BusyIdle, Activity: sb.ActivityBusy, Extended: true}, "Busy (idle)"},
		{sb.Presence{Availability: sb.BeRightBack, Activity: sb.ActivityBeRightBack, Extended: true}, "Be right back"},
		{sb.Presence{Availability: sb.DoNotDisturb, Activity: sb.ActivityPresenting, Extended: true}, "Do not disturb, presenting"},
		{sb.Presence{Availability: "New", Activity: "Thing", Extended: true}, "New, Thing"},
	} {
		if got := Describe(tc.p); got != tc.want {
			t.Errorf("Describe(%s/%s) = %q, want %q", tc.p.Availability, tc.p.Activity, got, tc.want)
		}
	}
}

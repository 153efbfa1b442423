package routing

import (
	"context"
	"strings"
	"testing"
	"time"

	sb "switchboard/handler/switchboard"
)

// TestEvaluateDistributionReasons is the case table of SPEC section 10's
// reasons against section 4's: every agent state (none, a conversation, a
// ringing offer, RONA, after-call work, each live or expired) combined with
// membership, the active flag, skills and presence, in the order the
// section gives: NotMember, NotActive, InConversation, OfferPending, Rona,
// AfterCallWork, SkillMismatch, then freshness and presence.
func TestEvaluateDistributionReasons(t *testing.T) {
	d := DefaultDistribution()
	member := &Member{UserID: "u", Active: true, Skills: map[string]int{"german": 3}}
	inactive := &Member{UserID: "u", Active: false, Skills: map[string]int{"german": 3}}
	fresh := &sb.Presence{Availability: sb.Available, Activity: sb.ActivityAvailable, Extended: true, ConfirmedAt: t0.Add(-time.Second)}
	offline := &sb.Presence{Availability: sb.Offline, Activity: sb.ActivityOffline, Extended: true, ConfirmedAt: t0.Add(-time.Second)}
	inCall := &sb.Presence{Availability: sb.Busy, Activity: sb.ActivityInACall, Extended: true, ConfirmedAt: t0.Add(-time.Second)}
	stale := &sb.Presence{Availability: sb.Available, Extended: true, ConfirmedAt: t0.Add(-time.Hour)}
	staleOffline := &sb.Presence{Availability: sb.Offline, Extended: true, ConfirmedAt: t0.Add(-time.Hour)}

	live := func(kind string) AgentState {
		return AgentState{ConversationID: "c", Kind: kind, HeldAt: t0.Add(-time.Second), HoldExpiresAt: t0.Add(time.Minute)}
	}
	expired := func(kind string) AgentState {
		return AgentState{ConversationID: "c", Kind: kind, HeldAt: t0.Add(-time.Hour), HoldExpiresAt: t0.Add(-time.Second)}
	}
	states := []struct {
		name   string
		st     AgentState
		reason string // the reason this state gives when nothing earlier applies
	}{
		{"free", AgentState{}, ""},
		{"conversation", AgentState{ConversationID: "c", HeldAt: t0.Add(-time.Minute), UntilReleased: true}, sb.ReasonInConversation},
		{"offer", live(sb.HoldOffer), sb.ReasonOfferPending},
		{"rona", live(sb.HoldRona), sb.ReasonRona},
		{"acw", live(sb.HoldAfterCallWork), sb.ReasonAfterCallWork},
		{"expired offer", expired(sb.HoldOffer), ""},
		{"expired rona", expired(sb.HoldRona), ""},
		{"expired acw", expired(sb.HoldAfterCallWork), ""},
	}
	others := []struct {
		name   string
		m      *Member
		p      *sb.Presence
		need   []sb.Skill
		before string // a reason that comes before the agent state
		after  string // a reason that comes after it ("" = eligible)
	}{
		{"eligible", member, fresh, nil, "", ""},
		{"not a member", nil, fresh, nil, sb.ReasonNotMember, ""},
		{"inactive", inactive, fresh, nil, sb.ReasonNotActive, ""},
		{"skill level met", member, fresh, []sb.Skill{{Name: "german", MinLevel: 3}}, "", ""},
		{"skill below level", member, fresh, []sb.Skill{{Name: "german", MinLevel: 4}}, "", sb.ReasonSkillMismatch},
		{"skill missing", member, fresh, []sb.Skill{{Name: "billing", MinLevel: 1}}, "", sb.ReasonSkillMismatch},
		{"skill mismatch and stale", member, stale, []sb.Skill{{Name: "billing", MinLevel: 1}}, "", sb.ReasonSkillMismatch},
		{"stale", member, stale, nil, "", sb.ReasonPresenceStale},
		{"no reading", member, nil, nil, "", sb.ReasonPresenceUnknown},
		{"in a call", member, inCall, nil, "", sb.ReasonInACall},
		{"offline", member, offline, nil, "", sb.ReasonOffline},
		{"stale offline", member, staleOffline, nil, "", sb.ReasonPresenceStale},
	}
	for _, s := range states {
		for _, o := range others {
			t.Run(s.name+"/"+o.name, func(t *testing.T) {
				want := o.before
				if want == "" {
					want = s.reason
					// A fresh Offline reading ends RONA (SPEC section 10):
					// the agent is Offline, not in RONA.
					if s.reason == sb.ReasonRona && o.p == offline {
						want = ""
					}
				}
				if want == "" {
					want = o.after
				}
				v := EvaluateSkills(o.m, o.p, s.st, o.need, d, t0, staleAfter)
				if v.Reason != want || v.Eligible != (want == "") {
					t.Fatalf("got eligible %v reason %q (%s), want reason %q", v.Eligible, v.Reason, v.Message, want)
				}
				if !v.Eligible && v.Message == "" {
					t.Errorf("reason %s has no sentence for people", v.Reason)
				}
			})
		}
	}
}

func TestDistributionFieldsValidation(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	base := func() ServiceInput {
		return ServiceInput{Name: ptr("Support"), Members: []MemberInput{{UserID: user(1)}}}
	}
	cases := []struct {
		name  string
		edit  func(*ServiceInput)
		field string
	}{
		{"ring below", func(in *ServiceInput) { in.Distribution.RingSeconds = ptr(4) }, "distribution.ringSeconds"},
		{"ring above", func(in *ServiceInput) { in.Distribution.RingSeconds = ptr(181) }, "distribution.ringSeconds"},
		{"rona reset below", func(in *ServiceInput) { in.Distribution.Rona = &RonaInput{ResetSeconds: ptr(9)} }, "distribution.rona.resetSeconds"},
		{"rona reset above", func(in *ServiceInput) { in.Distribution.Rona = &RonaInput{ResetSeconds: ptr(19201)} }, "distribution.rona.resetSeconds"},
		{"acw negative", func(in *ServiceInput) { in.Distribution.AfterCallWorkSeconds = ptr(-1) }, "distribution.afterCallWorkSeconds"},
		{"acw above", func(in *ServiceInput) { in.Distribution.AfterCallWorkSeconds = ptr(3601) }, "distribution.afterCallWorkSeconds"},
		{"max wait below", func(in *ServiceInput) { in.Distribution.Queue = &QueueInput{MaxWaitSeconds: ptr(9)} }, "distribution.queue.maxWaitSeconds"},
		{"max wait above", func(in *ServiceInput) { in.Distribution.Queue = &QueueInput{MaxWaitSeconds: ptr(2701)} }, "distribution.queue.maxWaitSeconds"},
		{"max length zero", func(in *ServiceInput) { in.Distribution.Queue = &QueueInput{MaxLength: ptr(0)} }, "distribution.queue.maxLength"},
		{"max length above", func(in *ServiceInput) { in.Distribution.Queue = &QueueInput{MaxLength: ptr(201)} }, "distribution.queue.maxLength"},
		{"unknown action", func(in *ServiceInput) {
			in.Distribution.Queue = &QueueInput{OnTimeout: &OverflowInput{Action: ptr("Hangup")}}
		}, "distribution.queue.onTimeout.action"},
		{"queue on timeout", func(in *ServiceInput) {
			in.Distribution.Queue = &QueueInput{OnTimeout: &OverflowInput{Action: ptr("Queue")}}
		}, "distribution.queue.onTimeout.action"},
		{"forward without target", func(in *ServiceInput) {
			in.Distribution.Queue = &QueueInput{OnFull: &OverflowInput{Action: ptr("Forward")}}
		}, "distribution.queue.onFull.serviceId"},
		{"disconnect with target", func(in *ServiceInput) {
			in.Distribution.Queue = &QueueInput{OnNoAgents: &OverflowInput{Action: ptr("Disconnect"), ServiceID: ptr("other")}}
		}, "distribution.queue.onNoAgents.serviceId"},
		{"bad skill name", func(in *ServiceInput) { in.Members[0].Skills = map[string]int{"German": 2} }, "members[0].skills.German"},
		{"skill level zero", func(in *ServiceInput) { in.Members[0].Skills = map[string]int{"german": 0} }, "members[0].skills.german"},
		{"skill level above", func(in *ServiceInput) { in.Members[0].Skills = map[string]int{"german": 11} }, "members[0].skills.german"},
		{"too many skills", func(in *ServiceInput) {
			in.Members[0].Skills = map[string]int{}
			for i := range 51 {
				in.Members[0].Skills[strings.Repeat("s", 1)+string(rune('a'+i%26))+string(rune('a'+i/26))] = 1
			}
		}, "members[0].skills"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := base()
			tc.edit(&in)
			_, _, err := f.engine.PutService(ctx, tenant, "support", in, "")
			if !sb.IsCode(err, sb.EINVALID) || sb.ErrorField(err) != tc.field {
				t.Fatalf("got %v (field %q), want invalid naming %s", err, sb.ErrorField(err), tc.field)
			}
			if _, err := f.engine.GetService(ctx, tenant, "support"); !sb.IsCode(err, sb.ENOTFOUND) {
				t.Fatalf("a refused PUT wrote the service: %v", err)
			}
		})
	}

	// Each bound itself is accepted, and stored values read back.
	in := base()
	in.Members[0].Skills = map[string]int{"german": 10, "billing-2": 1}
	in.Distribution = DistributionInput{RingSeconds: ptr(180), AfterCallWorkSeconds: ptr(3600),
		Rona:  &RonaInput{Enabled: ptr(false), ResetSeconds: ptr(19200), OnDecline: ptr(true)},
		Queue: &QueueInput{MaxWaitSeconds: ptr(10), MaxLength: ptr(200), OnTimeout: &OverflowInput{Action: ptr("Forward"), ServiceID: ptr("overflow")}, OnFull: &OverflowInput{Action: ptr("Callback")}, OnNoAgents: &OverflowInput{Action: ptr("Disconnect")}}}
	if _, _, err := f.engine.PutService(ctx, tenant, "support", in, ""); err != nil {
		t.Fatal(err)
	}
	got, err := f.newEngine().GetService(ctx, tenant, "support")
	if err != nil {
		t.Fatal(err)
	}
	want := Distribution{Order: OrderLongestIdle, BroadcastSize: 10, HoldSeconds: 30, RingSeconds: 180, AfterCallWorkSeconds: 3600,
		Rona:  Rona{Enabled: false, ResetSeconds: 19200, OnDecline: true},
		Queue: QueueRules{MaxWaitSeconds: 10, MaxLength: 200, OnTimeout: Overflow{Action: "Forward", ServiceID: "overflow"}, OnFull: Overflow{Action: "Callback"}, OnNoAgents: Overflow{Action: "Disconnect"}}}
	if got.Distribution != want {
		t.Errorf("stored distribution %+v, want %+v", got.Distribution, want)
	}
	if g := got.Members[0].Skills; g["german"] != 10 || g["billing-2"] != 1 || len(g) != 2 {
		t.Errorf("skills read back as %v", g)
	}
}

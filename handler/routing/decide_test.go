package routing

import (
	"fmt"
	"slices"
	"testing"
	"time"

	sb "switchboard/handler/switchboard"
)

func ids(r []Ranked) []string {
	out := make([]string, len(r))
	for i, x := range r {
		out[i] = x.UserID
	}
	return out
}

func TestRankLongestIdle(t *testing.T) {
	r := []Ranked{
		{UserID: "d", IdleSince: t0.Add(-1 * time.Minute)},
		{UserID: "c"}, // never routed
		{UserID: "b", IdleSince: t0.Add(-5 * time.Minute)},
		{UserID: "a"}, // never routed
		{UserID: "e", IdleSince: t0.Add(-5 * time.Minute)},
	}
	RankLongestIdle(r)
	if got, want := ids(r), []string{"a", "c", "b", "e", "d"}; !slices.Equal(got, want) {
		t.Errorf("order = %v, want %v (never routed first, then earliest end, ties by id)", got, want)
	}
}

func TestRankRoundRobin(t *testing.T) {
	for _, tc := range []struct {
		name string
		last string
		want []string
	}{
		{"no position yet starts at the first", "", []string{"a", "c", "e"}},
		{"after a member", "a", []string{"c", "e", "a"}},
		{"after a member no longer eligible", "b", []string{"c", "e", "a"}},
		{"after the last wraps", "e", []string{"a", "c", "e"}},
		{"after an id beyond all wraps", "z", []string{"a", "c", "e"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := []Ranked{{UserID: "e"}, {UserID: "a"}, {UserID: "c"}}
			RankRoundRobin(r, tc.last)
			if got := ids(r); !slices.Equal(got, tc.want) {
				t.Errorf("order = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRankPreferredFirst(t *testing.T) {
	r := []Ranked{{UserID: "a"}, {UserID: "b"}, {UserID: "c"}, {UserID: "d"}}
	got := ids(Rank(OrderLongestIdle, r, []string{"d", "x", "b"}, ""))
	if want := []string{"d", "b", "a", "c"}; !slices.Equal(got, want) {
		t.Errorf("order = %v, want %v", got, want)
	}
}

func TestWant(t *testing.T) {
	for _, tc := range []struct {
		d    Distribution
		want int
	}{
		{Distribution{Order: OrderLongestIdle, BroadcastSize: 10}, 1},
		{Distribution{Order: OrderRoundRobin, BroadcastSize: 10}, 1},
		{Distribution{Order: OrderBroadcast, BroadcastSize: 7}, 7},
	} {
		if got := tc.d.Want(); got != tc.want {
			t.Errorf("%s/%d: Want() = %d, want %d", tc.d.Order, tc.d.BroadcastSize, got, tc.want)
		}
	}
}

func avail(user string) sb.Presence {
	return sb.Presence{UserID: user, Availability: sb.Available, Activity: sb.ActivityAvailable, Extended: true, Source: sb.SourceAccount1, ConfirmedAt: t0.Add(-5 * time.Second)}
}

func TestDecide(t *testing.T) {
	members := []Member{{UserID: "u1", Active: true}, {UserID: "u2", Active: true}, {UserID: "u3", Active: false}, {UserID: "u4", Active: true}, {UserID: "u5", Active: true}}
	presence := map[string]sb.Presence{"u1": avail("u1"), "u2": avail("u2"), "u3": avail("u3"), "u4": avail("u4")}
	states := map[string]AgentState{
		"u1": {IdleSince: t0.Add(-time.Minute)},
		"u2": {ConversationID: "c-other", HeldAt: t0, HoldExpiresAt: t0.Add(time.Minute)},
		"u4": {ConversationID: "c-this", HeldAt: t0, HoldExpiresAt: t0.Add(time.Minute), IdleSince: t0.Add(-time.Hour)},
	}
	d := Decide(DecideInput{
		Members: members, Preferred: []string{"stranger", "u1"}, Presence: presence, States: states,
		ConversationID: "c-this", Distribution: Distribution{Order: OrderLongestIdle}, Now: t0, StaleAfter: staleAfter,
	})
	if got, want := ids(d.Eligible), []string{"u1", "u4"}; !slices.Equal(got, want) {
		t.Errorf("eligible = %v, want %v (preferred u1 first; u4's hold is on this very conversation)", got, want)
	}
	var got []string
	for _, x := range d.Excluded {
		got = append(got, x.UserID+":"+x.Reason)
	}
	want := []string{"stranger:NotMember", "u2:InConversation", "u3:NotActive", "u5:PresenceUnknown"}
	if !slices.Equal(got, want) {
		t.Errorf("excluded = %v, want %v", got, want)
	}
	for _, x := range d.Excluded {
		if hasReading := presence[x.UserID].UserID != ""; (x.Presence != nil) != hasReading {
			t.Errorf("%s: presence reported = %v, want %v", x.UserID, x.Presence != nil, hasReading)
		}
	}
}

// Skip and Only: a skipped user, or one outside Only, is never chosen but
// stays a ranked candidate (Skipped, in rank order); an empty Only limits
// nothing.
func TestDecideSkipAndOnly(t *testing.T) {
	members := []Member{{UserID: "u1", Active: true}, {UserID: "u2", Active: true}, {UserID: "u3", Active: true}, {UserID: "u4", Active: true}}
	presence := map[string]sb.Presence{"u1": avail("u1"), "u2": avail("u2"), "u3": avail("u3"), "u4": avail("u4")}
	idle := map[string]time.Time{"u1": t0.Add(-4 * time.Minute), "u2": t0.Add(-3 * time.Minute), "u3": t0.Add(-2 * time.Minute), "u4": t0.Add(-time.Minute)}
	for _, c := range []struct {
		name              string
		skip, only        []string
		eligible, skipped []string
	}{
		{"neither", nil, nil, []string{"u1", "u2", "u3", "u4"}, nil},
		{"skip", []string{"u2"}, nil, []string{"u1", "u3", "u4"}, []string{"u2"}},
		{"only", nil, []string{"u4", "u2"}, []string{"u2", "u4"}, []string{"u1", "u3"}},
		{"skip and only", []string{"u2"}, []string{"u2", "u3"}, []string{"u3"}, []string{"u1", "u2", "u4"}},
		{"only a stranger", nil, []string{"stranger"}, nil, []string{"u1", "u2", "u3", "u4"}},
	} {
		d := Decide(DecideInput{Members: members, Presence: presence, Idle: idle, Skip: c.skip, Only: c.only,
			Distribution: Distribution{Order: OrderLongestIdle}, Now: t0, StaleAfter: staleAfter})
		if got := ids(d.Eligible); !slices.Equal(got, c.eligible) {
			t.Errorf("%s: eligible = %v, want %v", c.name, got, c.eligible)
		}
		if got := ids(d.Skipped); !slices.Equal(got, c.skipped) {
			t.Errorf("%s: skipped = %v, want %v", c.name, got, c.skipped)
		}
	}
}

// BenchmarkDecide is the pure decision time (evaluate and rank) for a
// service of 1,000 members with mixed presence and agent state. Each run
// makes 200 decisions (so that -benchtime 1x, as make bench runs it, still
// measures something) and reports the mean per decision.
func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{1000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			in := benchInput(n)
			b.ReportAllocs()
			const perRun = 200
			start := time.Now()
			for range b.N {
				for range perRun {
					d := Decide(in)
					if len(d.Eligible)+len(d.Excluded) != n {
						b.Fatalf("decided %d of %d members", len(d.Eligible)+len(d.Excluded), n)
					}
				}
			}
			b.ReportMetric(float64(time.Since(start).Microseconds())/float64(b.N*perRun), "µs/decision")
		})
	}
}

func benchInput(n int) DecideInput {
	avails := []string{sb.Available, sb.Available, sb.Busy, sb.Away, sb.DoNotDisturb, sb.Offline, sb.AvailableIdle}
	in := DecideInput{
		Presence: map[string]sb.Presence{}, States: map[string]AgentState{}, Idle: map[string]time.Time{},
		Distribution: Distribution{Order: OrderLongestIdle, DeliverWhileBusy: true}, Now: t0, StaleAfter: staleAfter,
	}
	for i := range n {
		u := fmt.Sprintf("00000000-0000-0000-0000-%012d", i)
		in.Members = append(in.Members, Member{UserID: u, Active: i%17 != 0})
		p := avail(u)
		p.Availability = avails[i%len(avails)]
		in.Presence[u] = p
		switch i % 5 {
		case 0:
			in.States[u] = AgentState{ConversationID: "c", HeldAt: t0, HoldExpiresAt: t0.Add(time.Minute)}
		case 1, 2, 3:
			in.Idle[u] = t0.Add(-time.Duration(i) * time.Second)
		}
	}
	return in
}

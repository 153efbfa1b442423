package presence

import (
	"slices"
	"strings"
	"switchboard/handler/switchboard"
	"testing"
	"time"
)

func TestChooseCovered(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	users := []string{"d", "b", "a", "c", "e", "b", "bad/id"}
	cases := []struct {
		name string
		last map[string]time.Time
		n    int
		want []string
	}{
		{"no routing history: by user id", nil, 3, []string{"a", "b", "c"}},
		{"most recently routed first, then by id", map[string]time.Time{"e": t0.Add(time.Minute), "c": t0}, 3, []string{"e", "c", "a"}},
		{"fewer users than room", map[string]time.Time{"d": t0}, 10, []string{"d", "a", "b", "c", "e"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := ChooseCovered(users, tc.last, tc.n); !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestResource(t *testing.T) {
	got := Resource([]string{"a-1", "b-2"})
	if want := "/communications/presences?$filter=id in ('a-1','b-2')"; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if !strings.HasPrefix(Resource(nil), "/communications/presences") {
		t.Fatal(got)
	}
}

// The freshness a subscription gives its users (SPEC section 14 and the
// PresenceStale rule of section 4).
func TestConfirmCovered(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	s := &Store{pollMargin: time.Minute}
	reading := stored{Availability: "Busy", Activity: "InACall", Source: switchboard.SourceAccount1, ChangedAt: now.Add(-20 * time.Minute)}
	active := subState{Source: switchboard.SourceAccount1, ID: "s1", State: SubActive, Users: []string{"u"}, ExpiresAt: now.Add(30 * time.Minute), ReadAt: now.Add(-4 * time.Minute)}
	cases := []struct {
		name  string
		sub   *subState
		shard time.Time
		want  time.Time
	}{
		{"not covered: the shard's poll", nil, now.Add(-10 * time.Second), now.Add(-10 * time.Second)},
		{"trusted: confirmed now", &active, now.Add(-4 * time.Minute), now},
		{"missed: only the last full read, not the polls that skipped the user", func() *subState {
			x := active
			x.NeedsRead, x.UntrustedAt = true, now.Add(-30*time.Second)
			return &x
		}(), now.Add(-10 * time.Second), now.Add(-4 * time.Minute)},
		{"failed long enough ago: the polls since count", func() *subState {
			x := active
			x.State, x.UntrustedAt = SubFailing, now.Add(-3*time.Minute)
			return &x
		}(), now.Add(-10 * time.Second), now.Add(-10 * time.Second)},
		{"lapsed without renewal: notifications flowed until the expiry", func() *subState {
			x := active
			x.ExpiresAt = now.Add(-30 * time.Second)
			return &x
		}(), now.Add(-10 * time.Minute), now.Add(-30 * time.Second)},
		{"creation failed: it never vouched, polls read the user", func() *subState {
			x := active
			x.ID, x.State = "", SubFailing
			return &x
		}(), now.Add(-10 * time.Second), now.Add(-10 * time.Second)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			subs := map[switchboard.PresenceSource]subState{}
			if tc.sub != nil {
				subs[switchboard.SourceAccount1] = *tc.sub
			}
			cov := newCoverage(subs)
			p := reading.presence("u", tc.shard, switchboard.SourceAccount1)
			got := s.confirmCovered(cov, p, reading, tc.shard, now)
			if !got.ConfirmedAt.Equal(tc.want) {
				t.Fatalf("confirmed %v, want %v", got.ConfirmedAt, tc.want)
			}
		})
	}
}

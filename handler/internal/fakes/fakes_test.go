package fakes_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"switchboard/handler/internal/fakes"
	"switchboard/handler/internal/queuetest"
	"switchboard/handler/switchboard"
)

// The fake queue keeps the contract the real queues keep.
func TestQueueContract(t *testing.T) {
	queuetest.Run(t, func(t *testing.T) queuetest.Backend {
		q := fakes.NewQueue(time.Now)
		return queuetest.Backend{Queue: q, Receive: func(t *testing.T, queue string, wait time.Duration) (queuetest.Received, bool) {
			for end := time.Now().Add(wait); ; time.Sleep(20 * time.Millisecond) {
				for _, m := range q.Due(time.Now()) {
					if m.Queue == queue {
						out := queuetest.Received{Body: m.Msg.Body, MessageID: m.Msg.MessageID, ContentType: m.Msg.ContentType}
						if !m.Msg.ScheduledAt.IsZero() {
							out.SequenceNumber = m.Seq
						}
						return out, true
					}
				}
				if time.Now().After(end) {
					return queuetest.Received{}, false
				}
			}
		}}
	})
}

func TestRouterHoldsOneAgentPerConversation(t *testing.T) {
	ctx := context.Background()
	r := fakes.NewRouter("a", "b")
	route := func(conv string, preferred ...string) []string {
		t.Helper()
		d, err := r.Route(ctx, "t", "s", switchboard.RouteRequest{ConversationID: conv, Reserve: true, PreferredUsers: preferred})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, a := range d.Agents {
			ids = append(ids, a.UserID)
		}
		return ids
	}
	if got := route("c1", "b"); !slices.Equal(got, []string{"b"}) {
		t.Errorf("c1 with b preferred = %v, want [b]", got)
	}
	if got := route("c1"); !slices.Equal(got, []string{"b"}) {
		t.Errorf("c1 again = %v, want its agent b", got)
	}
	if got := route("c2"); !slices.Equal(got, []string{"a"}) {
		t.Errorf("c2 = %v, want the free agent a", got)
	}
	if got := route("c3"); len(got) != 0 {
		t.Errorf("c3 with every agent held = %v, want none", got)
	}
	if err := r.Release(ctx, "t", "c1"); err != nil {
		t.Fatal(err)
	}
	if got := route("c3"); !slices.Equal(got, []string{"b"}) {
		t.Errorf("c3 after c1 ended = %v, want b", got)
	}
	r.Check = fakes.OneAgentUntilReleased
	if _, err := r.Route(ctx, "t", "s", switchboard.RouteRequest{ConversationID: "c4", Reserve: true}); err == nil {
		t.Error("a request outbound would not make passed OneAgentUntilReleased")
	}
}

func TestPresenceStoreConfirmsAtTheClock(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	s := fakes.NewPresenceStore("t1", func() time.Time { return now })
	s.Set("u1", switchboard.Available, switchboard.ActivityAvailable)
	got, err := s.Readings(context.Background(), "t1", []string{"u1", "u2"})
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := got["u1"]; !ok || !p.ConfirmedAt.Equal(now) || !p.Extended || len(got) != 1 {
		t.Errorf("readings = %+v, want u1 only, confirmed now, extended", got)
	}
	if other, _ := s.Readings(context.Background(), "t2", []string{"u1"}); len(other) != 0 {
		t.Errorf("another tenant's readings = %v, want none", other)
	}
	if s.Calls() != 2 {
		t.Errorf("calls = %d, want 2", s.Calls())
	}
}

package outbound

import (
	"context"
	"testing"

	"switchboard/handler/internal/testenv"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// TestTransitionTable checks the state machine against SPEC section 6,
// pair by pair: every allowed move and every refused one.
func TestTransitionTable(t *testing.T) {
	allowed := map[[2]string]string{
		{StateScheduled, StateScheduled}:  "delivered early: a new try waits for the due time; the sent mark; changed by Update",
		{StateScheduled, StateQueued}:     "due, nobody free: the next try",
		{StateScheduled, StateInProgress}: "due and assigned at once",
		{StateScheduled, StateCancelled}:  "cancelled before its due time",
		{StateScheduled, StateExpired}:    "its message was lost and the queue time ran out (housekeeping)",
		{StateQueued, StateQueued}:        "nobody free: the next try; the sent mark; a changed queue time or priority",
		{StateQueued, StateScheduled}:     "rescheduled for later while waiting (Update)",
		{StateQueued, StateInProgress}:    "assigned",
		{StateQueued, StateCancelled}:     "cancelled while waiting",
		{StateQueued, StateExpired}:       "nobody free within the queue time",
		{StateInProgress, StateQueued}:    "a failed attempt with attempts left",
		{StateInProgress, StateCompleted}: "completed by the agent's flow",
		{StateInProgress, StateFailed}:    "failed with no attempts left, or not completed in time",
	}
	for _, from := range States {
		for _, to := range States {
			why, want := allowed[[2]string{from, to}]
			if got := canMove(from, to); got != want {
				if want {
					t.Errorf("canMove(%s, %s) = false, want true (%s)", from, to, why)
				} else {
					t.Errorf("canMove(%s, %s) = true, want false", from, to)
				}
			}
		}
	}
	for from, tos := range transitions {
		if !ValidState(from) {
			t.Errorf("transitions has unknown state %q", from)
		}
		for _, to := range tos {
			if !ValidState(to) {
				t.Errorf("transitions[%s] has unknown state %q", from, to)
			}
		}
	}
	// A final state is one no move leaves; the others all lead somewhere.
	for _, st := range States {
		if got, want := len(transitions[st]) == 0, Final(st); got != want {
			t.Errorf("%s: has no moves = %v, Final = %v", st, got, want)
		}
	}
}

// TestMoveRefusesWhatTheTableRefuses: a move the state machine refuses is
// an internal error and writes nothing, from a waiting task and from a
// finished one; an allowed move is written.
func TestMoveRefusesWhatTheTableRefuses(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		f := newFixture(t, tables)
		task := f.schedule(NewTask{Destination: "+41440000000"})
		pk := partition(tenant, service)
		to := func(state string) taskMove {
			return taskMove{op: "test", pk: pk, id: task.ID, tries: 3, decide: func(cur Task) (Task, bool, error) {
				return ended(cur, state, "by the test", f.svc.now()), true, nil
			}}
		}
		for _, state := range []string{StateCompleted, StateFailed} {
			before := f.get(task.ID)
			_, err := f.svc.move(context.Background(), to(state))
			if !switchboard.IsCode(err, switchboard.EINTERNAL) {
				t.Errorf("move Scheduled → %s: %v, want EINTERNAL", state, err)
			}
			if after := f.get(task.ID); after.ETag != before.ETag || after.State != StateScheduled {
				t.Errorf("after a refused move to %s the task is %s (etag %s → %s), want it unwritten", state, after.State, before.ETag, after.ETag)
			}
			if got := f.counter(); got != 1 {
				t.Errorf("after a refused move to %s the counter is %d, want 1", state, got)
			}
		}

		done, err := f.svc.move(context.Background(), to(StateCancelled))
		if err != nil || done.State != StateCancelled {
			t.Fatalf("move Scheduled → Cancelled: %+v, %v; want Cancelled", done, err)
		}
		if got := f.counter(); got != 0 {
			t.Errorf("after Cancelled the counter is %d, want 0 (the slot freed)", got)
		}
		for _, state := range []string{StateScheduled, StateQueued, StateInProgress, StateExpired} {
			m := to(state)
			m.decide = func(cur Task) (Task, bool, error) {
				next := cur
				next.State = state
				return next, true, nil
			}
			if _, err := f.svc.move(context.Background(), m); !switchboard.IsCode(err, switchboard.EINTERNAL) {
				t.Errorf("move Cancelled → %s: %v, want EINTERNAL", state, err)
			}
			if got := f.get(task.ID).State; got != StateCancelled {
				t.Errorf("after a refused move to %s the task is %s, want Cancelled", state, got)
			}
		}
	})
}

// TestMoveDecidesAgainAfterAConcurrentChange: a write that finds the task
// changed since it was read reads it again and decides on what is stored
// now; with no tries left it returns EPRECONDITION and the task as stored.
func TestMoveDecidesAgainAfterAConcurrentChange(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		f := newFixture(t, tables)
		task := f.schedule(NewTask{Destination: "+41440000000", Priority: ptr(10)})
		pk := partition(tenant, service)
		other := f.newService()
		var seen []int
		interfere := func(cur Task) {
			// Another instance writes the task between our read and write.
			next := cur
			next.Priority = cur.Priority + 1
			if _, err := other.update(context.Background(), cur, next, nil); err != nil {
				t.Fatalf("concurrent update: %v", err)
			}
		}
		m := taskMove{op: "test", pk: pk, id: task.ID, tries: 3, decide: func(cur Task) (Task, bool, error) {
			seen = append(seen, cur.Priority)
			if len(seen) == 1 {
				interfere(cur)
			}
			next := cur
			next.Note = "written"
			return next, true, nil
		}}
		if _, err := f.svc.move(context.Background(), m); err != nil {
			t.Fatalf("move: %v", err)
		}
		if len(seen) != 2 || seen[0] != 10 || seen[1] != 11 {
			t.Errorf("decide saw priorities %v, want [10 11] (decided again on the stored task)", seen)
		}
		if got := f.get(task.ID); got.Note != "written" || got.Priority != 11 {
			t.Errorf("stored note %q priority %d, want \"written\" over the concurrent change (11)", got.Note, got.Priority)
		}

		seen = nil
		m.tries = 1
		m.decide = func(cur Task) (Task, bool, error) {
			seen = append(seen, cur.Priority)
			interfere(cur)
			next := cur
			next.Note = "lost"
			return next, true, nil
		}
		got, err := f.svc.move(context.Background(), m)
		if !switchboard.IsCode(err, switchboard.EPRECONDITION) {
			t.Fatalf("move with one try against a concurrent change: %v, want EPRECONDITION", err)
		}
		if got.Priority != 12 || got.Note != "written" {
			t.Errorf("returned task: priority %d note %q, want the stored one (12, \"written\")", got.Priority, got.Note)
		}
		if len(seen) != 1 {
			t.Errorf("decide ran %d times with one try, want 1", len(seen))
		}
	})
}

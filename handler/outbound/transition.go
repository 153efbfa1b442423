package outbound

import (
	"context"
	"errors"
	"slices"
	"time"

	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// transitions is the task state machine (SPEC section 6): the states a
// task may move to from each state. Every write of an existing task goes
// through (*Service).move, which refuses any other move. A move to the
// same state is a new try or bookkeeping (the sent mark). Completed,
// Failed, Cancelled and Expired are final: no move leaves them.
var transitions = map[string][]string{
	// Due or not: a new try (delivered early, or the sent mark), due and
	// waiting, assigned at once, cancelled, queue time run out.
	StateScheduled: {StateScheduled, StateQueued, StateInProgress, StateCancelled, StateExpired},
	// The next try (nobody free, the sent mark, or a changed queue time),
	// due again later (a new due time by Update), assigned, cancelled,
	// queue time run out.
	StateQueued: {StateQueued, StateScheduled, StateInProgress, StateCancelled, StateExpired},
	// Back in the queue after a failed attempt with attempts left,
	// completed, failed (by the caller, or not completed in time).
	StateInProgress: {StateQueued, StateCompleted, StateFailed},
}

// canMove reports whether the state machine lets a task move from one
// state to another.
func canMove(from, to string) bool { return slices.Contains(transitions[from], to) }

// errMovedOn stops a move whose task no longer is what the change was
// meant for (another try, another state).
var errMovedOn = errors.New("outbound: the task moved on")

// errAlreadyDone stops a move whose change the task already shows (a
// repeated cancel or complete): the task is returned unchanged.
var errAlreadyDone = errors.New("outbound: the task is already so")

// taskMove is one change of a task, written guarded by the ETag of the
// read it was decided on.
type taskMove struct {
	op     string
	pk, id string
	// from is the task as the caller read it; nil reads it first.
	from *Task
	// tries bounds the writes when the task keeps changing concurrently.
	tries int
	// decide returns the task to write, computed from cur as stored; with
	// write false, move stops and returns next and err as they are.
	decide func(cur Task) (next Task, write bool, err error)
	// markOnly: nothing of the index row changes (the sent mark), so only
	// the task row is written.
	markOnly bool
	// failed, when set, runs when a write fails for another reason than a
	// concurrent change (the change is then known not to have happened).
	failed func(error)
}

// move applies m: decide on the task as stored, check the move against
// transitions, write it (a move to a final state frees the slot: the task,
// counter-1 and the index row's deletion in one batch; any other move
// writes the task and its index row in one batch), and when the task
// changed concurrently read it again and decide again, m.tries writes in
// all. It returns the task as written (a finished one read back for its
// ETag). Returns EPRECONDITION, with the task as last read, when it kept
// changing; EINTERNAL for a move the state machine refuses (nothing is
// written).
func (s *Service) move(ctx context.Context, m taskMove) (Task, error) {
	var cur Task
	if m.from != nil {
		cur = *m.from
	} else {
		var err error
		if cur, err = s.getTask(ctx, m.pk, m.id); err != nil {
			return Task{}, err
		}
	}
	for try := 1; ; try++ {
		next, write, err := m.decide(cur)
		if err != nil || !write {
			return next, err
		}
		if !canMove(cur.State, next.State) {
			return Task{}, switchboard.Errorf(switchboard.EINTERNAL, m.op, "task %s: no move from %s to %s", cur.ID, cur.State, next.State)
		}
		stored, fresh, err := s.write(ctx, m, cur, next)
		if err == nil {
			return stored, nil
		}
		if !switchboard.IsCode(err, switchboard.EPRECONDITION) {
			if m.failed != nil {
				m.failed(err)
			}
			return Task{}, err
		}
		if fresh != nil {
			cur = *fresh
		} else if cur, err = s.getTask(ctx, m.pk, m.id); err != nil {
			return Task{}, err
		}
		if try >= m.tries {
			return cur, switchboard.Errorf(switchboard.EPRECONDITION, m.op, "task %s changed meanwhile", m.id)
		}
	}
}

// write writes the move from cur to next. fresh is the task as stored
// when the write found it changed and read it already.
// A change of state is written with its stateChanged event (counted in
// next.EventSeq) in the same batch.
func (s *Service) write(ctx context.Context, m taskMove, cur, next Task) (stored Task, fresh *Task, err error) {
	next.EventSeq = cur.EventSeq
	if m.markOnly {
		if next.State != cur.State {
			return Task{}, nil, switchboard.Errorf(switchboard.EINTERNAL, m.op, "task %s: a mark-only write may not change its state", cur.ID)
		}
		etag, err := s.table.Update(ctx, taskEntity(next), cur.ETag)
		if err != nil {
			return Task{}, nil, err
		}
		next.ETag = etag
		return next, nil, nil
	}
	events, err := s.stateEvent(&cur, &next)
	if err != nil {
		return Task{}, nil, err
	}
	pk := partition(cur.TenantID, cur.ServiceID)
	if err := s.prepareEvents(ctx, pk, events); err != nil {
		return Task{}, nil, switchboard.Wrap(switchboard.EUNAVAILABLE, m.op, err)
	}
	if Final(next.State) {
		stored, fresh, err = s.writeFinal(ctx, cur, next, events)
	} else {
		stored, err = s.update(ctx, cur, next, events)
	}
	if err == nil {
		s.flushEvents(ctx, pk, events)
	}
	return stored, fresh, err
}

// writeFinal writes next (a final state) over cur and frees cur's slot:
// the task, counter-1, the open row's deletion and the events in one batch, retried
// while only the counter moved. Returns EPRECONDITION, with the task as
// now stored, when the task changed since cur was read.
func (s *Service) writeFinal(ctx context.Context, cur, next Task, events []store.Op) (Task, *Task, error) {
	const op = "outbound.finish"
	pk := partition(cur.TenantID, cur.ServiceID)
	unlock := s.lock(pk)
	defer unlock()
	for range maxWriteRetries {
		ops := []store.Op{{Kind: store.OpUpdate, Entity: taskEntity(next), IfMatch: cur.ETag}}
		if Counted(cur.State) {
			c, err := s.readCounter(ctx, pk)
			if err != nil {
				return Task{}, nil, err
			}
			if c.exists {
				ops = append(ops, c.op(pk, c.count-1))
			}
			if _, err := s.table.Get(ctx, pk, openKey(cur.ID)); err == nil {
				ops = append(ops, store.Op{Kind: store.OpDelete, Entity: store.Entity{PartitionKey: pk, RowKey: openKey(cur.ID)}, IfMatch: "*"})
			}
		}
		ops = append(ops, events...)
		err := s.table.Batch(ctx, ops)
		if err == nil {
			// Read back for the new ETag (batches return none).
			if stored, gerr := s.getTask(ctx, pk, cur.ID); gerr == nil {
				return stored, nil, nil
			}
			return next, nil, nil
		}
		if !switchboard.IsCode(err, switchboard.EPRECONDITION) && !switchboard.IsCode(err, switchboard.ENOTFOUND) {
			return Task{}, nil, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
		}
		// The counter or the task changed: only the latter matters.
		again, gerr := s.getTask(ctx, pk, cur.ID)
		if gerr != nil {
			return Task{}, nil, gerr
		}
		if again.ETag != cur.ETag {
			return Task{}, &again, switchboard.Errorf(switchboard.EPRECONDITION, op, "task %s changed meanwhile", cur.ID)
		}
	}
	return Task{}, nil, switchboard.Errorf(switchboard.EUNAVAILABLE, op, "too much contention on the task counter; retry")
}

// ended is cur in a final state, with the note saying why.
func ended(cur Task, state, note string, now time.Time) Task {
	next := cur
	next.State, next.Note, next.UpdatedAt, next.EndedAt, next.SendPending = state, note, now, now, false
	return next
}

// finish moves cur (as read, with its ETag) to a final state and frees its
// slot. Returns EPRECONDITION, with the task as now stored, when the task
// changed since cur was read.
func (s *Service) finish(ctx context.Context, cur Task, state, note string) (Task, error) {
	return s.move(ctx, taskMove{op: "outbound.finish", pk: partition(cur.TenantID, cur.ServiceID), id: cur.ID, from: &cur, tries: 1,
		decide: func(c Task) (Task, bool, error) { return ended(c, state, note, s.now()), true, nil }})
}

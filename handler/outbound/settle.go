package outbound

// Cancel and Complete: a caller withdraws a task, or its agent reports
// how it ended (a failed attempt with attempts left is queued again).

import (
	"context"
	"errors"
	"fmt"
	"time"

	"switchboard/handler/switchboard"
)

// Cancel cancels a task that is not in progress: its slot is freed and its
// scheduled message cancelled. Cancelling a cancelled task returns it
// unchanged. Returns ENOTFOUND for an unknown task and ECONFLICT while it is
// InProgress or once it has completed, failed or expired.
func (s *Service) Cancel(ctx context.Context, tenant, service, id string) (Task, error) {
	const op = "outbound.Cancel"
	if err := checkIDs(op, tenant, service); err != nil {
		return Task{}, err
	}
	if err := checkTaskID(op, id); err != nil {
		return Task{}, err
	}
	pk := partition(tenant, service)
	var cur Task // the task as read before the write that cancelled it
	done, err := s.move(ctx, taskMove{op: op, pk: pk, id: id, tries: maxWriteRetries,
		decide: func(c Task) (Task, bool, error) {
			switch {
			case c.State == StateCancelled:
				return c, false, errAlreadyDone
			case canMove(c.State, StateCancelled):
				cur = c
				return ended(c, StateCancelled, "cancelled by the caller", s.now()), true, nil
			case c.State == StateInProgress:
				return Task{}, false, &switchboard.Error{Code: switchboard.ECONFLICT, Op: op, Type: "outbound-task-in-progress",
					Message: "task " + id + " is in progress with an agent and cannot be cancelled; complete it instead"}
			default:
				return Task{}, false, &switchboard.Error{
					Code:    switchboard.ECONFLICT,
					Op:      op,
					Type:    "outbound-task-finished",
					Message: "task " + id + " has already ended (" + c.State + ")",
				}
			}
		}})
	switch {
	case errors.Is(err, errAlreadyDone):
		return done, nil
	case switchboard.IsCode(err, switchboard.EPRECONDITION):
		return Task{}, switchboard.Errorf(switchboard.EUNAVAILABLE, op, "task %s keeps changing; retry", id)
	case err != nil:
		return Task{}, err
	}
	if cur.SequenceNumber > 0 && s.o.Queue != nil {
		if err := s.o.Queue.Cancel(ctx, s.o.QueueName, cur.SequenceNumber); err != nil {
			// The message, when it comes, finds the task cancelled.
			s.o.Log.Warn("outbound: scheduled message not cancelled; it will be dropped when delivered", "task", id, "err", err)
		}
	}
	// A worker may have reserved an agent an instant before.
	s.release(ctx, cur)
	return done, nil
}

// Completion is a complete call (domain vocabulary).
type Completion = switchboard.OutboundCompletion

// Complete ends an InProgress task with outcome Completed or Failed and
// frees its agent. A Failed attempt of a task with attempts left puts it
// back in the queue (Queued, slot kept) instead. A completion that names an
// attempt no longer current (c.Attempt below the task's attempts, or the
// attempt already ended; c.IfMatch not the task's ETag) changes nothing and
// returns the task as it is: Power Automate retries a call that timed out,
// and the retry must not end the next attempt. Completing a task again with
// the outcome it ended with returns it unchanged. Returns EINVALID for a
// bad outcome, note or attempt, ENOTFOUND for an unknown task, ECONFLICT
// when the task is not in progress (or c.Attempt has not begun).
func (s *Service) Complete(ctx context.Context, tenant, service, id string, c Completion) (Task, error) {
	const op = "outbound.Complete"
	if err := checkIDs(op, tenant, service); err != nil {
		return Task{}, err
	}
	outcome, note := c.Outcome, c.Note
	if outcome == "" {
		outcome = OutcomeCompleted
	}
	if outcome != OutcomeCompleted && outcome != OutcomeFailed {
		return Task{}, switchboard.FieldError(op, "outcome", "outcome must be Completed or Failed, not %q", truncate(outcome, 40))
	}
	if len([]rune(note)) > MaxNoteLength {
		return Task{}, switchboard.FieldError(op, "note", "note must be at most %d characters", MaxNoteLength)
	}
	if c.Attempt != nil && (*c.Attempt < 1 || *c.Attempt > MaxMaxAttempts) {
		return Task{}, switchboard.FieldError(op, "attempt", "attempt must be an integer between 1 and %d: the task's attempts as you read it", MaxMaxAttempts)
	}
	if err := checkTaskID(op, id); err != nil {
		return Task{}, err
	}
	pk := partition(tenant, service)
	requeued := false
	done, err := s.move(ctx, taskMove{op: op, pk: pk, id: id, tries: maxWriteRetries,
		decide: func(cur Task) (Task, bool, error) {
			if err := completionCurrent(op, cur, c); err != nil {
				return cur, false, err
			}
			if !canMove(cur.State, outcome) {
				if cur.State == outcome && cur.Note == note {
					return cur, false, errAlreadyDone
				}
				return Task{}, false, &switchboard.Error{
					Code:    switchboard.ECONFLICT,
					Op:      op,
					Type:    "outbound-task-not-in-progress",
					Message: "task " + id + " is " + cur.State + ", not InProgress",
				}
			}
			// The agent goes first: a task left InProgress by a failed
			// write can be completed again, an agent left held could not.
			if err := s.o.Router.Release(ctx, tenant, conversationID(cur.ID, cur.Attempts)); err != nil {
				return Task{}, false, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
			}
			now := s.now()
			requeued = outcome == OutcomeFailed && cur.Attempts < cur.MaxAttempts
			if requeued {
				return requeuedTask(cur, note, now), true, nil
			}
			return ended(cur, outcome, note, now), true, nil
		}})
	switch {
	case errors.Is(err, errAlreadyDone), errors.Is(err, errNotCurrent):
		return done, nil
	case switchboard.IsCode(err, switchboard.EPRECONDITION):
		return Task{}, switchboard.Errorf(switchboard.EUNAVAILABLE, op, "task %s keeps changing; retry", id)
	case err != nil:
		return Task{}, err
	}
	if requeued {
		return s.sendRequeued(ctx, done), nil
	}
	return done, nil
}

// errNotCurrent stops a completion for an attempt that is no longer the
// task's current one: the task is returned unchanged.
var errNotCurrent = errors.New("outbound: the completion is for an earlier attempt")

// completionCurrent checks that c is for cur's current attempt: errNotCurrent
// when it names an earlier one (or one that already ended), ECONFLICT for
// one that has not begun, nil when c names none.
func completionCurrent(op string, cur Task, c Completion) error {
	if c.IfMatch != "" && c.IfMatch != "*" && !switchboard.IfMatchHolds(c.IfMatch, cur.ETag) {
		return errNotCurrent
	}
	if c.Attempt == nil {
		return nil
	}
	switch n := *c.Attempt; {
	case n > cur.Attempts:
		return &switchboard.Error{Code: switchboard.ECONFLICT, Op: op, Type: "outbound-task-not-in-progress", Field: "attempt",
			Message: fmt.Sprintf("task %s has had %d attempts: attempt %d has not begun", cur.ID, cur.Attempts, n)}
	case n < cur.Attempts, cur.State != StateInProgress:
		// An earlier attempt, or this one ended already (completed,
		// failed and queued again, or timed out).
		return errNotCurrent
	}
	return nil
}

// requeuedTask is an InProgress task whose attempt failed, back in the
// queue for its next attempt with a fresh queue time.
func requeuedTask(cur Task, note string, now time.Time) Task {
	next := cur
	next.State, next.Note, next.UpdatedAt = StateQueued, note, now
	next.QueuedAt, next.Deadline = now, now.Add(time.Duration(cur.MaxQueueTimeSeconds)*time.Second)
	next.Try, next.NextTryAt, next.SendPending, next.SequenceNumber = cur.Try+1, now, true, 0
	next.Agent = ""
	return next
}

// sendRequeued sends the message of a requeued task's new try.
func (s *Service) sendRequeued(ctx context.Context, next Task) Task {
	seq, err := s.send(ctx, next, next.UpdatedAt)
	if err != nil {
		// Housekeeping sends it once ResendAfter has passed.
		s.o.Log.Warn("outbound: requeued task not sent; housekeeping will send it", "task", next.ID, "err", err)
		return next
	}
	if sent, ok := s.markSent(ctx, next, seq); ok {
		return sent
	}
	next.SendPending = false
	return next
}

// release ends the routing conversation of t's current attempt.
func (s *Service) release(ctx context.Context, t Task) {
	for _, attempt := range []int{t.Attempts, t.Attempts + 1} {
		if attempt < 1 {
			continue
		}
		if err := s.o.Router.Release(ctx, t.TenantID, conversationID(t.ID, attempt)); err != nil {
			s.o.Log.Warn("outbound: agent hold not released; routing housekeeping will", "task", t.ID, "err", err)
		}
	}
}

package outbound

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// What the worker did with a message.
const (
	ActionDropped  = "dropped"  // malformed, or for an unknown task: logged, never retried
	ActionStale    = "stale"    // a redelivered or superseded message: the task has moved on
	ActionAssigned = "assigned" // the task is InProgress with an agent
	ActionWaiting  = "waiting"  // nobody free: the next try is scheduled
	ActionExpired  = "expired"  // the queue time ran out: Expired, slot freed
	ActionResent   = "resent"   // the message finished a try whose send had failed
)

// Work is what the worker did with one message.
type Work struct {
	Action string
	TaskID string
	Agent  string
	Detail string
	// Ahead counts higher-priority tasks this message assigned first.
	Ahead int
}

func (w Work) String() string {
	s := w.Action
	if w.TaskID != "" {
		s += " task " + w.TaskID
	}
	if w.Agent != "" {
		s += " to " + w.Agent
	}
	if w.Ahead > 0 {
		s += fmt.Sprintf(" (after assigning %d tasks ahead of it)", w.Ahead)
	}
	if w.Detail != "" {
		s += ": " + w.Detail
	}
	return s
}

// maxAhead bounds how many waiting tasks ahead of its own one message
// assigns, so that one invocation stays short.
const maxAhead = 5

// lateTolerance is how late a try's message may arrive and still route
// after the task's deadline (delivery is not instantaneous).
const lateTolerance = 2 * time.Second

// Handle processes one queue message. A malformed message or one for an
// unknown task is dropped (Action dropped, nil error): retrying cannot
// help. A message that is not the task's current try, or for a task that
// is no longer waiting, changes nothing. Otherwise the task is assigned to
// an eligible agent (preferred users first) or, when nobody is free, tried
// again after RetryInterval until its queue time runs out (Expired, slot
// freed); with ServedByLine it is tried again only when its queue time
// runs out, distribution giving it the next agent freed meanwhile. Before its own task, the message assigns waiting tasks of the
// same service that come first (higher priority, then longer waiting).
// Returns an error (the message is then retried, and after the queue's
// MaxDeliveryCount dead-lettered) only when storage, routing or the queue
// failed.
func (s *Service) Handle(ctx context.Context, body []byte) (Work, error) {
	var m message
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Work{Action: ActionDropped, Detail: fmt.Sprintf("malformed message (%v): %.120q", err, body)}, nil
	}
	if checkIDs("outbound.Handle", m.TenantID, m.ServiceID) != nil || checkTaskID("outbound.Handle", m.TaskID) != nil || m.Try < 1 {
		return Work{Action: ActionDropped, Detail: fmt.Sprintf("message without valid tenantId, serviceId, taskId and try: %.200q", body)}, nil
	}
	pk := partition(m.TenantID, m.ServiceID)
	w := Work{TaskID: m.TaskID}
	t, err := s.getTask(ctx, pk, m.TaskID)
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		w.Action, w.Detail = ActionDropped, "no such task (withdrawn, or deleted after its retention)"
		return w, nil
	}
	if err != nil {
		return w, err
	}
	if !waiting(t) {
		w.Action, w.Detail = ActionStale, "task is "+t.State
		return w, nil
	}
	if m.Try != t.Try {
		if m.Try == t.Try-1 && t.SendPending {
			// This message started the current try, whose send failed:
			// it is the one left to send it.
			if err := s.resend(ctx, t); err != nil {
				return w, err
			}
			w.Action = ActionResent
			return w, nil
		}
		w.Action, w.Detail = ActionStale, fmt.Sprintf("try %d superseded by try %d", m.Try, t.Try)
		return w, nil
	}

	now := s.now()
	if t.State == StateScheduled && t.DueAt.After(now.Add(lateTolerance)) {
		// Delivered before its time (sent unscheduled by mistake, or a
		// clock step): wait for the due time with a new try.
		return s.wait(ctx, t, t.DueAt, w)
	}
	if now.After(t.Deadline.Add(lateTolerance)) {
		return s.expire(ctx, t, w)
	}

	ahead, err := s.ahead(ctx, pk, t, now)
	if err != nil {
		return w, err
	}
	for _, id := range ahead {
		if w.Ahead == maxAhead {
			break
		}
		other, err := s.getTask(ctx, pk, id)
		if err != nil || !waiting(other) || now.After(other.Deadline) {
			continue // its own message deals with it
		}
		agent, err := s.assign(ctx, other, nil, nil)
		if err != nil {
			s.o.Log.Warn("outbound: could not assign a waiting task", "task", id, "err", err)
			break
		}
		if agent == "" {
			break // nobody is free: not for this task either
		}
		w.Ahead++
	}

	// Assign the task, or start its next try; when a concurrent delivery
	// or a cancel changed it meanwhile, look again.
	const (
		assigned = iota + 1
		expired
		stale
	)
	var outcome int
	var agent string
	var nextTry time.Time
	round := 0
	n, err := s.move(ctx, taskMove{op: "outbound.Handle", pk: pk, id: m.TaskID, from: &t, tries: maxWriteRetries,
		decide: func(cur Task) (Task, bool, error) {
			if round++; round > 1 && (!waiting(cur) || cur.Try != m.Try) {
				outcome = stale
				return cur, false, nil
			}
			a, err := s.assign(ctx, cur, nil, nil)
			if err != nil {
				return Task{}, false, err
			}
			if a != "" {
				outcome, agent = assigned, a
				return cur, false, nil
			}
			if !now.Before(cur.Deadline) {
				outcome = expired
				return cur, false, nil
			}
			nextTry = s.retryAt(now, cur.Deadline)
			return startTry(cur, nextTry, s.now()), true, nil
		}})
	switch {
	case switchboard.IsCode(err, switchboard.EPRECONDITION):
		if !waiting(n) || n.Try != m.Try {
			w.Action, w.Detail = ActionStale, "task changed meanwhile ("+n.State+")"
			return w, nil
		}
		return w, switchboard.Errorf(switchboard.EUNAVAILABLE, "outbound.Handle", "task %s keeps changing", m.TaskID)
	case err != nil:
		return w, err
	case outcome == assigned:
		w.Action, w.Agent = ActionAssigned, agent
		return w, nil
	case outcome == expired:
		return s.expire(ctx, n, w)
	case outcome == stale:
		w.Action, w.Detail = ActionStale, "task changed meanwhile ("+n.State+")"
		return w, nil
	}
	return s.sendTry(ctx, n, nextTry, w)
}

// retryAt is when a queued task nobody took asks for an agent again: with
// ServedByLine only at the end of its queue time (to expire it), since
// distribution gives it to the next agent freed and housekeeping's pass
// catches a freeing nobody was told of; else after RetryInterval.
func (s *Service) retryAt(now, deadline time.Time) time.Time {
	if s.o.ServedByLine {
		return deadline
	}
	return minTime(now.Add(s.o.RetryInterval), deadline)
}

// waiting reports whether the task waits for an agent (or for its due
// time).
func waiting(t Task) bool { return t.State == StateScheduled || t.State == StateQueued }

// ahead returns the ids of the service's waiting tasks that come before t:
// higher priority first, then the one waiting longest.
func (s *Service) ahead(ctx context.Context, pk string, t Task, now time.Time) ([]string, error) {
	var open []openEntry
	err := store.QueryAll(ctx, s.table, store.Query{PartitionKey: pk, Prefix: openPrefix}, func(e store.Entity) error {
		if o := openFromEntity(e); o.ID != t.ID && o.waiting(now) && !now.After(o.Deadline) {
			open = append(open, o)
		}
		return nil
	})
	if err != nil {
		return nil, switchboard.Wrap(switchboard.EUNAVAILABLE, "outbound.Handle", err)
	}
	self := openEntry{ID: t.ID, Priority: t.Priority, QueuedAt: t.QueuedAt}
	var ids []string
	sort.Slice(open, func(i, j int) bool { return before(open[i], open[j]) })
	for _, o := range open {
		if !before(o, self) {
			break
		}
		ids = append(ids, o.ID)
	}
	return ids, nil
}

// before orders waiting tasks: higher priority, then longer waiting, then
// older.
func before(a, b openEntry) bool {
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	if !a.QueuedAt.Equal(b.QueuedAt) {
		return a.QueuedAt.Before(b.QueuedAt)
	}
	return a.ID < b.ID
}

// assign asks the routing engine for an agent for t's next attempt,
// holding the agent until released, and makes the task InProgress with it.
// It returns "" when nobody is free or the task changed meanwhile (the
// hold is then released).
func (s *Service) assign(ctx context.Context, t Task, prefer, only []string) (string, error) {
	attempt := t.Attempts + 1
	conv := conversationID(t.ID, attempt)
	preferred := switchboard.PreferFirst(prefer, t.PreferredUsers)
	d, err := s.o.Router.Route(ctx, t.TenantID, t.ServiceID, switchboard.RouteRequest{
		ConversationID: conv,
		Reserve:        true,
		UntilReleased:  true,
		PreferredUsers: preferred,
		Only:           only,
		MaxAgents:      1, // a task is one call, even on a Broadcast service
	})
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		// The service was deleted: nobody can take the task until it
		// comes back; the queue time runs out otherwise.
		return "", nil
	}
	if err != nil {
		return "", switchboard.Wrap(switchboard.EUNAVAILABLE, "outbound.assign", err)
	}
	if len(d.Agents) == 0 {
		return "", nil
	}
	agent := d.Agents[0].UserID
	round := 0
	cur, err := s.move(ctx, taskMove{op: "outbound.assign", pk: partition(t.TenantID, t.ServiceID), id: t.ID, from: &t, tries: 5,
		decide: func(cur Task) (Task, bool, error) {
			if round++; round > 1 {
				if cur.State == StateInProgress && cur.Attempts == attempt {
					// Another delivery of the same try got there first,
					// with the same hold (the routing engine answers a
					// conversation asked again with its hold): nothing to
					// undo.
					return cur, false, nil
				}
				if !waiting(cur) || cur.Attempts+1 != attempt {
					return Task{}, false, errMovedOn // cancelled, expired or moved on
				}
			}
			now := s.now()
			next := cur
			next.State, next.Agent, next.Attempts, next.AssignedAt, next.UpdatedAt = StateInProgress, agent, attempt, now, now
			next.SendPending = false
			return next, true, nil
		},
		failed: func(error) { s.releaseConv(ctx, t.TenantID, conv) },
	})
	switch {
	case err == nil:
		return cur.Agent, nil
	case switchboard.IsCode(err, switchboard.EPRECONDITION) && cur.State == StateInProgress && cur.Attempts == attempt:
		return cur.Agent, nil // as above, seen on the last read
	case errors.Is(err, errMovedOn), switchboard.IsCode(err, switchboard.EPRECONDITION):
		// Give the agent back.
		s.releaseConv(ctx, t.TenantID, conv)
		return "", nil
	default:
		return "", err // the write failed (the hold is released) or the read did
	}
}

func (s *Service) releaseConv(ctx context.Context, tenant, conv string) {
	if err := s.o.Router.Release(ctx, tenant, conv); err != nil {
		s.o.Log.Warn("outbound: agent hold not released; routing housekeeping will", "conversation", conv, "err", err)
	}
}

// wait starts the task's next try, due at next: the task (Queued once due)
// with its new try is written first, then the message is sent. Returns
// EPRECONDITION when the task changed since t was read.
func (s *Service) wait(ctx context.Context, t Task, next time.Time, w Work) (Work, error) {
	n, err := s.move(ctx, taskMove{op: "outbound.wait", pk: partition(t.TenantID, t.ServiceID), id: t.ID, from: &t, tries: 1,
		decide: func(cur Task) (Task, bool, error) { return startTry(cur, next, s.now()), true, nil }})
	if err != nil {
		return w, err
	}
	return s.sendTry(ctx, n, next, w)
}

// startTry is t with its next try, due at next (Queued once due).
func startTry(t Task, next, now time.Time) Task {
	n := t
	if !t.DueAt.After(now) {
		n.State = StateQueued
	}
	n.Try, n.NextTryAt, n.SendPending, n.SequenceNumber, n.UpdatedAt = t.Try+1, next, true, 0, now
	return n
}

// sendTry sends the message of n's new try, written with it pending.
func (s *Service) sendTry(ctx context.Context, n Task, next time.Time, w Work) (Work, error) {
	seq, err := s.send(ctx, n, n.UpdatedAt)
	if err != nil {
		// Fails the invocation: the redelivered message (try n-1) finds
		// the send pending and makes it.
		return w, switchboard.Wrap(switchboard.EUNAVAILABLE, "outbound.Handle", err)
	}
	s.markSent(ctx, n, seq)
	w.Action, w.Detail = ActionWaiting, "no agent free; next try at "+next.Format(time.RFC3339)
	return w, nil
}

// resend sends the message of t's current try (its send is pending).
func (s *Service) resend(ctx context.Context, t Task) error {
	now := s.now()
	seq, err := s.send(ctx, t, now)
	if err != nil {
		return switchboard.Wrap(switchboard.EUNAVAILABLE, "outbound.resend", err)
	}
	s.markSent(ctx, t, seq)
	return nil
}

// expire ends a task whose queue time ran out.
func (s *Service) expire(ctx context.Context, t Task, w Work) (Work, error) {
	done, err := s.finish(ctx, t, StateExpired, fmt.Sprintf("no agent was free within %d seconds", t.MaxQueueTimeSeconds))
	if switchboard.IsCode(err, switchboard.EPRECONDITION) {
		w.Action, w.Detail = ActionStale, "task changed meanwhile ("+done.State+")"
		return w, nil
	}
	if err != nil {
		return w, err
	}
	s.release(ctx, t)
	w.Action = ActionExpired
	return w, nil
}

package outbound

// Admission and scheduling: a task takes a slot of its service (or finds
// the one its referenceId made) and its message is put on the queue.

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// Schedule admits a task for the service and puts its message on the
// queue, scheduled for its due time. created is false when the
// referenceId names an existing task, which is returned instead (whatever
// the other fields say). Returns EINVALID for a bad request, ENOTFOUND for
// an unknown service, ELIMIT (problem type outbound-task-limit-reached)
// when the service's cap is reached, and EUNAVAILABLE when storage or the
// queue failed: nothing was scheduled then.
func (s *Service) Schedule(ctx context.Context, tenant, service string, n NewTask) (task Task, created bool, err error) {
	const op = "outbound.Schedule"
	if err := checkIDs(op, tenant, service); err != nil {
		return Task{}, false, err
	}
	now := s.now()
	t, err := validateNewTask(n, now)
	if err != nil {
		return Task{}, false, err
	}
	pk := partition(tenant, service)
	if t.ReferenceID != "" {
		if existing, ok, err := s.byReference(ctx, pk, t.ReferenceID); err != nil || ok {
			return existing, false, err
		}
	}
	if s.o.Queue == nil {
		return Task{}, false, switchboard.Errorf(switchboard.EUNAVAILABLE, op, "outbound tasks cannot be scheduled: no Service Bus is configured")
	}
	if s.o.Services != nil {
		if err := s.o.Services.CheckService(ctx, tenant, service); err != nil {
			return Task{}, false, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
		}
	}
	limit, err := s.o.Limits.MaxScheduledTasksPerService(ctx, tenant)
	if err != nil {
		return Task{}, false, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	}
	// Refusing on a committed count at or over the cap needs no lock.
	c, err := s.readCounter(ctx, pk)
	if err != nil {
		return Task{}, false, err
	}
	if c.count >= limit {
		return Task{}, false, limitError(op, service, limit)
	}
	if err := s.register(ctx, pk); err != nil {
		return Task{}, false, err
	}

	t.ID = s.o.NewID()
	t.TenantID, t.ServiceID = tenant, service
	t.State = StateScheduled
	t.CreatedAt, t.UpdatedAt = now, now
	t.QueuedAt = t.DueAt
	t.Deadline = t.DueAt.Add(time.Duration(t.MaxQueueTimeSeconds) * time.Second)
	t.Try, t.NextTryAt = 1, t.DueAt

	// A task due later has its message scheduled before the task is
	// written (the message cannot arrive before the row exists, and the row
	// then holds its sequence number); a task due now is written first and
	// its message sent after, or the worker could look for it too early.
	later := t.DueAt.After(now.Add(sendFirstAhead))
	t.SendPending = !later
	events, err := s.stateEvent(nil, &t)
	if err != nil {
		return Task{}, false, err
	}
	if err := s.prepareEvents(ctx, pk, events); err != nil {
		return Task{}, false, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	}
	t, existing, err := s.admit(ctx, pk, t, limit, later, events)
	if err != nil || existing {
		return t, false, err
	}
	// A task sent before it was written is complete: its creation event
	// goes now. One still to send waits with its event until the send
	// succeeded or the task was withdrawn (with its event, unsent).
	defer s.flushEvents(ctx, pk, events)
	if !t.SendPending { // its message was scheduled before it was written
		return t, true, nil
	}
	seq, err := s.send(ctx, t, now)
	if err != nil {
		if uerr := s.undoAdmission(ctx, t, events); uerr != nil {
			// The task stays, marked as not sent: housekeeping sends it.
			s.o.Log.Error("outbound: task admitted but neither sent nor withdrawn; housekeeping will send "+
				"it", "tenant", tenant, "service", service, "task", t.ID, "sendErr", err, "undoErr", uerr)
		}
		return Task{}, false, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	}
	// Unless the worker has taken the message already (it clears the
	// mark itself).
	if sent, ok := s.markSent(ctx, t, seq); ok {
		return sent, true, nil
	}
	t.SendPending = false
	return t, true, nil
}

// sendFirstAhead is how far in the future a due time must be for the
// message to be scheduled before the task is written.
const sendFirstAhead = 2 * time.Second

func limitError(op, service string, limit int) error {
	return &switchboard.Error{Code: switchboard.ELIMIT, Op: op, Type: "outbound-task-limit-reached",
		Message: "service " + service + " has reached its limit of " + itoa(limit) + " scheduled, queued and in-progress outbound tasks " +
			"(outbound.maxScheduledTasksPerService); the task was discarded"}
}

// admit writes the task with its slot: counter+1, task, open row and
// reference row in one batch guarded by the counter's ETag. With sendFirst
// the task's message is scheduled once a slot is seen free, before the
// batch, and cancelled again if the task is not admitted after all; when
// the due time has come near by then, the task is written with its send
// pending instead, for the caller to send. It returns the stored task, or with existing the task a concurrent request
// created with the same referenceId.
func (s *Service) admit(ctx context.Context, pk string, t Task, limit int, sendFirst bool, events []store.Op) (_ Task, existing bool, err error) {
	const op = "outbound.Schedule"
	p := s.partition(pk)
	seen := p.fullSeen.Load()
	p.mu.Lock()
	defer p.mu.Unlock()
	// A holder saw the counter at the cap while this request waited: the
	// cap was reached during the request, so refusing it is correct (and
	// spares a read of the counter per queued request).
	if p.fullSeen.Load() != seen && int(p.fullAt.Load()) >= limit {
		return Task{}, false, limitError(op, t.ServiceID, limit)
	}
	sent, admitted := false, false
	defer func() {
		if sent && !admitted && t.SequenceNumber > 0 {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if cerr := s.o.Queue.Cancel(cctx, s.o.QueueName, t.SequenceNumber); cerr != nil {
				// It is dropped when delivered: its task does not exist.
				s.o.Log.Warn("outbound: message of a task not admitted was not cancelled", "task", t.ID, "err", cerr)
			}
		}
	}()
	for range maxWriteRetries {
		c, err := s.readCounter(ctx, pk)
		if err != nil {
			return Task{}, false, err
		}
		if c.count >= limit {
			p.seenFull(c.count)
			return Task{}, false, limitError(op, t.ServiceID, limit)
		}
		if sendFirst && !sent && !t.DueAt.After(s.now().Add(sendFirstAhead)) {
			// The due time came near while this request waited (storage,
			// the lock): a message sent now would be delivered before the
			// task is written, and dropped. Write first, send after.
			sendFirst, t.SendPending = false, true
		}
		if sendFirst && !sent {
			seq, err := s.send(ctx, t, s.now())
			if err != nil {
				return Task{}, false, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
			}
			sent, t.SequenceNumber = true, seq
		}
		ops := []store.Op{
			c.op(pk, c.count+1),
			{Kind: store.OpInsert, Entity: taskEntity(t)},
			{Kind: store.OpInsert, Entity: openEntity(t)},
		}
		if t.ReferenceID != "" {
			ops = append(ops, store.Op{Kind: store.OpInsert, Entity: refEntity(pk, t.ReferenceID, t.ID)})
		}
		ops = append(ops, events...) // its creation event, in the same transaction
		err = s.table.Batch(ctx, ops)
		switch switchboard.ErrorCode(err) {
		case "":
			admitted = true
			if c.count+1 >= limit {
				p.seenFull(c.count + 1)
			}
			return t, false, nil
		case switchboard.EPRECONDITION:
			continue // another instance moved the counter
		case switchboard.ECONFLICT:
			// The counter was created concurrently, or the referenceId
			// was taken concurrently.
			if t.ReferenceID != "" {
				if other, ok, err := s.byReference(ctx, pk, t.ReferenceID); err != nil || ok {
					return other, ok, err
				}
			}
			continue
		default:
			return Task{}, false, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
		}
	}
	return Task{}, false, switchboard.Errorf(switchboard.EUNAVAILABLE, op, "service %s: too much contention on its task counter; retry", t.ServiceID)
}

// undoAdmission withdraws a task whose message could not be sent: the task,
// its rows, its slot and its creation event (not yet flushed) go in one
// batch. Should the outbox sweep have handed the creation event over
// meanwhile, the batch records a Cancelled event instead, so that a
// receiver never keeps a task that does not exist.
func (s *Service) undoAdmission(ctx context.Context, t Task, events []store.Op) error {
	pk := partition(t.TenantID, t.ServiceID)
	unlock := s.lock(pk)
	defer unlock()
	for range maxWriteRetries {
		cur, err := s.getTask(ctx, pk, t.ID)
		if err != nil {
			return err
		}
		if cur.Try != t.Try || !cur.SendPending || cur.State != StateScheduled {
			return switchboard.Errorf(switchboard.ECONFLICT, "outbound.undo", "task %s changed meanwhile", t.ID)
		}
		c, err := s.readCounter(ctx, pk)
		if err != nil {
			return err
		}
		ops := []store.Op{
			c.op(pk, c.count-1),
			{Kind: store.OpDelete, Entity: store.Entity{PartitionKey: pk, RowKey: taskKey(t.ID)}, IfMatch: cur.ETag},
			{Kind: store.OpDelete, Entity: store.Entity{PartitionKey: pk, RowKey: openKey(t.ID)}, IfMatch: "*"},
		}
		if t.ReferenceID != "" {
			ops = append(ops, store.Op{Kind: store.OpDelete, Entity: store.Entity{PartitionKey: pk, RowKey: refKey(t.ReferenceID)}, IfMatch: "*"})
		}
		for _, ev := range events {
			row, err := s.table.Get(ctx, pk, ev.Entity.RowKey)
			switch {
			case err == nil:
				ops = append(ops, store.Op{Kind: store.OpDelete, Entity: store.Entity{PartitionKey: pk, RowKey: row.RowKey}, IfMatch: row.ETag})
			case switchboard.IsCode(err, switchboard.ENOTFOUND):
				withdrawn := ended(cur, StateCancelled, "withdrawn: its message could not be sent", s.now())
				more, err := s.stateEvent(&cur, &withdrawn)
				if err != nil {
					return err
				}
				ops = append(ops, more...)
			default:
				return switchboard.Wrap(switchboard.EUNAVAILABLE, "outbound.undo", err)
			}
		}
		err = s.table.Batch(ctx, ops)
		if !switchboard.IsCode(err, switchboard.EPRECONDITION) && !switchboard.IsCode(err, switchboard.ENOTFOUND) {
			return err
		}
	}
	return switchboard.Errorf(switchboard.EUNAVAILABLE, "outbound.undo", "too much contention")
}

func (s *Service) readCounter(ctx context.Context, pk string) (counter, error) {
	e, err := s.table.Get(ctx, pk, counterKey)
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return counter{}, nil
	}
	if err != nil {
		return counter{}, switchboard.Wrap(switchboard.EUNAVAILABLE, "outbound.counter", err)
	}
	return readCounter(e), nil
}

// register records the partition for housekeeping, once per process.
func (s *Service) register(ctx context.Context, pk string) error {
	if _, ok := s.known.Load(pk); ok {
		return nil
	}
	_, err := s.table.Insert(ctx, store.Entity{PartitionKey: registryPK, RowKey: pk, Props: map[string]any{"RegisteredAt": s.now()}})
	if err != nil && !switchboard.IsCode(err, switchboard.ECONFLICT) {
		return switchboard.Wrap(switchboard.EUNAVAILABLE, "outbound.register", err)
	}
	s.known.Store(pk, true)
	return nil
}

func (s *Service) byReference(ctx context.Context, pk, referenceID string) (Task, bool, error) {
	const op = "outbound.byReference"
	e, err := s.table.Get(ctx, pk, refKey(referenceID))
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return Task{}, false, nil
	}
	if err != nil {
		return Task{}, false, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	}
	t, err := s.getTask(ctx, pk, e.String("TaskId"))
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return Task{}, false, nil // withdrawn meanwhile
	}
	return t, err == nil, err
}

// message is the body of a task's queue message.
type message struct {
	TenantID  string `json:"tenantId"`
	ServiceID string `json:"serviceId"`
	TaskID    string `json:"taskId"`
	Try       int    `json:"try"`
}

// send puts the message of t's current try on the queue, scheduled for
// t.NextTryAt (sent for now when that has come). It returns the sequence
// number of a scheduled message.
func (s *Service) send(ctx context.Context, t Task, now time.Time) (int64, error) {
	if s.o.Queue == nil {
		return 0, switchboard.Errorf(switchboard.EUNAVAILABLE, "outbound.send", "no queue is configured")
	}
	body, _ := json.Marshal(message{TenantID: t.TenantID, ServiceID: t.ServiceID, TaskID: t.ID, Try: t.Try})
	msg := switchboard.Message{Body: body, MessageID: t.ID + "." + itoa(t.Try), ContentType: "application/json"}
	if t.NextTryAt.After(now) {
		msg.ScheduledAt = t.NextTryAt
	}
	return s.o.Queue.Send(ctx, s.o.QueueName, msg)
}

// markSent records that t's current try is on the queue (and its sequence
// number, for cancelling), unless the task moved on meanwhile. It returns
// the stored task.
func (s *Service) markSent(ctx context.Context, t Task, seq int64) (Task, bool) {
	sent, err := s.move(ctx, taskMove{op: "outbound.markSent", pk: partition(t.TenantID, t.ServiceID), id: t.ID, tries: 5, markOnly: true,
		decide: func(cur Task) (Task, bool, error) {
			if cur.Try != t.Try || !cur.SendPending {
				return Task{}, false, errMovedOn
			}
			cur.SendPending = false
			cur.SequenceNumber = seq
			return cur, true, nil
		},
		failed: func(err error) {
			s.o.Log.Warn("outbound: could not record a sent message; housekeeping may send it again (harmless)", "task", t.ID, "err", err)
		},
	})
	return sent, err == nil
}

func itoa(n int) string { return strconv.Itoa(n) }

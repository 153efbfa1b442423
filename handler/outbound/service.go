package outbound

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// Limits reads the cap of a tenant: outbound.maxScheduledTasksPerService.
// *settings.Service is one.
type Limits interface {
	MaxScheduledTasksPerService(ctx context.Context, tenantID string) (int, error)
}

// Services tells whether a service exists, so that a task for an unknown
// service is refused at once instead of waiting out its queue time.
type Services interface {
	// CheckService returns ENOTFOUND when the tenant has no such service.
	CheckService(ctx context.Context, tenantID, serviceID string) error
}

// Defaults of Options.
const (
	DefaultRetryInterval   = 10 * time.Second
	DefaultExpiryGrace     = 15 * time.Second
	DefaultResendAfter     = time.Minute
	DefaultInProgressLimit = 12 * time.Hour
	DefaultRetention       = 30 * 24 * time.Hour
	DefaultFullScanEvery   = time.Hour
)

// Options configures a Service. Tables, Router and Limits are required;
// without a Queue, scheduling answers EUNAVAILABLE (reads still work).
type Options struct {
	Tables    store.Tables
	Queue     switchboard.Queue
	QueueName string // OUTBOUND_QUEUE
	Router    switchboard.Router
	Limits    Limits
	Services  Services // optional
	Now       func() time.Time
	Log       *slog.Logger
	// NewID makes task ids (nil: UUIDv7, whose text sorts by creation
	// time).
	NewID func() string

	// RetryInterval is how long a due task waits before it asks for an
	// agent again when none was free.
	RetryInterval time.Duration
	// ExpiryGrace is how long after its deadline housekeeping expires a
	// task that still waits: the worker's own last try runs at the
	// deadline, housekeeping catches tasks whose message was lost or
	// dead-lettered.
	ExpiryGrace time.Duration
	// ResendAfter is how long a try's send may stay pending before
	// housekeeping sends it again (its sender crashed in between).
	ResendAfter time.Duration
	// InProgressLimit bounds how long a task may stay InProgress without
	// complete: housekeeping then fails it and frees its agent and slot
	// (the routing engine's holds until released end then too).
	InProgressLimit time.Duration
	// Retention is how long a finished task stays readable (and its
	// referenceId stays taken).
	Retention time.Duration
	// FullScanEvery is how often housekeeping reconciles a service's
	// counter against all its task rows rather than its index rows.
	FullScanEvery time.Duration

	// ServedByLine says that distribution (SPEC section 10) gives waiting
	// tasks to agents as soon as one is freed (AssignWaiting): the worker
	// then does not retry every RetryInterval, its next try is only at the
	// end of the queue time (to expire the task).
	ServedByLine bool
	// AgentFreed, when set, is told of an agent a task let go (completed,
	// cancelled, failed), so that it is given its next item at once.
	AgentFreed func(tenant, service, user string)
}

// Service runs the outbound tasks.
type Service struct {
	table store.Table
	o     Options
	parts sync.Map // partition key → *partitionLock
	known sync.Map // partition keys already in the registry
}

// New returns a Service.
func New(ctx context.Context, o Options) (*Service, error) {
	const op = "outbound.New"
	if o.Tables == nil || o.Router == nil || o.Limits == nil {
		return nil, switchboard.Errorf(switchboard.EINTERNAL, op, "tables, router and limits are required")
	}
	if o.Queue != nil && o.QueueName == "" {
		return nil, switchboard.Errorf(switchboard.EINTERNAL, op, "a queue needs a queue name")
	}
	t, err := o.Tables.Table(ctx, TableName)
	if err != nil {
		return nil, err
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.NewID == nil {
		o.NewID = func() string { return uuid.Must(uuid.NewV7()).String() }
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&o.RetryInterval, DefaultRetryInterval},
		{&o.ExpiryGrace, DefaultExpiryGrace},
		{&o.ResendAfter, DefaultResendAfter},
		{&o.InProgressLimit, DefaultInProgressLimit},
		{&o.Retention, DefaultRetention},
		{&o.FullScanEvery, DefaultFullScanEvery},
	} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	return &Service{table: t, o: o}, nil
}

// now returns the clock's time in UTC at millisecond precision (what
// Table Storage keeps), so that what is returned equals what is stored.
func (s *Service) now() time.Time { return s.o.Now().UTC().Truncate(time.Millisecond) }

// partitionLock serializes this instance's writes to a partition's
// counter: ETags make the cap exact across instances, the lock keeps this
// instance's own requests from retrying against each other. It also
// remembers when a holder last saw the counter at or over some count, so
// that the requests queued behind it can be refused without each reading
// the counter in turn.
type partitionLock struct {
	mu       sync.Mutex
	fullSeen atomic.Uint64 // incremented by every holder that sees count >= limit
	fullAt   atomic.Int64  // the count it saw
}

func (s *Service) partition(pk string) *partitionLock {
	if p, ok := s.parts.Load(pk); ok {
		return p.(*partitionLock)
	}
	p, _ := s.parts.LoadOrStore(pk, &partitionLock{})
	return p.(*partitionLock)
}

// lock locks the partition's counter for this instance.
func (s *Service) lock(pk string) func() {
	p := s.partition(pk)
	p.mu.Lock()
	return p.mu.Unlock
}

// seenFull records, under the lock, that the counter was count.
func (p *partitionLock) seenFull(count int) {
	p.fullAt.Store(int64(count))
	p.fullSeen.Add(1)
}

func checkIDs(op, tenant, service string) error {
	if _, ok := switchboard.NormalizeGUID(tenant); !ok {
		return switchboard.FieldError(op, "t", "tenant id %q is not a GUID", tenant)
	}
	if !switchboard.ValidID(service) {
		return switchboard.FieldError(op, "s", "service id %q is not a valid id", service)
	}
	return nil
}

func checkTaskID(op, id string) error {
	if _, ok := switchboard.NormalizeGUID(id); !ok {
		return &switchboard.Error{Code: switchboard.ENOTFOUND, Op: op, Field: "id", Message: "no outbound task " + truncate(id, 40)}
	}
	return nil
}

// maxWriteRetries bounds the ETag retries of one operation. Under the
// worst contention each round admits one request, so a request retries at
// most about once per slot of the cap.
const maxWriteRetries = 200

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
	t, existing, err := s.admit(ctx, pk, t, limit, later)
	if err != nil || existing {
		return t, false, err
	}
	if !t.SendPending { // its message was scheduled before it was written
		return t, true, nil
	}
	seq, err := s.send(ctx, t, now)
	if err != nil {
		if uerr := s.undoAdmission(ctx, t); uerr != nil {
			// The task stays, marked as not sent: housekeeping sends it.
			s.o.Log.Error("outbound: task admitted but neither sent nor withdrawn; housekeeping will send it", "tenant", tenant, "service", service, "task", t.ID, "sendErr", err, "undoErr", uerr)
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
		Message: "service " + service + " has reached its limit of " + itoa(limit) + " scheduled, queued and in-progress outbound tasks (outbound.maxScheduledTasksPerService); the task was discarded"}
}

// admit writes the task with its slot: counter+1, task, open row and
// reference row in one batch guarded by the counter's ETag. With sendFirst
// the task's message is scheduled once a slot is seen free, before the
// batch, and cancelled again if the task is not admitted after all; when
// the due time has come near by then, the task is written with its send
// pending instead, for the caller to send. It returns the stored task, or with existing the task a concurrent request
// created with the same referenceId.
func (s *Service) admit(ctx context.Context, pk string, t Task, limit int, sendFirst bool) (_ Task, existing bool, err error) {
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
// its rows and its slot go in one batch.
func (s *Service) undoAdmission(ctx context.Context, t Task) error {
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
		err = s.table.Batch(ctx, ops)
		if !switchboard.IsCode(err, switchboard.EPRECONDITION) {
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

func (s *Service) getTask(ctx context.Context, pk, id string) (Task, error) {
	e, err := s.table.Get(ctx, pk, taskKey(id))
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return Task{}, &switchboard.Error{Code: switchboard.ENOTFOUND, Op: "outbound.Get", Field: "id", Message: "no outbound task " + id + " in this service"}
	}
	if err != nil {
		return Task{}, switchboard.Wrap(switchboard.EUNAVAILABLE, "outbound.Get", err)
	}
	return taskFromEntity(e)
}

// Get returns a task. Returns ENOTFOUND for an unknown task.
func (s *Service) Get(ctx context.Context, tenant, service, id string) (Task, error) {
	const op = "outbound.Get"
	if err := checkIDs(op, tenant, service); err != nil {
		return Task{}, err
	}
	if err := checkTaskID(op, id); err != nil {
		return Task{}, err
	}
	return s.getTask(ctx, partition(tenant, service), id)
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

// update writes cur's changes (next) to the task and its open row in one
// batch guarded by cur's ETag; next must hold a slot. Returns
// EPRECONDITION when the task changed since cur was read.
func (s *Service) update(ctx context.Context, cur, next Task) (Task, error) {
	err := s.table.Batch(ctx, []store.Op{
		{Kind: store.OpUpdate, Entity: taskEntity(next), IfMatch: cur.ETag},
		{Kind: store.OpUpsert, Entity: openEntity(next)},
	})
	if err == nil {
		return next, nil
	}
	if switchboard.IsCode(err, switchboard.EPRECONDITION) || switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return Task{}, switchboard.Errorf(switchboard.EPRECONDITION, "outbound.update", "task %s changed meanwhile", cur.ID)
	}
	return Task{}, switchboard.Wrap(switchboard.EUNAVAILABLE, "outbound.update", err)
}

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
				return Task{}, false, &switchboard.Error{Code: switchboard.ECONFLICT, Op: op, Type: "outbound-task-in-progress", Message: "task " + id + " is in progress with an agent and cannot be cancelled; complete it instead"}
			default:
				return Task{}, false, &switchboard.Error{Code: switchboard.ECONFLICT, Op: op, Type: "outbound-task-finished", Message: "task " + id + " has already ended (" + c.State + ")"}
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

// Complete ends an InProgress task with outcome Completed or Failed and
// frees its agent. A Failed attempt of a task with attempts left puts it
// back in the queue (Queued, slot kept) instead. Completing a task again
// with the outcome it ended with returns it unchanged. Returns EINVALID for
// a bad outcome or note, ENOTFOUND for an unknown task, ECONFLICT when the
// task is not in progress.
func (s *Service) Complete(ctx context.Context, tenant, service, id, outcome, note string) (Task, error) {
	const op = "outbound.Complete"
	if err := checkIDs(op, tenant, service); err != nil {
		return Task{}, err
	}
	if outcome == "" {
		outcome = OutcomeCompleted
	}
	if outcome != OutcomeCompleted && outcome != OutcomeFailed {
		return Task{}, switchboard.FieldError(op, "outcome", "outcome must be Completed or Failed, not %q", truncate(outcome, 40))
	}
	if len([]rune(note)) > MaxNoteLength {
		return Task{}, switchboard.FieldError(op, "note", "note must be at most %d characters", MaxNoteLength)
	}
	if err := checkTaskID(op, id); err != nil {
		return Task{}, err
	}
	pk := partition(tenant, service)
	requeued := false
	done, err := s.move(ctx, taskMove{op: op, pk: pk, id: id, tries: maxWriteRetries,
		decide: func(cur Task) (Task, bool, error) {
			if !canMove(cur.State, outcome) {
				if cur.State == outcome && cur.Note == note {
					return cur, false, errAlreadyDone
				}
				return Task{}, false, &switchboard.Error{Code: switchboard.ECONFLICT, Op: op, Type: "outbound-task-not-in-progress", Message: "task " + id + " is " + cur.State + ", not InProgress"}
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
	case errors.Is(err, errAlreadyDone):
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
	if t.Agent != "" && s.o.AgentFreed != nil {
		s.o.AgentFreed(t.TenantID, t.ServiceID, t.Agent)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

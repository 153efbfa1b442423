package outbound

import (
	"context"
	"log/slog"
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
	// Events records each task's stateChanged events in the batch of the
	// change (nil: no events).
	Events switchboard.EventOutbox
	Now    func() time.Time
	Log    *slog.Logger
	// NewID makes task ids (nil: UUIDv7, whose text sorts by creation
	// time).
	NewID func() string

	// RetryInterval is how long a due task waits before it asks for an
	// agent again when none was free (not with ServedByLine).
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
	// tasks to agents as soon as one is freed (AssignWaiting: the router
	// tells it of every agent a Release lets go, a task's included), and
	// its housekeeping serves every line once a tick (a freed agent nobody
	// was told of): the worker then does not retry every RetryInterval,
	// its next try is only at the end of the queue time (to expire the
	// task).
	ServedByLine bool
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

// update writes cur's changes (next) to the task and its open row, with
// the events of the change, in one batch guarded by cur's ETag; next must
// hold a slot. Returns EPRECONDITION when the task changed since cur was
// read.
func (s *Service) update(ctx context.Context, cur, next Task, events []store.Op) (Task, error) {
	err := s.table.Batch(ctx, append([]store.Op{
		{Kind: store.OpUpdate, Entity: taskEntity(next), IfMatch: cur.ETag},
		{Kind: store.OpUpsert, Entity: openEntity(next)},
	}, events...))
	if err == nil {
		return next, nil
	}
	if switchboard.IsCode(err, switchboard.EPRECONDITION) || switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return Task{}, switchboard.Errorf(switchboard.EPRECONDITION, "outbound.update", "task %s changed meanwhile", cur.ID)
	}
	return Task{}, switchboard.Wrap(switchboard.EUNAVAILABLE, "outbound.update", err)
}

// maxWriteRetries bounds the ETag retries of one operation. Under the
// worst contention each round admits one request, so a request retries at
// most about once per slot of the cap.
const maxWriteRetries = 200

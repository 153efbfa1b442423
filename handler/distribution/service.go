package distribution

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// Agents is what distribution needs of the routing engine (*routing.Engine
// is one): route decisions and the agents' holds.
type Agents interface {
	switchboard.Router
	// RoutedService returns a service with its members. Returns ENOTFOUND.
	RoutedService(ctx context.Context, tenant, id string) (switchboard.Service, error)
	// Services returns the tenant's services with their members.
	Services(ctx context.Context, tenant string) ([]switchboard.Service, error)
	// Tenants returns every tenant with a service.
	Tenants(ctx context.Context) ([]string, error)
	// Agent returns an agent's current hold and idle time.
	Agent(ctx context.Context, tenant, user string) (switchboard.AgentHold, error)
	// AcceptOffer turns a ringing offer into a hold until released.
	// Returns ECONFLICT (offer-not-pending) when it no longer rings.
	AcceptOffer(ctx context.Context, tenant, user, conv string) error
	// EndOffer frees the agent of an offer, or puts it into RONA.
	EndOffer(ctx context.Context, tenant, user, conv string, end switchboard.OfferEnd) (ronaUntil time.Time, changed bool, err error)
	// ReleaseAgent ends a connected conversation's hold, into after-call
	// work when afterCallWork > 0.
	ReleaseAgent(ctx context.Context, tenant, user, conv string, afterCallWork time.Duration) (acwUntil time.Time, changed bool, err error)
	// EndAgentHold ends RONA or after-call work (kind); until, when not
	// zero, must be its end; reason is its event's (switchboard.HoldEnd*).
	EndAgentHold(ctx context.Context, tenant, user, kind string, until time.Time, reason string) (bool, error)
	// EndRonaIfHeld ends the RONA of those of users in RONA, as storage
	// has it, and returns whose ended.
	EndRonaIfHeld(ctx context.Context, tenant string, users []string, reason string) ([]string, error)
	// OfferDirect takes one agent's offer hold for ring when the agent is
	// free, outside any service: the agent in the decision's Agents, or in
	// Excluded with the reason.
	OfferDirect(ctx context.Context, tenant, user, conv string, ring, rona time.Duration) (switchboard.RouteDecision, error)
}

// Outbound is what distribution needs of outbound tasks: callbacks, and
// the service's waiting tasks served in the same line. *outbound.Service
// is one (its line.go).
type Outbound interface {
	// ScheduleCallback creates (or, for the same referenceID, returns) an
	// outbound task due now. Returns ELIMIT when the service's cap is
	// reached.
	ScheduleCallback(ctx context.Context, tenant, service string, cb Callback) (taskID string, err error)
	// Waiting returns the service's outbound tasks waiting for an agent.
	Waiting(ctx context.Context, tenant, service string) ([]WaitingTask, error)
	// AssignWaiting gives a waiting task to an eligible agent now, those
	// of prefer first, only those of only when it is not empty; "" when
	// nobody could take it.
	AssignWaiting(ctx context.Context, tenant, service, taskID string, prefer, only []string) (string, error)
}

// Options configures a Service.
type Options struct {
	Tables    store.Tables
	Agents    Agents
	Presence  switchboard.PresenceStore
	Outbound  Outbound // nil: no callbacks (Callback falls back to Disconnect), no outbound tasks in the line
	Queue     switchboard.Queue
	QueueName string // DISTRIBUTION_QUEUE
	// Events publishes each change of a conversation as its event (SPEC
	// section 11: switchboard.conversation.<history event>), in the same
	// batch as the change; nil: no events. (The agent events are routing's,
	// in the batch of the agent's hold change.)
	Events switchboard.EventOutbox
	Now    func() time.Time
	Log    *slog.Logger
	// StaleAfter is the presence staleness limit (for the agent view).
	StaleAfter time.Duration
	// Grace is how long past a due time housekeeping waits for the
	// due time's message before it acts itself (default 5 s).
	Grace time.Duration
	// Retention is how long ended conversations are kept (default 7 days).
	Retention time.Duration
}

// Service runs the waiting lines.
type Service struct {
	o     Options
	convs *conversations

	mu     sync.Mutex
	passes map[string]*pass // tenant|service → the distribution pass running
	wg     sync.WaitGroup
}

// pass serialises a service's distribution passes in this process: an
// event arriving while a pass runs asks for one more pass.
type pass struct {
	again bool
}

// New returns a Service.
func New(ctx context.Context, o Options) (*Service, error) {
	switch {
	case o.Tables == nil || o.Agents == nil || o.Presence == nil:
		return nil, errors.New("distribution: tables, agents and presence are required")
	case o.Queue != nil && o.QueueName == "":
		return nil, errors.New("distribution: a queue needs a queue name")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Grace <= 0 {
		o.Grace = 5 * time.Second
	}
	if o.Retention <= 0 {
		o.Retention = Retention
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = 120 * time.Second
	}
	t, err := o.Tables.Table(ctx, TableName)
	if err != nil {
		return nil, err
	}
	return &Service{o: o, convs: &conversations{t: t, events: o.Events}, passes: map[string]*pass{}}, nil
}

func (s *Service) now() time.Time { return s.o.Now().UTC().Round(0).Truncate(time.Millisecond) }

// Wait waits for the distribution passes started in the background
// (tests, shutdown).
func (s *Service) Wait() { s.wg.Wait() }

// ringFor returns a service's ring time.
func ringFor(svc switchboard.Service) time.Duration {
	return time.Duration(svc.Distribution.RingSeconds) * time.Second
}

// ronaFor returns how long a lapsed (or, with onDecline, declined) offer
// of the service puts its agent into RONA: 0 without RONA, and for
// Broadcast (as the seed product: a lapsed broadcast offer is nobody's).
func ronaFor(svc switchboard.Service, declined bool) time.Duration {
	d := svc.Distribution
	if !d.Rona.Enabled || d.Order == switchboard.OrderBroadcast || declined && !d.Rona.OnDecline {
		return 0
	}
	return time.Duration(d.Rona.ResetSeconds) * time.Second
}

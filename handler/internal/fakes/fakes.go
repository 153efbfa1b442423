// Package fakes holds the hand-written fakes the capabilities' tests share:
// a queue, a router and a presence store, each keeping the contract of its
// switchboard interface and recording what it was asked, and storage that
// lets a test get in between a read and a delete (DeleteRace). (The clock
// is handler/internal/fakeclock.)
package fakes

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"switchboard/handler/switchboard"
)

// Sent is a message a Queue holds.
type Sent struct {
	Queue      string
	Seq        int64 // the queue's number of the message, scheduled or not
	Msg        switchboard.Message
	EnqueuedAt time.Time
	Cancelled  bool
	Delivered  int
}

// Queue is an in-memory switchboard.Queue: it numbers every message,
// returns the number of scheduled ones, honours Cancel, and delivers
// messages when a test asks (Due).
type Queue struct {
	mu         sync.Mutex
	now        func() time.Time
	seq        int64
	msgs       []*Sent
	cancels    []int64
	failSend   error
	beforeSend func()
	// Check, when set, vets every message sent; its error is Send's.
	Check func(queue string, m switchboard.Message) error
}

// NewQueue returns an empty queue that stamps messages with now.
func NewQueue(now func() time.Time) *Queue { return &Queue{now: now} }

// Send records m. Returns the error set by FailSend, if any.
func (q *Queue) Send(ctx context.Context, queue string, m switchboard.Message) (int64, error) {
	q.mu.Lock()
	if hook := q.beforeSend; hook != nil {
		q.beforeSend = nil
		q.mu.Unlock()
		hook()
		q.mu.Lock()
	}
	defer q.mu.Unlock()
	if q.failSend != nil {
		return 0, q.failSend
	}
	if q.Check != nil {
		if err := q.Check(queue, m); err != nil {
			return 0, err
		}
	}
	if m.ContentType == "" {
		m.ContentType = "application/json" // as the real queues send it
	}
	q.seq++
	q.msgs = append(q.msgs, &Sent{Queue: queue, Seq: q.seq, Msg: m, EnqueuedAt: q.now()})
	if m.ScheduledAt.IsZero() {
		return 0, nil
	}
	return q.seq, nil
}

// Cancel marks the scheduled message seq cancelled unless it was
// delivered; an unknown or cancelled one is no error, as on Service Bus.
// Returns EINVALID for a sequence number that is not positive.
func (q *Queue) Cancel(ctx context.Context, queue string, seq int64) error {
	if seq <= 0 {
		return switchboard.Errorf(switchboard.EINVALID, "fakes.Queue.Cancel", "sequence number %d is not positive", seq)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.cancels = append(q.cancels, seq)
	for _, m := range q.msgs {
		if m.Seq == seq && m.Delivered == 0 {
			m.Cancelled = true
		}
	}
	return nil
}

// FailSend makes every Send fail with err (nil: succeed again).
func (q *Queue) FailSend(err error) {
	q.mu.Lock()
	q.failSend = err
	q.mu.Unlock()
}

// BeforeNextSend runs hook once, before the next Send does anything.
func (q *Queue) BeforeNextSend(hook func()) {
	q.mu.Lock()
	q.beforeSend = hook
	q.mu.Unlock()
}

// Due returns the messages deliverable at now, oldest first, and marks
// them delivered.
func (q *Queue) Due(now time.Time) []*Sent {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []*Sent
	for _, m := range q.msgs {
		if m.Cancelled || m.Delivered > 0 || m.Msg.ScheduledAt.After(now) {
			continue
		}
		m.Delivered++
		out = append(out, m)
	}
	return out
}

// Live counts messages neither delivered nor cancelled.
func (q *Queue) Live() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, m := range q.msgs {
		if !m.Cancelled && m.Delivered == 0 {
			n++
		}
	}
	return n
}

// Messages returns every message sent, in order.
func (q *Queue) Messages() []*Sent {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.msgs)
}

// Last returns the last message sent, nil when none was.
func (q *Queue) Last() *Sent {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.msgs) == 0 {
		return nil
	}
	return q.msgs[len(q.msgs)-1]
}

// Cancels returns the sequence numbers Cancel was called with.
func (q *Queue) Cancels() []int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.cancels)
}

// Router is a switchboard.Router that hands out agents from a fixed set,
// one conversation each, as the routing engine does: the same conversation
// asked again keeps its agent, preferred users come first.
type Router struct {
	mu     sync.Mutex
	agents []string          // in ranking order
	holds  map[string]string // conversation → agent
	routes int
	err    error
	// Check, when set, vets every route request; its error is Route's.
	Check func(req switchboard.RouteRequest) error
}

// NewRouter returns a Router over agents, in ranking order.
func NewRouter(agents ...string) *Router {
	return &Router{agents: agents, holds: map[string]string{}}
}

// ErrNotOneAgentUntilReleased is what a Router with Check set to
// OneAgentUntilReleased answers to another request.
var ErrNotOneAgentUntilReleased = errors.New("fakes.Router: outbound tasks must reserve exactly one agent until released")

// OneAgentUntilReleased is a Check for outbound tasks' requests.
func OneAgentUntilReleased(req switchboard.RouteRequest) error {
	if !req.Reserve || !req.UntilReleased || req.MaxAgents != 1 {
		return ErrNotOneAgentUntilReleased
	}
	return nil
}

// Route holds the first free agent (preferred users first) for the
// conversation; none when every agent is held.
func (r *Router) Route(ctx context.Context, tenantID, serviceID string, req switchboard.RouteRequest) (switchboard.RouteDecision, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.routes++
	if r.err != nil {
		return switchboard.RouteDecision{}, r.err
	}
	if r.Check != nil {
		if err := r.Check(req); err != nil {
			return switchboard.RouteDecision{}, err
		}
	}
	out := switchboard.RouteDecision{ConversationID: req.ConversationID}
	if a, ok := r.holds[req.ConversationID]; ok {
		out.Agents = []switchboard.Assignment{{UserID: a}}
		return out, nil
	}
	busy := map[string]bool{}
	for _, a := range r.holds {
		busy[a] = true
	}
	for _, a := range append(slices.Clone(req.PreferredUsers), r.agents...) {
		if slices.Contains(r.agents, a) && !busy[a] {
			r.holds[req.ConversationID] = a
			out.Agents = []switchboard.Assignment{{UserID: a}}
			return out, nil
		}
	}
	return out, nil
}

// Release frees the conversation's agent.
func (r *Router) Release(ctx context.Context, tenantID, conversationID string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	delete(r.holds, conversationID)
	return nil
}

// SetAgents replaces the agents.
func (r *Router) SetAgents(agents ...string) {
	r.mu.Lock()
	r.agents = agents
	r.mu.Unlock()
}

// Fail makes Route and Release fail with err (nil: succeed again).
func (r *Router) Fail(err error) {
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
}

// Held returns the held agents by conversation.
func (r *Router) Held() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]string, len(r.holds))
	for c, a := range r.holds {
		out[c] = a
	}
	return out
}

// Routes counts Route calls.
func (r *Router) Routes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.routes
}

// PresenceStore is a switchboard.PresenceStore over a map for one tenant,
// confirming every reading at the clock's current time unless the reading
// sets its own ConfirmedAt.
type PresenceStore struct {
	mu       sync.Mutex
	tenant   string
	now      func() time.Time
	readings map[string]switchboard.Presence // by user
	calls    int
}

// NewPresenceStore returns an empty store for tenant.
func NewPresenceStore(tenant string, now func() time.Time) *PresenceStore {
	return &PresenceStore{tenant: tenant, now: now, readings: map[string]switchboard.Presence{}}
}

// Set stores an extended reading (through presence account 1).
func (f *PresenceStore) Set(user, availability, activity string) {
	f.SetReading(switchboard.Presence{UserID: user, Availability: availability, Activity: activity, Extended: true, Source: switchboard.SourceAccount1})
}

// SetReading stores p.
func (f *PresenceStore) SetReading(p switchboard.Presence) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.readings[p.UserID] = p
}

// Readings returns the stored readings of userIDs; none for another
// tenant.
func (f *PresenceStore) Readings(ctx context.Context, tenantID string, userIDs []string) (map[string]switchboard.Presence, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if tenantID != f.tenant {
		return map[string]switchboard.Presence{}, nil
	}
	out := make(map[string]switchboard.Presence, len(userIDs))
	now := f.now()
	for _, u := range userIDs {
		if p, ok := f.readings[u]; ok {
			if p.ConfirmedAt.IsZero() {
				p.ConfirmedAt, p.ChangedAt = now, now
			}
			out[u] = p
		}
	}
	return out, nil
}

// Calls counts Readings calls.
func (f *PresenceStore) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

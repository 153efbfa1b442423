package routing

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// TeamDirectory reads the members of Microsoft Teams teams (Graph
// /teams/{id}/members). The Graph adapter implements it.
type TeamDirectory interface {
	// TeamMembers returns the Entra object ids of the team's members.
	// Returns ENOTFOUND when there is no such team, EFORBIDDEN when the app
	// may not read it, EUNAVAILABLE when Graph failed in a way worth
	// retrying.
	TeamMembers(ctx context.Context, tenantID, teamID string) ([]string, error)
}

// Options configures an Engine.
type Options struct {
	Tables   store.Tables
	Presence switchboard.PresenceStore
	// Teams syncs team-backed services; nil when Graph is not configured
	// (a service with a teamId is then refused).
	Teams TeamDirectory
	// StaleAfter is the age past which a presence reading is never routed.
	StaleAfter time.Duration
	// TeamSyncInterval is how often Housekeep re-reads a team's members.
	TeamSyncInterval time.Duration
	// StateRefresh is how old the in-process copies of a tenant's agent
	// state and of service definitions may get before they are read again
	// in the background (default 1 s; negative: read them on every route).
	// StateMaxLag is the age past which a route waits for that read
	// (default 10 s).
	StateRefresh time.Duration
	StateMaxLag  time.Duration
	// Events publishes the agent events (RONA and after-call work started
	// and ended), each written in the transaction of its hold change; nil:
	// no events.
	Events switchboard.EventOutbox
	Now    func() time.Time
	Log    *slog.Logger
	// Freed, when set, is told of the agents a Release let go (their
	// holds ended), once the release is stored: distribution gives them
	// their services' next items. Called on the releasing goroutine; it
	// must not block.
	Freed func(tenant string, users []string)
	// Expiring, when set, is told of the agents a route reserved for a
	// time (the route API's holdSeconds), once the reservation is stored:
	// when such a hold simply runs out nothing else tells distribution, so
	// it schedules its own due time at expiresAt. Called on the routing
	// goroutine; it must not block.
	Expiring func(tenant, conversationID string, users []string, expiresAt time.Time)
}

// Engine is the routing capability: services, route decisions, holds. It
// implements switchboard.Router and switchboard.TrackedUsers.
type Engine struct {
	services         *serviceStore
	state            *stateStore
	presence         switchboard.PresenceStore
	teams            TeamDirectory
	staleAfter       time.Duration
	teamSyncInterval time.Duration
	now              func() time.Time
	log              *slog.Logger
	claims           *claims
	agents           *stateCache
	events           switchboard.EventOutbox
	freed            func(tenant string, users []string)
	expiring         func(tenant, conversationID string, users []string, expiresAt time.Time)
}

var (
	_ switchboard.Router       = (*Engine)(nil)
	_ switchboard.TrackedUsers = (*Engine)(nil)
)

// New returns an Engine over opts.Tables, creating its tables.
func New(ctx context.Context, opts Options) (*Engine, error) {
	switch {
	case opts.Tables == nil:
		return nil, errors.New("routing: no tables")
	case opts.Presence == nil:
		return nil, errors.New("routing: no presence store")
	case opts.StaleAfter <= 0:
		return nil, errors.New("routing: the presence staleness limit must be positive")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.TeamSyncInterval <= 0 {
		opts.TeamSyncInterval = 15 * time.Minute
	}
	services, err := newServiceStore(ctx, opts.Tables, opts.StateRefresh, opts.StateMaxLag, opts.Log)
	if err != nil {
		return nil, err
	}
	if opts.Now != nil {
		services.wall = opts.Now
	}
	state, err := opts.Tables.Table(ctx, StateTable)
	if err != nil {
		return nil, err
	}
	st := &stateStore{t: state}
	return &Engine{
		services:         services,
		state:            st,
		agents:           newStateCache(st, opts.StateRefresh, opts.StateMaxLag, opts.Log),
		presence:         opts.Presence,
		teams:            opts.Teams,
		staleAfter:       opts.StaleAfter,
		teamSyncInterval: opts.TeamSyncInterval,
		now:              opts.Now,
		log:              opts.Log,
		claims:           newClaims(),
		events:           opts.Events,
		freed:            opts.Freed,
		expiring:         opts.Expiring,
	}, nil
}

func checkID(op, field, id string) error {
	if !switchboard.ValidID(id) {
		return switchboard.FieldError(op, field, "%s %q is not a valid id: 1-128 letters, digits and . _ : @ -, starting with a letter or digit", field, id)
	}
	return nil
}

// routeInputs is what a route reads before it decides.
type routeInputs struct {
	svc      Service
	presence map[string]switchboard.Presence
	rrLast   string
	rrETag   string
	states   map[string]AgentState
	holds    map[string]hold
	idle     map[string]time.Time
	conv     *conversation
}

// read gathers a route's inputs with concurrent reads: the service (its
// member set from the cache) then its members' presence and its round-robin
// position; the tenant's holds and idle ledger; the conversation's index
// row.
func (e *Engine) read(ctx context.Context, tenant, serviceID, conversationID string, offer bool, now time.Time) (routeInputs, error) {
	var in routeInputs
	var wg sync.WaitGroup
	var svcErr, snapErr, convErr error
	wg.Add(3)
	go func() {
		defer wg.Done()
		in.svc, svcErr = e.services.routed(ctx, tenant, serviceID)
		if svcErr != nil {
			return
		}
		var rrErr error
		var rwg sync.WaitGroup
		if in.svc.Distribution.Order == OrderRoundRobin {
			rwg.Add(1)
			go func() {
				defer rwg.Done()
				in.rrLast, in.rrETag, rrErr = e.state.roundRobin(ctx, tenant, serviceID)
			}()
		}
		ids := make([]string, len(in.svc.Members))
		for i, m := range in.svc.Members {
			ids[i] = m.UserID
		}
		in.presence, svcErr = e.presence.Readings(ctx, tenant, ids)
		rwg.Wait()
		svcErr = errors.Join(svcErr, rrErr)
	}()
	go func() {
		defer wg.Done()
		in.states, in.holds, in.idle, snapErr = e.agents.read(ctx, tenant, now)
	}()
	go func() {
		defer wg.Done()
		if conversationID == "" || offer {
			return
		}
		c, err := e.state.getConversation(ctx, tenant, conversationID)
		switch {
		case err == nil:
			in.conv = &c
		case !switchboard.IsCode(err, switchboard.ENOTFOUND):
			convErr = err
		}
	}()
	wg.Wait()
	if svcErr != nil {
		return in, svcErr // ENOTFOUND for an unknown service comes first
	}
	return in, errors.Join(snapErr, convErr)
}

// Route implements switchboard.Router.
func (e *Engine) Route(ctx context.Context, tenant, serviceID string, req switchboard.RouteRequest) (switchboard.RouteDecision, error) {
	const op = "routing.Route"
	if err := checkID(op, "serviceId", serviceID); err != nil {
		return switchboard.RouteDecision{}, err
	}
	if req.Preview && req.Reserve {
		return switchboard.RouteDecision{}, switchboard.FieldError(op, "preview", "a preview reserves nothing: preview and reserve cannot both be true")
	}
	if req.ConversationID == "" && req.Reserve {
		return switchboard.RouteDecision{}, switchboard.FieldError(op, "conversationId", "conversationId is required to reserve an agent")
	}
	if req.ConversationID != "" {
		if err := checkID(op, "conversationId", req.ConversationID); err != nil {
			return switchboard.RouteDecision{}, err
		}
	}
	if req.MaxAgents < 0 {
		return switchboard.RouteDecision{}, switchboard.FieldError(op, "maxAgents", "maxAgents cannot be negative")
	}
	if req.Hold < 0 {
		return switchboard.RouteDecision{}, switchboard.FieldError(op, "holdSeconds", "the hold time cannot be negative")
	}
	if len(req.PreferredUsers) > MaxPreferredUsers {
		return switchboard.RouteDecision{}, switchboard.FieldError(
			op,
			"preferredUsers",
			"at most %d preferred users, not %d",
			MaxPreferredUsers,
			len(req.PreferredUsers),
		)
	}
	if err := CheckRequiredSkills(op, "requiredSkills", req.RequiredSkills); err != nil {
		return switchboard.RouteDecision{}, err
	}
	if req.Offer && (!req.Reserve || req.UntilReleased || req.Hold <= 0) {
		return switchboard.RouteDecision{}, switchboard.Errorf(switchboard.EINTERNAL, op, "an offer is a reservation with a ring time")
	}
	if req.Rona < 0 || req.Rona > 0 && !req.Offer {
		return switchboard.RouteDecision{}, switchboard.Errorf(switchboard.EINTERNAL, op, "only an offer has a RONA, and it cannot be negative")
	}
	snapshotAt := time.Now() // monotonic: orders this route's reads against claims
	now := wallClock(e.now)
	in, err := e.read(ctx, tenant, serviceID, req.ConversationID, req.Offer, now)
	if err != nil {
		return switchboard.RouteDecision{}, switchboard.Wrap(switchboard.EINTERNAL, op, err)
	}
	preferred := make([]string, 0, len(req.PreferredUsers))
	for _, u := range req.PreferredUsers {
		if id, ok := NormalizeUserID(u); ok {
			u = id
		}
		preferred = append(preferred, u)
	}
	d := Decide(DecideInput{
		Members:        in.svc.Members,
		Preferred:      preferred,
		Presence:       in.presence,
		States:         in.states,
		Idle:           in.idle,
		ConversationID: req.ConversationID,
		Distribution:   in.svc.Distribution,
		RequiredSkills: req.RequiredSkills,
		Skip:           req.Skip,
		Only:           req.Only,
		RoundRobinLast: in.rrLast,
		Now:            now,
		StaleAfter:     e.staleAfter,
	})
	out := switchboard.RouteDecision{ConversationID: req.ConversationID, Agents: []switchboard.Assignment{}}

	if c := in.conv; c != nil && c.live(now) {
		if c.ServiceID != serviceID {
			return out, &switchboard.Error{
				Code:    switchboard.ECONFLICT,
				Op:      op,
				Field:   "conversationId",
				Message: "conversation " + c.ID + " is already routed in service " + c.ServiceID,
			}
		}
		return existing(out, d, c.Agents), nil
	}

	holdFor := time.Duration(in.svc.Distribution.HoldSeconds) * time.Second
	if req.Hold > 0 {
		holdFor = req.Hold
	}
	want := in.svc.Distribution.Want()
	if req.MaxAgents > 0 && req.MaxAgents < want {
		want = req.MaxAgents
	}
	var taken []hold
	for _, r := range d.Eligible {
		if len(out.Agents) == want {
			out.Candidates = append(out.Candidates, switchboard.Candidate{UserID: r.UserID, Presence: r.Presence})
			continue
		}
		if !req.Reserve {
			out.Agents = append(out.Agents, switchboard.Assignment{UserID: r.UserID})
			continue
		}
		h := hold{UserID: r.UserID, ConversationID: req.ConversationID, ServiceID: serviceID, HeldAt: now, UntilReleased: req.UntilReleased}
		if req.Offer {
			h.Kind, h.Rona = switchboard.HoldOffer, req.Rona
		}
		if !req.UntilReleased {
			h.ExpiresAt = now.Add(holdFor)
		}
		got, ok, err := e.acquire(ctx, tenant, h, in.holds, snapshotAt)
		if err != nil {
			e.undo(ctx, tenant, taken)
			return switchboard.RouteDecision{}, switchboard.Wrap(switchboard.EINTERNAL, op, err)
		}
		if !ok {
			x := switchboard.Exclusion{
				UserID:  r.UserID,
				Reason:  switchboard.ReasonInConversation,
				Message: "just reserved for another Switchboard conversation",
			}
			p := r.Presence
			x.Presence = &p
			d.Excluded = append(d.Excluded, x)
			continue
		}
		taken = append(taken, got)
		out.Agents = append(out.Agents, switchboard.Assignment{UserID: got.UserID, HoldExpiresAt: got.ExpiresAt})
	}
	out.Excluded = d.Excluded
	for _, r := range d.Skipped {
		out.Candidates = append(out.Candidates, switchboard.Candidate{UserID: r.UserID, Presence: r.Presence})
	}

	if req.Reserve && len(taken) > 0 && !req.Offer {
		c := conversation{ID: req.ConversationID, ServiceID: serviceID, Agents: out.Agents, UntilReleased: req.UntilReleased, HeldAt: now}
		if !req.UntilReleased {
			c.ExpiresAt = now.Add(holdFor)
		}
		ifMatch := ""
		if in.conv != nil {
			ifMatch = in.conv.ETag // an expired index row of the same conversation: replace it
		}
		if _, err := e.state.putConversation(ctx, tenant, c, ifMatch); err != nil {
			if !switchboard.IsCode(err, switchboard.ECONFLICT) && !switchboard.IsCode(err, switchboard.EPRECONDITION) {
				e.undo(ctx, tenant, taken)
				return switchboard.RouteDecision{}, switchboard.Wrap(switchboard.EINTERNAL, op, err)
			}
			// The same conversation was routed concurrently: its hold wins.
			// Holds taken here on the winner's agents (a hold of the same
			// conversation counts as free to it, so this request may have
			// re-taken one) are the winner's: only the others go back.
			won, gerr := e.state.getConversation(ctx, tenant, req.ConversationID)
			if gerr != nil || !won.live(now) || won.ServiceID != serviceID {
				e.undo(ctx, tenant, taken)
				return switchboard.RouteDecision{}, switchboard.Errorf(switchboard.ECONFLICT, op, "conversation %s was routed concurrently by "+
					"another request; retry", req.ConversationID)
			}
			winners := map[string]bool{}
			for _, a := range won.Agents {
				winners[a.UserID] = true
			}
			e.undo(ctx, tenant, slices.DeleteFunc(taken, func(h hold) bool { return winners[h.UserID] }))
			return existing(switchboard.RouteDecision{ConversationID: req.ConversationID}, d, won.Agents), nil
		}
		if e.expiring != nil && !req.UntilReleased {
			users := make([]string, len(taken))
			for i, h := range taken {
				users[i] = h.UserID
			}
			e.expiring(tenant, req.ConversationID, users, c.ExpiresAt)
		}
	}
	if in.svc.Distribution.Order == OrderRoundRobin && len(out.Agents) > 0 && !req.Preview {
		if err := e.state.advanceRoundRobin(ctx, tenant, serviceID, out.Agents[0].UserID, in.rrETag); err != nil {
			e.log.Warn("round-robin position not advanced", "tenant", tenant, "service", serviceID, "err", err)
		}
	}
	if out.Candidates == nil {
		out.Candidates = []switchboard.Candidate{}
	}
	if out.Excluded == nil {
		out.Excluded = []switchboard.Exclusion{}
	}
	return out, nil
}

// acquire takes a hold unless this process is reserving the agent already
// (a claim) or storage says someone else holds it.
func (e *Engine) acquire(ctx context.Context, tenant string, h hold, holds map[string]hold, snapshotAt time.Time) (hold, bool, error) {
	key := tenant + "|" + h.UserID
	if !e.claims.take(key, snapshotAt) {
		return hold{}, false, nil
	}
	var prev *hold
	if p, ok := holds[h.UserID]; ok {
		prev = &p
	}
	var got hold
	var ok bool
	var err error
	if evs := expiredEnd(tenant, prev, h.HeldAt); len(evs) > 0 && e.events != nil {
		got, ok, err = e.acquireEnded(ctx, tenant, h, *prev, evs)
	} else {
		got, ok, err = e.state.acquire(ctx, tenant, h, prev)
	}
	switch {
	case ok && got.ETag == "":
		// Taken in a transaction whose row was not read back: the copy
		// must not hold a row without its ETag.
		e.agents.reread(tenant, h.UserID)
	case ok:
		e.agents.held(tenant, got)
	case err == nil:
		e.agents.reread(tenant, h.UserID)
	}
	e.claims.done(key, ok)
	return got, ok, err
}

// expiredEnd is the ...Ended event of prev, an expired RONA or after-call
// work that a new hold replaces before its due message or the sweep ended
// it (after a ring-out's RONA's ronaStarted, when nothing wrote that RONA
// either); nil for any other row.
func expiredEnd(tenant string, prev *hold, now time.Time) []*switchboard.Event {
	if prev == nil {
		return nil
	}
	cur, ringOut := prev.current(now)
	if _, ok := agentEventTypes[cur.Kind]; !ok || cur.state().Holding(now) {
		return nil
	}
	return endEvents(tenant, cur, ringOut, cur.ExpiresAt, switchboard.HoldEndTime, now)
}

// acquireEnded is stateStore.acquire over an expired RONA or after-call
// work, with its events in the same transaction: the row was not ended by
// its message or the sweep yet, and once replaced it never will.
func (e *Engine) acquireEnded(ctx context.Context, tenant string, h, prev hold, evs []*switchboard.Event) (hold, bool, error) {
	got, err := e.changeHold(ctx, tenant, store.Op{Kind: store.OpUpdate, Entity: encodeHold(tenant, h), IfMatch: prev.ETag}, evs...)
	switch switchboard.ErrorCode(err) {
	case "":
		if got != nil && got.Kind == h.Kind && got.ConversationID == h.ConversationID {
			h.ETag = got.ETag
		}
		return h, true, nil
	case switchboard.ENOTFOUND:
		// Swept meanwhile, with its event: take the agent afresh.
		return e.state.acquire(ctx, tenant, h, nil)
	case switchboard.ECONFLICT, switchboard.EPRECONDITION:
		return hold{}, false, nil
	}
	return hold{}, false, err
}

// undo gives back holds taken by a route that failed after taking them.
func (e *Engine) undo(ctx context.Context, tenant string, taken []hold) {
	for _, h := range taken {
		if h.ETag == "" {
			// Taken in a transaction whose row could not be read back: a
			// delete without its ETag could remove someone else's hold.
			e.log.Warn("hold not given back; it expires by itself", "tenant", tenant, "user", h.UserID, "conversation", h.ConversationID)
			continue
		}
		if _, err := e.deleteHold(context.WithoutCancel(ctx), tenant, h); err != nil {
			e.log.Warn("hold not given back; it expires by itself", "tenant", tenant, "user", h.UserID, "conversation", h.ConversationID, "err", err)
		}
	}
}

// existing is the decision for a conversation that already holds agents:
// those agents, and the rest of the decision without them.
func existing(out switchboard.RouteDecision, d Decision, agents []switchboard.Assignment) switchboard.RouteDecision {
	held := make(map[string]bool, len(agents))
	for _, a := range agents {
		held[a.UserID] = true
	}
	out.Agents = slices.Clone(agents)
	out.Candidates = []switchboard.Candidate{}
	for _, r := range d.Eligible {
		if !held[r.UserID] {
			out.Candidates = append(out.Candidates, switchboard.Candidate{UserID: r.UserID, Presence: r.Presence})
		}
	}
	out.Excluded = []switchboard.Exclusion{}
	for _, x := range d.Excluded {
		if !held[x.UserID] {
			out.Excluded = append(out.Excluded, x)
		}
	}
	return out
}

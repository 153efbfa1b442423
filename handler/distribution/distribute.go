package distribution

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"switchboard/handler/switchboard"
)

// maxPassItems bounds how many waiting items one pass looks at, so that a
// long line of conversations nobody can take does not make a pass long.
const maxPassItems = 200

// kick distributes services, and every service where one of agents is an
// active member, in the background: the caller's reply does not wait.
func (s *Service) kick(tenant string, services, agents []string) {
	s.background(func(ctx context.Context) {
		if err := s.Distribute(ctx, tenant, services, agents); err != nil {
			s.o.Log.Warn("distribution pass failed; the next event or housekeeping distributes again", "tenant", tenant, "err", err)
		}
	})
}

// background runs fn on its own goroutine with a bounded context, tracked
// by Wait.
func (s *Service) background(fn func(ctx context.Context)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		fn(ctx)
	}()
}

// Distribute runs a distribution pass over the given services and over
// every service where one of agents is an active member (an agent was
// freed: it gets its services' next items).
func (s *Service) Distribute(ctx context.Context, tenant string, services, agents []string) error {
	set := slices.Clone(services)
	if len(agents) > 0 {
		all, err := s.o.Agents.Services(ctx, tenant)
		if err != nil {
			return err
		}
		for _, svc := range all {
			if memberOf(svc, agents) && !slices.Contains(set, svc.ID) {
				set = append(set, svc.ID)
			}
		}
	}
	// The agents' direct conversations are served beside the passes (their
	// one hold row decides who gets an agent both want).
	direct := make(chan error, 1)
	go func() { direct <- s.distributeDirect(ctx, tenant, agents) }()
	var first error
	for _, id := range set {
		if err := s.runPass(ctx, tenant, id); err != nil && first == nil {
			first = err
		}
	}
	if err := <-direct; err != nil && first == nil {
		first = err
	}
	return first
}

func memberOf(svc switchboard.Service, users []string) bool {
	for _, u := range users {
		i, ok := slices.BinarySearchFunc(svc.Members, u, func(m switchboard.Member, u string) int {
			switch {
			case m.UserID < u:
				return -1
			case m.UserID > u:
				return 1
			}
			return 0
		})
		if ok && svc.Members[i].Active {
			return true
		}
	}
	return false
}

// runPass runs one service's pass, or, when one is already running in this
// process, asks it to run again once it is done (what changed meanwhile,
// an agent freed or an item added, is served in that order then).
func (s *Service) runPass(ctx context.Context, tenant, service string) error {
	key := tenant + "|" + service
	s.mu.Lock()
	if p, ok := s.passes[key]; ok {
		p.again = true
		s.mu.Unlock()
		return nil
	}
	p := &pass{}
	s.passes[key] = p
	s.mu.Unlock()
	var first error
	failures := 0
	for {
		if err := s.pass(ctx, tenant, service); err != nil {
			if first == nil {
				first = err
			}
			// Storage failed part way: try again shortly rather than wait
			// for the next event (the line may hold conversations nobody
			// else will distribute soon).
			if failures++; failures <= 3 && ctx.Err() == nil {
				time.Sleep(time.Duration(failures) * 200 * time.Millisecond)
				continue
			}
		}
		s.mu.Lock()
		if !p.again || ctx.Err() != nil {
			delete(s.passes, key)
			s.mu.Unlock()
			return first
		}
		p.again = false
		s.mu.Unlock()
	}
}

// item is one waiting item of a service's line: an inbound conversation
// or an outbound task.
type item struct {
	inbound  *entry
	task     *WaitingTask
	priority int
	since    time.Time
	id       string
}

// pass serves a service's line in order (priority, then waiting time):
// each item nobody is offered yet goes to the best eligible agent, and a
// ringing Broadcast with room takes agents freed while it rings. An item
// that nobody eligible can take is passed over (no head-of-line blocking);
// the pass ends when nobody is free at all. The line is read again once
// the read is lineFresh old and something was given out, so that items
// that arrived or came back meanwhile take their place in the order, and
// when an item lost the agents it was given (another instance took them
// first): what that instance changed is then read.
func (s *Service) pass(ctx context.Context, tenant, service string) error {
	svc, err := s.o.Agents.RoutedService(ctx, tenant, service)
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return nil
	}
	if err != nil {
		return err
	}
	for round := 0; round < maxPassItems; round++ {
		more, err := s.round(ctx, tenant, svc)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// lineFresh is how old a pass's reading of the line may get, from when
// the read was complete, before the pass reads it again (after giving
// something out).
const lineFresh = 250 * time.Millisecond

// round reads the line once and serves it; more says the read grew old
// while agents were still being given items, or an item lost its agents
// (read again and go on: no further item is given out from this reading).
//
// The round matches items to agents itself, in queue order, before any
// offer is made: each item is given the best-ranked free agent it is
// eligible for that no item ahead of it took. The offers then run
// concurrently, each to its own agents, so that a later item never takes
// the agent an earlier one needed (as racing routes would: an item that
// declines or skills narrow to one agent loses it to any item behind it).
// An item whose agents are gone when its offer runs may take another agent
// the round saw free, but never one of the items ahead, nor one freed
// since the round's reading: an offer that ran late (storage slow) would
// otherwise give an agent freed seconds later to an item behind everything
// that waited meanwhile.
func (s *Service) round(ctx context.Context, tenant string, svc switchboard.Service) (more bool, err error) {
	service := svc.ID
	// The free agents, best ranked first, read before the line: every item
	// that waited before one of them was freed is in the line read (the
	// round gives out at most that many, up to offersInFlight at once).
	all, err := s.dryRoute(ctx, tenant, svc, nil, nil, nil)
	if err != nil {
		return false, err
	}
	free := ranked(all, nil)
	if len(free) == 0 {
		return false, nil
	}
	line, err := s.convs.line(ctx, tenant, service)
	if err != nil {
		return false, err
	}
	now := s.now()
	var items []item
	for i := range line {
		if !line[i].Ringing || broadcastRoom(svc, line[i].RingingN, line[i].RingExpires, now) > 0 {
			e := &line[i]
			items = append(items, item{inbound: e, priority: e.Priority, since: e.QueuedAt, id: e.ID})
		}
	}
	if s.o.Outbound != nil {
		tasks, err := s.o.Outbound.Waiting(ctx, tenant, service)
		if err != nil {
			s.o.Log.Warn("distribution: outbound tasks not read; serving conversations only", "tenant", tenant, "service", service, "err", err)
		}
		for i := range tasks {
			t := &tasks[i]
			items = append(items, item{task: t, priority: t.Priority, since: t.QueuedAt, id: "task:" + t.ID})
		}
	}
	slices.SortFunc(items, func(a, b item) int {
		switch {
		case before(a.priority, a.since, a.id, b.priority, b.since, b.id):
			return -1
		case before(b.priority, b.since, b.id, a.priority, a.since, a.id):
			return 1
		}
		return 0
	})
	if len(items) == 0 {
		return false, nil
	}
	if len(items) > maxPassItems {
		items = items[:maxPassItems]
	}
	readAt := time.Now()
	taken := map[string]bool{}
	var wg sync.WaitGroup
	var missed atomic.Bool // an item's offer found none of the agents it may take
	done := func(more bool, err error) (bool, error) {
		wg.Wait()
		return err == nil && (more || missed.Load()), err
	}
	launched := 0
	for _, it := range items {
		if len(taken) >= len(free) {
			return done(false, nil) // nobody is free for anything
		}
		if ctx.Err() != nil {
			return done(false, ctx.Err())
		}
		want := 1
		var skills []switchboard.Skill
		var preferred, skip []string
		if it.inbound != nil {
			skills, preferred, skip = it.inbound.RequiredSkills, it.inbound.PreferredUsers, it.inbound.Declined
			want = svc.Distribution.Want()
			if it.inbound.Ringing {
				want = broadcastRoom(svc, it.inbound.RingingN, it.inbound.RingExpires, now)
			}
		} else {
			preferred = it.task.PreferredUsers
		}
		eligible := free
		if len(skills) > 0 || len(skip) > 0 || len(preferred) > 0 {
			d, err := s.dryRoute(ctx, tenant, svc, skills, preferred, skip)
			if err != nil {
				return done(false, err)
			}
			eligible = ranked(d, skip)
		}
		var agents []string
		for _, u := range eligible {
			if !taken[u] && slices.Contains(free, u) {
				agents = append(agents, u)
				if len(agents) == want {
					break
				}
			}
		}
		if len(agents) == 0 {
			continue // nobody free can take this one: the next may be
		}
		if launched == offersInFlight || launched > 0 && (time.Since(readAt) > lineFresh || missed.Load()) {
			// Read again once the offers made are done: a reading gives
			// out offersInFlight items at most, and none once it is old,
			// or once an item ahead lost its agents (the reading missed
			// what another instance did, and what it lost may be freed
			// for it).
			return done(true, nil)
		}
		// The agents of the items ahead are theirs: should this item's
		// agents be gone meanwhile, it may take another agent the round
		// saw free, not one of theirs.
		only := make([]string, 0, len(free))
		for _, u := range free {
			if !taken[u] {
				only = append(only, u)
			}
		}
		for _, u := range agents {
			taken[u] = true
		}
		launched++
		wg.Add(1)
		go func() {
			defer wg.Done()
			if it.task != nil {
				if _, err := s.o.Outbound.AssignWaiting(ctx, tenant, service, it.task.ID, agents, only); err != nil {
					s.o.Log.Warn("distribution: outbound task not assigned", "tenant", tenant, "service", service, "task", it.task.ID, "err", err)
				}
			} else if offered, err := s.offerWaiting(ctx, tenant, it.inbound.ID, svc, agents, only); err != nil {
				s.o.Log.Warn("distribution: conversation not offered", "tenant", tenant, "service", service, "conversation", it.inbound.ID, "err", err)
			} else if !offered {
				missed.Store(true)
			}
		}()
	}
	return done(false, nil)
}

// ranked returns a decision's eligible agents, best first, without those
// it skips.
func ranked(d switchboard.RouteDecision, skip []string) []string {
	out := make([]string, 0, len(d.Agents)+len(d.Candidates))
	for _, a := range d.Agents {
		out = append(out, a.UserID)
	}
	for _, c := range d.Candidates {
		if !slices.Contains(skip, c.UserID) {
			out = append(out, c.UserID)
		}
	}
	return out
}

// offersInFlight bounds the offers one round makes (all at once).
const offersInFlight = 8

// offerWaiting offers a waiting conversation nobody is offered yet, or
// adds agents to a ringing Broadcast with room; agents are those the
// round matched it with (tried first), only those it may take (none of
// the items ahead). It reports whether the conversation was offered: false
// also when it no longer waits, or a Broadcast has no room left.
func (s *Service) offerWaiting(ctx context.Context, tenant, id string, svc switchboard.Service, agents, only []string) (bool, error) {
	offered := false
	_, err := s.mutate(ctx, tenant, id, func(c *Conversation, fx *effects) (bool, error) {
		offered = false
		if !c.Waiting() || c.ServiceID != svc.ID {
			return false, nil
		}
		if n := len(c.Ringing()); n > 0 && broadcastRoom(svc, n, earliestExpiry(*c), s.now()) == 0 {
			return false, nil
		}
		ok, _, err := s.offerTo(ctx, c, svc, agents, only, fx)
		offered = ok
		return ok, err
	})
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return false, nil
	}
	return offered && err == nil, err
}

// minAddedRing is the least ring time left for which an agent freed while
// a broadcast rings is added to it: a shorter ring is no offer.
const minAddedRing = 3 * time.Second

// broadcastRoom returns how many agents a ringing offer round of n offers
// that ring until expires can still take: for a Broadcast service, up to
// broadcastSize at once, while at least minAddedRing of its ring is left.
// n == 0 (a line entry written before the count was kept) is full.
func broadcastRoom(svc switchboard.Service, n int, expires, now time.Time) int {
	if svc.Distribution.Order != switchboard.OrderBroadcast || n <= 0 || expires.Sub(now) < minAddedRing {
		return 0
	}
	return max(svc.Distribution.Want()-n, 0)
}

// earliestExpiry returns when the first of a conversation's ringing offers
// lapses (zero when none rings).
func earliestExpiry(c Conversation) time.Time {
	var t time.Time
	for _, o := range c.Ringing() {
		if t.IsZero() || o.ExpiresAt.Before(t) {
			t = o.ExpiresAt
		}
	}
	return t
}

// Kick distributes services, and the services of agents, in the
// background (a routing release freed agents: an outbound task's, a route
// API conversation's).
func (s *Service) Kick(tenant string, services, agents []string) { s.kick(tenant, services, agents) }

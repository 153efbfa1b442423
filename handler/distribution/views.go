package distribution

import (
	"context"
	"slices"
	"sync"
	"time"

	"switchboard/handler/switchboard"
)

// Get returns a conversation with its position. Returns ENOTFOUND.
func (s *Service) Get(ctx context.Context, tenant, id string) (Positioned, error) {
	if !switchboard.ValidID(id) {
		return Positioned{}, switchboard.FieldError("distribution.Get", "c", "conversation id %q is not a valid id", id)
	}
	c, err := s.convs.get(ctx, tenant, id)
	if err != nil {
		return Positioned{}, err
	}
	p := Positioned{Conversation: c}
	if c.Waiting() {
		line, err := s.convs.line(ctx, tenant, lineOf(c))
		if err != nil {
			return Positioned{}, err
		}
		for i, e := range line {
			if e.ID == c.ID {
				p.Position = i + 1
			}
		}
		p.WaitSeconds = s.waited(c)
	}
	return p, nil
}

func (s *Service) waited(c Conversation) int {
	end := s.now()
	if !c.Waiting() && !c.ConnectedAt.IsZero() {
		end = c.ConnectedAt
	}
	return max(int(end.Sub(c.QueuedAt)/time.Second), 0)
}

// Queue returns the service's waiting and offered conversations in queue
// order, with its figures. Returns ENOTFOUND for an unknown service.
func (s *Service) Queue(ctx context.Context, tenant, service string) (QueueView, error) {
	svc, err := s.o.Agents.RoutedService(ctx, tenant, service)
	if err != nil {
		return QueueView{}, err
	}
	line, err := s.convs.line(ctx, tenant, service)
	if err != nil {
		return QueueView{}, err
	}
	convs := make([]Positioned, len(line))
	errs := make([]error, len(line))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, e := range line {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			c, err := s.convs.get(ctx, tenant, e.ID)
			convs[i], errs[i] = Positioned{Conversation: c, Position: i + 1, WaitSeconds: s.waited(c)}, err
		}()
	}
	wg.Wait()
	v := QueueView{Conversations: make([]Positioned, 0, len(line))}
	for i, c := range convs {
		if errs[i] != nil {
			if switchboard.IsCode(errs[i], switchboard.ENOTFOUND) {
				continue // ended meanwhile
			}
			return QueueView{}, errs[i]
		}
		if !c.Waiting() {
			continue
		}
		c.Position = len(v.Conversations) + 1
		v.Conversations = append(v.Conversations, c)
		if c.State == StateOffered {
			v.Offered++
		} else {
			v.Waiting++
		}
		v.LongestWaitSeconds = max(v.LongestWaitSeconds, c.WaitSeconds)
	}
	d, err := s.o.Agents.Route(ctx, tenant, service, switchboard.RouteRequest{MaxAgents: 1})
	if err != nil {
		return QueueView{}, err
	}
	v.AgentsEligible = len(d.Agents) + len(d.Candidates)
	for _, x := range d.Excluded {
		switch x.Reason {
		case switchboard.ReasonRona:
			v.AgentsInRona++
		case switchboard.ReasonAfterCallWork:
			v.AgentsInAfterCallWork++
		}
	}
	_ = svc
	return v, nil
}

// Agent returns an agent's state.
func (s *Service) Agent(ctx context.Context, tenant, user string) (AgentView, error) {
	const op = "distribution.Agent"
	user, err := checkUser(op, user)
	if err != nil {
		return AgentView{}, err
	}
	h, err := s.o.Agents.Agent(ctx, tenant, user)
	if err != nil {
		return AgentView{}, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	}
	v := AgentView{UserID: user, IdleSince: h.IdleSince, Services: []AgentService{}}
	readings, err := s.o.Presence.Readings(ctx, tenant, []string{user})
	if err != nil {
		return AgentView{}, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	}
	if p, ok := readings[user]; ok {
		v.Presence = &p
	}
	st := h
	switch {
	case st.ConversationID == "":
	case st.Kind == switchboard.HoldConversation:
		v.Conversation = &AgentConversation{ConversationID: st.ConversationID, ServiceID: st.ServiceID, Since: st.HeldAt}
	case st.Kind == switchboard.HoldOffer:
		v.Offer = &AgentOffer{ConversationID: st.ConversationID, ServiceID: st.ServiceID, OfferedAt: st.HeldAt, ExpiresAt: st.ExpiresAt}
	case st.Kind == switchboard.HoldRona:
		// A fresh Offline reading ends RONA (the presence hook ends the
		// hold; until then the reading already says so).
		if p := v.Presence; p == nil || p.Stale(s.now(), s.o.StaleAfter) || p.Availability != switchboard.Offline {
			v.Rona = &AgentRona{Since: st.HeldAt, Until: st.ExpiresAt, ServiceID: st.ServiceID, ConversationID: st.ConversationID}
		}
	case st.Kind == switchboard.HoldAfterCallWork:
		until := st.ExpiresAt
		v.AfterCallWork = &until
	}
	svcs, err := s.o.Agents.Services(ctx, tenant)
	if err != nil {
		return AgentView{}, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	}
	for _, svc := range svcs {
		for _, m := range svc.Members {
			if m.UserID == user {
				v.Services = append(v.Services, AgentService{ServiceID: svc.ID, Active: m.Active})
			}
		}
	}
	return v, nil
}

// ResetRona ends the agent's RONA now (nothing when it is not in RONA) and
// offers it its services' next items.
func (s *Service) ResetRona(ctx context.Context, tenant, user string) error {
	return s.endHold(ctx, tenant, user, switchboard.HoldRona)
}

// EndAfterCallWork ends the agent's after-call work now (its idle time
// starts now) and offers it its services' next items.
func (s *Service) EndAfterCallWork(ctx context.Context, tenant, user string) error {
	return s.endHold(ctx, tenant, user, switchboard.HoldAfterCallWork)
}

func (s *Service) endHold(ctx context.Context, tenant, user, kind string) error {
	user, err := checkUser("distribution.EndAgentHold", user)
	if err != nil {
		return err
	}
	ended, err := s.o.Agents.EndAgentHold(ctx, tenant, user, kind, time.Time{}, switchboard.HoldEndEarly)
	if err != nil {
		return err
	}
	if ended {
		s.kick(tenant, nil, []string{user})
	}
	return nil
}

// Services lists the tenant's services with their queue figures.
func (s *Service) Services(ctx context.Context, tenant string) ([]ServiceSummary, error) {
	svcs, err := s.o.Agents.Services(ctx, tenant)
	if err != nil {
		return nil, switchboard.Wrap(switchboard.EUNAVAILABLE, "distribution.Services", err)
	}
	lines, err := s.convs.allLines(ctx, tenant)
	if err != nil {
		return nil, switchboard.Wrap(switchboard.EUNAVAILABLE, "distribution.Services", err)
	}
	byService := map[string][2]int{}
	for _, e := range lines {
		n := byService[e.ServiceID]
		if e.Ringing {
			n[1]++
		} else {
			n[0]++
		}
		byService[e.ServiceID] = n
	}
	out := make([]ServiceSummary, 0, len(svcs))
	for _, svc := range svcs {
		n := byService[svc.ID]
		out = append(
			out,
			ServiceSummary{ID: svc.ID, Name: svc.Name, MemberCount: len(svc.Members), ActiveMemberCount: svc.ActiveCount(), Waiting: n[0], Offered: n[1]},
		)
	}
	return out, nil
}

// PresenceChanged is told of readings the presence poll wrote: an agent
// whose presence reads Offline leaves RONA and its waiting direct
// conversations end Rejected at once (it is not signed in); the services
// and direct conversations of every other agent whose presence changed
// are distributed (a newly Available agent gets the next item at once, one
// that reads PresenceUnknown has its direct conversations Rejected).
func (s *Service) PresenceChanged(ctx context.Context, tenant string, readings []switchboard.Presence) {
	if len(readings) == 0 {
		return
	}
	var agents, offline []string
	for _, p := range readings {
		if p.Availability == switchboard.Offline {
			offline = append(offline, p.UserID)
			continue
		}
		agents = append(agents, p.UserID)
	}
	if len(offline) > 0 {
		// Decided from storage, not this instance's copy of the holds: a
		// RONA another instance set a moment ago ends too.
		ended, err := s.o.Agents.EndRonaIfHeld(ctx, tenant, offline, switchboard.HoldEndOffline)
		if err != nil {
			s.o.Log.Warn("distribution: RONA not ended for agents gone Offline; it ends at its time", "tenant", tenant, "err", err)
		}
		// After RONA ended (a RONA would be the reason given, not Offline),
		// the direct conversations waiting for them are Rejected now. An
		// agent whose RONA ended gets its services' pass too: the next
		// poll's reading (back Available) may have been told meanwhile,
		// while the agent was still in RONA, and would be lost. The lines
		// gain nobody else Offline, so no pass runs for the others.
		if len(ended) > 0 {
			s.kick(tenant, nil, ended)
		}
		if rest := slices.DeleteFunc(slices.Clone(offline), func(u string) bool { return slices.Contains(ended, u) }); len(rest) > 0 {
			s.kickDirect(tenant, rest)
		}
	}
	if len(agents) > 0 {
		s.kick(tenant, nil, agents)
	}
}

// RequiredSkills returns a waiting conversation's required skills (the
// route API answers for a queued conversation's id with them); false when
// no such conversation waits.
func (s *Service) RequiredSkills(ctx context.Context, tenant, id string) ([]switchboard.Skill, bool, error) {
	if !switchboard.ValidID(id) {
		return nil, false, nil
	}
	c, err := s.convs.get(ctx, tenant, id)
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return c.RequiredSkills, c.Waiting(), nil
}

// ServiceChanged distributes a service whose definition or members changed
// (an agent opted in, a member was added), in the background.
func (s *Service) ServiceChanged(tenant, service string) { s.kick(tenant, []string{service}, nil) }

package distribution

import (
	"context"
	"fmt"
	"time"

	"switchboard/handler/switchboard"
)

// effects are what a change of a conversation does besides its own write:
// holds taken for offers (given back when the write fails), offers to
// rescind and messages to send once it is written, services and agents to
// distribute afterwards.
type effects struct {
	offered  []string
	rescind  []string
	holdEnds []holdEnd
	sends    []switchboard.Message
	services map[string]bool
	agents   []string
}

// holdEnd is an agent's hold to change once the conversation is written:
// an offer that lapsed or was declined (into RONA for rona > 0), or a
// connected conversation released (into after-call work for acw > 0).
type holdEnd struct {
	user    string
	rona    time.Duration
	idle    bool
	release bool
	acw     time.Duration
}

func newEffects() *effects { return &effects{services: map[string]bool{}} }

func (fx *effects) send(m switchboard.Message) { fx.sends = append(fx.sends, m) }
func (fx *effects) distribute(service string)  { fx.services[service] = true }
func (fx *effects) rescindAfter(user string)   { fx.rescind = append(fx.rescind, user) }
func (fx *effects) freed(user string)          { fx.agents = append(fx.agents, user) }

// undo gives back the offer holds of a change that was not written.
func (fx *effects) undo(ctx context.Context, s *Service, tenant, conv string) {
	for _, u := range fx.offered {
		if _, _, err := s.o.Agents.EndOffer(context.WithoutCancel(ctx), tenant, u, conv, switchboard.OfferEnd{}); err != nil {
			s.o.Log.Warn("distribution: offer hold not given back; it lapses by itself", "tenant", tenant, "conversation", conv, "user", u, "err", err)
		}
	}
	fx.offered = nil
}

// undoUnlessUnsure undoes the effects of a write that failed, unless
// whether it landed is unknown: then the offers' holds stay (they lapse by
// themselves at their ring time) so that no agent is offered anything else
// while a conversation may record it ringing.
func (fx *effects) undoUnlessUnsure(ctx context.Context, s *Service, tenant, conv string, err error) {
	if isUnsure(err) {
		if len(fx.offered) > 0 {
			s.o.Log.Warn("distribution: not known whether an offer was written; its holds lapse by themselves", "tenant", tenant,
				"conversation", conv, "users", fx.offered, "err", err)
		}
		fx.offered = nil
		return
	}
	fx.undo(ctx, s, tenant, conv)
}

// after carries out a written change's effects.
func (s *Service) after(ctx context.Context, tenant string, c Conversation, fx *effects) {
	ctx = context.WithoutCancel(ctx)
	for _, u := range fx.rescind {
		if _, changed, err := s.o.Agents.EndOffer(ctx, tenant, u, c.ID, switchboard.OfferEnd{}); err != nil {
			s.o.Log.Warn("distribution: rescinded offer's hold not ended; it lapses by itself", "tenant", tenant, "conversation", c.ID, "user", u, "err", err)
		} else if changed {
			fx.freed(u)
		}
	}
	for _, h := range fx.holdEnds {
		s.endHoldAfter(ctx, tenant, c.ID, h, fx)
	}
	for _, m := range fx.sends {
		s.sendMessage(ctx, m)
	}
	if len(fx.services) > 0 || len(fx.agents) > 0 {
		var services []string
		for id := range fx.services {
			services = append(services, id)
		}
		s.kick(tenant, services, fx.agents)
	}
}

// endHoldAfter changes an agent's hold after its conversation was
// written. A failure is logged: the hold then expires by itself (an offer
// at its ring time; a conversation after routing's 13 hours, which
// housekeeping also ends).
func (s *Service) endHoldAfter(ctx context.Context, tenant, conv string, h holdEnd, fx *effects) {
	var until time.Time
	var changed bool
	var err error
	if h.release {
		until, changed, err = s.o.Agents.ReleaseAgent(ctx, tenant, h.user, conv, h.acw)
	} else {
		until, changed, err = s.o.Agents.EndOffer(ctx, tenant, h.user, conv, switchboard.OfferEnd{Rona: h.rona, Idle: h.idle})
	}
	if err != nil {
		s.o.Log.Warn("distribution: agent's hold not changed; it expires by itself", "tenant", tenant, "conversation", conv, "user", h.user, "err", err)
		return
	}
	kind := kindRonaEnd
	if h.release {
		kind = kindAfterCallWorkEnd
	}
	switch {
	case !until.IsZero():
		// Its ...Started event is routing's, in the hold change's batch.
		fx.send(agentMessage(kind, tenant, h.user, until))
	case changed:
		fx.freed(h.user)
	}
}

// mutate reads a conversation, applies fn and writes the result
// conditional on what was read, reading again when another writer came
// first. fn returns false to write nothing. Effects of a failed write are
// undone before fn runs again.
func (s *Service) mutate(ctx context.Context, tenant, id string, fn func(c *Conversation, fx *effects) (bool, error)) (Conversation, error) {
	return s.mutateFrom(ctx, tenant, id, nil, fn)
}

// mutateFrom is mutate starting from read, the conversation as the caller
// has just read it (nil: read it).
func (s *Service) mutateFrom(
	ctx context.Context,
	tenant,
	id string,
	read *Conversation,
	fn func(c *Conversation, fx *effects) (bool, error),
) (Conversation, error) {
	for attempt := 0; attempt < 8; attempt++ {
		var cur Conversation
		var err error
		if read != nil {
			cur, read = *read, nil
		} else if cur, err = s.convs.get(ctx, tenant, id); err != nil {
			return Conversation{}, err
		}
		next := clone(cur)
		fx := newEffects()
		ok, err := fn(&next, fx)
		if err != nil {
			fx.undo(ctx, s, tenant, id)
			return cur, err
		}
		if !ok {
			fx.undo(ctx, s, tenant, id)
			return cur, nil
		}
		saved, err := s.convs.save(ctx, &cur, next)
		if switchboard.IsCode(err, switchboard.EPRECONDITION) {
			fx.undo(ctx, s, tenant, id)
			continue
		}
		if err != nil {
			fx.undoUnlessUnsure(ctx, s, tenant, id, err)
			return Conversation{}, err
		}
		s.after(ctx, tenant, saved, fx)
		return saved, nil
	}
	return Conversation{}, switchboard.Errorf(switchboard.EUNAVAILABLE, "distribution.mutate", "conversation %s keeps changing; retry", id)
}

// clone copies a conversation deeply enough that changing the copy's
// slices leaves the original alone.
func clone(c Conversation) Conversation {
	n := c
	n.Offers = append([]Offer{}, c.Offers...)
	n.History = append([]Event{}, c.History...)
	n.Declined = append([]string(nil), c.Declined...)
	n.ForwardedFrom = append([]string{}, c.ForwardedFrom...)
	return n
}

func notPending(op, conv, user, why string) error {
	return &switchboard.Error{Code: switchboard.ECONFLICT, Op: op, Type: switchboard.OfferNotPending,
		Message: fmt.Sprintf("no offer of conversation %s is pending for %s: %s", conv, user, why)}
}

// Accept connects the conversation to the agent whose offer rings. The
// first accept wins: the other ringing offers are rescinded. Accepting
// again what this agent accepted returns the conversation. Returns
// ECONFLICT (offer-not-pending) when the agent's offer lapsed, was
// rescinded or declined, or another agent accepted first; ENOTFOUND.
func (s *Service) Accept(ctx context.Context, tenant, conv, user string) (Conversation, error) {
	const op = "distribution.Accept"
	user, err := checkUser(op, user)
	if err != nil {
		return Conversation{}, err
	}
	c, err := s.convs.get(ctx, tenant, conv)
	if err != nil {
		return Conversation{}, err
	}
	if c.State == StateConnected && c.Agent == user {
		return c, nil
	}
	i := c.OfferOf(user)
	if i < 0 {
		return Conversation{}, notPending(op, conv, user, offerWhy(c, user))
	}
	if !s.now().Before(c.Offers[i].ExpiresAt) {
		return Conversation{}, notPending(op, conv, user, "the offer lapsed")
	}
	if err := s.o.Agents.AcceptOffer(ctx, tenant, user, conv); err != nil {
		return Conversation{}, err
	}
	lost := false
	out, err := s.mutateFrom(ctx, tenant, conv, &c, func(c *Conversation, fx *effects) (bool, error) {
		if c.State == StateConnected && c.Agent == user {
			return false, nil
		}
		i := c.OfferOf(user)
		if i < 0 || !c.Waiting() {
			lost = true
			return false, nil
		}
		now := s.now()
		c.Offers[i].State = OfferAccepted
		for j, o := range c.Offers {
			if j != i && o.State == OfferRinging {
				c.Offers[j].State = OfferRescinded
				c.Record(now, EventOfferRescinded, o.UserID, "accepted by "+user)
				fx.rescindAfter(o.UserID)
			}
		}
		c.State, c.Agent, c.ConnectedAt = StateConnected, user, now
		c.Record(now, EventConnected, user, "")
		return true, nil
	})
	if err != nil {
		return Conversation{}, err
	}
	if lost {
		// Another agent accepted first, or the conversation ended: this
		// agent's hold goes back.
		if _, changed, err := s.o.Agents.EndOffer(ctx, tenant, user, conv, switchboard.OfferEnd{}); err == nil && changed {
			s.kick(tenant, nil, []string{user})
		}
		return Conversation{}, notPending(op, conv, user, offerWhy(out, user))
	}
	return out, nil
}

func offerWhy(c Conversation, user string) string {
	if c.State == StateConnected {
		if c.Agent == user {
			return "the agent accepted it already"
		}
		return "another agent accepted it first"
	}
	if c.Final() {
		return "the conversation is " + c.State
	}
	for i := len(c.Offers) - 1; i >= 0; i-- {
		if c.Offers[i].UserID == user {
			return "the offer was " + c.Offers[i].State
		}
	}
	return "it was never offered to this agent"
}

func checkUser(op, user string) (string, error) {
	id, ok := switchboard.NormalizeGUID(user)
	if !ok {
		return "", switchboard.FieldError(op, "userId", "userId %q is not an Entra object id (a GUID)", user)
	}
	return id, nil
}

// Decline ends the agent's ringing offer: the conversation goes on to the
// next agent and is not offered to this one again (with rona.onDecline
// the agent goes into RONA). Returns ECONFLICT (offer-not-pending),
// ENOTFOUND.
func (s *Service) Decline(ctx context.Context, tenant, conv, user string) (Conversation, error) {
	const op = "distribution.Decline"
	user, err := checkUser(op, user)
	if err != nil {
		return Conversation{}, err
	}
	found, rangOut := false, false
	out, err := s.mutate(ctx, tenant, conv, func(c *Conversation, fx *effects) (bool, error) {
		rangOut = false
		i := c.OfferOf(user)
		if i >= 0 && !s.now().Before(c.Offers[i].ExpiresAt) {
			// Too late, as for an accept: it rang out, and its lapse (RONA
			// as the service says) is on its way.
			found, rangOut = true, true
			return false, nil
		}
		if i < 0 {
			for _, d := range c.Declined {
				if d == user { // a retried decline
					found = true
				}
			}
			return false, nil
		}
		found = true
		// The history's time is taken before the hold is let go, so that
		// the agent's next offer never seems to start before this one ended.
		now := s.now()
		svc, err := s.serviceFor(ctx, c)
		if err != nil && !switchboard.IsCode(err, switchboard.ENOTFOUND) {
			return false, err
		}
		if err := s.endOffer(ctx, c, svc, user, true, fx); err != nil {
			return false, err
		}
		c.Offers[i].State = OfferDeclined
		c.Declined = append(c.Declined, user)
		c.Record(now, EventOfferDeclined, user, "")
		s.offerEnded(c, now, user, true, fx)
		return true, nil
	})
	if err != nil {
		return Conversation{}, err
	}
	if rangOut {
		return Conversation{}, notPending(op, conv, user, "the offer lapsed")
	}
	if !found {
		return Conversation{}, notPending(op, conv, user, offerWhy(out, user))
	}
	return out, nil
}

// endOffer ends an agent's offer that lapsed or was declined: RONA as the
// service says, or free (then distributed). The hold changes once the
// conversation is written (effects.after), so that the agent is never free
// for another offer while its conversation still shows this one ringing.
func (s *Service) endOffer(ctx context.Context, c *Conversation, svc switchboard.Service, user string, declined bool, fx *effects) error {
	fx.holdEnds = append(fx.holdEnds, holdEnd{user: user, rona: ronaFor(svc, declined), idle: true})
	return nil
}

// endRinging ends the ringing offers of a conversation that ends or moves
// on (why): those are Rescinded, but an offer whose ring time is up rang
// out, its lapse still to come, and is Lapsed (its agent goes into the
// RONA its hold carries, as routing has seen it since the ring ended).
func endRinging(c *Conversation, now time.Time, why string, fx *effects) {
	for i, o := range c.Offers {
		switch {
		case o.State != OfferRinging:
		case !now.Before(o.ExpiresAt):
			c.Offers[i].State = OfferLapsed
			c.Record(now, EventOfferLapsed, o.UserID, "")
			fx.holdEnds = append(fx.holdEnds, holdEnd{user: o.UserID, idle: true})
		default:
			c.Offers[i].State = OfferRescinded
			c.Record(now, EventOfferRescinded, o.UserID, why)
			fx.rescindAfter(o.UserID)
		}
	}
}

// End ends a conversation (DELETE): a connected one is released (after-call
// work starts), a waiting one is Abandoned and its offers rescinded; an
// ended one is left as it is. It reports false when distribution does not
// know the conversation.
func (s *Service) End(ctx context.Context, tenant, conv string) (bool, error) {
	_, err := s.mutate(ctx, tenant, conv, func(c *Conversation, fx *effects) (bool, error) {
		now := s.now()
		switch {
		case c.State == StateConnected:
			svc, err := s.serviceFor(ctx, c)
			if err != nil && !switchboard.IsCode(err, switchboard.ENOTFOUND) {
				return false, err
			}
			acw := time.Duration(svc.Distribution.AfterCallWorkSeconds) * time.Second
			// Released once the conversation is written (effects.after).
			fx.holdEnds = append(fx.holdEnds, holdEnd{user: c.Agent, release: true, acw: acw})
			c.State, c.EndedAt, c.Outcome = StateEnded, now, StateEnded
			c.Record(now, EventEnded, c.Agent, "")
			return true, nil
		case c.Waiting():
			endRinging(c, now, "the caller hung up", fx)
			c.EndAs(now, StateAbandoned, EventAbandoned, "the caller hung up")
			return true, nil
		}
		return false, nil
	})
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return false, nil
	}
	return err == nil, err
}

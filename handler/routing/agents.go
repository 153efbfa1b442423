package routing

import (
	"context"
	"fmt"
	"time"

	"switchboard/handler/switchboard"
)

// This file is what distribution (SPEC section 10) needs of the agents'
// holds: an offer is the agent's hold of kind offer with the ring time as
// expiry; accepting turns it into a hold until released; a lapse turns it
// into RONA or frees the agent; a release turns the conversation into
// after-call work. Every change is a write of the agent's one hold row
// conditional on the ETag read, so it is exact across instances.

// OfferNotPending is switchboard.OfferNotPending.
const OfferNotPending = switchboard.OfferNotPending

func offerNotPending(op, user, conv, why string) error {
	return &switchboard.Error{Code: switchboard.ECONFLICT, Op: op, Type: OfferNotPending,
		Message: fmt.Sprintf("the offer of conversation %s to %s is not pending: %s", conv, user, why)}
}

// RoutedService returns a service with its members as routes see it (the
// in-process copy that follows storage). Returns ENOTFOUND.
func (e *Engine) RoutedService(ctx context.Context, tenant, id string) (Service, error) {
	if err := checkID("routing.Service", "serviceId", id); err != nil {
		return Service{}, err
	}
	return e.services.routed(ctx, tenant, id)
}

// Services returns every service of the tenant with its members, in id
// order.
func (e *Engine) Services(ctx context.Context, tenant string) ([]Service, error) {
	rows, err := e.services.list(ctx, tenant)
	if err != nil {
		return nil, err
	}
	out := make([]Service, 0, len(rows))
	for _, r := range rows {
		r.Members, err = e.services.memberSet(ctx, tenant, r.ID, r.version)
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", r.ID, err)
		}
		out = append(out, r.Service)
	}
	return out, nil
}

// AgentHold is switchboard.AgentHold; OfferEnd is switchboard.OfferEnd.
type (
	AgentHold = switchboard.AgentHold
	OfferEnd  = switchboard.OfferEnd
)

// Agent returns the agent's current hold (no conversation when it holds
// nothing or its hold expired) and idle time.
func (e *Engine) Agent(ctx context.Context, tenant, user string) (AgentHold, error) {
	now := wallClock(e.now)
	_, _, idle, err := e.agents.read(ctx, tenant, now)
	if err != nil {
		return AgentHold{}, err
	}
	out := AgentHold{IdleSince: idle[user]}
	h, err := e.state.getHold(ctx, tenant, user)
	switch {
	case switchboard.IsCode(err, switchboard.ENOTFOUND):
	case err != nil:
		return AgentHold{}, err
	case h.state().Holding(now):
		out.Kind, out.ConversationID, out.ServiceID, out.HeldAt, out.ExpiresAt = h.Kind, h.ConversationID, h.ServiceID, h.HeldAt, h.ExpiresAt
	default:
		if t := h.expiredAt(); t.After(out.IdleSince) {
			out.IdleSince = t
		}
	}
	return out, nil
}

// HoldKinds returns the kind of every live hold of the tenant's agents, by
// user, from the in-process copy of the agents' state (it may lag other
// instances by about a second).
func (e *Engine) HoldKinds(ctx context.Context, tenant string) (map[string]string, error) {
	now := wallClock(e.now)
	states, _, _, err := e.agents.read(ctx, tenant, now)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(states))
	for u, st := range states {
		if st.Holding(now) {
			out[u] = st.Kind
		}
	}
	return out, nil
}

// AcceptOffer turns the agent's ringing offer of the conversation into a
// hold until released. Accepting again what was accepted is not an error.
// Returns ECONFLICT (type offer-not-pending) when the agent's hold is not
// that offer, or it expired.
func (e *Engine) AcceptOffer(ctx context.Context, tenant, user, conv string) error {
	const op = "routing.AcceptOffer"
	now := wallClock(e.now)
	h, err := e.state.getHold(ctx, tenant, user)
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return offerNotPending(op, user, conv, "the agent has no offer")
	}
	if err != nil {
		return switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	}
	if h.ConversationID != conv {
		return offerNotPending(op, user, conv, "the agent's offer is for another conversation")
	}
	switch {
	case h.Kind == switchboard.HoldConversation && h.state().Holding(now):
		return nil // accepted already
	case h.Kind != switchboard.HoldOffer:
		return offerNotPending(op, user, conv, "the offer ended")
	case !h.state().Holding(now):
		return offerNotPending(op, user, conv, "the offer lapsed")
	}
	next := h
	next.Kind, next.UntilReleased, next.ExpiresAt, next.HeldAt = switchboard.HoldConversation, true, time.Time{}, now
	if next.ETag, err = e.state.t.Update(ctx, encodeHold(tenant, next), h.ETag); err != nil {
		if switchboard.IsCode(err, switchboard.EPRECONDITION) || switchboard.IsCode(err, switchboard.ENOTFOUND) {
			return offerNotPending(op, user, conv, "the offer changed meanwhile")
		}
		return switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	}
	e.agents.held(tenant, next)
	return nil
}

// EndOffer ends the agent's hold on the conversation (an offer, or a hold
// accepted but not connected): the agent is free again, or in RONA. A hold
// that is not the conversation's is left alone. It returns when RONA ends
// (zero when the agent is not in RONA) and whether the hold changed.
func (e *Engine) EndOffer(ctx context.Context, tenant, user, conv string, end OfferEnd) (time.Time, bool, error) {
	const op = "routing.EndOffer"
	now := wallClock(e.now)
	h, err := e.state.getHold(ctx, tenant, user)
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	}
	if h.ConversationID != conv || h.Kind == switchboard.HoldRona || h.Kind == switchboard.HoldAfterCallWork {
		if h.ConversationID == conv && h.Kind == switchboard.HoldRona {
			return h.ExpiresAt, false, nil // done by an earlier delivery
		}
		return time.Time{}, false, nil
	}
	if end.Rona > 0 {
		next := hold{UserID: user, ConversationID: conv, ServiceID: h.ServiceID, HeldAt: now, ExpiresAt: now.Add(end.Rona), Kind: switchboard.HoldRona}
		if next.ETag, err = e.state.t.Update(ctx, encodeHold(tenant, next), h.ETag); err != nil {
			if switchboard.IsCode(err, switchboard.EPRECONDITION) || switchboard.IsCode(err, switchboard.ENOTFOUND) {
				return time.Time{}, false, nil
			}
			return time.Time{}, false, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
		}
		e.agents.held(tenant, next)
		return next.ExpiresAt, true, e.idleAt(ctx, tenant, user, now, end.Idle)
	}
	dropped, err := e.state.dropHold(ctx, tenant, h)
	if err != nil {
		return time.Time{}, false, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	}
	if dropped {
		e.agents.dropped(tenant, user, h.ETag)
	}
	return time.Time{}, dropped, e.idleAt(ctx, tenant, user, now, end.Idle && dropped)
}

func (e *Engine) idleAt(ctx context.Context, tenant, user string, at time.Time, do bool) error {
	if !do {
		return nil
	}
	ends := map[string]time.Time{user: at}
	if err := e.state.recordIdle(ctx, tenant, ends); err != nil {
		return err
	}
	e.agents.idled(tenant, ends)
	return nil
}

// ReleaseAgent ends the agent's conversation: with afterCallWork > 0 the
// hold becomes after-call work for that long (idle time starts when it
// ends), otherwise the agent is free and idle from now. A hold that is not
// the conversation's is left alone. It returns when after-call work ends
// (zero without) and whether the hold changed.
func (e *Engine) ReleaseAgent(ctx context.Context, tenant, user, conv string, afterCallWork time.Duration) (time.Time, bool, error) {
	const op = "routing.ReleaseAgent"
	now := wallClock(e.now)
	h, err := e.state.getHold(ctx, tenant, user)
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	}
	if h.ConversationID != conv || h.Kind != switchboard.HoldConversation {
		if h.ConversationID == conv && h.Kind == switchboard.HoldAfterCallWork {
			return h.ExpiresAt, false, nil // done by an earlier call
		}
		return time.Time{}, false, nil
	}
	if afterCallWork > 0 {
		next := hold{UserID: user, ConversationID: conv, ServiceID: h.ServiceID, HeldAt: now, ExpiresAt: now.Add(afterCallWork), Kind: switchboard.HoldAfterCallWork}
		if next.ETag, err = e.state.t.Update(ctx, encodeHold(tenant, next), h.ETag); err != nil {
			if switchboard.IsCode(err, switchboard.EPRECONDITION) || switchboard.IsCode(err, switchboard.ENOTFOUND) {
				return time.Time{}, false, nil
			}
			return time.Time{}, false, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
		}
		e.agents.held(tenant, next)
		return next.ExpiresAt, true, nil
	}
	dropped, err := e.state.dropHold(ctx, tenant, h)
	if err != nil {
		return time.Time{}, false, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	}
	if dropped {
		e.agents.dropped(tenant, user, h.ETag)
	}
	return time.Time{}, dropped, e.idleAt(ctx, tenant, user, now, dropped)
}

// EndAgentHold ends the agent's RONA or after-call work (kind) early or at
// its time: the hold row goes, and after after-call work the agent's idle
// time starts (at the hold's end, or now when ended early). until, when
// not zero, must be the hold's end (a message for an earlier RONA changes
// nothing). It reports whether a hold ended.
func (e *Engine) EndAgentHold(ctx context.Context, tenant, user, kind string, until time.Time) (bool, error) {
	const op = "routing.EndAgentHold"
	now := wallClock(e.now)
	h, err := e.state.getHold(ctx, tenant, user)
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return false, nil
	}
	if err != nil {
		return false, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	}
	if h.Kind != kind || !until.IsZero() && !h.ExpiresAt.Equal(until) {
		return false, nil
	}
	dropped, err := e.state.dropHold(ctx, tenant, h)
	if err != nil || !dropped {
		return false, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	}
	e.agents.dropped(tenant, user, h.ETag)
	if kind == switchboard.HoldAfterCallWork {
		end := now
		if h.ExpiresAt.Before(end) {
			end = h.ExpiresAt
		}
		return true, e.idleAt(ctx, tenant, user, end, true)
	}
	return true, nil
}

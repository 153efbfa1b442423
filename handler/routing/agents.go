package routing

import (
	"context"
	"errors"
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
// nothing or its hold expired) and idle time. The hold is the stored row
// (one point read, the authority). The idle time is the in-process copy's
// when that copy has the same hold row, so it saw the agent's last change;
// else another instance changed the agent a moment ago, and the agent's
// ledger entry is read too (and both go into the copy, so the next read
// here agrees).
func (e *Engine) Agent(ctx context.Context, tenant, user string) (AgentHold, error) {
	now := wallClock(e.now)
	h, err := e.state.getHold(ctx, tenant, user)
	found := err == nil
	if err != nil && !switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return AgentHold{}, err
	}
	snap, err := e.agents.Get(ctx, tenant)
	if err != nil {
		return AgentHold{}, err
	}
	idle := snap.idle[user]
	if cached, ok := snap.holds[user]; ok != found || found && cached.ETag != h.ETag {
		stored, err := e.state.idleOf(ctx, tenant, user)
		if err != nil {
			return AgentHold{}, err
		}
		idle = later(idle, stored)
		e.agents.stored(tenant, user, h, found, stored)
	}
	out := AgentHold{IdleSince: idle}
	h, _ = h.current(now)
	switch {
	case !found:
	case h.state().Holding(now):
		out.Kind, out.ConversationID, out.ServiceID, out.HeldAt, out.ExpiresAt = h.Kind, h.ConversationID, h.ServiceID, h.HeldAt, h.ExpiresAt
	default:
		out.IdleSince = later(out.IdleSince, h.expiredAt())
	}
	return out, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
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
// accepted but not connected): the agent is free again, or in RONA for
// end.Rona. An offer whose ring time is up rang out: whatever end says,
// the agent goes into the RONA the offer carries (hold.current), from the
// end of the ring, as every route saw it since. A RONA of an agent whose
// presence reads Offline ends at once, with its ronaStarted and ronaEnded
// (the Offline reading that ends RONA came first). A hold that is not the
// conversation's is left alone. It returns when RONA ends (zero when the
// agent is not in RONA) and whether the hold changed.
func (e *Engine) EndOffer(ctx context.Context, tenant, user, conv string, end OfferEnd) (time.Time, bool, error) {
	const op = "routing.EndOffer"
	for attempt := 0; ; attempt++ {
		until, changed, retry, err := e.endOffer(ctx, tenant, user, conv, end)
		switch {
		case err != nil:
			return time.Time{}, false, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
		case !retry:
			return until, changed, nil
		case attempt == 2:
			return time.Time{}, false, nil
		}
		// Changed meanwhile (the sweep or another instance wrote the same
		// ring-out, or the agent moved on): read it again, so that a RONA
		// written elsewhere still gets its end's due message.
	}
}

// endOffer is one try of EndOffer; retry says the hold changed after it
// was read.
func (e *Engine) endOffer(ctx context.Context, tenant, user, conv string, end OfferEnd) (until time.Time, changed, retry bool, err error) {
	now := wallClock(e.now)
	h, err := e.state.getHold(ctx, tenant, user)
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return time.Time{}, false, false, nil
	}
	if err != nil {
		return time.Time{}, false, false, err
	}
	if h.ConversationID != conv || h.Kind == switchboard.HoldRona || h.Kind == switchboard.HoldAfterCallWork {
		if h.ConversationID == conv && h.Kind == switchboard.HoldRona {
			return h.ExpiresAt, false, false, nil // done by an earlier delivery
		}
		return time.Time{}, false, false, nil
	}
	lost := func(err error) (time.Time, bool, bool, error) {
		if switchboard.IsCode(err, switchboard.EPRECONDITION) || switchboard.IsCode(err, switchboard.ENOTFOUND) {
			return time.Time{}, false, true, nil
		}
		return time.Time{}, false, false, err
	}
	if r, ringOut := h.current(now); ringOut {
		// The agent's idle time starts at the ring's end, whenever this runs.
		ends := []*switchboard.Event(nil)
		switch {
		case !r.state().Holding(now):
			// Handled after its RONA ended too: it ends now, with both events.
			ends = endEvents(tenant, r, true, r.ExpiresAt, switchboard.HoldEndTime, now)
		case e.readsOfflineNow(ctx, tenant, user, now):
			ends = endEvents(tenant, r, true, now, switchboard.HoldEndOffline, now)
		}
		if ends != nil {
			dropped, err := e.deleteHold(ctx, tenant, h, ends...)
			if err != nil || !dropped {
				return lost(err)
			}
			return time.Time{}, true, false, e.idleAt(ctx, tenant, user, h.ExpiresAt, true)
		}
		if _, err := e.updateHold(ctx, tenant, h, r, ringOutStarted(tenant, r, now)); err != nil {
			return lost(err)
		}
		return r.ExpiresAt, true, false, e.idleAt(ctx, tenant, user, h.ExpiresAt, true)
	}
	if end.Rona > 0 {
		next := hold{UserID: user, ConversationID: conv, ServiceID: h.ServiceID, HeldAt: now, ExpiresAt: now.Add(end.Rona), Kind: switchboard.HoldRona}
		if e.readsOfflineNow(ctx, tenant, user, now) {
			// Started and ended in one change, as a ring-out's.
			dropped, err := e.deleteHold(ctx, tenant, h, startedEvent(tenant, h, next, now),
				endedEvent(tenant, next, now, switchboard.HoldEndOffline, now.Add(time.Nanosecond)))
			if err != nil || !dropped {
				return lost(err)
			}
			return time.Time{}, true, false, e.idleAt(ctx, tenant, user, now, end.Idle)
		}
		if _, err = e.updateHold(ctx, tenant, h, next, startedEvent(tenant, h, next, now)); err != nil {
			return lost(err)
		}
		return next.ExpiresAt, true, false, e.idleAt(ctx, tenant, user, now, end.Idle)
	}
	dropped, err := e.deleteHold(ctx, tenant, h)
	if err != nil {
		return time.Time{}, false, false, err
	}
	return time.Time{}, dropped, false, e.idleAt(ctx, tenant, user, now, end.Idle && dropped)
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
		if _, err = e.updateHold(ctx, tenant, h, next, startedEvent(tenant, h, next, now)); err != nil {
			if switchboard.IsCode(err, switchboard.EPRECONDITION) || switchboard.IsCode(err, switchboard.ENOTFOUND) {
				return time.Time{}, false, nil
			}
			return time.Time{}, false, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
		}
		return next.ExpiresAt, true, nil
	}
	dropped, err := e.deleteHold(ctx, tenant, h)
	if err != nil {
		return time.Time{}, false, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	}
	return time.Time{}, dropped, e.idleAt(ctx, tenant, user, now, dropped)
}

// EndAgentHold ends the agent's RONA or after-call work (kind) early or at
// its time: the hold row goes, with its ...Ended event in the same
// transaction, and after after-call work the agent's idle time starts (at
// the hold's end, or now when ended early). until, when not zero, must be
// the hold's end (a message for an earlier RONA changes nothing). reason
// is the event's (switchboard.HoldEnd*; a hold past its time ended at its
// time, whatever the caller says). It reports whether a hold ended: of
// several callers ending the same hold, one does.
func (e *Engine) EndAgentHold(ctx context.Context, tenant, user, kind string, until time.Time, reason string) (bool, error) {
	const op = "routing.EndAgentHold"
	now := wallClock(e.now)
	h, err := e.state.getHold(ctx, tenant, user)
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return false, nil
	}
	if err != nil {
		return false, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	}
	cur, ringOut := h.current(now)
	if cur.Kind != kind || !until.IsZero() && !cur.ExpiresAt.Equal(until) {
		return false, nil
	}
	return e.endAgentHold(ctx, tenant, cur, ringOut, reason, now)
}

// endAgentHold ends RONA or after-call work h, read from storage (as
// hold.current returned it: ringOut for a ring-out's RONA not written
// yet), as EndAgentHold does.
func (e *Engine) endAgentHold(ctx context.Context, tenant string, h hold, ringOut bool, reason string, now time.Time) (bool, error) {
	end := now
	if !h.ExpiresAt.After(now) {
		end, reason = h.ExpiresAt, switchboard.HoldEndTime
	}
	dropped, err := e.deleteHold(ctx, tenant, h, endEvents(tenant, h, ringOut, end, reason, now)...)
	if err != nil || !dropped {
		return false, switchboard.Wrap(switchboard.EUNAVAILABLE, "routing.EndAgentHold", err)
	}
	if h.Kind == switchboard.HoldAfterCallWork {
		return true, e.idleAt(ctx, tenant, h.UserID, end, true)
	}
	return true, nil
}

// EndRonaIfHeld ends the RONA of those of users who are in RONA, as
// storage has it (one read of the tenant's holds, so a RONA another
// instance set a moment ago is ended too): for agents whose presence reads
// Offline. It returns the agents whose RONA ended.
func (e *Engine) EndRonaIfHeld(ctx context.Context, tenant string, users []string, reason string) ([]string, error) {
	const op = "routing.EndRonaIfHeld"
	if len(users) == 0 {
		return nil, nil
	}
	now := wallClock(e.now)
	all, err := e.state.holds(ctx, tenant)
	if err != nil {
		return nil, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	}
	want := make(map[string]bool, len(users))
	for _, u := range users {
		want[u] = true
	}
	var ended []string
	var errs []error
	for _, h := range all {
		if !want[h.UserID] {
			continue
		}
		ok, err := e.endRonaOf(ctx, tenant, h, reason, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("agent %s: %w", h.UserID, err))
			continue
		}
		if ok {
			ended = append(ended, h.UserID)
		}
	}
	return ended, errors.Join(errs...)
}

// endRonaOf ends the RONA of raw, an agent's hold row as read, for
// EndRonaIfHeld. A row that changed before the delete is read again: a
// lapse or the sweep writing a rung-out offer's RONA in between (on an
// instance whose presence copy has not seen the Offline reading yet) must
// not leave the agent in a RONA that only its time would end.
func (e *Engine) endRonaOf(ctx context.Context, tenant string, raw hold, reason string, now time.Time) (bool, error) {
	for attempt := 0; ; attempt++ {
		h, ringOut := raw.current(now)
		if h.Kind != switchboard.HoldRona {
			return false, nil
		}
		ok, err := e.endAgentHold(ctx, tenant, h, ringOut, reason, now)
		if err != nil || ok || attempt == 2 {
			return ok, err
		}
		if raw, err = e.state.getHold(ctx, tenant, raw.UserID); err != nil {
			if switchboard.IsCode(err, switchboard.ENOTFOUND) {
				return false, nil // ended meanwhile, by someone else
			}
			return false, switchboard.Wrap(switchboard.EUNAVAILABLE, "routing.EndRonaIfHeld", err)
		}
		now = wallClock(e.now)
	}
}

// readsOfflineNow reports whether the agent's presence reads Offline: a
// RONA starting now ends at once (SPEC section 10), as the Offline reading
// that ends it came first and no later reading need come. A failed read
// says no: that RONA ends by time, by a reset or at the next Offline
// reading.
func (e *Engine) readsOfflineNow(ctx context.Context, tenant, user string, now time.Time) bool {
	ps, err := e.presence.Readings(ctx, tenant, []string{user})
	if err != nil {
		return false
	}
	p, ok := ps[user]
	return ok && readsOffline(&p, now, e.staleAfter)
}

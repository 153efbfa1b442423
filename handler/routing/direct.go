package routing

import (
	"context"
	"time"

	"switchboard/handler/switchboard"
)

// OfferDirect offers a conversation to one agent outside any service (an
// Interact direct session, SPEC section 12): the agent is judged by the
// rules of section 4 as an active member of a service with the default
// distribution (its hold first, then fresh presence), and when eligible
// its offer hold is taken for ring, the same ETag-guarded hold row a
// service's offer takes, so one offer or conversation per agent holds
// across direct and service conversations alike. The decision has the
// agent in Agents (with the offer's expiry) or in Excluded with the
// reason. rona is the RONA the offer's ring-out puts the agent into. Returns EINVALID for a malformed user or conversation id.
func (e *Engine) OfferDirect(ctx context.Context, tenant, user, conv string, ring, rona time.Duration) (switchboard.RouteDecision, error) {
	const op = "routing.OfferDirect"
	id, ok := NormalizeUserID(user)
	if !ok {
		return switchboard.RouteDecision{}, switchboard.FieldError(op, "userId", "userId %q is not an Entra object id (a GUID)", user)
	}
	if err := checkID(op, "conversationId", conv); err != nil {
		return switchboard.RouteDecision{}, err
	}
	if ring <= 0 || rona < 0 {
		return switchboard.RouteDecision{}, switchboard.Errorf(switchboard.EINTERNAL, op, "an offer needs a ring time, and its RONA cannot be negative")
	}
	snapshotAt := time.Now() // monotonic: orders this read against claims
	now := wallClock(e.now)
	// The one hold row is read from storage, not from the in-process copy:
	// a direct conversation has one agent only, so a stale copy would make
	// it wait for nothing.
	var held *hold
	h, err := e.state.getHold(ctx, tenant, id)
	switch {
	case err == nil:
		held = &h
	case !switchboard.IsCode(err, switchboard.ENOTFOUND):
		return switchboard.RouteDecision{}, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	}
	readings, err := e.presence.Readings(ctx, tenant, []string{id})
	if err != nil {
		return switchboard.RouteDecision{}, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	}
	var p *switchboard.Presence
	if r, ok := readings[id]; ok {
		p = &r
	}
	var st AgentState
	if held != nil {
		cur, _ := held.current(now)
		st = cur.state()
	}
	out := switchboard.RouteDecision{ConversationID: conv, Agents: []switchboard.Assignment{}, Candidates: []switchboard.Candidate{}, Excluded: []switchboard.Exclusion{}}
	v := Evaluate(&Member{UserID: id, Active: true}, p, st, DefaultDistribution(), now, e.staleAfter)
	if !v.Eligible {
		out.Excluded = append(out.Excluded, exclusion(id, v, p))
		return out, nil
	}
	holds := map[string]hold{}
	if held != nil {
		holds[id] = *held
	}
	got, ok, err := e.acquire(ctx, tenant, hold{UserID: id, ConversationID: conv, HeldAt: now, ExpiresAt: now.Add(ring), Kind: switchboard.HoldOffer, Rona: rona},
		holds, snapshotAt)
	if err != nil {
		return switchboard.RouteDecision{}, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	}
	if !ok {
		x := exclusion(id, exclude(switchboard.ReasonInConversation, "just reserved for another Switchboard conversation"), p)
		out.Excluded = append(out.Excluded, x)
		return out, nil
	}
	out.Agents = append(out.Agents, switchboard.Assignment{UserID: got.UserID, HoldExpiresAt: got.ExpiresAt})
	return out, nil
}

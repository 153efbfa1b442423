package routing

import (
	"context"
	"time"

	"switchboard/handler/switchboard"
)

// LastRouted returns, per agent of the tenant, when the agent was last
// given a conversation (a current hold: a reservation, an accepted offer,
// an outbound task) or, failing that, when its last one ended (the idle
// ledger). Presence subscriptions cover the most recently routed agents
// first (SPEC section 14).
func (e *Engine) LastRouted(ctx context.Context, tenant string) (map[string]time.Time, error) {
	now := e.now()
	_, holds, idle, err := e.agents.read(ctx, tenant, now)
	if err != nil {
		return nil, switchboard.Wrap(switchboard.EUNAVAILABLE, "routing.LastRouted", err)
	}
	out := make(map[string]time.Time, len(idle)+len(holds))
	for u, at := range idle {
		out[u] = at
	}
	for u, h := range holds {
		if h.HeldAt.After(out[u]) {
			out[u] = h.HeldAt
		}
	}
	return out, nil
}

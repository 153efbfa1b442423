package routing

// Releasing a conversation: its agents' holds end and the idle ledger
// records when (the other half of Route, in engine.go).

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"switchboard/handler/switchboard"
)

// Release implements switchboard.Router: the conversation's holds are
// dropped and each agent's idle time starts now (or when its hold expired,
// if it did); Options.Freed is told of the agents let go. Releasing twice,
// or an unknown conversation, is not an error.
func (e *Engine) Release(ctx context.Context, tenant, conversationID string) error {
	const op = "routing.Release"
	if err := checkID(op, "conversationId", conversationID); err != nil {
		return err
	}
	c, err := e.state.getConversation(ctx, tenant, conversationID)
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return nil
	}
	if err != nil {
		return switchboard.Wrap(switchboard.EINTERNAL, op, err)
	}
	now := wallClock(e.now)
	var mu sync.Mutex
	ends := map[string]time.Time{}
	var errs []error
	// Every hold is tried (the group's functions return no error, so none
	// cancels the others); the failures are joined below.
	var g errgroup.Group
	g.SetLimit(8)
	for _, a := range c.Agents {
		g.Go(func() error {
			end, err := e.releaseHold(ctx, tenant, a.UserID, conversationID, now)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			} else if !end.IsZero() {
				ends[a.UserID] = end
			}
			return nil
		})
	}
	_ = g.Wait()
	if err := errors.Join(errs...); err != nil {
		return switchboard.Wrap(switchboard.EINTERNAL, op, err)
	}
	// The index row goes last: a release that failed half way can be
	// retried and finds the agents again.
	if err := e.state.recordIdle(ctx, tenant, ends); err != nil {
		return switchboard.Wrap(switchboard.EINTERNAL, op, err)
	}
	e.agents.idled(tenant, ends)
	if err := e.state.deleteConversation(ctx, tenant, c); err != nil {
		return switchboard.Wrap(switchboard.EINTERNAL, op, err)
	}
	if e.freed != nil && len(ends) > 0 {
		e.freed(tenant, slices.Sorted(maps.Keys(ends)))
	}
	return nil
}

// releaseHold drops one agent's hold on the conversation and returns when
// the agent became idle (zero when the hold was not this conversation's).
func (e *Engine) releaseHold(ctx context.Context, tenant, user, conversationID string, now time.Time) (time.Time, error) {
	h, err := e.state.getHold(ctx, tenant, user)
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return time.Time{}, nil // swept after expiry: the ledger has it
	}
	if err != nil {
		return time.Time{}, err
	}
	if h.ConversationID != conversationID {
		return time.Time{}, nil // expired and taken by another conversation
	}
	cur, ringOut := h.current(now)
	end, reason := now, switchboard.HoldEndEarly
	if !cur.state().Holding(now) {
		end, reason = cur.expiredAt(), switchboard.HoldEndTime
	}
	// A distribution conversation's RONA or after-call work released here
	// ends with its events (none for the other holds).
	dropped, err := e.deleteHold(ctx, tenant, h, endEvents(tenant, cur, ringOut, end, reason, now)...)
	if err != nil || !dropped {
		return time.Time{}, err
	}
	return end, nil
}

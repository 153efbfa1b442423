package distribution

import (
	"context"
	"slices"
	"time"

	"switchboard/handler/switchboard"
)

// EventRequeued is the history event of a connected conversation put back
// into its queue (an Interact agent left and did not return).
const EventRequeued = "requeued"

// Requeue puts a connected conversation back into its service's queue at
// its original place: priority and queuedAt are kept (so are its wait
// limit's deadline), the agent is released without after-call work and is
// not offered it again, and the service is distributed at once. A
// conversation already waiting is returned as it is. Returns ENOTFOUND;
// ECONFLICT for one that has ended.
func (s *Service) Requeue(ctx context.Context, tenant, conv string) (Conversation, error) {
	const op = "distribution.Requeue"
	c, err := s.mutate(ctx, tenant, conv, func(c *Conversation, fx *effects) (bool, error) {
		switch {
		case c.Waiting():
			return false, nil
		case c.Direct():
			return false, switchboard.Errorf(switchboard.ECONFLICT, op, "conversation %s is direct: it has no queue to go back to", conv)
		case c.State != StateConnected:
			return false, switchboard.Errorf(switchboard.ECONFLICT, op, "conversation %s is %s", conv, c.State)
		}
		_, changed, err := s.o.Agents.ReleaseAgent(ctx, tenant, c.Agent, c.ID, 0)
		if err != nil {
			return false, err
		}
		if changed {
			fx.freed(c.Agent)
		}
		now := s.now()
		if !slices.Contains(c.Declined, c.Agent) {
			c.Declined = append(c.Declined, c.Agent)
		}
		c.Record(now, EventRequeued, c.Agent, "the agent left and did not return")
		c.State, c.Agent, c.ConnectedAt = StateQueued, "", time.Time{}
		fx.send(timeoutMessage(*c))
		fx.distribute(c.ServiceID)
		return true, nil
	})
	return c, err
}

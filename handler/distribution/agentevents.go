package distribution

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"switchboard/handler/outbox"
	"switchboard/handler/switchboard"
)

// Agent events (SPEC section 11): switchboard.agent.ronaStarted,
// ronaEnded, afterCallWorkStarted, afterCallWorkEnded.
const (
	agentRonaStarted          = "ronaStarted"
	agentRonaEnded            = "ronaEnded"
	agentAfterCallWorkStarted = "afterCallWorkStarted"
	agentAfterCallWorkEnded   = "afterCallWorkEnded"
)

// agentEventData is an agent event's data: the agent's hold that started
// or ended.
type agentEventData struct {
	UserID         string     `json:"userId"`
	ServiceID      string     `json:"serviceId,omitempty"`
	ConversationID string     `json:"conversationId,omitempty"`
	Until          *time.Time `json:"until,omitempty"`
	Reason         string     `json:"reason,omitempty"`
}

// agentEvent publishes an agent event once the agent's hold changed. The
// hold is routing's row, so the event cannot share its batch: it is
// written right after, as its own outbox row; a failure is logged (the
// change itself stands).
func (s *Service) agentEvent(ctx context.Context, tenant, event string, d agentEventData) {
	if s.o.Events == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	now := s.now()
	data, _ := json.Marshal(d)
	// The sequence of an agent's events is their time: an agent's holds
	// change one after the other.
	ev := switchboard.Event{ID: uuid.NewString(), Type: "switchboard.agent." + event, TenantID: tenant, ServiceID: d.ServiceID,
		Subject: "agents/" + d.UserID, Sequence: now.UnixNano(), Time: now, Data: data}
	ops, err := outbox.Ops(tenant, []switchboard.Event{ev})
	if err == nil {
		err = s.o.Events.Prepare(ctx, TableName, tenant)
	}
	if err == nil {
		err = s.convs.t.Batch(ctx, ops)
	}
	if err != nil {
		s.o.Log.Warn("distribution: agent event not recorded", "tenant", tenant, "type", ev.Type, "user", d.UserID, "err", err)
		return
	}
	go s.o.Events.Flush(ctx, TableName, tenant)
}

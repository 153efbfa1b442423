package interact

import (
	"context"
	"encoding/json"

	"github.com/google/uuid"

	"switchboard/handler/outbox"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// Event types of sessions (SPEC section 11).
const (
	EventStarted   = "switchboard.interactSession.started"
	EventSuspended = "switchboard.interactSession.suspended"
	EventResumed   = "switchboard.interactSession.resumed"
	EventEnded     = "switchboard.interactSession.ended"
)

// eventData is a session as its events carry it: no resume token, no ACS
// token.
type eventData struct {
	SessionID      string     `json:"sessionId"`
	State          string     `json:"state"`
	PreviousState  *string    `json:"previousState"`
	ConversationID string     `json:"conversationId"`
	ServiceID      string     `json:"serviceId,omitempty"`
	DirectUserID   string     `json:"userId,omitempty"`
	Customer       Customer   `json:"customer"`
	Agent          *AgentView `json:"agent"`
	SuspendedParty *string    `json:"suspendedParty"`
	Outcome        string     `json:"outcome,omitempty"`
	MeetingID      string     `json:"meetingId"`
}

// transitionEvent returns the event of a change from cur to next, if the
// public state changed in a way subscribers hear of ("" cur: created).
func transitionEvent(cur *Session, next *Session) string {
	from, to := "", next.State()
	if cur != nil {
		from = cur.State()
	}
	switch {
	case from == to:
		return ""
	case cur == nil:
		return EventStarted
	case to == StateEnded:
		return EventEnded
	case to == StateSuspended:
		return EventSuspended
	case from == StateSuspended:
		return EventResumed
	}
	return ""
}

// eventOps returns the outbox rows of the change from cur to next (none
// without an outbox or without an event), and bumps next's sequence.
func (s *Service) eventOps(cur, next *Session) ([]store.Op, error) {
	typ := transitionEvent(cur, next)
	if s.o.Events == nil || typ == "" {
		return nil, nil
	}
	next.Sequence++
	d := eventData{SessionID: next.ID, State: next.State(), ConversationID: next.ConversationID(), ServiceID: next.ServiceID,
		DirectUserID: next.Direct, Customer: next.Customer, Outcome: next.Outcome, MeetingID: next.Meeting.ID}
	if cur != nil {
		prev := cur.State()
		d.PreviousState = &prev
	}
	if next.Agent != "" {
		d.Agent = &AgentView{UserID: next.Agent}
	}
	if party, _ := next.suspension(); party != "" {
		d.SuspendedParty = &party
	}
	raw, err := json.Marshal(d)
	if err != nil {
		return nil, switchboard.Wrap(switchboard.EINTERNAL, "interact.events", err)
	}
	return outbox.Ops(next.TenantID, []switchboard.Event{{
		ID: uuid.Must(uuid.NewV7()).String(), Type: typ, TenantID: next.TenantID, ServiceID: next.ServiceID,
		Subject: "interact-sessions/" + next.ID, Sequence: next.Sequence, Time: s.now(), Data: raw,
	}})
}

// batch writes ops with the events' outbox rows around them: Prepare
// before, Flush after.
func (s *Service) batch(ctx context.Context, tenant string, ops, events []store.Op) error {
	if len(events) == 0 {
		return s.sessions.t.Batch(ctx, ops)
	}
	if err := s.o.Events.Prepare(ctx, TableName, tenant); err != nil {
		return err
	}
	if err := s.sessions.t.Batch(ctx, append(ops, events...)); err != nil {
		return err
	}
	s.o.Events.Flush(ctx, TableName, tenant)
	return nil
}

package routing

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/google/uuid"

	"switchboard/handler/outbox"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// Agent events (SPEC section 11): switchboard.agent.ronaStarted,
// ronaEnded, afterCallWorkStarted, afterCallWorkEnded. Routing owns the
// agent's hold row, so it writes each event as an outbox row in the same
// entity-group transaction as the hold change (same table, the tenant's
// partition): the change and its event are stored together or not at all,
// and a hold ended twice (its due message and the expiry sweep) ends once,
// with one event, because the ETag-guarded change succeeds once.
const (
	AgentRonaStarted          = "switchboard.agent.ronaStarted"
	AgentRonaEnded            = "switchboard.agent.ronaEnded"
	AgentAfterCallWorkStarted = "switchboard.agent.afterCallWorkStarted"
	AgentAfterCallWorkEnded   = "switchboard.agent.afterCallWorkEnded"
)

// agentEventData is an agent event's data: the RONA or after-call work
// that started or ended.
type agentEventData struct {
	UserID         string     `json:"userId"`
	State          string     `json:"state"`         // Rona, AfterCallWork, or Free once ended (free for distribution, whatever its presence)
	PreviousState  string     `json:"previousState"` // what the agent's hold was before
	ServiceID      string     `json:"serviceId,omitempty"`
	ConversationID string     `json:"conversationId,omitempty"`
	Since          time.Time  `json:"since"`
	Until          time.Time  `json:"until"`
	EndedAt        *time.Time `json:"endedAt,omitempty"`
	// Reason says why it ended: switchboard.HoldEndTime, HoldEndEarly or
	// HoldEndOffline.
	Reason string `json:"reason,omitempty"`
}

// holdStateNames are the agent states of the hold kinds in event data.
var holdStateNames = map[string]string{
	switchboard.HoldConversation:  "Conversation",
	switchboard.HoldOffer:         "Offered",
	switchboard.HoldRona:          "Rona",
	switchboard.HoldAfterCallWork: "AfterCallWork",
}

// agentEventTypes are the started and ended event types of the hold kinds
// that have events.
var agentEventTypes = map[string][2]string{
	switchboard.HoldRona:          {AgentRonaStarted, AgentRonaEnded},
	switchboard.HoldAfterCallWork: {AgentAfterCallWorkStarted, AgentAfterCallWorkEnded},
}

// startedEvent is the event of next (RONA or after-call work) replacing
// prev; nil for any other hold.
func startedEvent(tenant string, prev, next hold, now time.Time) *switchboard.Event {
	types, ok := agentEventTypes[next.Kind]
	if !ok {
		return nil
	}
	return agentEvent(tenant, types[0], now, agentEventData{UserID: next.UserID, State: holdStateNames[next.Kind], PreviousState: holdStateNames[prev.Kind],
		ServiceID: next.ServiceID, ConversationID: next.ConversationID, Since: next.HeldAt, Until: next.ExpiresAt})
}

// endedEvent is the event of RONA or after-call work h ending at end
// (nil for any other hold).
func endedEvent(tenant string, h hold, end time.Time, reason string, now time.Time) *switchboard.Event {
	types, ok := agentEventTypes[h.Kind]
	if !ok {
		return nil
	}
	end = end.UTC()
	return agentEvent(tenant, types[1], now, agentEventData{UserID: h.UserID, State: "Free", PreviousState: holdStateNames[h.Kind],
		ServiceID: h.ServiceID, ConversationID: h.ConversationID, Since: h.HeldAt, Until: h.ExpiresAt, EndedAt: &end, Reason: reason})
}

// ringOutStarted is the ronaStarted event of a ring-out (r, as
// hold.current returned it), written with whichever change first stores
// that RONA or its end: the lapse, the expiry sweep, a reset, an Offline
// reading, or a new offer over it once it ended.
func ringOutStarted(tenant string, r hold, now time.Time) *switchboard.Event {
	return startedEvent(tenant, hold{Kind: switchboard.HoldOffer}, r, now)
}

// endEvents are the events of RONA or after-call work h (as hold.current
// returned it) ending at end: a ring-out's ronaStarted first, never
// written before, then its ...Ended a nanosecond later (the sequence is
// the time).
func endEvents(tenant string, h hold, ringOut bool, end time.Time, reason string, now time.Time) []*switchboard.Event {
	if !ringOut {
		return []*switchboard.Event{endedEvent(tenant, h, end, reason, now)}
	}
	return []*switchboard.Event{ringOutStarted(tenant, h, now), endedEvent(tenant, h, end, reason, now.Add(time.Nanosecond))}
}

func agentEvent(tenant, typ string, now time.Time, d agentEventData) *switchboard.Event {
	d.Since, d.Until = d.Since.UTC(), d.Until.UTC()
	data, _ := json.Marshal(d)
	// The sequence of an agent's events is their time: an agent's hold
	// changes one after the other (each ETag-guarded on the one before).
	return &switchboard.Event{ID: uuid.NewString(), Type: typ, TenantID: tenant, ServiceID: d.ServiceID,
		Subject: "agents/" + d.UserID, Sequence: now.UnixNano(), Time: now, Data: data}
}

// changeHold writes one change of an agent's hold row (op: an update,
// insert or delete conditional on the row read) and, when events are on,
// the outbox rows of evs (nil ones left out) in the same transaction. For an update
// or insert it returns the row as now stored, with its ETag; a transaction
// returns no ETags, so the row is then read again (nil when that read
// failed: the cache re-reads it in the background). Errors are the
// store's: EPRECONDITION, ENOTFOUND, ECONFLICT when the row changed
// meanwhile.
func (e *Engine) changeHold(ctx context.Context, tenant string, op store.Op, evs ...*switchboard.Event) (*hold, error) {
	var batch []switchboard.Event
	for _, ev := range evs {
		if ev != nil {
			batch = append(batch, *ev)
		}
	}
	if len(batch) == 0 || e.events == nil {
		var etag string
		var err error
		switch op.Kind {
		case store.OpUpdate:
			etag, err = e.state.t.Update(ctx, op.Entity, op.IfMatch)
		case store.OpInsert:
			etag, err = e.state.t.Insert(ctx, op.Entity)
		default:
			return nil, e.state.t.Delete(ctx, tenant, op.Entity.RowKey, op.IfMatch)
		}
		if err != nil {
			return nil, err
		}
		op.Entity.ETag = etag
		h := decodeHold(op.Entity)
		return &h, nil
	}
	if op.Kind == store.OpDelete && op.IfMatch == "" {
		op.IfMatch = "*"
	}
	ops, err := outbox.Ops(tenant, batch)
	if err != nil {
		return nil, err
	}
	// Recorded before the batch, so that the sweep finds the row if this
	// process dies before Flush; unrecorded, the change is not written.
	if err := e.events.Prepare(ctx, StateTable, tenant); err != nil {
		return nil, err
	}
	if err := e.state.t.Batch(ctx, append([]store.Op{op}, ops...)); err != nil {
		return nil, err
	}
	go e.events.Flush(context.WithoutCancel(ctx), StateTable, tenant)
	if op.Kind == store.OpDelete {
		return nil, nil
	}
	user := strings.TrimPrefix(op.Entity.RowKey, holdPrefix)
	h, err := e.state.getHold(ctx, tenant, user)
	if err != nil {
		e.agents.reread(tenant, user)
		return nil, nil
	}
	return &h, nil
}

// updateHold replaces prev with next (ETag-guarded), with the agent events
// of the change, if any, and tells the cache. The hold returned has no
// ETag when the row could not be read back.
func (e *Engine) updateHold(ctx context.Context, tenant string, prev, next hold, evs ...*switchboard.Event) (hold, error) {
	got, err := e.changeHold(ctx, tenant, store.Op{Kind: store.OpUpdate, Entity: encodeHold(tenant, next), IfMatch: prev.ETag}, evs...)
	if err != nil {
		return hold{}, err
	}
	if got != nil {
		// What storage holds now (another change may have followed ours).
		e.agents.held(tenant, *got)
		if got.Kind == next.Kind && got.ConversationID == next.ConversationID && got.HeldAt.Sub(next.HeldAt).Abs() < time.Millisecond {
			next.ETag = got.ETag
		}
	}
	return next, nil
}

// deleteHold deletes h if it is still the row read (ETag), with the agent
// events of its end, if any, and tells the cache. A row changed or gone
// meanwhile is left alone (false, no error).
func (e *Engine) deleteHold(ctx context.Context, tenant string, h hold, evs ...*switchboard.Event) (bool, error) {
	_, err := e.changeHold(ctx, tenant, store.Op{Kind: store.OpDelete, Entity: store.Entity{PartitionKey: tenant, RowKey: holdPrefix + h.UserID}, IfMatch: h.ETag}, evs...)
	switch switchboard.ErrorCode(err) {
	case "":
		if !e.agents.dropped(tenant, h.UserID, h.ETag) {
			// This copy holds another version of the row than the one
			// deleted (another instance wrote that): read it again now, not
			// at the next refresh, so that the pass this end starts, and the
			// agent's next presence reading, do not find the agent held here
			// (an Offline reading ending the RONA a lapse elsewhere wrote).
			e.agents.rereadNow(context.WithoutCancel(ctx), tenant, h.UserID)
		}
		return true, nil
	case switchboard.ENOTFOUND, switchboard.EPRECONDITION:
		return false, nil
	}
	return false, err
}

package outbound

import (
	"context"
	"encoding/json"

	"github.com/google/uuid"

	"switchboard/handler/outbox"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// Events: a task's creation and every change of its state emit
// switchboard.outboundTask.stateChanged (SPEC section 11), written as an
// outbox row in the same batch as the change, in the task's own partition.
// The task row counts its events (EventSeq), so the sequence increases per
// task even across instances: the batch is guarded by the task's ETag.

// stateEvent returns the outbox row of next's stateChanged event when the
// move from prev (nil: the task is being created) changes its state, and
// counts it in next.EventSeq; nil when there is nothing to emit (no state
// change, or no events configured).
func (s *Service) stateEvent(prev *Task, next *Task) ([]store.Op, error) {
	if s.o.Events == nil {
		return nil, nil
	}
	var from *string
	if prev != nil {
		if prev.State == next.State {
			return nil, nil
		}
		st := prev.State
		from = &st
	}
	next.EventSeq++
	data, err := json.Marshal(switchboard.OutboundTaskEventData{OutboundTaskView: next.View(), PreviousState: from})
	if err != nil {
		return nil, switchboard.Wrap(switchboard.EINTERNAL, "outbound.event", err)
	}
	return outbox.Ops(partition(next.TenantID, next.ServiceID), []switchboard.Event{{
		ID:        uuid.Must(uuid.NewV7()).String(),
		Type:      switchboard.OutboundTaskStateChanged,
		TenantID:  next.TenantID,
		ServiceID: next.ServiceID,
		Subject:   "outbound-tasks/" + next.ID,
		Sequence:  next.EventSeq,
		Time:      next.UpdatedAt,
		Data:      data,
	}})
}

// prepareEvents records the partition for the outbox sweep before a batch
// with events is written. Returns EUNAVAILABLE: the batch must then not be
// written.
func (s *Service) prepareEvents(ctx context.Context, pk string, events []store.Op) error {
	if len(events) == 0 {
		return nil
	}
	return s.o.Events.Prepare(ctx, TableName, pk)
}

// flushEvents hands the partition's outbox rows to delivery after a batch
// with events was written (what it cannot, the sweep does later).
func (s *Service) flushEvents(ctx context.Context, pk string, events []store.Op) {
	if len(events) > 0 {
		s.o.Events.Flush(ctx, TableName, pk)
	}
}

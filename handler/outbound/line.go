package outbound

import (
	"context"
	"fmt"

	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// The waiting line (SPEC section 10): a service's waiting outbound tasks
// are served with its inbound conversations, by priority then waiting
// time, when an agent is freed.

// WaitingTask is a task waiting for an agent. (With ScheduleCallback and
// AssignWaiting, Service is distribution's Outbound.)
type WaitingTask = switchboard.WaitingTask

// Waiting returns the service's tasks that wait for an agent now (due,
// queue time not over), from the index rows.
func (s *Service) Waiting(ctx context.Context, tenant, service string) ([]WaitingTask, error) {
	if err := checkIDs("outbound.Waiting", tenant, service); err != nil {
		return nil, err
	}
	now := s.now()
	var out []WaitingTask
	err := store.QueryAll(ctx, s.table, store.Query{PartitionKey: partition(tenant, service), Prefix: openPrefix}, func(e store.Entity) error {
		if o := openFromEntity(e); o.waiting(now) && !now.After(o.Deadline) {
			q := o.QueuedAt
			if q.IsZero() {
				q = o.DueAt
			}
			out = append(out, WaitingTask{ID: o.ID, Priority: o.Priority, QueuedAt: q, PreferredUsers: o.PreferredUsers})
		}
		return nil
	})
	if err != nil {
		return nil, switchboard.Wrap(switchboard.EUNAVAILABLE, "outbound.Waiting", err)
	}
	return out, nil
}

// AssignWaiting gives a waiting task to an eligible agent now, as its
// message would: it returns the agent, or "" when nobody could take it or
// the task no longer waits. The agents of prefer (those a distribution
// pass matched it with) are tried first, before the task's preferred
// users; when only is not empty, only its agents may take the task (those
// the pass saw free and gave no item ahead).
func (s *Service) AssignWaiting(ctx context.Context, tenant, service, id string, prefer, only []string) (string, error) {
	if err := checkIDs("outbound.AssignWaiting", tenant, service); err != nil {
		return "", err
	}
	t, err := s.getTask(ctx, partition(tenant, service), id)
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	now := s.now()
	if !waiting(t) || t.DueAt.After(now) || now.After(t.Deadline) {
		return "", nil
	}
	return s.assign(ctx, t, prefer, only)
}

// ScheduleCallback schedules a callback task due now for a conversation
// that timed out or overflowed (cb.ReferenceID callback:<conversationId>,
// so the same conversation never gets two). Returns ELIMIT when the cap is
// reached.
func (s *Service) ScheduleCallback(ctx context.Context, tenant, service string, cb switchboard.Callback) (string, error) {
	n := NewTask{Destination: cb.Destination, ReferenceID: cb.ReferenceID, Priority: &cb.Priority, Context: cb.Context}
	t, _, err := s.Schedule(ctx, tenant, service, n)
	if err != nil {
		return "", fmt.Errorf("callback task: %w", err)
	}
	return t.ID, nil
}

package outbound

import (
	"context"
	"errors"
	"fmt"
	"time"

	"switchboard/handler/store"
	"switchboard/handler/switchboard"

	"switchboard/handler/job"
)

// Report says what one housekeeping run did.
type Report struct {
	Services      int // service partitions visited
	Expired       int // waiting tasks past their deadline (lost or dead-lettered messages)
	TimedOut      int // InProgress tasks never completed, failed after InProgressLimit
	Resent        int // tries whose send had failed, sent again
	IndexRepaired int // open rows added or removed to match the tasks
	CountersFixed int // counters set to the number of slot-holding tasks
	Deleted       int // finished tasks deleted after Retention
	FullScans     int // services reconciled against all their task rows
	// StoppedAtDeadline is true when ctx's deadline came before every
	// service was visited: the next run goes on.
	StoppedAtDeadline bool
}

func (r Report) String() string {
	return fmt.Sprintf("%d services (%d fully scanned): %d expired, %d timed out, %d resent, %d index rows repaired, %d counters fixed, %d "+
		"deleted; stopped at deadline: %v",
		r.Services, r.FullScans, r.Expired, r.TimedOut, r.Resent, r.IndexRepaired, r.CountersFixed, r.Deleted, r.StoppedAtDeadline)
}

// stopBefore is how close to the housekeeping run's deadline work stops
// and leaves the rest to the next run: a service is not started then.
const stopBefore = 3 * time.Second

// Housekeep visits every service that has had tasks and:
//   - expires waiting tasks whose deadline passed more than ExpiryGrace ago
//     (their message was lost or dead-lettered), freeing their slots;
//   - fails InProgress tasks not completed within InProgressLimit, freeing
//     their agent and slot;
//   - sends again the tries whose send has been pending for ResendAfter;
//   - repairs the open index and sets the slot counter to the number of
//     slot-holding tasks (against all task rows every FullScanEvery, else
//     against the index rows, each checked against its task);
//   - deletes finished tasks older than Retention (with their referenceId).
//
// It works until ctx's deadline and collects per-service errors instead of
// stopping at the first.
func (s *Service) Housekeep(ctx context.Context) (Report, error) {
	var rep Report
	var errs []error
	err := store.QueryAll(ctx, s.table, store.Query{PartitionKey: registryPK}, func(e store.Entity) error {
		if job.Near(ctx, stopBefore) {
			rep.StoppedAtDeadline = true
			return errStop
		}
		rep.Services++
		if err := s.housekeepService(ctx, e, &rep); err != nil {
			errs = append(errs, fmt.Errorf("service %s: %w", e.RowKey, err))
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		errs = append(errs, err)
	}
	return rep, errors.Join(errs...)
}

var errStop = errors.New("stop")

func (s *Service) housekeepService(ctx context.Context, reg store.Entity, rep *Report) error {
	pk := reg.RowKey
	now := s.now()
	full := now.Sub(reg.Time("LastFullScan")) >= s.o.FullScanEvery

	// Pass 1: every open row against its task.
	var open []openEntry
	if err := store.QueryAll(ctx, s.table, store.Query{PartitionKey: pk, Prefix: openPrefix}, func(e store.Entity) error {
		open = append(open, openFromEntity(e))
		return nil
	}); err != nil {
		return err
	}
	var errs []error
	for _, o := range open {
		if err := s.checkTask(ctx, pk, o.ID, true, now, rep); err != nil {
			errs = append(errs, err)
		}
	}
	if full {
		if err := s.fullScan(ctx, pk, now, rep); err != nil {
			errs = append(errs, err)
		} else {
			rep.FullScans++
			reg.Props["LastFullScan"] = now
			if _, err := s.table.Update(ctx, reg, reg.ETag); err != nil && !switchboard.IsCode(err, switchboard.EPRECONDITION) {
				errs = append(errs, err)
			}
		}
	} else if err := s.reconcileWithIndex(ctx, pk, rep); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// checkTask repairs one task's index row and deals with it when it is stuck.
func (s *Service) checkTask(ctx context.Context, pk, id string, hasOpen bool, now time.Time, rep *Report) error {
	t, err := s.getTask(ctx, pk, id)
	if switchboard.IsCode(err, switchboard.ENOTFOUND) || (err == nil && !Counted(t.State)) {
		if hasOpen {
			// An index row without a slot-holding task.
			if err := s.table.Delete(ctx, pk, openKey(id), "*"); err != nil && !switchboard.IsCode(err, switchboard.ENOTFOUND) {
				return err
			}
			rep.IndexRepaired++
		}
		return nil
	}
	if err != nil {
		return err
	}
	if !hasOpen {
		if _, err := s.table.Upsert(ctx, openEntity(t)); err != nil {
			return err
		}
		rep.IndexRepaired++
	}
	switch {
	case waiting(t) && now.After(t.Deadline.Add(s.o.ExpiryGrace)):
		if _, err := s.finish(ctx, t, StateExpired, fmt.Sprintf("no agent was free within %d seconds (expired by housekeeping: the task's message "+
			"was lost or dead-lettered)", t.MaxQueueTimeSeconds)); err != nil && !switchboard.IsCode(err, switchboard.EPRECONDITION) {
			return err
		} else if err == nil {
			s.release(ctx, t)
			rep.Expired++
		}
	case t.State == StateInProgress && now.Sub(t.AssignedAt) > s.o.InProgressLimit:
		conv := conversationID(t.ID, t.Attempts)
		if err := s.o.Router.Release(ctx, t.TenantID, conv); err != nil {
			return err
		}
		if _, err := s.finish(ctx, t, StateFailed, fmt.Sprintf("not completed within %s of its "+
			"assignment", s.o.InProgressLimit)); err != nil && !switchboard.IsCode(err, switchboard.EPRECONDITION) {
			return err
		} else if err == nil {
			rep.TimedOut++
		}
	case t.SendPending && now.Sub(t.UpdatedAt) > s.o.ResendAfter:
		if err := s.resend(ctx, t); err != nil {
			return err
		}
		rep.Resent++
	}
	return nil
}

// reconcileWithIndex sets the counter to the number of open rows. It reads
// the counter first and writes it with that read's ETag: any admission or
// release in between changes the ETag, and the fix waits for the next run.
func (s *Service) reconcileWithIndex(ctx context.Context, pk string, rep *Report) error {
	c, err := s.readCounter(ctx, pk)
	if err != nil {
		return err
	}
	n := 0
	if err := store.QueryAll(ctx, s.table, store.Query{PartitionKey: pk, Prefix: openPrefix}, func(store.Entity) error {
		n++
		return nil
	}); err != nil {
		return err
	}
	return s.fixCounter(ctx, pk, c, n, rep)
}

func (s *Service) fixCounter(ctx context.Context, pk string, c counter, n int, rep *Report) error {
	if c.count == n && (c.exists || n == 0) {
		return nil
	}
	err := s.table.Batch(ctx, []store.Op{c.op(pk, n)})
	if switchboard.IsCode(err, switchboard.EPRECONDITION) || switchboard.IsCode(err, switchboard.ECONFLICT) {
		return nil // moved meanwhile: the next run looks again
	}
	if err != nil {
		return err
	}
	s.o.Log.Warn("outbound: slot counter corrected", "partition", pk, "was", c.count, "now", n)
	rep.CountersFixed++
	return nil
}

// fullScan reads every task row of the service: slot-holding tasks without
// an index row get one, finished ones past retention are deleted, and the
// counter is set to the number of slot-holding tasks (guarded by the
// counter's ETag read before the scan).
func (s *Service) fullScan(ctx context.Context, pk string, now time.Time, rep *Report) error {
	c, err := s.readCounter(ctx, pk)
	if err != nil {
		return err
	}
	openIDs := map[string]bool{}
	if err := store.QueryAll(ctx, s.table, store.Query{PartitionKey: pk, Prefix: openPrefix}, func(e store.Entity) error {
		openIDs[openFromEntity(e).ID] = true
		return nil
	}); err != nil {
		return err
	}
	n := 0
	var missing []string
	var expired []Task
	err = store.QueryAll(ctx, s.table, store.Query{PartitionKey: pk, Prefix: taskPrefix}, func(e store.Entity) error {
		t, err := taskFromEntity(e)
		if err != nil {
			return err
		}
		switch {
		case Counted(t.State):
			n++
			if !openIDs[t.ID] {
				missing = append(missing, t.ID)
			}
		case now.Sub(t.EndedAt) > s.o.Retention && !t.EndedAt.IsZero():
			expired = append(expired, t)
		}
		return nil
	})
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range missing {
		if err := s.checkTask(ctx, pk, id, false, now, rep); err != nil {
			errs = append(errs, err)
		}
	}
	for _, t := range expired {
		ops := []store.Op{{Kind: store.OpDelete, Entity: store.Entity{PartitionKey: pk, RowKey: taskKey(t.ID)}, IfMatch: t.ETag}}
		if t.ReferenceID != "" {
			if ref, err := s.table.Get(ctx, pk, refKey(t.ReferenceID)); err == nil && ref.String("TaskId") == t.ID {
				ops = append(ops, store.Op{Kind: store.OpDelete, Entity: store.Entity{PartitionKey: pk, RowKey: ref.RowKey}, IfMatch: ref.ETag})
			}
		}
		if err := s.table.Batch(ctx, ops); err != nil && !switchboard.IsCode(
			err,
			switchboard.EPRECONDITION,
		) && !switchboard.IsCode(err, switchboard.ENOTFOUND) {
			errs = append(errs, err)
			continue
		}
		rep.Deleted++
	}
	if err := s.fixCounter(ctx, pk, c, n, rep); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

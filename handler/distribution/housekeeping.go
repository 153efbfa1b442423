package distribution

import (
	"context"
	"errors"
	"fmt"
	"time"

	"switchboard/handler/job"
	"switchboard/handler/store"
)

// HousekeepingReport says what one Housekeep run did.
type HousekeepingReport struct {
	Tenants           int
	OffersLapsed      int
	TimedOut          int
	Deleted           int
	StoppedAtDeadline bool
}

func (r HousekeepingReport) String() string {
	return fmt.Sprintf("%d tenants, %d conversations with lapsed offers, %d timed out, %d ended conversations deleted, stopped at deadline: %v",
		r.Tenants, r.OffersLapsed, r.TimedOut, r.Deleted, r.StoppedAtDeadline)
}

// Housekeep does what lost or dead-lettered messages left undone: offers
// whose ring time ended more than Grace ago lapse, waits past their
// deadline time out; and ended conversations older than Retention are
// deleted. It works until ctx's deadline; per-item failures are collected.
func (s *Service) Housekeep(ctx context.Context) (HousekeepingReport, error) {
	var rep HousekeepingReport
	tenants, err := s.o.Agents.Tenants(ctx)
	if err != nil {
		return rep, err
	}
	rep.Tenants = len(tenants)
	var errs []error
	for _, tenant := range tenants {
		if deadlineNear(ctx) {
			rep.StoppedAtDeadline = true
			break
		}
		if err := s.housekeepTenant(ctx, tenant, &rep); err != nil {
			errs = append(errs, fmt.Errorf("tenant %s: %w", tenant, err))
		}
	}
	return rep, errors.Join(errs...)
}

func (s *Service) housekeepTenant(ctx context.Context, tenant string, rep *HousekeepingReport) error {
	now := s.now()
	lines, err := s.convs.allLines(ctx, tenant)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range lines {
		if deadlineNear(ctx) {
			rep.StoppedAtDeadline = true
			return errors.Join(errs...)
		}
		if !e.Deadline.IsZero() && now.After(e.Deadline.Add(s.o.Grace)) {
			out, err := s.timeout(ctx, tenant, e.ID, e.QueuedAt)
			if err != nil {
				errs = append(errs, err)
			} else if out.Action == "acted" {
				rep.TimedOut++
			}
			continue
		}
		if e.Ringing && now.After(e.RingExpires.Add(s.o.Grace)) {
			out, err := s.lapse(ctx, tenant, e.ID, time.Time{})
			if err != nil {
				errs = append(errs, err)
			} else if out.Action == "acted" {
				rep.OffersLapsed++
			}
		}
	}
	var old []string
	err = store.QueryAll(ctx, s.convs.t, store.Query{PartitionKey: tenant, Prefix: convPrefix}, func(e store.Entity) error {
		if t := e.Time("endedAt"); !t.IsZero() && now.Sub(t) > s.o.Retention {
			old = append(old, e.RowKey)
		}
		return nil
	})
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, rk := range old {
		if deadlineNear(ctx) {
			rep.StoppedAtDeadline = true
			break
		}
		if err := s.convs.t.Delete(ctx, tenant, rk, ""); err != nil {
			errs = append(errs, err)
			continue
		}
		rep.Deleted++
	}
	return errors.Join(errs...)
}

// deadlineNear reports whether ctx ends within a few seconds: too late to
// start another item.
func deadlineNear(ctx context.Context) bool { return job.Near(ctx, 3*time.Second) }

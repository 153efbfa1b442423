package distribution

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"switchboard/handler/job"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// HousekeepingReport says what one Housekeep run did.
type HousekeepingReport struct {
	Tenants      int
	OffersLapsed int
	TimedOut     int
	Deleted      int
	Leaked       int
	// Served counts the lines (services with waiting conversations or
	// outbound tasks) given a distribution pass.
	Served            int
	StoppedAtDeadline bool
}

func (r HousekeepingReport) String() string {
	return fmt.Sprintf("%d tenants, %d conversations with lapsed offers, %d timed out, %d connected too long ended, %d ended conversations "+
		"deleted, %d lines served, stopped at deadline: %v",
		r.Tenants, r.OffersLapsed, r.TimedOut, r.Leaked, r.Deleted, r.Served, r.StoppedAtDeadline)
}

// Housekeep does what lost or dead-lettered messages left undone: offers
// whose ring time ended more than Grace ago lapse, waits past their
// deadline time out; every line with a waiting conversation or outbound
// task gets a distribution pass (an agent freed without telling
// distribution: a process that died before its pass, a hold of the route
// API that ran out); and ended conversations older than Retention are
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
	if err := s.housekeepDirect(ctx, tenant, lines); err != nil {
		errs = append(errs, err)
	}
	var old, leaked []string
	err = store.QueryAll(ctx, s.convs.t, store.Query{PartitionKey: tenant, Prefix: convPrefix}, func(e store.Entity) error {
		if t := e.Time("endedAt"); !t.IsZero() && now.Sub(t) > s.o.Retention {
			old = append(old, e.RowKey)
		}
		if t := e.Time("connectedAt"); e.String("state") == StateConnected && !t.IsZero() && now.Sub(t) > MaxConnected {
			leaked = append(leaked, strings.TrimPrefix(e.RowKey, convPrefix))
		}
		return nil
	})
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, id := range leaked {
		if deadlineNear(ctx) {
			rep.StoppedAtDeadline = true
			break
		}
		n, err := s.endLeaked(ctx, tenant, id, now)
		if err != nil {
			errs = append(errs, err)
		}
		rep.Leaked += n
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
	if err := s.serveLines(ctx, tenant, lines, rep); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// serveLines runs a distribution pass over each of the tenant's services
// with a waiting conversation (in lines, as read before the timeouts), a
// ringing Broadcast with room for more agents, or a waiting outbound task.
func (s *Service) serveLines(ctx context.Context, tenant string, lines []entry, rep *HousekeepingReport) error {
	byService := map[string][]entry{}
	for _, e := range lines {
		byService[e.ServiceID] = append(byService[e.ServiceID], e)
	}
	svcs, err := s.o.Agents.Services(ctx, tenant)
	if err != nil {
		return err
	}
	now := s.now()
	waiting := map[string]bool{}
	var errs []error
	for _, svc := range svcs {
		if deadlineNear(ctx) {
			rep.StoppedAtDeadline = true
			break
		}
		waiting[svc.ID] = slices.ContainsFunc(byService[svc.ID], func(e entry) bool {
			return !e.Ringing || broadcastRoom(svc, e.RingingN, e.RingExpires, now) > 0
		})
		if !waiting[svc.ID] && s.o.Outbound != nil {
			tasks, err := s.o.Outbound.Waiting(ctx, tenant, svc.ID)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			waiting[svc.ID] = len(tasks) > 0
		}
		if !waiting[svc.ID] {
			continue
		}
		if err := s.runPass(ctx, tenant, svc.ID); err != nil {
			errs = append(errs, fmt.Errorf("service %s: %w", svc.ID, err))
			continue
		}
		rep.Served++
	}
	return errors.Join(errs...)
}

// MaxConnected is how long a conversation may stay Connected without a
// release: past it, its agent's hold has expired (routing drops holds
// until released after 13 hours) and the conversation is ended, so that a
// lost release does not leave it Connected for good.
const MaxConnected = 13 * time.Hour

// endLeaked ends a conversation connected for longer than MaxConnected.
func (s *Service) endLeaked(ctx context.Context, tenant, id string, now time.Time) (int, error) {
	n := 0
	_, err := s.mutate(ctx, tenant, id, func(c *Conversation, fx *effects) (bool, error) {
		if c.State != StateConnected || now.Sub(c.ConnectedAt) <= MaxConnected {
			return false, nil
		}
		if _, changed, err := s.o.Agents.ReleaseAgent(ctx, tenant, c.Agent, c.ID, 0); err != nil {
			return false, err
		} else if changed {
			fx.freed(c.Agent)
		}
		c.State, c.EndedAt, c.Outcome = StateEnded, now, StateEnded
		c.OutcomeDetail = fmt.Sprintf("not released within %v of connecting: ended by housekeeping", MaxConnected)
		c.Record(now, EventEnded, c.Agent, c.OutcomeDetail)
		n = 1
		return true, nil
	})
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return 0, nil
	}
	return n, err
}

// deadlineNear reports whether ctx ends within a few seconds: too late to
// start another item.
func deadlineNear(ctx context.Context) bool { return job.Near(ctx, 3*time.Second) }

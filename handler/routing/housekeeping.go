package routing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"switchboard/handler/job"
	"switchboard/handler/switchboard"
)

// HousekeepingReport says what one Housekeep run did.
type HousekeepingReport struct {
	Tenants              int
	HoldsExpired         int
	ConversationsExpired int
	TeamsSynced          int
	TeamSyncFailures     int
	MemberSetsDeleted    int // retired member sets past MemberSetRetention
	StoppedAtDeadline    bool
}

// Housekeep sweeps expired holds (their agents' idle time starts when the
// hold expired) and expired conversation index rows, and re-reads the
// members of every team-backed service not synced for TeamSyncInterval, and
// deletes member sets retired more than MemberSetRetention ago. It
// works until ctx's deadline and leaves the rest to the next run; per-item
// failures are collected, not fatal.
func (e *Engine) Housekeep(ctx context.Context) (HousekeepingReport, error) {
	var rep HousekeepingReport
	rows, err := e.services.list(ctx, "")
	if err != nil {
		return rep, err
	}
	var errs []error
	tenants := map[string]bool{}
	for _, r := range rows {
		tenants[r.TenantID] = true
	}
	rep.Tenants = len(tenants)
	for tenant := range tenants {
		if job.Near(ctx, stopBefore) {
			rep.StoppedAtDeadline = true
			return rep, errors.Join(errs...)
		}
		holds, convs, err := e.sweep(ctx, tenant)
		rep.HoldsExpired += holds
		rep.ConversationsExpired += convs
		if err != nil {
			errs = append(errs, fmt.Errorf("tenant %s: %w", tenant, err))
		}
	}
	dropped, err := e.services.dropRetired(ctx, wallClock(e.now).Add(-MemberSetRetention))
	rep.MemberSetsDeleted = dropped
	if err != nil {
		errs = append(errs, fmt.Errorf("retired member sets: %w", err))
	}
	for _, r := range rows {
		if r.TeamID == "" {
			continue
		}
		now := wallClock(e.now)
		if now.Sub(r.LastTeamSync) < e.teamSyncInterval && r.LastTeamSyncError == "" {
			continue
		}
		if r.LastTeamSyncError != "" && now.Sub(r.LastTeamSyncAttempt) < e.teamSyncInterval/3 {
			continue // failed recently: do not hammer Graph
		}
		if job.Near(ctx, stopBefore) {
			rep.StoppedAtDeadline = true
			break
		}
		if _, err := e.SyncTeam(ctx, r.TenantID, r.ID); err != nil {
			rep.TeamSyncFailures++
			errs = append(errs, fmt.Errorf("team sync of service %s in tenant %s: %w", r.ID, r.TenantID, err))
			continue
		}
		rep.TeamsSynced++
	}
	return rep, errors.Join(errs...)
}

func (e *Engine) sweep(ctx context.Context, tenant string) (holds, convs int, err error) {
	now := wallClock(e.now)
	all, err := e.state.holds(ctx, tenant)
	if err != nil {
		return 0, 0, err
	}
	ends := map[string]time.Time{}
	var errs []error
	for _, raw := range all {
		h, ringOut := raw.current(now)
		if h.state().Holding(now) {
			if ringOut && e.readsOfflineNow(ctx, tenant, h.UserID, now) {
				// Its agent reads Offline: that RONA ends at once, as the
				// lapse would end it (idle from the ring's end).
				dropped, err := e.deleteHold(ctx, tenant, raw, endEvents(tenant, h, true, now, switchboard.HoldEndOffline, now)...)
				if err != nil {
					errs = append(errs, err)
				} else if dropped {
					holds++
					ends[h.UserID] = raw.ExpiresAt
				}
				continue
			}
			if ringOut {
				// A ring-out whose lapse did not write its RONA (the message
				// lost, or late): written here with its ronaStarted; the ETag
				// makes sure only one of the two writes it.
				if _, err := e.updateHold(ctx, tenant, raw, h, ringOutStarted(tenant, h, now)); err != nil &&
					!switchboard.IsCode(err, switchboard.EPRECONDITION) && !switchboard.IsCode(err, switchboard.ENOTFOUND) {
					errs = append(errs, err)
				}
			}
			continue
		}
		// A RONA or after-call work ends here when its due message did not
		// end it (lost, or late): its ...Ended event goes in the same
		// transaction (a ring-out's RONA nobody wrote: its ronaStarted too),
		// and the ETag makes sure only one of the two ends it.
		dropped, err := e.deleteHold(ctx, tenant, h, endEvents(tenant, h, ringOut, h.ExpiresAt, switchboard.HoldEndTime, now)...)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if dropped {
			holds++
			ends[h.UserID] = h.expiredAt()
		}
	}
	if err := e.state.recordIdle(ctx, tenant, ends); err != nil {
		errs = append(errs, err)
	} else {
		e.agents.idled(tenant, ends)
	}
	cs, err := e.state.conversations(ctx, tenant)
	if err != nil {
		return holds, 0, errors.Join(append(errs, err)...)
	}
	for _, c := range cs {
		if c.live(now) {
			continue
		}
		if err := e.state.deleteConversation(ctx, tenant, c); err != nil {
			errs = append(errs, err)
			continue
		}
		convs++
	}
	return holds, convs, errors.Join(errs...)
}

// stopBefore is how close to the housekeeping run's deadline work stops
// and leaves the rest to the next run (no tenant sweep or team sync starts
// later).
const stopBefore = 5 * time.Second

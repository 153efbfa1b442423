package routing

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"switchboard/handler/switchboard"
)

// GetService returns a service with its members. Returns ENOTFOUND for an
// unknown service.
func (e *Engine) GetService(ctx context.Context, tenant, id string) (Service, error) {
	if err := checkID("routing.GetService", "s", id); err != nil {
		return Service{}, err
	}
	svc, err := e.services.get(ctx, tenant, id)
	return publicService(svc), err
}

// maxPutAttempts bounds the retries of a PUT without If-Match that keeps
// losing to concurrent writers.
const maxPutAttempts = 20

// PutService creates or replaces a service. ifMatch is the ETag the caller
// read ("" for any). A service with a team id gets its members from the
// team right away (their active flags come from in.Members when listed
// there, else from the service as it was, else true). It returns the stored
// service and whether it was created. Returns EINVALID naming the field,
// EPRECONDITION when ifMatch is stale or a concurrent write won (without
// ifMatch, never: the write is retried and the last writer wins),
// EUNAVAILABLE when the team cannot be read now.
func (e *Engine) PutService(ctx context.Context, tenant, id string, in ServiceInput, ifMatch string) (Service, bool, error) {
	const op = "routing.PutService"
	if err := checkID(op, "s", id); err != nil {
		return Service{}, false, err
	}
	name, teamID, members, dist, err := validateService(in)
	if err != nil {
		return Service{}, false, err
	}
	now := wallClock(e.now)
	svc := Service{TenantID: tenant, ID: id, Name: name, TeamID: teamID, Members: members, Distribution: dist, CreatedAt: now, UpdatedAt: now}
	if teamID != "" {
		prev, err := e.services.get(ctx, tenant, id)
		if err != nil && !switchboard.IsCode(err, switchboard.ENOTFOUND) {
			return Service{}, false, err
		}
		ids, err := e.teamMembers(ctx, tenant, teamID)
		if err != nil {
			return Service{}, false, err
		}
		flags, skills := activeFlags(prev.Members), memberSkills(prev.Members)
		for _, m := range members { // flags and skills given now win over the stored ones
			flags[m.UserID] = m.Active
			if m.Skills != nil {
				skills[m.UserID] = m.Skills
			}
		}
		svc.Members = withSkills(teamMemberSet(ids, flags), skills)
		svc.LastTeamSync = now
	}
	// Without If-Match the last writer wins: a concurrent write that got
	// in between the read and the write here is not the caller's concern,
	// so the write is tried again over it.
	for attempt := 1; ; attempt++ {
		stored, created, err := e.services.put(ctx, svc, ifMatch)
		if ifMatch == "" && switchboard.IsCode(err, switchboard.EPRECONDITION) && attempt < maxPutAttempts && ctx.Err() == nil {
			continue
		}
		if err != nil {
			return Service{}, false, err
		}
		return publicService(stored), created, nil
	}
}

// DeleteService removes a service, its members and its round-robin
// position. Holds of its conversations stay until released or expired.
// Returns ENOTFOUND for an unknown service, EPRECONDITION for a stale
// ifMatch.
func (e *Engine) DeleteService(ctx context.Context, tenant, id, ifMatch string) error {
	if err := checkID("routing.DeleteService", "s", id); err != nil {
		return err
	}
	if err := e.services.delete(ctx, tenant, id, ifMatch); err != nil {
		return err
	}
	return e.state.deleteRoundRobin(ctx, tenant, id)
}

// SyncTeam re-reads the members of a team-backed service now. Members who
// stay keep their active flags; new ones are active. Returns ENOTFOUND for
// an unknown service, EINVALID for a service without a team, and the
// team's read error (which is also recorded on the service).
func (e *Engine) SyncTeam(ctx context.Context, tenant, id string) (Service, error) {
	const op = "routing.SyncTeam"
	if err := checkID(op, "s", id); err != nil {
		return Service{}, err
	}
	for attempt := 0; ; attempt++ {
		svc, err := e.services.get(ctx, tenant, id)
		if err != nil {
			return Service{}, err
		}
		if svc.TeamID == "" {
			return Service{}, switchboard.FieldError(op, "teamId", "service %s has no teamId: its members are listed, not synced", id)
		}
		now := wallClock(e.now)
		ids, terr := e.teamMembers(ctx, tenant, svc.TeamID)
		if terr != nil {
			svc.LastTeamSyncError, svc.LastTeamSyncAttempt = switchboard.ErrorMessage(terr), now
			row, derr := e.services.definition(ctx, tenant, id)
			if derr == nil && row.ETag == svc.ETag {
				_, _ = e.services.updateDefinition(ctx, svc, row.version)
			}
			return Service{}, terr
		}
		next := svc
		next.Members = withSkills(teamMemberSet(ids, activeFlags(svc.Members)), memberSkills(svc.Members))
		next.LastTeamSync, next.LastTeamSyncError = now, ""
		if !slices.EqualFunc(next.Members, svc.Members, Member.Equal) {
			next.UpdatedAt = now
		}
		stored, _, err := e.services.put(ctx, next, publicETag(svc.ETag))
		if switchboard.IsCode(err, switchboard.EPRECONDITION) && attempt < 2 {
			continue // changed meanwhile: sync again on the new definition
		}
		return publicService(stored), err
	}
}

func (e *Engine) teamMembers(ctx context.Context, tenant, teamID string) ([]string, error) {
	const op = "routing.TeamMembers"
	if e.teams == nil {
		return nil, &switchboard.Error{Code: switchboard.EUNAVAILABLE, Op: op, Field: "teamId", Message: "Teams sync is not available: Microsoft " +
			"Graph is not configured for this deployment"}
	}
	ids, err := e.teams.TeamMembers(ctx, tenant, teamID)
	if err != nil {
		if switchboard.IsCode(err, switchboard.ENOTFOUND) {
			return nil, switchboard.FieldError(op, "teamId", "there is no Microsoft Teams team %s in this tenant", teamID)
		}
		return nil, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	}
	if len(ids) > MaxMembers {
		return nil, switchboard.FieldError(op, "teamId", "team %s has %d members; a service has at most %d", teamID, len(ids), MaxMembers)
	}
	return ids, nil
}

func activeFlags(members []Member) map[string]bool {
	flags := make(map[string]bool, len(members))
	for _, m := range members {
		flags[m.UserID] = m.Active
	}
	return flags
}

func memberSkills(members []Member) map[string]map[string]int {
	out := make(map[string]map[string]int, len(members))
	for _, m := range members {
		if m.Skills != nil {
			out[m.UserID] = m.Skills
		}
	}
	return out
}

// withSkills gives team members the skills they had (skills are not in the
// team: they are kept across syncs like the active flags).
func withSkills(members []Member, skills map[string]map[string]int) []Member {
	for i := range members {
		members[i].Skills = skills[members[i].UserID]
	}
	return members
}

// teamMemberSet turns a team's member ids into members sorted by user id,
// with the given active flags (true for users not in flags). Ids that are
// not object ids, and duplicates, are dropped.
func teamMemberSet(ids []string, flags map[string]bool) []Member {
	seen := make(map[string]bool, len(ids))
	out := make([]Member, 0, len(ids))
	for _, raw := range ids {
		id, ok := NormalizeUserID(raw)
		if !ok || seen[id] {
			continue
		}
		seen[id] = true
		active, known := flags[id]
		out = append(out, Member{UserID: id, Active: active || !known})
	}
	return sortedMembers(out)
}

// Tenants implements switchboard.TrackedUsers: every tenant with a service.
func (e *Engine) Tenants(ctx context.Context) ([]string, error) {
	rows, err := e.services.list(ctx, "")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range rows {
		if len(out) == 0 || out[len(out)-1] != r.TenantID {
			out = append(out, r.TenantID)
		}
	}
	return out, nil
}

// TrackedUsers implements switchboard.TrackedUsers: the members of all the
// tenant's services (inactive ones too: they may opt in at any time),
// sorted and without duplicates.
func (e *Engine) TrackedUsers(ctx context.Context, tenant string) ([]string, error) {
	rows, err := e.services.list(ctx, tenant)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, r := range rows {
		members, err := e.services.memberSet(ctx, tenant, r.ID, r.version)
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", r.ID, err)
		}
		for _, m := range members {
			if !seen[m.UserID] {
				seen[m.UserID] = true
				out = append(out, m.UserID)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

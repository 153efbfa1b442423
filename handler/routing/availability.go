package routing

import (
	"context"

	"switchboard/handler/switchboard"
)

var _ switchboard.Availability = (*Engine)(nil)

// ServicesAvailability implements switchboard.Availability: every service
// of the tenant with each member's verdict by the routing rules now, as a
// route without a conversation would see it (no hold is taken and no
// round-robin position moves). Members' presence is read in one call for
// all services.
func (e *Engine) ServicesAvailability(ctx context.Context, tenant string) ([]switchboard.ServiceAvailability, error) {
	const op = "routing.ServicesAvailability"
	rows, err := e.services.list(ctx, tenant)
	if err != nil {
		return nil, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	}
	members := make([][]Member, len(rows))
	seen := map[string]bool{}
	var ids []string
	for i, r := range rows {
		members[i], err = e.services.memberSet(ctx, tenant, r.ID, r.version)
		if err != nil {
			return nil, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
		}
		for _, m := range members[i] {
			if !seen[m.UserID] {
				seen[m.UserID] = true
				ids = append(ids, m.UserID)
			}
		}
	}
	now := wallClock(e.now)
	readings, err := e.presence.Readings(ctx, tenant, ids)
	if err != nil {
		return nil, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	}
	states, _, idle, err := e.agents.read(ctx, tenant, now)
	if err != nil {
		return nil, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	}
	out := make([]switchboard.ServiceAvailability, 0, len(rows))
	for i, r := range rows {
		d := Decide(DecideInput{Members: members[i], Presence: readings, States: states, Idle: idle,
			Distribution: r.Distribution, Now: now, StaleAfter: e.staleAfter})
		verdicts := make(map[string]switchboard.MemberAvailability, len(members[i]))
		for _, x := range d.Excluded {
			verdicts[x.UserID] = switchboard.MemberAvailability{UserID: x.UserID, Reason: x.Reason, Message: x.Message, Presence: x.Presence}
		}
		for _, el := range d.Eligible {
			p := el.Presence
			verdicts[el.UserID] = switchboard.MemberAvailability{UserID: el.UserID, Eligible: true, Message: el.Note, Presence: &p}
		}
		sa := switchboard.ServiceAvailability{ServiceID: r.ID, Name: r.Name, Members: make([]switchboard.MemberAvailability, 0, len(members[i]))}
		for _, m := range members[i] {
			sa.Members = append(sa.Members, verdicts[m.UserID])
		}
		out = append(out, sa)
	}
	return out, nil
}

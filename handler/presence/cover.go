package presence

// Choosing whom the presence subscriptions cover (SPEC section 14): the
// agents most recently given a conversation, re-chosen at most every
// ChooseEvery, spread over the working accounts.

import (
	"context"
	"slices"
	"sort"
	"time"

	"switchboard/handler/switchboard"
)

// targets returns the users each live account's subscription covers. A
// new choice is made at most every ChooseEvery; in between, the sets stay
// as they are, and a set whose account stopped working moves to a live
// account that has none (or its users go back to polling).
func (s *Subscriber) targets(
	ctx context.Context,
	tenant string,
	subs map[switchboard.PresenceSource]subState,
	live []switchboard.PresenceSource,
	now time.Time,
) (map[switchboard.PresenceSource][]string, time.Time, error) {
	var lastChosen time.Time
	for _, sub := range subs {
		if sub.ChosenAt.After(lastChosen) && len(sub.Users) > 0 {
			lastChosen = sub.ChosenAt
		}
	}
	out := map[switchboard.PresenceSource][]string{}
	if !lastChosen.IsZero() && now.Sub(lastChosen) < s.o.ChooseEvery {
		// Trusted rows first, so that users a returning account still
		// lists, but which moved to the other account meanwhile, stay
		// where they are (a user is covered once).
		order := slices.Clone(s.accounts())
		sort.SliceStable(order, func(i, j int) bool { return subs[order[i]].trusted(now) && !subs[order[j]].trusted(now) })
		placed := map[string]bool{}
		var orphans [][]string
		for _, src := range order {
			sub, ok := subs[src]
			if !ok || len(sub.Users) == 0 {
				continue
			}
			var keep []string
			for _, u := range sub.Users {
				if !placed[u] {
					keep = append(keep, u)
					placed[u] = true
				}
			}
			switch {
			case len(keep) == 0:
			case slices.Contains(live, src):
				out[src] = keep
			default:
				orphans = append(orphans, keep)
			}
		}
		for _, src := range live {
			if _, has := out[src]; !has && len(orphans) > 0 {
				out[src], orphans = orphans[0], orphans[1:]
			}
		}
		return out, lastChosen, nil
	}
	users, err := s.o.Tracked.TrackedUsers(ctx, tenant)
	if err != nil {
		return nil, time.Time{}, switchboard.Wrap(switchboard.EUNAVAILABLE, "presence.Subscriber", err)
	}
	var last map[string]time.Time
	if s.o.Recent != nil {
		if last, err = s.o.Recent.LastRouted(ctx, tenant); err != nil {
			s.o.Log.Warn("presence subscriptions: routing activity unreadable; choosing by user id", "tenant", tenant, "err", err)
			last = nil
		}
	}
	chosen := ChooseCovered(users, last, len(live)*s.o.MaxUsers)
	return splitCovered(chosen, live, subs, s.o.MaxUsers), now, nil
}

// splitCovered spreads the chosen users over the live accounts, at most
// max each: an account keeps those of its current users that are still
// chosen (so that an unchanged set is only renewed, not re-created), and
// the rest fill the accounts in order.
func splitCovered(
	chosen []string,
	live []switchboard.PresenceSource,
	subs map[switchboard.PresenceSource]subState,
	maxUsers int,
) map[switchboard.PresenceSource][]string {
	out := map[switchboard.PresenceSource][]string{}
	placed := map[string]bool{}
	in := map[string]bool{}
	for _, u := range chosen {
		in[u] = true
	}
	for _, src := range live {
		for _, u := range subs[src].Users {
			if in[u] && !placed[u] && len(out[src]) < maxUsers {
				out[src] = append(out[src], u)
				placed[u] = true
			}
		}
	}
	for _, u := range chosen {
		if placed[u] {
			continue
		}
		for _, src := range live {
			if len(out[src]) < maxUsers {
				out[src] = append(out[src], u)
				placed[u] = true
				break
			}
		}
	}
	for src := range out {
		slices.Sort(out[src])
	}
	return out
}

// ChooseCovered returns the n users a tenant's subscriptions cover: those
// most recently given a conversation first, then by user id ascending.
func ChooseCovered(users []string, lastRouted map[string]time.Time, n int) []string {
	valid := make([]string, 0, len(users))
	for _, u := range users {
		if validUserID(u) {
			valid = append(valid, u)
		}
	}
	slices.Sort(valid)
	valid = slices.Compact(valid)
	sort.SliceStable(valid, func(i, j int) bool {
		a, b := lastRouted[valid[i]], lastRouted[valid[j]]
		return a.After(b)
	})
	return valid[:min(n, len(valid))]
}

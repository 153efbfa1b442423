package routing

import (
	"cmp"
	"slices"
	"sort"
	"time"

	"switchboard/handler/switchboard"
)

// DecideInput is everything one routing decision depends on.
type DecideInput struct {
	// Members of the service, sorted by user id.
	Members []Member
	// Preferred users are offered first, in this order, when eligible; one
	// who is not a member is excluded with NotMember.
	Preferred []string
	// Presence readings by user id; a user without one has never been read.
	Presence map[string]switchboard.Presence
	// States of the tenant's agents by user id: those who hold (or held)
	// a conversation. An agent absent here and from Idle was never routed.
	States map[string]AgentState
	// Idle is the idle ledger: when each agent's last conversation ended.
	// It adds to States (the later time counts) and is only read.
	Idle map[string]time.Time
	// ConversationID is the conversation being routed: a hold on it (left
	// by an earlier attempt for the same conversation) does not exclude.
	ConversationID string
	Distribution   Distribution
	// RequiredSkills exclude members below a level (SkillMismatch).
	RequiredSkills []switchboard.Skill
	// Skip lists users not to rank although eligible (they declined the
	// conversation); they come last among the ranked.
	Skip []string
	// Only, when not empty, lists the users that may be ranked: the other
	// eligible users are skipped, as those of Skip are.
	Only []string
	// RoundRobinLast is the member the service's round robin chose last.
	RoundRobinLast string
	Now            time.Time
	StaleAfter     time.Duration
}

// Ranked is an eligible member, with what its ranking used.
type Ranked struct {
	UserID    string
	Presence  switchboard.Presence
	IdleSince time.Time
	Note      string // the verdict's caveat, if any
}

// Decision is the pure part of a route: the eligible members in the order
// they should be offered the conversation, and everyone else with a reason.
type Decision struct {
	Eligible []Ranked
	Excluded []switchboard.Exclusion
	// Skipped are eligible members the request asked not to choose.
	Skipped []Ranked
}

// Decide evaluates every member (and every preferred user) and ranks the
// eligible ones. Exclusions come in member order, preferred non-members
// first.
func Decide(in DecideInput) Decision {
	var d Decision
	memberIdx := make(map[string]int, len(in.Members))
	for i, m := range in.Members {
		memberIdx[m.UserID] = i
	}
	seen := map[string]bool{}
	var preferred []string
	for _, u := range in.Preferred {
		if seen[u] {
			continue
		}
		seen[u] = true
		if _, ok := memberIdx[u]; !ok {
			d.Excluded = append(d.Excluded, exclusion(u, Evaluate(nil, nil, AgentState{}, in.Distribution, in.Now, in.StaleAfter), nil))
			continue
		}
		preferred = append(preferred, u)
	}
	for i := range in.Members {
		m := &in.Members[i]
		var p *switchboard.Presence
		if r, ok := in.Presence[m.UserID]; ok {
			p = &r
		}
		st := in.States[m.UserID]
		if t, ok := in.Idle[m.UserID]; ok && t.After(st.IdleSince) {
			st.IdleSince = t
		}
		if st.ConversationID != "" && st.ConversationID == in.ConversationID && st.Kind == switchboard.HoldConversation {
			st.ConversationID = ""
		}
		v := EvaluateSkills(m, p, st, in.RequiredSkills, in.Distribution, in.Now, in.StaleAfter)
		if !v.Eligible {
			d.Excluded = append(d.Excluded, exclusion(m.UserID, v, p))
			continue
		}
		d.Eligible = append(d.Eligible, Ranked{UserID: m.UserID, Presence: *p, IdleSince: st.IdleSince, Note: v.Message})
	}
	d.Eligible = Rank(in.Distribution.Order, d.Eligible, preferred, in.RoundRobinLast)
	if len(in.Skip) > 0 || len(in.Only) > 0 {
		skip := make(map[string]bool, len(in.Skip))
		for _, u := range in.Skip {
			skip[u] = true
		}
		if len(in.Only) > 0 {
			only := make(map[string]bool, len(in.Only))
			for _, u := range in.Only {
				only[u] = true
			}
			for _, r := range d.Eligible {
				if !only[r.UserID] {
					skip[r.UserID] = true
				}
			}
		}
		d.Eligible, d.Skipped = partition(d.Eligible, skip)
	}
	return d
}

// partition splits ranked members into those not in skip and those in it,
// each in rank order.
func partition(r []Ranked, skip map[string]bool) (keep, skipped []Ranked) {
	for _, x := range r {
		if skip[x.UserID] {
			skipped = append(skipped, x)
		} else {
			keep = append(keep, x)
		}
	}
	return keep, skipped
}

func exclusion(user string, v Verdict, p *switchboard.Presence) switchboard.Exclusion {
	x := switchboard.Exclusion{UserID: user, Reason: v.Reason, Message: v.Message}
	if p != nil {
		c := *p
		x.Presence = &c
	}
	return x
}

// Rank orders eligible members for the service's order, the preferred ones
// (those of them that are eligible) first in the order given.
func Rank(order string, eligible []Ranked, preferred []string, roundRobinLast string) []Ranked {
	switch order {
	case OrderRoundRobin:
		RankRoundRobin(eligible, roundRobinLast)
	default: // LongestIdle, and Broadcast (the N longest idle)
		RankLongestIdle(eligible)
	}
	if len(preferred) == 0 {
		return eligible
	}
	pos := make(map[string]int, len(preferred))
	for i, u := range preferred {
		pos[u] = i
	}
	sort.SliceStable(eligible, func(i, j int) bool {
		pi, iok := pos[eligible[i].UserID]
		pj, jok := pos[eligible[j].UserID]
		switch {
		case iok && jok:
			return pi < pj
		default:
			return iok && !jok
		}
	})
	return eligible
}

// RankLongestIdle puts the agent idle longest first: the earliest end of a
// last routed conversation. Agents never routed have been idle longest of
// all and come first; ties go by user id, so the order is stable.
func RankLongestIdle(r []Ranked) {
	slices.SortFunc(r, func(a, b Ranked) int {
		if c := a.IdleSince.Compare(b.IdleSince); c != 0 {
			return c
		}
		return cmp.Compare(a.UserID, b.UserID)
	})
}

// RankRoundRobin orders by user id starting after last, the member chosen
// last, and wrapping around: each member gets its turn whatever joins or
// leaves in between. An empty last starts at the beginning.
func RankRoundRobin(r []Ranked, last string) {
	slices.SortFunc(r, func(a, b Ranked) int { return cmp.Compare(a.UserID, b.UserID) })
	start, _ := slices.BinarySearchFunc(r, last, func(x Ranked, t string) int {
		if x.UserID <= t {
			return -1
		}
		return 1
	})
	if start == 0 || start == len(r) {
		return
	}
	rotated := append(slices.Clone(r[start:]), r[:start]...)
	copy(r, rotated)
}

package distribution

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"switchboard/handler/routing"
	sb "switchboard/handler/switchboard"
)

// hookedAgents is the routing engine with a hook run before each offer's
// route: what another instance, or storage slow to answer, lets happen
// between a pass's matching and the offer it makes.
type hookedAgents struct {
	*routing.Engine
	before func(req sb.RouteRequest)
}

func (h hookedAgents) Route(ctx context.Context, tenant, service string, req sb.RouteRequest) (sb.RouteDecision, error) {
	if req.Reserve && h.before != nil {
		h.before(req)
	}
	return h.Engine.Route(ctx, tenant, service, req)
}

// A pass matched x (priority 10) with user(1), the one free agent; y
// (priority 90, german) waited for user(2), the german agent, then busy.
// By the time x's offer runs, user(1) is gone and user(2) is free: x must
// not take user(2) (an agent freed after the pass's reading belongs to
// the first item in the order that can take it), and the pass reads again
// at once, so y gets user(2) without waiting for another event.
func TestLateOfferTakesNoAgentFreedSinceTheReading(t *testing.T) {
	f := newFixture(t)
	f.service("support", 2, routing.DistributionInput{}, map[int]map[string]int{2: {"german": 3}})
	f.presence.set(user(1), sb.Busy)
	f.presence.set(user(2), sb.Busy)
	f.enqueue("support", "y", EnqueueInput{Priority: ptr(90), RequiredSkills: []sb.Skill{{Name: "german", MinLevel: 2}}})
	f.enqueue("support", "x", EnqueueInput{Priority: ptr(10)})

	var once sync.Once
	agents := hookedAgents{Engine: f.engine, before: func(req sb.RouteRequest) {
		if req.ConversationID == "x" {
			once.Do(func() {
				f.presence.set(user(1), sb.Busy)      // taken meanwhile
				f.presence.set(user(2), sb.Available) // freed meanwhile, not yet announced
			})
		}
	}}
	svc := f.serviceOn(agents)
	f.presence.set(user(1), sb.Available)
	svc.PresenceChanged(ctx, tenant, []sb.Presence{{UserID: user(1), Availability: sb.Available}})
	svc.Wait()
	if x, y := ringing(f.get("x")), ringing(f.get("y")); len(x) != 0 || !slices.Equal(y, []string{user(2)}) {
		t.Fatalf("x rings %v, y rings %v; want x waiting (its agent was gone) and y offered to %s, freed after the pass's reading",
			x, y, user(2))
	}
}

// An outbound task takes the agent the pass matched it with, not the one
// it would choose itself: de (priority 90, german) comes first and only
// user(1) speaks german; the task (priority 50) prefers user(1), so on its
// own it would take user(1) whenever its assignment ran first, and de would
// wait with user(2) free. Here the task's assignment runs first.
func TestOutboundTaskTakesTheAgentThePassMatched(t *testing.T) {
	f := newFixture(t)
	f.service("support", 2, routing.DistributionInput{}, map[int]map[string]int{1: {"german": 3}})
	f.presence.set(user(1), sb.Busy)
	f.presence.set(user(2), sb.Busy)
	f.enqueue("support", "de", EnqueueInput{Priority: ptr(90), RequiredSkills: []sb.Skill{{Name: "german", MinLevel: 2}}})
	f.outbound.waiting["support"] = []WaitingTask{{ID: "t-1", Priority: 50, QueuedAt: t0, PreferredUsers: []string{user(1)}}}
	assigned := make(chan string, 1)
	f.outbound.assign = func(service, task string, prefer, only []string) string {
		// As the outbound service does (outbound.assign).
		d, err := f.engine.Route(ctx, tenant, service, sb.RouteRequest{ConversationID: "task:" + task + ":1", Reserve: true, UntilReleased: true,
			PreferredUsers: append(slices.Clone(prefer), user(1)), Only: only, MaxAgents: 1})
		agent := ""
		if err == nil && len(d.Agents) > 0 {
			agent = d.Agents[0].UserID
		}
		assigned <- agent
		return agent
	}
	agents := hookedAgents{Engine: f.engine, before: func(req sb.RouteRequest) {
		if req.ConversationID == "de" {
			select { // the task's assignment first
			case a := <-assigned:
				assigned <- a
			case <-time.After(5 * time.Second):
				t.Error("the task was not assigned within 5 s")
			}
		}
	}}
	svc := f.serviceOn(agents)
	f.presence.set(user(1), sb.Available)
	f.presence.set(user(2), sb.Available)
	svc.PresenceChanged(ctx, tenant, []sb.Presence{{UserID: user(1), Availability: sb.Available}, {UserID: user(2), Availability: sb.Available}})
	svc.Wait()
	if task, de := <-assigned, ringing(f.get("de")); task != user(2) || !slices.Equal(de, []string{user(1)}) {
		t.Fatalf("task assigned to %q, de rings %v; want the task on %s and de on %s (the one german agent, matched first)", task, de, user(2), user(1))
	}
}

package outbound_test

// Outbound tasks in distribution's line (SPEC section 10), with the real
// routing engine, distribution and outbound services on the same tables
// and one queue: a freed agent is given the service's next item, inbound
// or outbound, at once, with no worker retry involved.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"switchboard/handler/distribution"
	"switchboard/handler/internal/fakeclock"
	"switchboard/handler/internal/fakes"
	"switchboard/handler/outbound"
	"switchboard/handler/routing"
	"switchboard/handler/store"
	sb "switchboard/handler/switchboard"
)

const (
	lineTenant  = "5b6c7d8e-0000-4000-8000-0000000000a1"
	lineService = "support"
	tasksQueue  = "outbound-tasks"
	distQueue   = "distribution"
)

func lineUser(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

type capOf20 struct{}

func (capOf20) MaxScheduledTasksPerService(context.Context, string) (int, error) { return 20, nil }

// line is one handler instance's routing, distribution and outbound over
// memory tables, with a queue delivered only when a test asks.
type line struct {
	t        *testing.T
	clock    *fakeclock.Clock
	presence *fakes.PresenceStore
	queue    *fakes.Queue
	engine   *routing.Engine
	dist     *distribution.Service
	out      *outbound.Service
}

// newLine starts the three services with a service of n Available members.
func newLine(t *testing.T, n int, d sb.DistributionInput) *line {
	t.Helper()
	ctx := context.Background()
	l := &line{t: t, clock: fakeclock.New(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))}
	l.presence = fakes.NewPresenceStore(lineTenant, l.clock.Now)
	l.queue = fakes.NewQueue(l.clock.Now)
	tables := store.NewMemoryTables()
	var err error
	l.engine, err = routing.New(ctx, routing.Options{
		Tables: tables, Presence: l.presence, StaleAfter: 120 * time.Second, Now: l.clock.Now, StateRefresh: -1,
		// As the handler wires them: a release frees agents, a route API
		// hold that runs out is a due time.
		Freed: func(tenant string, users []string) { l.dist.Kick(tenant, nil, users) },
		Expiring: func(tenant, conv string, users []string, expires time.Time) {
			l.dist.HoldExpires(tenant, conv, users, expires)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	l.out, err = outbound.New(ctx, outbound.Options{
		Tables: tables, Queue: l.queue, QueueName: tasksQueue, Router: l.engine, Limits: capOf20{}, Now: l.clock.Now, ServedByLine: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	l.dist, err = distribution.New(ctx, distribution.Options{
		Tables: tables, Agents: l.engine, Presence: l.presence, Outbound: l.out, Queue: l.queue, QueueName: distQueue, Now: l.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.dist.Wait)
	name := "Support"
	in := sb.ServiceInput{Name: &name, Distribution: d}
	for i := 1; i <= n; i++ {
		in.Members = append(in.Members, sb.MemberInput{UserID: lineUser(i)})
		l.presence.Set(lineUser(i), sb.Available, sb.ActivityAvailable)
	}
	if _, _, err := l.engine.PutService(ctx, lineTenant, lineService, in, ""); err != nil {
		t.Fatal(err)
	}
	return l
}

// deliver hands every message due now to its function, as the queue
// would, until none is left, and waits for the passes they started.
func (l *line) deliver() {
	l.t.Helper()
	for {
		due := l.queue.Due(l.clock.Now())
		if len(due) == 0 {
			return
		}
		for _, m := range due {
			var err error
			switch m.Queue {
			case tasksQueue:
				_, err = l.out.Handle(context.Background(), m.Msg.Body)
			case distQueue:
				_, err = l.dist.Handle(context.Background(), m.Msg.Body)
			default:
				l.t.Fatalf("message on queue %q", m.Queue)
			}
			if err != nil {
				l.t.Fatalf("%s: %v", m.Queue, err)
			}
		}
		l.dist.Wait()
	}
}

// schedule creates a task due now (priority p, 0: default) and delivers
// its message.
func (l *line) schedule(ref string, p int) outbound.Task {
	l.t.Helper()
	n := outbound.NewTask{Destination: "+41440000000", ReferenceID: ref}
	if p > 0 {
		n.Priority = &p
	}
	tk, _, err := l.out.Schedule(context.Background(), lineTenant, lineService, n)
	if err != nil {
		l.t.Fatal(err)
	}
	l.deliver()
	return l.task(tk.ID)
}

func (l *line) task(id string) outbound.Task {
	l.t.Helper()
	tk, err := l.out.Get(context.Background(), lineTenant, lineService, id)
	if err != nil {
		l.t.Fatal(err)
	}
	return tk
}

// complete completes an InProgress task and waits for the pass it starts.
func (l *line) complete(id string) {
	l.t.Helper()
	if _, err := l.out.Complete(context.Background(), lineTenant, lineService, id, outbound.Completion{Outcome: outbound.OutcomeCompleted}); err != nil {
		l.t.Fatalf("complete %s: %v", id, err)
	}
	l.dist.Wait()
}

func (l *line) enqueue(id string, p int) {
	l.t.Helper()
	if _, _, err := l.dist.Enqueue(context.Background(), lineTenant, lineService, sb.EnqueueInput{ConversationID: id, Priority: &p}); err != nil {
		l.t.Fatal(err)
	}
	l.dist.Wait()
}

func (l *line) conversation(id string) distribution.Conversation {
	l.t.Helper()
	c, err := l.dist.Get(context.Background(), lineTenant, id)
	if err != nil {
		l.t.Fatal(err)
	}
	return c.Conversation
}

// ringingAt returns the agent conversation id rings at ("" when none).
func (l *line) ringingAt(id string) string {
	l.t.Helper()
	r := l.conversation(id).Ringing()
	if len(r) != 1 {
		return ""
	}
	return r[0].UserID
}

// wantAssigned fails unless task id is InProgress with agent.
func (l *line) wantAssigned(id, agent, why string) {
	l.t.Helper()
	if tk := l.task(id); tk.State != outbound.StateInProgress || tk.Agent != agent {
		l.t.Fatalf("%s: task %s is %s with %q, want InProgress with %s", why, id, tk.State, tk.Agent, agent)
	}
}

// wantWaiting fails unless task id waits without an agent.
func (l *line) wantWaiting(id, why string) {
	l.t.Helper()
	if tk := l.task(id); tk.State != outbound.StateQueued || tk.Agent != "" {
		l.t.Fatalf("%s: task %s is %s with %q, want Queued", why, id, tk.State, tk.Agent)
	}
}

// The defect this line fixes: complete freed the agent but never told
// distribution, so the waiting task got it only at the worker's next retry.
func TestCompleteGivesTheAgentToTheWaitingTaskAtOnce(t *testing.T) {
	l := newLine(t, 1, sb.DistributionInput{})
	a := l.schedule("a", 0)
	l.wantAssigned(a.ID, lineUser(1), "the only agent free")
	b := l.schedule("b", 0)
	l.wantWaiting(b.ID, "the only agent has task a")
	// The worker does not try b again before its queue time runs out: its
	// only message left is at b's deadline, to expire it.
	var tries []time.Time
	for _, m := range l.queue.Messages() {
		if m.Queue == tasksQueue && m.Delivered == 0 && !m.Cancelled {
			tries = append(tries, m.Msg.ScheduledAt)
		}
	}
	if !slices.Equal(tries, []time.Time{b.Deadline}) {
		t.Fatalf("worker messages pending %v, want one at b's deadline %v", tries, b.Deadline)
	}

	l.complete(a.ID) // no message delivered, no clock moved
	l.wantAssigned(b.ID, lineUser(1), "after a was completed")
}

// An agent a route API conversation held is released: the router tells
// distribution, and the waiting task gets the agent at once.
func TestRouteReleaseGivesTheAgentToTheWaitingTask(t *testing.T) {
	l := newLine(t, 1, sb.DistributionInput{})
	ctx := context.Background()
	d, err := l.engine.Route(ctx, lineTenant, lineService, sb.RouteRequest{ConversationID: "own-queue-1", Reserve: true, UntilReleased: true})
	if err != nil || len(d.Agents) != 1 {
		t.Fatalf("route: %+v %v, want the agent held", d, err)
	}
	tk := l.schedule("t", 0)
	l.wantWaiting(tk.ID, "the agent is held by a route API conversation")
	if err := l.engine.Release(ctx, lineTenant, "own-queue-1"); err != nil {
		t.Fatal(err)
	}
	l.dist.Wait()
	l.wantAssigned(tk.ID, lineUser(1), "after the route API conversation was released")
}

// A failed attempt frees its agent too: the next waiting task comes first
// (the failed task queues again behind it, with a fresh queue time).
func TestFailedAttemptGivesTheAgentToTheNextTask(t *testing.T) {
	l := newLine(t, 1, sb.DistributionInput{})
	two := 2
	created, _, err := l.out.Schedule(context.Background(), lineTenant, lineService, outbound.NewTask{Destination: "+41440000000", MaxAttempts: &two})
	if err != nil {
		t.Fatal(err)
	}
	l.deliver()
	a := l.task(created.ID)
	l.wantAssigned(a.ID, lineUser(1), "the only agent free")
	b := l.schedule("b", 0)
	l.clock.Advance(time.Second)
	if _, err := l.out.Complete(context.Background(), lineTenant, lineService, a.ID, outbound.Completion{Outcome: outbound.OutcomeFailed}); err != nil {
		t.Fatal(err)
	}
	l.dist.Wait()
	l.wantAssigned(b.ID, lineUser(1), "after a's attempt failed") // before a's requeue message
	l.deliver()                                                   // a's requeue message: nobody is free for it
	l.wantWaiting(a.ID, "a queued again behind b")
}

// A freed agent gets the service's next item by priority, then waiting
// time, whether it is a conversation (offered) or a task (assigned).
func TestFreedAgentTakesTheNextItemAcrossConversationsAndTasks(t *testing.T) {
	l := newLine(t, 1, sb.DistributionInput{})
	agent := lineUser(1)
	first := l.schedule("first", 0)
	l.wantAssigned(first.ID, agent, "the only agent free")
	l.clock.Advance(time.Second)
	l.enqueue("c-low", 20)
	l.clock.Advance(time.Second)
	high := l.schedule("high", 60)
	l.clock.Advance(time.Second)
	l.enqueue("c-mid", 50)
	l.clock.Advance(time.Second)
	mid := l.schedule("mid", 50)
	l.wantWaiting(high.ID, "the agent is busy")
	l.wantWaiting(mid.ID, "the agent is busy")

	l.complete(first.ID)
	l.wantAssigned(high.ID, agent, "priority 60 first")
	if r := l.ringingAt("c-mid"); r != "" {
		t.Fatalf("c-mid rings at %s while its agent has a task", r)
	}

	l.complete(high.ID)
	if r := l.ringingAt("c-mid"); r != agent {
		t.Fatalf("after the priority-60 task: c-mid rings at %q, want %s (priority 50, waiting longer than task mid)", r, agent)
	}
	l.wantWaiting(mid.ID, "the agent has an offer ringing")

	ctx := context.Background()
	if _, err := l.dist.Accept(ctx, lineTenant, "c-mid", agent); err != nil {
		t.Fatal(err)
	}
	if _, err := l.dist.End(ctx, lineTenant, "c-mid"); err != nil {
		t.Fatal(err)
	}
	l.dist.Wait()
	l.wantAssigned(mid.ID, agent, "after the conversation was released")
	if c := l.conversation("c-low"); c.State != distribution.StateQueued || len(c.Ringing()) > 0 {
		t.Fatalf("c-low %s with offers %v, want waiting", c.State, c.Offers)
	}

	l.complete(mid.ID)
	if r := l.ringingAt("c-low"); r != agent {
		t.Fatalf("last: c-low rings at %q, want %s", r, agent)
	}
}

// Outbound tasks are assigned without an offer, but never to an agent in
// RONA, in after-call work or with an offer ringing; each of those agents
// gets the waiting task as soon as it is free.
func TestOutboundRespectsRonaAfterCallWorkAndRingingOffers(t *testing.T) {
	ring, acw := 5, 60
	l := newLine(t, 3, sb.DistributionInput{RingSeconds: &ring, AfterCallWorkSeconds: &acw})
	ctx := context.Background()

	l.enqueue("c-1", 50)
	rona := l.ringingAt("c-1")
	l.clock.Advance(time.Duration(ring+1) * time.Second)
	l.deliver() // the offer lapses: its agent is in RONA, c-1 goes on
	ringing := l.ringingAt("c-1")
	if rona == "" || ringing == "" || ringing == rona {
		t.Fatalf("c-1 offered to %q, then %q: want two agents", rona, ringing)
	}
	l.enqueue("c-2", 50)
	inACW := l.ringingAt("c-2")
	if inACW == "" || inACW == rona || inACW == ringing {
		t.Fatalf("c-2 offered to %q, want the third agent", inACW)
	}
	if _, err := l.dist.Accept(ctx, lineTenant, "c-2", inACW); err != nil {
		t.Fatal(err)
	}
	if _, err := l.dist.End(ctx, lineTenant, "c-2"); err != nil {
		t.Fatal(err)
	}
	l.dist.Wait()

	// One agent each in RONA, ringing, after-call work: nobody takes a task.
	for i, why := range map[string]string{rona: sb.ReasonRona, ringing: sb.ReasonOfferPending, inACW: sb.ReasonAfterCallWork} {
		d, err := l.engine.Route(ctx, lineTenant, lineService, sb.RouteRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if j := slices.IndexFunc(d.Excluded, func(x sb.Exclusion) bool { return x.UserID == i }); j < 0 || d.Excluded[j].Reason != why {
			t.Fatalf("agent %s: route exclusions %+v, want %s", i, d.Excluded, why)
		}
	}
	t1 := l.schedule("t1", 0)
	l.wantWaiting(t1.ID, "every agent in RONA, ringing or in after-call work")

	if err := l.dist.EndAfterCallWork(ctx, lineTenant, inACW); err != nil {
		t.Fatal(err)
	}
	l.dist.Wait()
	l.wantAssigned(t1.ID, inACW, "after-call work ended")

	t2 := l.schedule("t2", 0)
	l.wantWaiting(t2.ID, "RONA and a ringing offer")
	if err := l.dist.ResetRona(ctx, lineTenant, rona); err != nil {
		t.Fatal(err)
	}
	l.dist.Wait()
	l.wantAssigned(t2.ID, rona, "RONA reset")

	t3 := l.schedule("t3", 0)
	l.wantWaiting(t3.ID, "the last free agent's offer rings")
	if _, err := l.dist.Decline(ctx, lineTenant, "c-1", ringing); err != nil {
		t.Fatal(err)
	}
	l.dist.Wait()
	l.wantAssigned(t3.ID, ringing, "the offer was declined")
	if c := l.conversation("c-1"); c.State != distribution.StateQueued {
		t.Fatalf("c-1 is %s, want Queued (nobody else free)", c.State)
	}
}

// Recovery: a task whose message was lost, in a line whose agent was freed
// without distribution being told (a process that died before its pass, a
// presence change nobody reported), is assigned by distribution's
// housekeeping, as is a waiting conversation.
func TestHousekeepingServesTheLineWhenNobodyWasTold(t *testing.T) {
	l := newLine(t, 2, sb.DistributionInput{})
	for i := 1; i <= 2; i++ {
		l.presence.Set(lineUser(i), sb.Busy, sb.ActivityInACall)
	}
	p := 60
	tk, _, err := l.out.Schedule(context.Background(), lineTenant, lineService, outbound.NewTask{Destination: "+41440000000", Priority: &p})
	if err != nil {
		t.Fatal(err)
	}
	if lost := l.queue.Due(l.clock.Now()); len(lost) != 1 {
		t.Fatalf("%d messages due, want the task's one (lost here)", len(lost))
	}
	l.enqueue("c-1", 50)
	for i := 1; i <= 2; i++ {
		l.presence.Set(lineUser(i), sb.Available, sb.ActivityAvailable) // nobody is told
	}
	l.clock.Advance(time.Second)
	if got := l.task(tk.ID); got.State != outbound.StateScheduled || got.Agent != "" {
		t.Fatalf("before housekeeping: %s with %q, want still Scheduled", got.State, got.Agent)
	}

	rep, err := l.dist.Housekeep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	l.dist.Wait()
	if rep.Served != 1 {
		t.Errorf("report %s, want 1 line served", rep)
	}
	got := l.task(tk.ID)
	if got.State != outbound.StateInProgress || got.Agent == "" {
		t.Fatalf("after housekeeping: task %s with %q, want InProgress", got.State, got.Agent)
	}
	if r := l.ringingAt("c-1"); r == "" || r == got.Agent {
		t.Fatalf("c-1 rings at %q, want the other agent than the task's %s", r, got.Agent)
	}
	if rep, _ := l.dist.Housekeep(context.Background()); rep.Served != 0 {
		t.Errorf("second run: %s, want no line served (nothing waits)", rep)
	}
}

// A route API hold (holdSeconds) that runs out frees its agent: the
// waiting task gets it at the hold's end (distribution's due-time
// message), not at the next housekeeping tick nor the task's expiry.
func TestRouteHoldThatRunsOutGivesTheAgentToTheWaitingTask(t *testing.T) {
	l := newLine(t, 1, sb.DistributionInput{})
	d, err := l.engine.Route(context.Background(), lineTenant, lineService, sb.RouteRequest{ConversationID: "own-queue-1", Reserve: true, Hold: 20 * time.Second})
	if err != nil || len(d.Agents) != 1 {
		t.Fatalf("route: %+v %v, want the agent held", d, err)
	}
	l.dist.Wait()
	tk := l.schedule("t", 0)
	l.wantWaiting(tk.ID, "the agent is held by a route API conversation")
	l.clock.Advance(19 * time.Second)
	l.deliver()
	l.wantWaiting(tk.ID, "1 s before the hold ends")
	l.clock.Advance(time.Second)
	l.deliver()
	l.wantAssigned(tk.ID, lineUser(1), "at the end of the route API hold")
}

// A waiting task's preferredUsers reach the line (Waiting) and rank first
// there as in assignment (SPEC section 10: agents are "chosen as section
// 4 ranks them (preferredUsers first)"): of the agents free at once the
// preferred one gets the task; when no preferred agent is free, a freed
// agent who is not preferred gets it at once (preferred users order, they
// never hold a task back).
func TestPreferredUsersRankFirstInTheLine(t *testing.T) {
	l := newLine(t, 3, sb.DistributionInput{})
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		l.presence.Set(lineUser(i), sb.Busy, sb.ActivityInACall)
	}
	n := outbound.NewTask{Destination: "+41440000000", ReferenceID: "pref", PreferredUsers: []string{lineUser(2)}}
	created, _, err := l.out.Schedule(ctx, lineTenant, lineService, n)
	if err != nil {
		t.Fatal(err)
	}
	l.deliver()
	l.wantWaiting(created.ID, "every agent in a call")
	waiting, err := l.out.Waiting(ctx, lineTenant, lineService)
	if err != nil || len(waiting) != 1 || !slices.Equal(waiting[0].PreferredUsers, []string{lineUser(2)}) {
		t.Fatalf("Waiting: %+v %v, want the task with its preferred user", waiting, err)
	}
	// A PATCH of preferredUsers reaches the line too.
	patch := func(users ...string) {
		t.Helper()
		raw, _ := json.Marshal(map[string]any{"preferredUsers": users})
		if _, err := l.out.Update(ctx, lineTenant, lineService, created.ID, sb.OutboundTaskPatch{Merge: raw}); err != nil {
			t.Fatal(err)
		}
		w, err := l.out.Waiting(ctx, lineTenant, lineService)
		if err != nil || len(w) != 1 || !slices.Equal(w[0].PreferredUsers, users) {
			t.Fatalf("Waiting after the patch: %+v %v, want preferred %v", w, err, users)
		}
	}
	patch(lineUser(3))
	patch(lineUser(2))

	// Users 1 and 2 come out of their calls together: user 1 ranks first
	// without a preference, the preferred user 2 gets the task.
	var back []sb.Presence
	for _, i := range []int{1, 2} {
		l.presence.Set(lineUser(i), sb.Available, sb.ActivityAvailable)
		back = append(back, sb.Presence{UserID: lineUser(i), Availability: sb.Available, Activity: sb.ActivityAvailable})
	}
	if d, err := l.engine.Route(ctx, lineTenant, lineService, sb.RouteRequest{MaxAgents: 1}); err != nil || len(d.Agents) != 1 || d.Agents[0].UserID != lineUser(1) {
		t.Fatalf("dry route without a preference: %+v %v, want user 1 first", d.Agents, err)
	}
	l.dist.PresenceChanged(ctx, lineTenant, back)
	l.dist.Wait()
	l.wantAssigned(created.ID, lineUser(2), "the preferred agent among the free ones")

	// The next task prefers user 3, still in a call; user 1 goes into a
	// call. Freed by the first task's completion, user 2 (not preferred)
	// gets it at once.
	l.presence.Set(lineUser(1), sb.Busy, sb.ActivityInACall)
	n = outbound.NewTask{Destination: "+41440000001", ReferenceID: "pref-2", PreferredUsers: []string{lineUser(3)}}
	second, _, err := l.out.Schedule(ctx, lineTenant, lineService, n)
	if err != nil {
		t.Fatal(err)
	}
	l.deliver()
	l.wantWaiting(second.ID, "the preferred agent in a call, the others busy")
	l.complete(created.ID)
	l.wantAssigned(second.ID, lineUser(2), "no preferred agent free: the freed one")
}

// AssignWaiting, as a distribution pass calls it, tries the agents the
// pass matched the task with first (prefer), before the task's own
// preferred users, and takes only agents the pass allows (only: those it
// saw free and gave no item ahead).
func TestAssignWaitingTakesThePassesAgents(t *testing.T) {
	l := newLine(t, 3, sb.DistributionInput{})
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		l.presence.Set(lineUser(i), sb.Busy, sb.ActivityInACall)
	}
	var ids []string
	for _, ref := range []string{"a", "b"} {
		n := outbound.NewTask{Destination: "+41440000000", ReferenceID: ref, PreferredUsers: []string{lineUser(1)}}
		created, _, err := l.out.Schedule(ctx, lineTenant, lineService, n)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, created.ID)
	}
	l.deliver()
	for i := 1; i <= 3; i++ { // free, with nobody told: nothing assigns by itself
		l.presence.Set(lineUser(i), sb.Available, sb.ActivityAvailable)
	}
	if agent, err := l.out.AssignWaiting(ctx, lineTenant, lineService, ids[0], []string{lineUser(3)}, nil); err != nil || agent != lineUser(3) {
		t.Fatalf("task a: %q %v, want %s (the pass's agent before the task's preferred user)", agent, err, lineUser(3))
	}
	if agent, err := l.out.AssignWaiting(ctx, lineTenant, lineService, ids[1], nil, []string{lineUser(2)}); err != nil || agent != lineUser(2) {
		t.Fatalf("task b: %q %v, want %s (the only agent the pass allows, not the preferred user 1)", agent, err, lineUser(2))
	}
	l.wantAssigned(ids[0], lineUser(3), "the pass's agent")
	l.wantAssigned(ids[1], lineUser(2), "the one agent allowed")
}

package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"switchboard/handler/distribution"
	"switchboard/handler/functions"
	"switchboard/handler/httpapi"
	"switchboard/handler/job"
	"switchboard/handler/outbound"
	"switchboard/handler/presence"
	"switchboard/handler/routing"
	"switchboard/handler/switchboard"
)

// wireDistribution registers the waiting lines (SPEC section 10): the
// ServiceQueue, Conversations (GET; DELETE goes through routing's route),
// ConversationAccept, ConversationDecline, Agent, AgentRonaReset,
// AgentAfterCallWorkEnd and ServicesList routes, the Distributor (Service
// Bus trigger on DISTRIBUTION_QUEUE) and its Housekeeping job. It tells
// the presence store and outbound tasks whom to tell of freed agents.
func wireDistribution(ctx context.Context, a *app) error {
	engine, ok := a.routing.(*routing.Engine)
	if !ok || a.presence == nil {
		return errors.New("distribution: wired before routing or presence")
	}
	o := distribution.Options{
		Tables:     a.tables,
		Agents:     engine,
		Presence:   a.presence,
		Queue:      a.queue,
		QueueName:  a.cfg.DistributionQueue,
		Now:        a.now,
		Log:        a.log,
		StaleAfter: a.cfg.PresenceStaleAfter,
	}
	if a.outbound != nil {
		o.Outbound = outboundLine{a.outbound}
	}
	svc, err := distribution.New(ctx, o)
	if err != nil {
		return fmt.Errorf("distribution: %w", err)
	}
	if a.queue == nil {
		a.log.Warn("distribution: no queue configured; offers lapse, waits time out and RONA ends only at housekeeping (every minute)")
	}
	(&httpapi.DistributionAPI{Service: svc, Now: a.now}).Register(a.router)
	a.distribution = svc

	a.dispatcher.Handle("Distributor", functions.ServiceBusFunc("message", func(ctx context.Context, inv *functions.Invocation, m functions.Message) error {
		// One due time and the distribution pass it starts: well inside the
		// queue's one-minute lock.
		ctx, run := job.Start(ctx, job.Options{Name: "Distributor", Budget: distributorBudget, Grace: 5 * time.Second, Log: a.log})
		out, err := svc.Handle(ctx, m.Body)
		run.Fail(err)
		run.Figure("messageId", m.MessageID, "delivery", m.DeliveryCount, "action", out.Action)
		inv.Logf("distributor: message %s (delivery %d): %s", m.MessageID, m.DeliveryCount, out)
		if out.Action == "dropped" {
			a.log.Warn("distributor: message dropped", "messageId", m.MessageID, "detail", out.Detail)
		}
		return run.Finish()
	}))
	a.housekeeping = append(a.housekeeping, housekeepingJob{"distribution", func(ctx context.Context, inv *functions.Invocation) error {
		rep, err := svc.Housekeep(ctx)
		inv.Logf("distribution housekeeping: %s", rep)
		return err
	}})
	if st, ok := a.presence.(*presence.Store); ok {
		st.OnChange(svc.PresenceChanged)
	}
	return nil
}

// distributorBudget bounds one Distributor invocation.
const distributorBudget = 30 * time.Second

// outboundLine is outbound tasks as distribution sees them.
type outboundLine struct{ s *outbound.Service }

func (l outboundLine) ScheduleCallback(ctx context.Context, tenant, service string, cb distribution.Callback) (string, error) {
	return l.s.ScheduleCallback(ctx, tenant, service, cb.ReferenceID, cb.Destination, cb.Priority, cb.Context)
}

func (l outboundLine) Waiting(ctx context.Context, tenant, service string) ([]distribution.WaitingTask, error) {
	ts, err := l.s.Waiting(ctx, tenant, service)
	out := make([]distribution.WaitingTask, len(ts))
	for i, t := range ts {
		out[i] = distribution.WaitingTask{ID: t.ID, Priority: t.Priority, QueuedAt: t.QueuedAt}
	}
	return out, err
}

func (l outboundLine) AssignWaiting(ctx context.Context, tenant, service, id string) (string, error) {
	return l.s.AssignWaiting(ctx, tenant, service, id)
}

// lateConversations hands routing's conversation routes to distribution,
// which is wired after routing.
type lateConversations struct{ a *app }

func (l lateConversations) End(ctx context.Context, tenant, id string) (bool, error) {
	if l.a.distribution == nil {
		return false, nil
	}
	return l.a.distribution.End(ctx, tenant, id)
}

func (l lateConversations) RequiredSkills(ctx context.Context, tenant, id string) ([]switchboard.Skill, bool, error) {
	if l.a.distribution == nil {
		return nil, false, nil
	}
	return l.a.distribution.RequiredSkills(ctx, tenant, id)
}

func (l lateConversations) ServiceChanged(tenant, service string) {
	if l.a.distribution != nil {
		l.a.distribution.Kick(tenant, []string{service}, nil)
	}
}

// agentFreed tells distribution of an agent an outbound task let go.
func (a *app) agentFreed(tenant, service, user string) {
	if a.distribution != nil {
		a.distribution.Kick(tenant, []string{service}, []string{user})
	}
}

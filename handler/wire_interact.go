package main

import (
	"context"
	"fmt"
	"time"

	"switchboard/handler/acs"
	"switchboard/handler/auth"
	"switchboard/handler/functions"
	"switchboard/handler/graph"
	"switchboard/handler/httpapi"
	"switchboard/handler/interact"
	"switchboard/handler/settings"
	"switchboard/handler/switchboard"
)

// newInteract returns the Interact and Assistant capability: sessions over
// the tenant settings, ACS, Graph meetings through the presence app, and
// the waiting lines of distribution; recovery timers on INTERACT_QUEUE
// (in process without a queue).
func newInteract(ctx context.Context, a *app) (*interact.Service, error) {
	var meetings interact.Meetings
	if a.cfg.PresenceAppClientID != "" && a.cfg.PresenceAppClientSecret != "" {
		meetings = graphMeetings{a.graph}
	} else {
		a.log.Warn("interact: no presence app secret (PRESENCE_APP_CLIENT_ID, PRESENCE_APP_CLIENT_SECRET): Interact sessions cannot create Teams " +
			"meetings and answer 503")
	}
	timers := &processTimers{log: a.log}
	var t interact.Timers = timers
	if a.queue != nil {
		t = queueTimers{a.queue, a.cfg.InteractQueue}
	}
	svc, err := interact.New(ctx, interact.Options{
		Tables: a.tables, Settings: interactSettings{a.settings}, ACS: acs.New(acs.Options{AllowPrivate: a.cfg.AllowPrivateEndpoints}), Meetings: meetings,
		Conversations: newConversations(a), Timers: t, Events: a.events,
		Now: a.now, Log: a.log, DeploymentACS: a.cfg.ACSConnectionString,
	})
	if err != nil {
		return nil, err
	}
	timers.handle = svc.HandleTimer
	return svc, nil
}

// widgetVerifier is the verifier of the widget's tokens: the API's own, or,
// with API_AUTH=none (which concerns tenant routes only), one made for the
// widget when API_AUDIENCE is set.
func widgetVerifier(ctx context.Context, a *app) (switchboard.Verifier, error) {
	if a.verifier != nil {
		return a.verifier, nil
	}
	if a.cfg.APIAudience == "" {
		a.log.Warn("interact: API_AUDIENCE is not set: widgets of tenants with interact.authorization VerifyToken or VerifyTokenAndTenant get 401")
		return nil, nil
	}
	v, err := auth.New(ctx, auth.Options{AuthorityHost: a.cfg.AuthorityHost, Audience: a.cfg.APIAudience, Now: a.now, Log: a.log})
	if err != nil {
		return nil, fmt.Errorf("interact: widget token verification: %w", err)
	}
	return v, nil
}

// wireInteract registers the widget's public routes, the agent side's and
// the Assistant's tenant routes, and the InteractTimer function on
// INTERACT_QUEUE.
func wireInteract(ctx context.Context, a *app) error {
	v, err := widgetVerifier(ctx, a)
	if err != nil {
		return err
	}
	(&httpapi.InteractAPI{Sessions: a.interact, Verifier: v}).Register(a.router)
	svc := a.interact
	a.dispatcher.Handle("InteractTimer", functions.ServiceBusFunc("message", func(ctx context.Context, inv *functions.Invocation, m functions.Message) error {
		rep, err := svc.HandleTimer(ctx, m.Body)
		inv.Logf("interact timer: message %s (delivery %d): %s", m.MessageID, m.DeliveryCount, rep)
		return err
	}))
	return nil
}

// interactHousekeeping acts on recovery times whose message is late and
// removes ended sessions after 24 hours.
func interactHousekeeping(a *app) housekeepingJob {
	svc := a.interact
	return housekeepingJob{"interact", func(ctx context.Context, inv *functions.Invocation) error {
		rep, err := svc.Housekeep(ctx)
		inv.Logf("interact housekeeping: %s", rep)
		return err
	}}
}

// interactSettings gives sessions the tenant's interact.* and assistant.*
// settings.
type interactSettings struct{ s *settings.Service }

func (i interactSettings) Config(ctx context.Context, tenant string) (interact.TenantConfig, error) {
	st, err := i.s.Lookup(ctx, tenant)
	if err != nil {
		return interact.TenantConfig{}, err
	}
	return interact.TenantConfig{
		Enabled: st.Interact.Enabled, ACSConnectionString: st.Interact.ACSConnectionString.Reveal(),
		O365UserID: st.Interact.O365UserID, WidgetKey: st.Interact.WidgetKey,
		RecoverySeconds: st.Interact.SessionRecoveryTimeoutSeconds, Authorization: st.Interact.Authorization,
		AssistantOwnACS: st.Assistant.UseOwnACSInstance, AssistantACSConnectionString: st.Assistant.ACSConnectionString.Reveal(),
	}, nil
}

// graphMeetings creates the sessions' Teams meetings through the one Graph
// client.
type graphMeetings struct{ g *graph.Client }

func (m graphMeetings) CreateMeeting(ctx context.Context, tenant, organizer, subject string, start time.Time, d time.Duration) (interact.Meeting, error) {
	mt, err := m.g.CreateMeeting(ctx, tenant, organizer, subject, start, d)
	return interact.Meeting{ID: mt.ID, JoinURL: mt.JoinURL}, err
}

// queueTimers schedules recovery timers as messages on INTERACT_QUEUE.
type queueTimers struct {
	q    switchboard.Queue
	name string
}

func (t queueTimers) Schedule(ctx context.Context, at time.Time, body []byte) error {
	_, err := t.q.Send(ctx, t.name, switchboard.Message{Body: body, ScheduledAt: at})
	return err
}

// processTimers runs recovery timers in this process when no queue is
// configured (housekeeping covers a restart).
type processTimers struct {
	log    interface{ Error(string, ...any) }
	handle func(ctx context.Context, body []byte) (string, error)
}

func (t *processTimers) Schedule(ctx context.Context, at time.Time, body []byte) error {
	time.AfterFunc(time.Until(at), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := t.handle(ctx, body); err != nil {
			t.log.Error("interact: recovery timer failed; housekeeping will act", "err", err)
		}
	})
	return nil
}

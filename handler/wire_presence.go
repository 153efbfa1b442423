package main

import (
	"context"
	"fmt"
	"time"

	"switchboard/handler/config"
	"switchboard/handler/functions"
	"switchboard/handler/graph"
	"switchboard/handler/httpapi"
	"switchboard/handler/job"
	"switchboard/handler/presence"
	"switchboard/handler/switchboard"
)

// newGraph makes the one Graph client: presence, Teams sync, the contact
// search and its filter check.
func newGraph(a *app) (*graph.Client, error) {
	cfg := a.cfg
	g, err := graph.New(graph.Options{
		BaseURL:         cfg.GraphBaseURL,
		AuthorityHost:   cfg.AuthorityHost,
		PublicAuthority: cfg.PublicAuthority(),
		ClientID:        cfg.PresenceAppClientID,
		ClientSecret:    cfg.PresenceAppClientSecret,
		Accounts: [2]graph.Account{
			{UPN: cfg.PresenceAccount1UPN, Password: cfg.PresenceAccount1Password},
			{UPN: cfg.PresenceAccount2UPN, Password: cfg.PresenceAccount2Password},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("graph: %w", err)
	}
	return g, nil
}

// newPresenceStore makes the presence store, which the routing engine
// reads.
func newPresenceStore(ctx context.Context, a *app) error {
	st, err := presence.NewStore(ctx, presence.StoreOptions{Tables: a.tables, Now: a.now, Log: a.log, Events: a.events})
	if err != nil {
		return fmt.Errorf("presence store: %w", err)
	}
	a.presenceStore = st
	return nil
}

// presenceSources says which presence sources the deployment has
// everything to sign in with: the accounts' UPNs ("" when not configured)
// and whether the application secret is there.
func presenceSources(cfg config.Config) (account1, account2 string, application bool) {
	app := cfg.PresenceAppClientID != ""
	account := func(upn, password string) string {
		if app && upn != "" && password != "" {
			return upn
		}
		return ""
	}
	return account(cfg.PresenceAccount1UPN, cfg.PresenceAccount1Password), account(cfg.PresenceAccount2UPN, cfg.PresenceAccount2Password),
		app && cfg.PresenceAppClientSecret != ""
}

// newPresencePoll makes the poller, which reads the presence of the
// routing services' members, and the presence service behind the API.
func newPresencePoll(a *app) error {
	cfg := a.cfg
	account1, account2, appConfigured := presenceSources(cfg)
	if account1 == "" && account2 == "" && !appConfigured {
		a.log.Warn("presence: no presence account and no application secret configured; presence is not polled (PRESENCE_APP_CLIENT_ID, " +
			"PRESENCE_ACCOUNT1_UPN/PASSWORD, PRESENCE_APP_CLIENT_SECRET)")
	}
	poller, err := presence.NewPoller(presence.PollerOptions{
		Store: a.presenceStore, Graph: a.graph, Tracked: a.routing, Settings: a.settings,
		Queue: a.queue, QueueName: cfg.PresenceQueue,
		Account1UPN: account1, Account2UPN: account2, ApplicationConfigured: appConfigured,
		Now: a.now, Log: a.log,
	})
	if err != nil {
		return err
	}
	svc, err := presence.NewService(presence.ServiceOptions{
		Store: a.presenceStore, Graph: a.graph, Settings: a.settings, Now: a.now, StaleAfter: cfg.PresenceStaleAfter,
		AuthorityHost: cfg.AuthorityHost, ClientID: cfg.PresenceAppClientID, ConsentRedirectURI: cfg.PresenceConsentRedirectURI,
		Account1UPN: account1, Account2UPN: account2, ApplicationConfigured: appConfigured,
		NotificationsConfigured: cfg.PresenceNotificationsURL != "",
	})
	if err != nil {
		return err
	}
	budget, err := pollBudget(cfg.PresenceSchedule, a.now())
	if err != nil {
		return fmt.Errorf("presence: %w", err)
	}
	a.poller, a.presence, a.pollBudget = poller, svc, budget
	return nil
}

// wirePresence registers presence tracking: the PresencePoll timer, the
// PresencePollShard handler of fanned-out shards, and the presence routes
// (PresenceTracking, PresenceTrackingTest, UserPresence).
func wirePresence(a *app) {
	cfg, poller, budget := a.cfg, a.poller, a.pollBudget
	account1, account2, appConfigured := presenceSources(cfg)
	(&httpapi.PresenceAPI{Service: a.presence}).Register(a.router)
	notifications := a.notifications
	if notifications != nil {
		(&httpapi.NotificationsAPI{Receiver: notifications.receiver}).Register(a.router)
	}
	a.log.Info("presence poll", "schedule", cfg.PresenceSchedule, "budget", budget, "fanOut", a.queue != nil,
		"account1", account1 != "", "account2", account2 != "", "application", appConfigured)
	// Writes under way at the deadline may finish; nothing runs on past a
	// generous bound (Grace).
	pollJob := func(name string) job.Options {
		return job.Options{Name: name, Budget: budget, Grace: budget, Now: a.now, Log: a.log}
	}
	a.dispatcher.Handle("PresencePoll", functions.TimerFunc("timer", func(ctx context.Context, inv *functions.Invocation, _ functions.Timer) error {
		ctx, run := job.Start(ctx, pollJob("PresencePoll"))
		sum, err := poller.Poll(ctx, run.Deadline())
		run.Fail(err)
		var users, changed, calls, errs int
		for _, f := range sum.Tenants {
			users, changed, calls, errs = users+f.Users, changed+f.Changed, calls+f.Calls, errs+f.Errors
		}
		run.Figure("tenants", len(sum.Tenants), "skipped", len(sum.Skipped), "users", users, "changed", changed, "calls", calls, "errors", errs)
		inv.Logf("presence poll: %d tenants (%d left to the next tick), %d users, %d changed, %d Graph calls, %d errors",
			len(sum.Tenants), len(sum.Skipped), users, changed, calls, errs)
		return run.Finish()
	}))
	a.dispatcher.Handle("PresencePollShard", functions.ServiceBusFunc("message", func(ctx context.Context, inv *functions.Invocation, m functions.Message) error {
		ctx, run := job.Start(ctx, pollJob("PresencePollShard"))
		if presence.IsNotifyMessage(m.Body) {
			// Notified readings not written in time (PresenceNotifications).
			if notifications == nil {
				a.log.Warn("presence notify message dropped: notifications are not configured")
				return run.Finish()
			}
			run.Fail(notifications.handleQueued(ctx, m.Body))
			return run.Finish()
		}
		run.Fail(poller.PollShard(ctx, m.Body, run.Deadline()))
		return run.Finish()
	}))
}

// pollBudget is how long one poll works: four fifths of the interval
// between two ticks of the schedule, so that a poll ends before the next
// one starts, within 5 s and 4 min (the Functions timeout is larger).
// config.Load has checked the schedule.
func pollBudget(schedule string, now time.Time) (time.Duration, error) {
	sched, err := config.ParseSchedule(schedule)
	if err != nil {
		return 0, err
	}
	first := sched.Next(now)
	interval := sched.Next(first).Sub(first)
	return min(max(interval*4/5, 5*time.Second), 4*time.Minute), nil
}

// accountStatus reports the presence accounts' status as the settings API
// shows it.
type accountStatus struct{ svc *presence.Service }

func (s accountStatus) AccountStatus(ctx context.Context, tenant string) ([2]switchboard.AccountStatus, error) {
	var out [2]switchboard.AccountStatus
	views, err := s.svc.Accounts(ctx, tenant)
	if err != nil {
		return out, err
	}
	for i, v := range views {
		if i >= len(out) {
			break
		}
		st := v.Status
		out[i] = switchboard.AccountStatus{
			State:             v.State,
			InvitedAsGuest:    st.Invited,
			PermissionGranted: st.PermissionGranted,
			LastSuccessAt:     st.LastSuccessAt,
			LastErrorAt:       st.LastErrorAt,
			LastErrorReason:   string(st.LastReason),
			LastError:         st.LastMessage,
		}
	}
	return out, nil
}

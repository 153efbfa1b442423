package main

import (
	"context"
	"fmt"
	"time"

	"switchboard/handler/acs"
	"switchboard/handler/functions"
	"switchboard/handler/httpapi"
	"switchboard/handler/job"
	"switchboard/handler/settings"
)

// newSettings returns the settings service, with the ACS adapter's client
// to check connection strings, the keyring that seals them at rest, and
// the Graph client to check contact search filters (read with the presence
// app's application permission: without its secret, filters are saved
// unverified). ALLOW_PRIVATE_ENDPOINTS lifts the ACS endpoint rules (host,
// port, address) for local development.
func newSettings(ctx context.Context, a *app) (*settings.Service, error) {
	if a.secrets == nil {
		return nil, fmt.Errorf("settings: built before secrets")
	}
	o := settings.Options{
		Tables:                a.tables,
		Secrets:               a.secrets,
		Account1UPN:           a.cfg.PresenceAccount1UPN,
		Account2UPN:           a.cfg.PresenceAccount2UPN,
		ACS:                   acs.New(acs.Options{AllowPrivate: a.cfg.AllowPrivateEndpoints}),
		AllowPrivateEndpoints: a.cfg.AllowPrivateEndpoints,
		Now:                   a.now,
		Log:                   a.log,
	}
	if directoryConfigured(a) {
		o.Filters = a.graph
	}
	return settings.New(ctx, o)
}

// wireSettings registers the settings capability's routes (Settings,
// SettingsWidgetKeyRefresh, SettingsAcsCheck); their answers show the
// presence accounts' status as the presence service reports it.
func wireSettings(a *app) {
	(&httpapi.SettingsAPI{Service: a.settings, Accounts: accountStatus{a.presence}}).Register(a.router)
}

// settingsHousekeeping re-seals, under SECRETS_KEY, the tenant secrets
// stored in plain text (before encryption) or under SECRETS_KEY_PREVIOUS.
func settingsHousekeeping(a *app) housekeepingJob {
	svc := a.settings
	return housekeepingJob{"settings", func(ctx context.Context, inv *functions.Invocation) error {
		rep, err := svc.ResealSecrets(ctx, func() bool { return job.Near(ctx, 5*time.Second) })
		inv.Logf("settings housekeeping: secrets: %s", rep)
		return err
	}}
}

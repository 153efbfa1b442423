package main

import (
	"context"

	"switchboard/handler/acs"
	"switchboard/handler/httpapi"
	"switchboard/handler/settings"
)

// newSettings returns the settings service, with the ACS adapter's client
// to check connection strings.
func newSettings(ctx context.Context, a *app) (*settings.Service, error) {
	return settings.New(ctx, settings.Options{
		Tables:      a.tables,
		Account1UPN: a.cfg.PresenceAccount1UPN,
		Account2UPN: a.cfg.PresenceAccount2UPN,
		ACS:         acs.NewClient(nil, nil),
		Now:         a.now,
		Log:         a.log,
	})
}

// wireSettings registers the settings capability's routes (Settings,
// SettingsWidgetKeyRefresh, SettingsAcsCheck); their answers show the
// presence accounts' status as the presence service reports it.
func wireSettings(a *app) {
	(&httpapi.SettingsAPI{Service: a.settings, Accounts: accountStatus{a.presence}}).Register(a.router)
}

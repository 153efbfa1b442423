package main

import (
	"context"

	"switchboard/handler/httpapi"
	"switchboard/handler/settings"
)

// wireSettings registers the settings capability's routes (Settings,
// SettingsWidgetKeyRefresh, SettingsAcsCheck) and sets a.settings. The
// presence accounts' status shows as "unknown" until wirePresence tells the
// service where it comes from (UseAccountStatus).
func wireSettings(ctx context.Context, a *app) error {
	svc, err := settings.New(ctx, settings.Options{
		Tables:      a.tables,
		Account1UPN: a.cfg.PresenceAccount1UPN,
		Account2UPN: a.cfg.PresenceAccount2UPN,
		// The ACS check's endpoint rules (acs.Client), lifted locally.
		AllowPrivateEndpoints: a.cfg.AllowPrivateEndpoints,
		Now:                   a.now,
		Log:                   a.log,
	})
	if err != nil {
		return err
	}
	(&httpapi.SettingsAPI{Service: svc}).Register(a.router)
	a.settings = svc
	return nil
}

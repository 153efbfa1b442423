package main

import (
	"context"
	"fmt"

	"switchboard/handler/functions"
	"switchboard/handler/httpapi"
	"switchboard/handler/settings"
)

// wireSettings registers the settings capability's routes (Settings,
// SettingsWidgetKeyRefresh, SettingsAcsCheck) and sets a.settings. The
// presence accounts' status shows as "unknown" until wirePresence tells the
// service where it comes from (UseAccountStatus). Its Housekeeping job
// re-seals secrets stored in plain text or under the previous key.
func wireSettings(ctx context.Context, a *app) error {
	if a.secrets == nil {
		return fmt.Errorf("settings: wired before secrets")
	}
	svc, err := settings.New(ctx, settings.Options{
		Tables:      a.tables,
		Secrets:     a.secrets,
		Account1UPN: a.cfg.PresenceAccount1UPN,
		Account2UPN: a.cfg.PresenceAccount2UPN,
		Now:         a.now,
		Log:         a.log,
	})
	if err != nil {
		return err
	}
	(&httpapi.SettingsAPI{Service: svc}).Register(a.router)
	a.housekeeping = append(a.housekeeping, housekeepingJob{"settings", func(ctx context.Context, inv *functions.Invocation) error {
		rep, err := svc.ResealSecrets(ctx, func() bool { return deadlineNear(ctx) })
		inv.Logf("settings housekeeping: %d rows, %d re-sealed under the current key, %d unreadable, %d changed meanwhile", rep.Rows, rep.Resealed, rep.Unreadable, rep.Skipped)
		return err
	}})
	a.settings = svc
	return nil
}

package main

import (
	"context"
	"errors"
	"fmt"

	"switchboard/handler/attendant"
	"switchboard/handler/httpapi"
	"switchboard/handler/switchboard"
)

// wireAttendant registers the Attendant Console's contact search
// (AttendantSearch) and gives settings the Graph filter check. Contacts
// are read with the presence app's application permission (User.Read.All):
// without the app and its secret, searches return services only, with a
// contactsError, and saved filters stay unverified.
func wireAttendant(ctx context.Context, a *app) error {
	if a.routing == nil || a.settings == nil || a.presence == nil {
		return errors.New("attendant: wired before routing, settings or presence")
	}
	services, ok := a.routing.(switchboard.Availability)
	if !ok {
		return errors.New("attendant: the router does not report availability")
	}
	o := attendant.Options{Services: services, Presence: a.presence, Settings: a.settings, Log: a.log}
	// o.Waiting: the distribution capability's queue lengths plug in here.
	if a.graph != nil && a.cfg.PresenceAppClientID != "" && a.cfg.PresenceAppClientSecret != "" {
		o.Directory = a.graph
		a.settings.UseFilterChecker(a.graph)
	} else {
		a.log.Warn("attendant: no presence app secret configured; contact search returns services only (PRESENCE_APP_CLIENT_ID, PRESENCE_APP_CLIENT_SECRET)")
	}
	svc, err := attendant.New(o)
	if err != nil {
		return fmt.Errorf("attendant: %w", err)
	}
	(&httpapi.AttendantAPI{Service: svc, Now: a.now}).Register(a.router)
	return nil
}

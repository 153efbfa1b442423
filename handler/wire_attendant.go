package main

import (
	"context"
	"fmt"

	"switchboard/handler/attendant"
	"switchboard/handler/distribution"
	"switchboard/handler/httpapi"
)

// directoryConfigured says whether the deployment can read tenants'
// directories: contacts are read with the presence app's application
// permission (User.Read.All), which needs the app and its secret.
func directoryConfigured(a *app) bool {
	return a.graph != nil && a.cfg.PresenceAppClientID != "" && a.cfg.PresenceAppClientSecret != ""
}

// newAttendant makes the Attendant Console's contact search over Graph,
// the routing services, the presence store and the settings. Without the
// presence app's secret, searches return services only, with a
// contactsError.
func newAttendant(a *app) (*attendant.Service, error) {
	o := attendant.Options{Services: a.routing, Presence: a.presenceStore, Settings: a.settings, Log: a.log,
		Waiting: waitingCounts{a.distribution}}
	if directoryConfigured(a) {
		o.Directory = a.graph
	} else {
		a.log.Warn("attendant: no presence app secret configured; contact search returns services only (PRESENCE_APP_CLIENT_ID, PRESENCE_APP_CLIENT_SECRET)")
	}
	svc, err := attendant.New(o)
	if err != nil {
		return nil, fmt.Errorf("attendant: %w", err)
	}
	return svc, nil
}

// wireAttendant registers the Attendant Console's route (AttendantSearch).
func wireAttendant(a *app) {
	(&httpapi.AttendantAPI{Service: a.attendant, Now: a.now}).Register(a.router)
}

// waitingCounts is distribution's waiting lines as the attendant search
// counts them: every conversation not yet connected, ringing or not.
type waitingCounts struct{ d *distribution.Service }

func (w waitingCounts) Waiting(ctx context.Context, tenant string) (map[string]int, error) {
	sums, err := w.d.Services(ctx, tenant)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(sums))
	for _, s := range sums {
		out[s.ID] = s.Waiting + s.Offered
	}
	return out, nil
}

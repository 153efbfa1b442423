package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"switchboard/handler/switchboard"
)

// failing is every capability the HTTP layer takes, answering err to
// every call: a storage outage (EUNAVAILABLE) or an ETag that no longer
// matches (EPRECONDITION).
type failing struct{ err error }

func (f failing) Get(context.Context, string) (switchboard.SettingsView, string, error) {
	return switchboard.SettingsView{}, "", f.err
}

func (f failing) Patch(context.Context, string, []byte, string) (switchboard.SettingsView, string, error) {
	return switchboard.SettingsView{}, "", f.err
}

func (f failing) RefreshWidgetKey(context.Context, string, string) (switchboard.SettingsView, string, error) {
	return switchboard.SettingsView{}, "", f.err
}

func (f failing) CheckACS(context.Context, string, switchboard.ACSCheckRequest) (switchboard.ACSCheckResult, error) {
	return switchboard.ACSCheckResult{}, f.err
}

func (f failing) CheckFilter(context.Context, string, string) (switchboard.FilterCheck, error) {
	return switchboard.FilterCheck{}, f.err
}

func (f failing) Search(context.Context, string, switchboard.AttendantQuery) (switchboard.AttendantResult, error) {
	return switchboard.AttendantResult{}, f.err
}

func (f failing) Tracking(context.Context, string) (switchboard.PresenceTracking, error) {
	return switchboard.PresenceTracking{}, f.err
}

func (f failing) Test(context.Context, string, string, int) (switchboard.PresenceTestResult, error) {
	return switchboard.PresenceTestResult{}, f.err
}

func (f failing) Reading(context.Context, string, string) (switchboard.UserPresence, error) {
	return switchboard.UserPresence{}, f.err
}

func (f failing) Route(context.Context, string, string, switchboard.RouteRequest) (switchboard.RouteDecision, error) {
	return switchboard.RouteDecision{}, f.err
}

func (f failing) Release(context.Context, string, string) error { return f.err }

func (f failing) GetService(context.Context, string, string) (switchboard.Service, error) {
	return switchboard.Service{}, f.err
}

func (f failing) PutService(context.Context, string, string, switchboard.ServiceInput, string) (switchboard.Service, bool, error) {
	return switchboard.Service{}, false, f.err
}

func (f failing) DeleteService(context.Context, string, string, string) error { return f.err }

func (f failing) SyncTeam(context.Context, string, string) (switchboard.Service, error) {
	return switchboard.Service{}, f.err
}

func (f failing) Schedule(context.Context, string, string, switchboard.NewOutboundTask) (switchboard.OutboundTask, bool, error) {
	return switchboard.OutboundTask{}, false, f.err
}

func (f failing) List(context.Context, string, string, switchboard.OutboundListOptions) (switchboard.OutboundListPage, error) {
	return switchboard.OutboundListPage{}, f.err
}

func (f failing) Cancel(context.Context, string, string, string) (switchboard.OutboundTask, error) {
	return switchboard.OutboundTask{}, f.err
}

func (f failing) Complete(context.Context, string, string, string, switchboard.OutboundCompletion) (switchboard.OutboundTask, error) {
	return switchboard.OutboundTask{}, f.err
}

func (f failing) Update(context.Context, string, string, string, switchboard.OutboundTaskPatch) (switchboard.OutboundTask, error) {
	return switchboard.OutboundTask{}, f.err
}

// failingOutbound is failing as OutboundTasks: its Get is the task's.
type failingOutbound struct{ failing }

func (f failingOutbound) Get(context.Context, string, string, string) (switchboard.OutboundTask, error) {
	return switchboard.OutboundTask{}, f.err
}

// Every route of every capability answers a problem with the error's
// status: 503 when a dependency is unavailable, 412 when a precondition
// fails. Requests are well-formed, so each reaches its capability.
func TestEveryCapabilityRendersUnavailableAndPrecondition(t *testing.T) {
	const (
		user = "00000000-0000-4000-8000-000000000001"
		base = "/api/tenants/" + tenant
		task = base + "/services/support/outbound-tasks/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
	)
	routes := []struct{ capability, method, path, body string }{
		{"settings", http.MethodGet, base + "/settings", ""},
		{"settings", http.MethodPatch, base + "/settings", `{"interact":{"enabled":true}}`},
		{"settings", http.MethodPost, base + "/settings/widget-key/refresh", ""},
		{"settings", http.MethodPost, base + "/settings/acs-check", `{"target":"interact"}`},
		{"settings", http.MethodPost, base + "/settings/attendant-filter-check", `{"filter":"department eq 'Sales'"}`},
		{"attendant", http.MethodGet, base + "/attendant/search?q=support", ""},
		{"presence", http.MethodGet, base + "/presence-tracking", ""},
		{"presence", http.MethodPost, base + "/presence-tracking/test", `{"upn":"agent@contoso.example","account":1}`},
		{"presence", http.MethodGet, base + "/users/" + user + "/presence", ""},
		{"routing", http.MethodGet, base + "/services/support", ""},
		{"routing", http.MethodPut, base + "/services/support", `{"name":"Support","members":[{"userId":"` + user + `"}]}`},
		{"routing", http.MethodDelete, base + "/services/support", ""},
		{"routing", http.MethodPost, base + "/services/support/sync", ""},
		{"routing", http.MethodPost, base + "/services/support/route", `{"conversationId":"call-1"}`},
		{"routing", http.MethodDelete, base + "/conversations/call-1", ""},
		{"outbound", http.MethodPost, base + "/services/support/outbound-tasks", `{"destination":"+41440000000"}`},
		{"outbound", http.MethodGet, base + "/services/support/outbound-tasks", ""},
		{"outbound", http.MethodGet, task, ""},
		{"outbound", http.MethodDelete, task, ""},
		{"outbound", http.MethodPatch, task, `{"priority":60}`},
		{"outbound", http.MethodPost, task + "/complete", `{"outcome":"Completed"}`},
	}
	kinds := []struct {
		name   string
		err    error
		status int
		typ    string
	}{
		{"unavailable", switchboard.Errorf(switchboard.EUNAVAILABLE, "test", "storage is unreachable"), http.StatusServiceUnavailable, "service-unavailable"},
		{"precondition", switchboard.Errorf(switchboard.EPRECONDITION, "test", "the ETag does not match"), http.StatusPreconditionFailed, "precondition-failed"},
	}
	for _, k := range kinds {
		f := failing{k.err}
		rt := NewRouter(slog.New(slog.DiscardHandler), fakeVerifier{tid: tenant})
		(&SettingsAPI{Service: f, Accounts: nil}).Register(rt)
		(&PresenceAPI{Service: f}).Register(rt)
		(&AttendantAPI{Service: f, Now: time.Now}).Register(rt)
		(&RoutingAPI{Engine: f}).Register(rt)
		(&OutboundAPI{Tasks: failingOutbound{f}}).Register(rt)
		for _, r := range routes {
			rec, p := do(t, rt, r.method, r.path, r.body, "Authorization", "Bearer good", "Content-Type", "application/json")
			if rec.Code != k.status || p.Status != k.status || p.Type != k.typ {
				t.Errorf("%s: %s %s %s: %d, problem %+v; want %d %s (%s)", k.name, r.capability, r.method, r.path, rec.Code, p, k.status, k.typ, rec.Body)
			}
		}
	}
}

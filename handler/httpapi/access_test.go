package httpapi

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"switchboard/handler/switchboard"
)

// failingEvents is the subscriptions capability answering err.
type failingEvents struct{ err error }

func (f failingEvents) Create(context.Context, string, switchboard.EventSubscriptionRequest) (switchboard.EventSubscription, error) {
	return switchboard.EventSubscription{}, f.err
}

func (f failingEvents) List(context.Context, string) ([]switchboard.EventSubscription, error) {
	return nil, f.err
}

func (f failingEvents) Get(context.Context, string, string) (switchboard.EventSubscription, error) {
	return switchboard.EventSubscription{}, f.err
}

func (f failingEvents) Delete(context.Context, string, string) error { return f.err }

func (f failingEvents) Deliveries(context.Context, string, string) ([]switchboard.EventDelivery, error) {
	return nil, f.err
}

// roleVerifier accepts tokens "roles:<role>,<role>;oid:<object id>".
type roleVerifier struct{}

func (roleVerifier) Verify(ctx context.Context, tok string) (switchboard.Principal, error) {
	p := switchboard.Principal{TenantID: tenant}
	for _, part := range strings.Split(tok, ";") {
		k, v, _ := strings.Cut(part, ":")
		switch k {
		case "roles":
			if v != "" {
				p.Roles = strings.Split(v, ",")
			}
		case "oid":
			p.ObjectID = v
		}
	}
	return p, nil
}

func bearerFor(oid string, roles ...string) string {
	return "Bearer roles:" + strings.Join(roles, ",") + ";oid:" + oid
}

// The route → roles table names every tenant route the HTTP layer
// registers (read from the handler's source, so a route added anywhere
// without a row fails here), and has no row for a route that does not
// exist.
func TestEveryTenantRouteHasRoles(t *testing.T) {
	// Every Go file of the handler (a capability may register routes from
	// its own package or from main).
	var files []string
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".go") {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	registered := map[string]string{}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "Tenant" || len(call.Args) != 2 {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				t.Errorf("%s: Tenant called with a pattern that is not a literal: the table test cannot see it", fset.Position(call.Pos()))
				return true
			}
			pattern, _ := strconv.Unquote(lit.Value)
			registered[pattern] = fset.Position(call.Pos()).String()
			return true
		})
	}
	if len(registered) < 20 {
		t.Fatalf("found only %d tenant routes in the source: the scan is broken", len(registered))
	}
	for pattern, at := range registered {
		roles, _, ok := RouteRoles(pattern)
		if !ok || len(roles) == 0 {
			t.Errorf("%s: tenant route %q has no row in routeAccess (access.go): add the roles that may call it", at, pattern)
		}
		if ok && !slices.Contains(roles, switchboard.RoleAdmin) {
			t.Errorf("%q: Switchboard.Admin may do everything of its tenant, but is not in its row", pattern)
		}
	}
	for pattern := range routeAccess {
		if _, ok := registered[pattern]; !ok && !strings.Contains(pattern, "/things/") {
			t.Errorf("routeAccess has a row for %q, which no Register registers", pattern)
		}
	}
}

// accessRouter registers every capability, each failing with 503: a
// request that passes the role check reaches its capability (503), one
// that does not is 403.
func accessRouter(v switchboard.Verifier) *Router {
	f := failing{switchboard.Errorf(switchboard.EUNAVAILABLE, "test", "storage is unreachable")}
	rt := NewRouter(slog.New(slog.DiscardHandler), v)
	(&SettingsAPI{Service: f}).Register(rt)
	(&PresenceAPI{Service: f}).Register(rt)
	(&RoutingAPI{Engine: f}).Register(rt)
	(&OutboundAPI{Tasks: failingOutbound{f}}).Register(rt)
	(&EventsAPI{Subscriptions: failingEvents{f.err}}).Register(rt)
	(&AttendantAPI{Service: f, Now: time.Now}).Register(rt)
	(&InteractAPI{Sessions: failingInteract{f.err}}).Register(rt)
	(&DistributionAPI{Service: failingDistribution{f.err}, Now: time.Now}).Register(rt)
	return rt
}

// failingInteract is the Interact capability down.
type failingInteract struct{ err error }

func (f failingInteract) Gate(context.Context, string) (switchboard.InteractGate, error) {
	return switchboard.InteractGate{}, f.err
}
func (f failingInteract) Create(context.Context, string, switchboard.InteractCreateRequest) (switchboard.InteractSessionView, error) {
	return switchboard.InteractSessionView{}, f.err
}
func (f failingInteract) Get(context.Context, string, string, string) (switchboard.InteractSessionView, error) {
	return switchboard.InteractSessionView{}, f.err
}
func (f failingInteract) Leave(context.Context, string, string, string) (switchboard.InteractSessionView, error) {
	return switchboard.InteractSessionView{}, f.err
}
func (f failingInteract) Rejoin(context.Context, string, string, string) (switchboard.InteractSessionView, error) {
	return switchboard.InteractSessionView{}, f.err
}
func (f failingInteract) AgentLeft(context.Context, switchboard.InteractAgentCall) (switchboard.InteractSessionView, error) {
	return switchboard.InteractSessionView{}, f.err
}
func (f failingInteract) AgentRejoined(context.Context, switchboard.InteractAgentCall) (switchboard.InteractSessionView, error) {
	return switchboard.InteractSessionView{}, f.err
}
func (f failingInteract) End(context.Context, switchboard.InteractAgentCall) (switchboard.InteractSessionView, error) {
	return switchboard.InteractSessionView{}, f.err
}
func (f failingInteract) AssistantToken(context.Context, string, string) (switchboard.ACSIdentityView, error) {
	return switchboard.ACSIdentityView{}, f.err
}

// accessCase is one request of each tenant route, with the roles SPEC
// section 9 gives it (written here again, so that a wrong row in the table
// fails the test).
type accessCase struct {
	pattern, method, path, body string
	roles                       []string
	own                         Own
}

var (
	adminOnly      = []string{switchboard.RoleAdmin}
	adminFlow      = []string{switchboard.RoleAdmin, switchboard.RoleFlow}
	adminSuper     = []string{switchboard.RoleAdmin, switchboard.RoleSupervisor}
	adminSuperFlow = []string{switchboard.RoleAdmin, switchboard.RoleSupervisor, switchboard.RoleFlow}
)

func accessCases() []accessCase {
	const (
		user    = "00000000-0000-4000-8000-000000000001"
		base    = "/api/tenants/" + tenant
		task    = base + "/services/support/outbound-tasks/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
		sub     = base + "/subscriptions/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
		session = base + "/interact/sessions/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c"
	)
	return []accessCase{
		{"GET /api/tenants/{t}/settings", http.MethodGet, base + "/settings", "", adminOnly, OwnNone},
		{"PATCH /api/tenants/{t}/settings", http.MethodPatch, base + "/settings", `{"interact":{"enabled":true}}`, adminOnly, OwnNone},
		{"POST /api/tenants/{t}/settings/widget-key/refresh", http.MethodPost, base + "/settings/widget-key/refresh", "", adminOnly, OwnNone},
		{"POST /api/tenants/{t}/settings/acs-check", http.MethodPost, base + "/settings/acs-check", `{"target":"interact"}`, adminOnly, OwnNone},
		{"POST /api/tenants/{t}/settings/attendant-filter-check", http.MethodPost, base + "/settings/attendant-filter-check", `{"filter":"department eq 'Sales'"}`, adminOnly, OwnNone},
		{"GET /api/tenants/{t}/attendant/search", http.MethodGet, base + "/attendant/search?q=support", "", switchboard.Roles, OwnNone},
		{"GET /api/tenants/{t}/presence-tracking", http.MethodGet, base + "/presence-tracking", "", adminOnly, OwnNone},
		{"POST /api/tenants/{t}/presence-tracking/test", http.MethodPost, base + "/presence-tracking/test", `{"upn":"agent@contoso.example","account":1}`, adminOnly, OwnNone},
		{"GET /api/tenants/{t}/users/{u}/presence", http.MethodGet, base + "/users/" + user + "/presence", "", adminSuper, OwnUser},
		{"GET /api/tenants/{t}/services/{s}", http.MethodGet, base + "/services/support", "", adminSuper, OwnMembership},
		{"PUT /api/tenants/{t}/services/{s}", http.MethodPut, base + "/services/support", `{"name":"Support","members":[{"userId":"` + user + `"}]}`, adminOnly, OwnNone},
		{"DELETE /api/tenants/{t}/services/{s}", http.MethodDelete, base + "/services/support", "", adminOnly, OwnNone},
		{"POST /api/tenants/{t}/services/{s}/sync", http.MethodPost, base + "/services/support/sync", "", adminOnly, OwnNone},
		{"POST /api/tenants/{t}/services/{s}/route", http.MethodPost, base + "/services/support/route", `{"conversationId":"call-1"}`, adminFlow, OwnNone},
		{"DELETE /api/tenants/{t}/conversations/{c}", http.MethodDelete, base + "/conversations/call-1", "", adminSuperFlow, OwnNone},
		{"POST /api/tenants/{t}/services/{s}/queue", http.MethodPost, base + "/services/support/queue", `{"conversationId":"call-1"}`, adminFlow, OwnNone},
		{"GET /api/tenants/{t}/services/{s}/queue", http.MethodGet, base + "/services/support/queue", "", adminSuperFlow, OwnNone},
		{"GET /api/tenants/{t}/conversations/{c}", http.MethodGet, base + "/conversations/call-1", "", adminSuperFlow, OwnNone},
		{"POST /api/tenants/{t}/conversations/{c}/accept", http.MethodPost, base + "/conversations/call-1/accept", `{"userId":"00000000-0000-4000-8000-0000000000ff"}`, adminFlow, OwnMembership},
		{"POST /api/tenants/{t}/conversations/{c}/decline", http.MethodPost, base + "/conversations/call-1/decline", `{"userId":"00000000-0000-4000-8000-0000000000ff"}`, adminFlow, OwnMembership},
		{"GET /api/tenants/{t}/agents/{u}", http.MethodGet, base + "/agents/" + user, "", adminSuperFlow, OwnUser},
		{"POST /api/tenants/{t}/agents/{u}/rona/reset", http.MethodPost, base + "/agents/" + user + "/rona/reset", "", adminSuper, OwnUser},
		{"POST /api/tenants/{t}/agents/{u}/after-call-work/end", http.MethodPost, base + "/agents/" + user + "/after-call-work/end", "", adminSuper, OwnUser},
		{"GET /api/tenants/{t}/services", http.MethodGet, base + "/services", "", switchboard.Roles, OwnNone},
		{"POST /api/tenants/{t}/services/{s}/outbound-tasks", http.MethodPost, base + "/services/support/outbound-tasks", `{"destination":"+41440000000"}`, adminFlow, OwnNone},
		{"GET /api/tenants/{t}/services/{s}/outbound-tasks", http.MethodGet, base + "/services/support/outbound-tasks", "", adminSuperFlow, OwnNone},
		{"GET /api/tenants/{t}/services/{s}/outbound-tasks/{id}", http.MethodGet, task, "", adminSuperFlow, OwnNone},
		{"DELETE /api/tenants/{t}/services/{s}/outbound-tasks/{id}", http.MethodDelete, task, "", adminSuperFlow, OwnNone},
		{"PATCH /api/tenants/{t}/services/{s}/outbound-tasks/{id}", http.MethodPatch, task, `{"priority":60}`, adminFlow, OwnNone},
		{"POST /api/tenants/{t}/services/{s}/outbound-tasks/{id}/complete", http.MethodPost, task + "/complete", `{"outcome":"Completed","attempt":1}`, adminFlow, OwnNone},
		{"POST /api/tenants/{t}/subscriptions", http.MethodPost, base + "/subscriptions", `{"url":"https://flows.example/hook","events":["outboundTask.completed"]}`, adminFlow, OwnNone},
		{"GET /api/tenants/{t}/subscriptions", http.MethodGet, base + "/subscriptions", "", adminSuperFlow, OwnNone},
		{"GET /api/tenants/{t}/subscriptions/{id}", http.MethodGet, sub, "", adminSuperFlow, OwnNone},
		{"DELETE /api/tenants/{t}/subscriptions/{id}", http.MethodDelete, sub, "", adminFlow, OwnNone},
		{"GET /api/tenants/{t}/subscriptions/{id}/deliveries", http.MethodGet, sub + "/deliveries", "", adminSuperFlow, OwnNone},
		{"POST /api/tenants/{t}/subscriptions/triggers/{resource}", http.MethodPost, base + "/subscriptions/triggers/outboundTask", `{"url":"https://flows.example/cb"}`, adminFlow, OwnNone},
		{"GET /api/tenants/{t}/event-types", http.MethodGet, base + "/event-types", "", adminSuperFlow, OwnNone},
		{"POST /api/tenants/{t}/interact/sessions/{id}/agent-left", http.MethodPost, session + "/agent-left", "", adminFlow, OwnSession},
		{"POST /api/tenants/{t}/interact/sessions/{id}/agent-rejoined", http.MethodPost, session + "/agent-rejoined", "", adminFlow, OwnSession},
		{"POST /api/tenants/{t}/interact/sessions/{id}/end", http.MethodPost, session + "/end", "", adminFlow, OwnSession},
		{"POST /api/tenants/{t}/assistant/token", http.MethodPost, base + "/assistant/token?asUser=" + user, "", []string{switchboard.RoleAdmin, switchboard.RoleAgent}, OwnNone},
	}
}

// Route by route, role by role: a role the route's row names reaches the
// capability; every other role, and a token without roles, is 403
// forbidden with the roles needed named in the title.
func TestRouteRoles(t *testing.T) {
	rt := accessRouter(roleVerifier{})
	cases := accessCases()
	covered := map[string]bool{}
	const stranger = "00000000-0000-4000-8000-0000000000ff" // an agent who is not {u}
	for _, c := range cases {
		covered[c.pattern] = true
		table, tableOwn, ok := RouteRoles(c.pattern)
		if !ok {
			t.Errorf("%s: no row", c.pattern)
			continue
		}
		if !slices.Equal(sorted(table), sorted(c.roles)) || tableOwn != c.own {
			t.Errorf("%s: the table says %v (own %d), SPEC section 9 %v (own %d)", c.pattern, table, tableOwn, c.roles, c.own)
		}
		allowed, own := c.roles, c.own
		for _, role := range append(slices.Clone(switchboard.Roles), "") {
			name := role
			if role == "" {
				name = "no role"
			}
			t.Run(c.pattern+" as "+name, func(t *testing.T) {
				rec, p := do(t, rt, c.method, c.path, c.body, "Authorization", bearerFor(stranger, role), "Content-Type", "application/json")
				want403 := !slices.Contains(allowed, role) && !(role == switchboard.RoleAgent && (own == OwnMembership || own == OwnSession))
				if !want403 {
					if rec.Code == http.StatusForbidden {
						t.Fatalf("%s %s: 403 %s, want the role let through", c.method, c.path, rec.Body)
					}
					// The capability answers 503 (it is down), or the route
					// needed none of it (the event types are a catalogue).
					if rec.Code != http.StatusServiceUnavailable && rec.Code/100 != 2 {
						t.Fatalf("%s %s: %d %s, want the capability reached (503) or a 2xx", c.method, c.path, rec.Code, rec.Body)
					}
					return
				}
				if rec.Code != http.StatusForbidden || p.Type != "forbidden" {
					t.Fatalf("%s %s: %d %+v, want 403 forbidden", c.method, c.path, rec.Code, p)
				}
				for _, need := range allowed {
					if !strings.Contains(p.Title, need) {
						t.Errorf("title %q does not name the role %s", p.Title, need)
					}
				}
			})
		}
	}
	for pattern := range routeAccess {
		if !covered[pattern] && !strings.Contains(pattern, "/things/") {
			t.Errorf("route %q has no case in accessCases", pattern)
		}
	}
}

// An Agent reads its own presence, not another's.
func TestAgentReadsOnlyItsOwnPresence(t *testing.T) {
	rt := accessRouter(roleVerifier{})
	const me = "00000000-0000-4000-8000-00000000000a"
	path := "/api/tenants/" + tenant + "/users/"
	if rec, _ := do(t, rt, http.MethodGet, path+strings.ToUpper(me)+"/presence", "", "Authorization", bearerFor(me, switchboard.RoleAgent)); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("own presence: %d %s, want the capability reached", rec.Code, rec.Body)
	}
	rec, p := do(t, rt, http.MethodGet, path+"00000000-0000-4000-8000-00000000000b/presence", "", "Authorization", bearerFor(me, switchboard.RoleAgent))
	if rec.Code != http.StatusForbidden || !strings.Contains(p.Title, "its own") {
		t.Errorf("another's presence: %d %+v, want 403 saying an Agent reads its own", rec.Code, p)
	}
	if rec, _ := do(t, rt, http.MethodGet, path+me+"/presence", "", "Authorization", bearerFor("", switchboard.RoleAgent)); rec.Code != http.StatusForbidden {
		t.Errorf("an Agent token without oid: %d, want 403", rec.Code)
	}
}

// memberService is a routing capability with one service, for the Agent's
// membership check.
type memberService struct {
	failing
	members []string
}

func (m memberService) GetService(ctx context.Context, tenantID, id string) (switchboard.Service, error) {
	s := switchboard.Service{TenantID: tenantID, ID: id, Name: "Support"}
	for _, u := range m.members {
		s.Members = append(s.Members, switchboard.Member{UserID: u, Active: true})
	}
	return s, nil
}

// An Agent reads the services it is a member of, and no other; the
// Supervisor reads any.
func TestAgentReadsOnlyItsServices(t *testing.T) {
	const member, other = "00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-00000000000b"
	rt := NewRouter(slog.New(slog.DiscardHandler), roleVerifier{})
	(&RoutingAPI{Engine: memberService{failing: failing{switchboard.Errorf(switchboard.EUNAVAILABLE, "test", "down")}, members: []string{member}}}).Register(rt)
	path := "/api/tenants/" + tenant + "/services/support"
	for _, c := range []struct {
		name, auth string
		want       int
	}{
		{"a member", bearerFor(member, switchboard.RoleAgent), http.StatusOK},
		{"not a member", bearerFor(other, switchboard.RoleAgent), http.StatusForbidden},
		{"a supervisor", bearerFor(other, switchboard.RoleSupervisor), http.StatusOK},
		{"a flow", bearerFor(other, switchboard.RoleFlow), http.StatusForbidden},
	} {
		rec, p := do(t, rt, http.MethodGet, path, "", "Authorization", c.auth)
		if rec.Code != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, rec.Code, rec.Body, c.want)
		}
		if c.want == http.StatusForbidden && !strings.Contains(p.Title, switchboard.RoleSupervisor) {
			t.Errorf("%s: title %q does not name the roles needed", c.name, p.Title)
		}
	}
}

// With API_AUTH=none every route is open to everyone, and ?asUser= names
// the caller (an Entra object id).
func TestNoAuthAllowsEveryRouteAndTakesTheUserFromAsUser(t *testing.T) {
	rt := accessRouter(nil)
	for _, c := range accessCases() {
		if rec, _ := do(t, rt, c.method, c.path, c.body, "Content-Type", "application/json"); rec.Code != http.StatusServiceUnavailable && rec.Code/100 != 2 {
			t.Errorf("%s %s without a token: %d %s, want the capability reached", c.method, c.path, rec.Code, rec.Body)
		}
	}
	echo := NewRouter(slog.New(slog.DiscardHandler), nil)
	echo.Tenant("POST /api/tenants/{t}/things/{id}", func(w http.ResponseWriter, r *http.Request) error {
		id, err := Caller(r)
		if err != nil {
			return err
		}
		return WriteJSON(w, http.StatusOK, map[string]string{"caller": id})
	})
	path := "/api/tenants/" + tenant + "/things/a1"
	rec, _ := do(t, echo, http.MethodPost, path+"?asUser=0F3E2D1C-0000-4000-8000-000000000001", "")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"0f3e2d1c-0000-4000-8000-000000000001"`) {
		t.Errorf("asUser: %d %s, want the caller in canonical form", rec.Code, rec.Body)
	}
	if rec, p := do(t, echo, http.MethodPost, path+"?asUser=alice", ""); rec.Code != http.StatusBadRequest || p.Field != "asUser" {
		t.Errorf("asUser not a GUID: %d %+v, want 400 naming asUser", rec.Code, p)
	}
	if rec, p := do(t, echo, http.MethodPost, path, ""); rec.Code != http.StatusBadRequest || p.Field != "asUser" {
		t.Errorf("no asUser on a route that acts for a user: %d %+v, want 400 naming asUser", rec.Code, p)
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// failingDistribution is a distribution whose storage is unreachable.
type failingDistribution struct{ err error }

func (f failingDistribution) Enqueue(context.Context, string, string, switchboard.EnqueueInput) (switchboard.Conversation, bool, error) {
	return switchboard.Conversation{}, false, f.err
}
func (f failingDistribution) Queue(context.Context, string, string) (switchboard.QueueView, error) {
	return switchboard.QueueView{}, f.err
}
func (f failingDistribution) Get(context.Context, string, string) (switchboard.Positioned, error) {
	return switchboard.Positioned{}, f.err
}
func (f failingDistribution) Accept(context.Context, string, string, string) (switchboard.Conversation, error) {
	return switchboard.Conversation{}, f.err
}
func (f failingDistribution) Decline(context.Context, string, string, string) (switchboard.Conversation, error) {
	return switchboard.Conversation{}, f.err
}
func (f failingDistribution) Agent(context.Context, string, string) (switchboard.AgentView, error) {
	return switchboard.AgentView{}, f.err
}
func (f failingDistribution) ResetRona(context.Context, string, string) error        { return f.err }
func (f failingDistribution) EndAfterCallWork(context.Context, string, string) error { return f.err }
func (f failingDistribution) Services(context.Context, string) ([]switchboard.ServiceSummary, error) {
	return nil, f.err
}

package routing

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"switchboard/handler/internal/fakeclock"
	"switchboard/handler/internal/fakes"
	"switchboard/handler/store"
	sb "switchboard/handler/switchboard"
)

const tenant = "7c1c4f4e-0000-4000-8000-000000000001"

type clock = fakeclock.Clock

func newClock(t time.Time) *clock { return fakeclock.New(t) }

// fakeTeams is a TeamDirectory over a map of team id to member ids.
type fakeTeams struct {
	mu    sync.Mutex
	teams map[string][]string
	err   error
	calls int
}

func (f *fakeTeams) TeamMembers(ctx context.Context, tenantID, teamID string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	m, ok := f.teams[teamID]
	if !ok {
		return nil, sb.Errorf(sb.ENOTFOUND, "fakeTeams", "no team %s", teamID)
	}
	return append([]string(nil), m...), nil
}

func (f *fakeTeams) Set(team string, members ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.teams == nil {
		f.teams = map[string][]string{}
	}
	f.teams[team] = members
}

// user returns the object id of test user i.
func user(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

func users(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, user(i))
	}
	return out
}

type fixture struct {
	t        *testing.T
	tables   store.Tables
	clock    *clock
	presence *fakes.PresenceStore
	teams    *fakeTeams
	engine   *Engine
}

func newFixture(t *testing.T, tables store.Tables) *fixture {
	t.Helper()
	if tables == nil {
		tables = store.NewMemoryTables()
	}
	f := &fixture{t: t, tables: tables, clock: newClock(t0), teams: &fakeTeams{}}
	f.presence = fakes.NewPresenceStore(tenant, f.clock.Now)
	f.engine = f.newEngine()
	return f
}

// newEngine returns another engine on the same tables, clock and presence:
// another instance of the app.
func (f *fixture) newEngine() *Engine {
	f.t.Helper()
	e, err := New(context.Background(), Options{Tables: f.tables, Presence: f.presence, Teams: f.teams, StaleAfter: staleAfter, Now: f.clock.Now})
	if err != nil {
		f.t.Fatal(err)
	}
	return e
}

func ptr[T any](v T) *T { return &v }

// service creates a service whose members are the given users, all
// active, with the distribution given.
func (f *fixture) service(id string, d DistributionInput, members ...string) Service {
	f.t.Helper()
	in := ServiceInput{Name: ptr("Service " + id), Distribution: d}
	for _, u := range members {
		in.Members = append(in.Members, MemberInput{UserID: u})
	}
	svc, _, err := f.engine.PutService(context.Background(), tenant, id, in, "")
	if err != nil {
		f.t.Fatal(err)
	}
	return svc
}

func (f *fixture) available(us ...string) {
	for _, u := range us {
		f.presence.Set(u, sb.Available, sb.ActivityAvailable)
	}
}

func (f *fixture) route(e *Engine, service string, req sb.RouteRequest) sb.RouteDecision {
	f.t.Helper()
	d, err := e.Route(context.Background(), tenant, service, req)
	if err != nil {
		f.t.Fatalf("Route(%s, %+v): %v", service, req, err)
	}
	return d
}

func (f *fixture) release(conversation string) {
	f.t.Helper()
	if err := f.engine.Release(context.Background(), tenant, conversation); err != nil {
		f.t.Fatalf("Release(%s): %v", conversation, err)
	}
}

func agentIDs(d sb.RouteDecision) []string {
	out := []string{}
	for _, a := range d.Agents {
		out = append(out, a.UserID)
	}
	return out
}

func candidateIDs(d sb.RouteDecision) []string {
	out := []string{}
	for _, c := range d.Candidates {
		out = append(out, c.UserID)
	}
	return out
}

func reasons(d sb.RouteDecision) map[string]string {
	out := map[string]string{}
	for _, x := range d.Excluded {
		out[x.UserID] = x.Reason
	}
	return out
}

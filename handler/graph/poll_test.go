package graph_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"switchboard/handler/internal/fakeclock"
	"sync"
	"testing"
	"time"

	"switchboard/handler/dev/graphsim"
	"switchboard/handler/httpapi"
	"switchboard/handler/internal/testenv"
	"switchboard/handler/presence"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// The poll end to end: the real adapter (msgraph-sdk-go, azidentity) over
// TLS against the simulator, readings in Azurite.

type tracked map[string][]string

func (t tracked) Tenants(context.Context) ([]string, error) {
	var out []string
	for k := range t {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}

func (t tracked) TrackedUsers(_ context.Context, tenant string) ([]string, error) {
	return append([]string(nil), t[tenant]...), nil
}

type guestSetting bool

func (g guestSetting) TrackOverGuestAccounts(context.Context, string) (bool, error) {
	return bool(g), nil
}

// writeCounter counts entity operations written to each table.
type writeCounter struct {
	store.Tables
	mu     sync.Mutex
	writes map[string]int
}

func (c *writeCounter) Table(ctx context.Context, name string) (store.Table, error) {
	t, err := c.Tables.Table(ctx, name)
	return countingTable{t, name, c}, err
}

func (c *writeCounter) count(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes[name]
}

func (c *writeCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes = map[string]int{}
}

type countingTable struct {
	store.Table
	name string
	c    *writeCounter
}

func (t countingTable) Batch(ctx context.Context, ops []store.Op) error {
	t.c.mu.Lock()
	t.c.writes[t.name] += len(ops)
	t.c.mu.Unlock()
	return t.Table.Batch(ctx, ops)
}

func (t countingTable) Upsert(ctx context.Context, e store.Entity) (string, error) {
	t.c.mu.Lock()
	t.c.writes[t.name]++
	t.c.mu.Unlock()
	return t.Table.Upsert(ctx, e)
}

// pollEnv is a simulator, Azurite tables and a poller wired as main does.
type pollEnv struct {
	*simEnv
	tables *writeCounter
	store  *presence.Store
	poller *presence.Poller
	svc    *presence.Service
	now    func() time.Time
}

func newPollEnv(t *testing.T, tenant graphsim.TenantOptions, users int, now func() time.Time, configure ...func(*presence.PollerOptions)) *pollEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("needs Azurite")
	}
	e := &pollEnv{simEnv: newSimEnv(t, tenant, users), tables: &writeCounter{Tables: testenv.Tables(t), writes: map[string]int{}}, now: now}
	var err error
	ctx := context.Background()
	e.store, err = presence.NewStore(ctx, presence.StoreOptions{Tables: e.tables, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	o := presence.PollerOptions{
		Store: e.store, Graph: e.client, Tracked: tracked{tenantID: e.ids()}, Settings: guestSetting(true),
		Account1UPN: account1, Account2UPN: account2, ApplicationConfigured: true, Now: now,
		MaxRetryAfter: 5 * time.Second,
	}
	for _, c := range configure {
		c(&o)
	}
	e.poller, err = presence.NewPoller(o)
	if err != nil {
		t.Fatal(err)
	}
	e.svc, err = presence.NewService(presence.ServiceOptions{Store: e.store, Graph: e.client, Settings: guestSetting(true), Now: now,
		StaleAfter: 120 * time.Second, AuthorityHost: e.sim.AuthorityURL(), ClientID: appID,
		Account1UPN: account1, Account2UPN: account2, ApplicationConfigured: true})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *pollEnv) poll(t *testing.T) presence.PollFigures {
	t.Helper()
	sum, err := e.poller.Poll(context.Background(), e.now().Add(25*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return sum.Tenants[tenantID]
}

func (e *pollEnv) readings(t *testing.T) map[string]switchboard.Presence {
	t.Helper()
	m, err := e.store.Readings(context.Background(), tenantID, e.ids())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestPollSourcesAgainstTheSimulator(t *testing.T) {
	cases := []struct {
		name       string
		tenant     graphsim.TenantOptions
		setup      func(*graphsim.Sim)
		wantSource switchboard.PresenceSource // "" when nothing may be written
		wantStatus map[switchboard.PresenceSource]switchboard.SourceReason
	}{
		{name: "account 1 works", tenant: fullyConsented, wantSource: switchboard.SourceAccount1,
			wantStatus: map[switchboard.PresenceSource]switchboard.SourceReason{switchboard.SourceAccount1: ""}},
		{name: "account 1 needs MFA: account 2 takes over in the same poll", tenant: fullyConsented,
			setup:      func(s *graphsim.Sim) { s.SetAccount(account1, password1, true) },
			wantSource: switchboard.SourceAccount2,
			wantStatus: map[switchboard.PresenceSource]switchboard.SourceReason{switchboard.SourceAccount1: switchboard.SourceMFARequired, switchboard.SourceAccount2: ""}},
		{name: "neither account is a guest: application permission takes over", tenant: graphsim.TenantOptions{DelegatedConsent: true, AppConsent: true},
			wantSource: switchboard.SourceApplication,
			wantStatus: map[switchboard.PresenceSource]switchboard.SourceReason{switchboard.SourceAccount1: switchboard.SourceNotInvited, switchboard.SourceAccount2: switchboard.SourceNotInvited, switchboard.SourceApplication: ""}},
		{name: "nothing works: statuses recorded, nothing written", tenant: graphsim.TenantOptions{Guests: []string{account1}},
			setup: func(s *graphsim.Sim) { s.SetAccount(account2, password2, true) },
			wantStatus: map[switchboard.PresenceSource]switchboard.SourceReason{
				switchboard.SourceAccount1: switchboard.SourcePermissionNotGranted, switchboard.SourceAccount2: switchboard.SourceNotInvited, switchboard.SourceApplication: switchboard.SourcePermissionNotGranted}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newPollEnv(t, tc.tenant, 40, time.Now)
			if tc.setup != nil {
				tc.setup(e.sim)
			}
			e.sim.Change(tenantID, 0.5)
			fig := e.poll(t)
			got := e.readings(t)
			if tc.wantSource == "" {
				if len(got) != 0 || e.tables.count("presence") != 0 {
					t.Errorf("%d readings, %d presence writes; want none", len(got), e.tables.count("presence"))
				}
				if fig.Error == "" {
					t.Errorf("figures %+v carry no error", fig)
				}
			} else {
				if len(got) != len(e.users) {
					t.Fatalf("%d readings, want %d (figures %+v)", len(got), len(e.users), fig)
				}
				for id, p := range got {
					avail, act, _, _ := e.sim.Presence(tenantID, id)
					if switchboard.PresenceSource(p.Source) != tc.wantSource || p.Availability != avail || p.Activity != act || p.Extended != tc.wantSource.Extended() {
						t.Fatalf("reading %+v, want %s/%s through %s", p, avail, act, tc.wantSource)
					}
				}
			}
			tr, err := e.svc.Tracking(context.Background(), tenantID)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range tr.Sources {
				want, ok := tc.wantStatus[v.Source]
				if !ok {
					continue
				}
				if want == "" && v.State != presence.StateOK {
					t.Errorf("%s: state %s (%+v), want ok", v.Source, v.State, v.Status)
				}
				if want != "" && (v.State != presence.StateFailing || v.Status.LastReason != want) {
					t.Errorf("%s: state %s reason %s, want failing with %s", v.Source, v.State, v.Status.LastReason, want)
				}
			}
		})
	}
}

func TestPollSplitsIntoCallsOf650(t *testing.T) {
	e := newPollEnv(t, fullyConsented, 1300, time.Now)
	fig := e.poll(t)
	st := e.sim.Stats()
	if st.PresenceCalls != 2 || st.PresenceIDs != 1300 || st.BadRequests != 0 {
		t.Errorf("simulator saw %d calls for %d ids (%d refused), want 2 for 1300", st.PresenceCalls, st.PresenceIDs, st.BadRequests)
	}
	if fig.Calls != 2 || fig.ShardsConfirmed != fig.Shards || len(e.readings(t)) != 1300 {
		t.Errorf("figures %+v", fig)
	}
}

func TestPollWritesOnlyWhatChanged(t *testing.T) {
	e := newPollEnv(t, fullyConsented, 800, time.Now)
	e.poll(t)
	if got := e.tables.count("presence"); got != 800 {
		t.Fatalf("first poll wrote %d readings, want 800", got)
	}
	e.tables.reset()
	if fig := e.poll(t); fig.Changed != 0 || e.tables.count("presence") != 0 {
		t.Errorf("unchanged poll wrote %d readings (figures %+v), want 0", e.tables.count("presence"), fig)
	}
	changed := e.sim.Change(tenantID, 0.05)
	e.tables.reset()
	fig := e.poll(t)
	if got := e.tables.count("presence"); got != changed || fig.Changed != changed {
		t.Errorf("after %d changes the poll wrote %d readings (figures %+v)", changed, got, fig)
	}
}

func TestPollSurvivesA429Storm(t *testing.T) {
	e := newPollEnv(t, fullyConsented, 3000, time.Now, func(o *presence.PollerOptions) { o.MaxThrottleWaits = 20 })
	// Two requests per second per app and tenant: the five calls of 3,000
	// users collide with it again and again.
	e.sim.SetThrottle(2, time.Second)
	fig := e.poll(t)
	st := e.sim.Stats()
	if st.Throttled == 0 || fig.Throttled == 0 {
		t.Fatalf("no throttling happened (simulator %+v, figures %+v)", st, fig)
	}
	if fig.ShardsConfirmed != fig.Shards || len(e.readings(t)) != 3000 {
		t.Errorf("figures %+v: want every shard confirmed despite %d 429s", fig, st.Throttled)
	}
	if st.PresenceCalls != 5 {
		t.Errorf("%d calls answered, want 5", st.PresenceCalls)
	}
	tr, _ := e.svc.Tracking(context.Background(), tenantID)
	if a1 := tr.Sources[0]; a1.State != presence.StateOK {
		t.Errorf("account 1 after throttling: %+v, want ok (throttling is nobody's fault)", a1)
	}
}

type clock = fakeclock.Clock

func TestStaleReadingsReportedByTheAPI(t *testing.T) {
	c := fakeclock.New(time.Now())
	e := newPollEnv(t, fullyConsented, 20, c.Now)
	e.poll(t)
	r := httpapi.NewRouter(slog.New(slog.DiscardHandler), nil)
	(&httpapi.PresenceAPI{Service: e.svc}).Register(r)
	srv := httptest.NewServer(r)
	defer srv.Close()
	get := func() map[string]any {
		t.Helper()
		resp, err := http.Get(srv.URL + "/api/tenants/" + tenantID + "/users/" + e.users[3].ID + "/presence")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		return m
	}
	if m := get(); m["stale"] != false || m["source"] != "account1" {
		t.Fatalf("fresh reading %v", m)
	}
	// Every source breaks; polls go on failing for three minutes.
	e.sim.AddTenant(tenantID, graphsim.TenantOptions{})
	for i := 0; i < 6; i++ {
		c.Advance(30 * time.Second)
		e.poll(t)
	}
	if m := get(); m["stale"] != true || m["ageSeconds"] != 180.0 {
		t.Errorf("after three minutes of failing polls: %v, want stale and 180 s old", m)
	}
}

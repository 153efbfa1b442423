package routing

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"switchboard/handler/store"
	sb "switchboard/handler/switchboard"
)

func TestPutServiceValidation(t *testing.T) {
	valid := func() ServiceInput {
		return ServiceInput{Name: ptr("Support"), Members: []MemberInput{{UserID: user(1)}}}
	}
	for _, tc := range []struct {
		name      string
		id        string
		edit      func(*ServiceInput)
		wantField string
	}{
		{"missing name", "s1", func(in *ServiceInput) { in.Name = nil }, "name"},
		{"blank name", "s1", func(in *ServiceInput) { in.Name = ptr("  ") }, "name"},
		{"long name", "s1", func(in *ServiceInput) { in.Name = ptr(strings.Repeat("n", MaxNameLength+1)) }, "name"},
		{"bad service id", "a b", func(in *ServiceInput) {}, "s"},
		{"member id not a GUID", "s1", func(in *ServiceInput) { in.Members = append(in.Members, MemberInput{UserID: "bob"}) }, "members[1].userId"},
		{"duplicate member", "s1", func(in *ServiceInput) {
			in.Members = append(in.Members, MemberInput{UserID: strings.ToUpper(user(1))})
		}, "members[1].userId"},
		{"team id not a GUID", "s1", func(in *ServiceInput) { in.TeamID = ptr("team-1") }, "teamId"},
		{"unknown order", "s1", func(in *ServiceInput) { in.Distribution.Order = ptr("Random") }, "distribution.order"},
		{"broadcast size 0", "s1", func(in *ServiceInput) { in.Distribution.BroadcastSize = ptr(0) }, "distribution.broadcastSize"},
		{"broadcast size 51", "s1", func(in *ServiceInput) { in.Distribution.BroadcastSize = ptr(51) }, "distribution.broadcastSize"},
		{"hold 4 s", "s1", func(in *ServiceInput) { in.Distribution.HoldSeconds = ptr(4) }, "distribution.holdSeconds"},
		{"hold 3601 s", "s1", func(in *ServiceInput) { in.Distribution.HoldSeconds = ptr(3601) }, "distribution.holdSeconds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			in := valid()
			tc.edit(&in)
			_, _, err := f.engine.PutService(ctx, tenant, tc.id, in, "")
			if sb.ErrorCode(err) != sb.EINVALID || sb.ErrorField(err) != tc.wantField {
				t.Fatalf("error = %v (code %q, field %q), want invalid %q", err, sb.ErrorCode(err), sb.ErrorField(err), tc.wantField)
			}
			if _, err := f.engine.GetService(ctx, tenant, "s1"); sb.ErrorCode(err) != sb.ENOTFOUND {
				t.Errorf("after a refused PUT, GET = %v; want not found (nothing written)", err)
			}
		})
	}
}

func TestPutServiceDefaultsAndReplace(t *testing.T) {
	f := newFixture(t, nil)
	in := ServiceInput{Name: ptr(" Support "), Members: []MemberInput{{UserID: strings.ToUpper(user(2))}, {UserID: user(1), Active: ptr(false)}}}
	svc, created, err := f.engine.PutService(ctx, tenant, "support", in, "")
	if err != nil || !created {
		t.Fatalf("PutService: created %v, %v", created, err)
	}
	want := Distribution{Order: OrderLongestIdle, BroadcastSize: 10, HoldSeconds: 30,
		RingSeconds: 20, Rona: Rona{Enabled: true, ResetSeconds: 600}, AfterCallWorkSeconds: 0,
		Queue: QueueRules{MaxWaitSeconds: 1200, MaxLength: 50, OnTimeout: Overflow{Action: "Disconnect"}, OnFull: Overflow{Action: "Disconnect"}, OnNoAgents: Overflow{Action: "Queue"}}}
	if svc.Distribution != want {
		t.Errorf("distribution = %+v, want the defaults %+v", svc.Distribution, want)
	}
	if got, want := svc.Members, []Member{{UserID: user(1), Active: false}, {UserID: user(2), Active: true}}; !equalSlices(got, want) {
		t.Errorf("members = %v, want %v (sorted, ids lower case, active by default)", got, want)
	}
	if svc.Name != "Support" || !svc.CreatedAt.Equal(t0) || svc.ETag == "" {
		t.Errorf("stored = %+v", svc)
	}

	// A second instance reads the same.
	got, err := f.newEngine().GetService(ctx, tenant, "support")
	if err != nil || !equalSlices(got.Members, svc.Members) || got.ETag != svc.ETag || got.Name != "Support" {
		t.Fatalf("GetService = %+v, %v; want %+v", got, err, svc)
	}

	// Replace: new members, the old set's rows are gone.
	f.clock.Advance(time.Minute)
	in.Members = []MemberInput{{UserID: user(3)}}
	in.Distribution = DistributionInput{Order: ptr(OrderBroadcast), BroadcastSize: ptr(5), DeliverWhileBusy: ptr(true)}
	svc2, created, err := f.engine.PutService(ctx, tenant, "support", in, svc.ETag)
	if err != nil || created {
		t.Fatalf("replace: created %v, %v", created, err)
	}
	if !svc2.CreatedAt.Equal(t0) || !svc2.UpdatedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("createdAt %v updatedAt %v, want %v and a minute later", svc2.CreatedAt, svc2.UpdatedAt, t0)
	}
	got, _ = f.newEngine().GetService(ctx, tenant, "support")
	if !equalSlices(got.Members, []Member{{UserID: user(3), Active: true}}) || got.Distribution.BroadcastSize != 5 || !got.Distribution.DeliverWhileBusy {
		t.Errorf("after replace: %+v", got)
	}
	if n := countMemberRows(t, f.tables); n != 3 {
		t.Errorf("%d member rows stored, want 3 (the replaced set is kept until housekeeping)", n)
	}

	// A stale If-Match is refused and changes nothing.
	_, _, err = f.engine.PutService(ctx, tenant, "support", ServiceInput{Name: ptr("X")}, svc.ETag)
	if sb.ErrorCode(err) != sb.EPRECONDITION {
		t.Errorf("stale If-Match: %v, want precondition", err)
	}
	if err := f.engine.DeleteService(ctx, tenant, "support", svc.ETag); sb.ErrorCode(err) != sb.EPRECONDITION {
		t.Errorf("delete with a stale If-Match: %v, want precondition", err)
	}
	if err := f.engine.DeleteService(ctx, tenant, "support", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := f.engine.GetService(ctx, tenant, "support"); sb.ErrorCode(err) != sb.ENOTFOUND {
		t.Errorf("after delete: %v, want not found", err)
	}
	if err := f.engine.DeleteService(ctx, tenant, "support", ""); sb.ErrorCode(err) != sb.ENOTFOUND {
		t.Errorf("second delete: %v, want not found", err)
	}
	f.clock.Advance(MemberSetRetention + time.Second)
	if _, err := f.engine.Housekeep(ctx); err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, f.tables, MembersTable); n != 0 {
		t.Errorf("%d member rows left after delete and housekeeping, want 0", n)
	}
}

// countMemberRows counts the member rows of the members table (not the
// markers of retired sets).
func countMemberRows(t *testing.T, tables store.Tables) int {
	t.Helper()
	tb, err := tables.Table(ctx, MembersTable)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	err = store.QueryAll(ctx, tb, store.Query{}, func(e store.Entity) error {
		if e.PartitionKey != retiredPartition {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A replaced member set stays readable for MemberSetRetention: another
// instance still holding the old definition routes on the whole old list,
// never on a half-deleted one. Housekeeping deletes it afterwards.
func TestReplacedMemberSetOutlivesCaches(t *testing.T) {
	f := newFixture(t, nil)
	old := []MemberInput{{UserID: user(1)}, {UserID: user(2)}, {UserID: user(3)}}
	svc, _, err := f.engine.PutService(ctx, tenant, "support", ServiceInput{Name: ptr("S"), Members: old}, "")
	if err != nil {
		t.Fatal(err)
	}
	stale, err := f.engine.services.definition(ctx, tenant, "support") // what another instance cached
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.newEngine().PutService(ctx, tenant, "support", ServiceInput{Name: ptr("S"), Members: []MemberInput{{UserID: user(4)}}}, svc.ETag); err != nil {
		t.Fatal(err)
	}
	reader := f.newEngine() // a fresh instance: no member set cached in process
	readOld := func() []Member {
		t.Helper()
		m, err := reader.services.memberSet(ctx, tenant, "support", stale.version)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if got := readOld(); len(got) != 3 {
		t.Fatalf("old member set right after the replace: %v, want all 3 members", got)
	}
	reader = f.newEngine()
	f.clock.Advance(MemberSetRetention - time.Second)
	if rep, err := f.engine.Housekeep(ctx); err != nil || rep.MemberSetsDeleted != 0 {
		t.Fatalf("Housekeep before the retention passed: %+v, %v; want nothing deleted", rep, err)
	}
	if got := readOld(); len(got) != 3 {
		t.Errorf("old member set before the retention passed: %v, want all 3 members", got)
	}
	f.clock.Advance(2 * time.Second)
	if rep, err := f.engine.Housekeep(ctx); err != nil || rep.MemberSetsDeleted != 1 {
		t.Fatalf("Housekeep after the retention: %+v, %v; want 1 set deleted", rep, err)
	}
	if n := countRows(t, f.tables, MembersTable); n != 1 {
		t.Errorf("%d rows in the members table, want 1 (the current set only, no marker)", n)
	}
}

// racingTables runs race once, just before the first update of a service
// definition: a concurrent writer that gets in between read and write.
type racingTables struct {
	store.Tables
	raced atomic.Bool
	race  func()
}

func (r *racingTables) Table(ctx context.Context, name string) (store.Table, error) {
	t, err := r.Tables.Table(ctx, name)
	if err != nil || name != ServicesTable {
		return t, err
	}
	return racingTable{t, r}, nil
}

type racingTable struct {
	store.Table
	r *racingTables
}

func (t racingTable) Update(ctx context.Context, e store.Entity, ifMatch string) (string, error) {
	if t.r.race != nil && t.r.raced.CompareAndSwap(false, true) {
		t.r.race()
	}
	return t.Table.Update(ctx, e, ifMatch)
}

// A PUT without If-Match that loses a race to another writer is retried
// and wins (last writer wins), never 412; with If-Match it is 412.
func TestPutWithoutIfMatchNeverPreconditions(t *testing.T) {
	for _, withIfMatch := range []bool{false, true} {
		t.Run(fmt.Sprintf("If-Match %v", withIfMatch), func(t *testing.T) {
			mem := store.NewMemoryTables()
			racing := &racingTables{Tables: mem}
			f := newFixture(t, racing)
			svc, _, err := f.newEngine().PutService(ctx, tenant, "support", ServiceInput{Name: ptr("first"), Members: []MemberInput{{UserID: user(1)}}}, "")
			if err != nil {
				t.Fatal(err)
			}
			other := f.newEngine()
			racing.race = func() {
				if _, _, err := other.PutService(ctx, tenant, "support", ServiceInput{Name: ptr("other"), Members: []MemberInput{{UserID: user(2)}}}, ""); err != nil {
					t.Errorf("the racing PUT: %v", err)
				}
			}
			ifMatch := ""
			if withIfMatch {
				ifMatch = svc.ETag
			}
			_, _, err = f.engine.PutService(ctx, tenant, "support", ServiceInput{Name: ptr("last"), Members: []MemberInput{{UserID: user(3)}}}, ifMatch)
			if withIfMatch {
				if !sb.IsCode(err, sb.EPRECONDITION) {
					t.Errorf("PUT with a stale If-Match after the race: %v, want precondition", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("PUT without If-Match: %v, want success", err)
			}
			got, err := f.newEngine().GetService(ctx, tenant, "support")
			if err != nil || got.Name != "last" || !equalSlices(got.Members, []Member{{UserID: user(3), Active: true}}) {
				t.Errorf("stored %+v (%v), want the last writer's service", got, err)
			}
		})
	}
}

func countRows(t *testing.T, tables store.Tables, name string) int {
	t.Helper()
	tb, err := tables.Table(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := store.QueryAll(ctx, tb, store.Query{}, func(store.Entity) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// A member toggling active takes effect on the next route of the instance
// that wrote it, and on other instances once their copy of the definition
// is refreshed (at most the maximum lag later).
func TestActiveFlagToggle(t *testing.T) {
	f := newFixture(t, nil)
	f.service("support", DistributionInput{}, user(1))
	f.available(user(1))
	other := f.newEngine()
	mono := newClock(time.Unix(1000, 0))
	other.services.routes.Clock = mono.Now
	if d := f.route(other, "support", sb.RouteRequest{}); len(d.Agents) != 1 {
		t.Fatalf("agents = %v, want user 1", agentIDs(d))
	}
	_, _, err := f.engine.PutService(ctx, tenant, "support", ServiceInput{Name: ptr("S"), Members: []MemberInput{{UserID: user(1), Active: ptr(false)}}}, "")
	if err != nil {
		t.Fatal(err)
	}
	optedOut := func(e *Engine) bool {
		d := f.route(e, "support", sb.RouteRequest{})
		return len(d.Agents) == 0 && reasons(d)[user(1)] == sb.ReasonNotActive
	}
	if !optedOut(f.engine) {
		t.Error("the writing instance still routes to the member who opted out")
	}
	if optedOut(other) {
		t.Error("the other instance saw the change before its copy was refreshed (the test's premise is wrong)")
	}
	mono.Advance(other.services.routes.MaxLag + time.Millisecond)
	if !optedOut(other) {
		t.Error("the other instance still routes to the member who opted out past the maximum lag")
	}
}

func TestTeamService(t *testing.T) {
	team := "11111111-2222-4333-8444-555555555555"
	f := newFixture(t, nil)
	f.teams.Set(team, user(2), user(1), "not-a-guid", user(1))
	in := ServiceInput{Name: ptr("Team"), TeamID: ptr(team), Members: []MemberInput{{UserID: user(2), Active: ptr(false)}, {UserID: user(9)}}}
	svc, _, err := f.engine.PutService(ctx, tenant, "team", in, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := []Member{{UserID: user(1), Active: true}, {UserID: user(2), Active: false}}; !equalSlices(svc.Members, want) {
		t.Errorf("members = %v, want %v (from the team; the flag given kept, a non-team user ignored)", svc.Members, want)
	}
	if !svc.LastTeamSync.Equal(t0) || svc.TeamID != team {
		t.Errorf("lastTeamSync = %v, teamId %q", svc.LastTeamSync, svc.TeamID)
	}

	// The team changes: user 1 leaves, user 3 joins; user 2 keeps its flag.
	f.teams.Set(team, user(2), user(3))
	f.clock.Advance(time.Minute)
	svc, err = f.engine.SyncTeam(ctx, tenant, "team")
	if err != nil {
		t.Fatal(err)
	}
	if want := []Member{{UserID: user(2), Active: false}, {UserID: user(3), Active: true}}; !equalSlices(svc.Members, want) {
		t.Errorf("after sync: members = %v, want %v", svc.Members, want)
	}

	// A failing sync keeps the members and records the error.
	f.teams.err = sb.Errorf(sb.EUNAVAILABLE, "graph", "throttled")
	f.clock.Advance(time.Minute)
	if _, err := f.engine.SyncTeam(ctx, tenant, "team"); sb.ErrorCode(err) != sb.EUNAVAILABLE {
		t.Fatalf("sync error = %v, want unavailable", err)
	}
	got, _ := f.engine.GetService(ctx, tenant, "team")
	if got.LastTeamSyncError != "throttled" || !got.LastTeamSync.Equal(t0.Add(time.Minute)) || len(got.Members) != 2 {
		t.Errorf("after a failed sync: %+v", got)
	}

	// Housekeeping retries a team that failed, but not at once.
	calls := f.teams.calls
	if rep, _ := f.engine.Housekeep(ctx); rep.TeamsSynced+rep.TeamSyncFailures != 0 || f.teams.calls != calls {
		t.Errorf("housekeeping retried a team that failed just now: %+v", rep)
	}
	f.clock.Advance(6 * time.Minute)
	if rep, err := f.engine.Housekeep(ctx); rep.TeamSyncFailures != 1 || err == nil {
		t.Errorf("housekeeping six minutes after a failure: %+v, %v; want one retry that fails", rep, err)
	}

	// Housekeeping syncs teams not synced for the interval.
	f.teams.err = nil
	f.teams.Set(team, user(2), user(3), user(4))
	f.clock.Advance(15 * time.Minute)
	rep, err := f.engine.Housekeep(ctx)
	if err != nil || rep.TeamsSynced != 1 {
		t.Fatalf("housekeeping: %+v, %v; want one team synced", rep, err)
	}
	got, _ = f.engine.GetService(ctx, tenant, "team")
	if len(got.Members) != 3 || got.LastTeamSyncError != "" {
		t.Errorf("after housekeeping: members %v, error %q", got.Members, got.LastTeamSyncError)
	}
	// Fresh: not synced again.
	calls = f.teams.calls
	if _, err := f.engine.Housekeep(ctx); err != nil || f.teams.calls != calls {
		t.Errorf("a fresh team was synced again (%d calls, %v)", f.teams.calls-calls, err)
	}

	for _, tc := range []struct {
		name      string
		teams     TeamDirectory
		teamID    string
		wantCode  string
		wantField string
	}{
		{"unknown team", f.teams, "99999999-2222-4333-8444-555555555555", sb.EINVALID, "teamId"},
		{"no Graph configured", nil, team, sb.EUNAVAILABLE, "teamId"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := New(ctx, Options{Tables: store.NewMemoryTables(), Presence: f.presence, StaleAfter: staleAfter, Now: f.clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			if tc.teams != nil {
				e.teams = tc.teams
			}
			_, _, err = e.PutService(ctx, tenant, "team", ServiceInput{Name: ptr("T"), TeamID: ptr(tc.teamID)}, "")
			if sb.ErrorCode(err) != tc.wantCode || sb.ErrorField(err) != tc.wantField {
				t.Errorf("error = %v (%s, %q), want %s %q", err, sb.ErrorCode(err), sb.ErrorField(err), tc.wantCode, tc.wantField)
			}
		})
	}
	if _, err := f.engine.SyncTeam(ctx, tenant, "nope"); sb.ErrorCode(err) != sb.ENOTFOUND {
		t.Errorf("sync of an unknown service: %v", err)
	}
	f.service("plain", DistributionInput{}, user(1))
	if _, err := f.engine.SyncTeam(ctx, tenant, "plain"); sb.ErrorCode(err) != sb.EINVALID {
		t.Errorf("sync of a service without team: %v", err)
	}
}

func TestLedgerRoundTrip(t *testing.T) {
	idle := map[string]time.Time{}
	for i := range 50 {
		idle[user(i)] = t0.Add(time.Duration(i) * time.Second)
	}
	got := decodeLedger(encodeLedger(tenant, 3, idle))
	if len(got) != len(idle) {
		t.Fatalf("%d entries back, want %d", len(got), len(idle))
	}
	for u, want := range idle {
		if !got[u].Equal(want) {
			t.Errorf("%s: %v, want %v", u, got[u], want)
		}
	}
}

// A ledger row that outgrows its size limit keeps the newest entries: the
// ones dropped rank as never routed, where the oldest ranked anyway.
func TestLedgerDropsOldestWhenFull(t *testing.T) {
	idle := map[string]time.Time{}
	n := idleChunks*idleChunk/len(user(0)+" 1790000000000\n") + 500
	for i := range n {
		idle[fmt.Sprintf("%036d", i)] = t0.Add(time.Duration(i) * time.Millisecond)
	}
	e := encodeLedger(tenant, 0, idle)
	for k, v := range e.Props {
		if s := v.(string); len(s) > idleChunk {
			t.Errorf("property %s is %d characters, over %d", k, len(s), idleChunk)
		}
	}
	got := decodeLedger(e)
	if len(got) >= n || len(got) < n-1000 {
		t.Fatalf("%d of %d entries kept", len(got), n)
	}
	newest := fmt.Sprintf("%036d", n-1)
	oldest := fmt.Sprintf("%036d", 0)
	if _, ok := got[newest]; !ok {
		t.Error("the newest entry was dropped")
	}
	if _, ok := got[oldest]; ok {
		t.Error("the oldest entry was kept")
	}
}

// equalSlices compares slices of members (whose skills are maps) or of
// anything else.
func equalSlices[T any](a, b []T) bool {
	return len(a) == len(b) && (len(a) == 0 || reflect.DeepEqual(a, b))
}

// If-Match on services is compared strongly (RFC 9110 section 13.1.1): the
// ETag given out is a strong tag, a weak tag never matches, and a list
// matches when one of its strong tags is current.
func TestServiceIfMatchIsStrong(t *testing.T) {
	f := newFixture(t, nil)
	in := ServiceInput{Name: ptr("S"), Members: []MemberInput{{UserID: user(1)}}}
	svc, _, err := f.engine.PutService(ctx, tenant, "support", in, "")
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(svc.ETag, "W/") || !strings.HasPrefix(svc.ETag, `"`) {
		t.Fatalf("ETag %s, want a strong entity tag", svc.ETag)
	}
	if got, err := f.newEngine().GetService(ctx, tenant, "support"); err != nil || got.ETag != svc.ETag {
		t.Fatalf("GetService ETag %q (%v), want %s", got.ETag, err, svc.ETag)
	}
	for _, weak := range []string{"W/" + svc.ETag, `"other", W/` + svc.ETag} {
		if _, _, err := f.engine.PutService(ctx, tenant, "support", in, weak); !sb.IsCode(err, sb.EPRECONDITION) {
			t.Errorf("PUT with If-Match %s: %v, want precondition (a weak tag never matches)", weak, err)
		}
		if err := f.engine.DeleteService(ctx, tenant, "support", weak); !sb.IsCode(err, sb.EPRECONDITION) {
			t.Errorf("DELETE with If-Match %s: %v, want precondition", weak, err)
		}
	}
	next, _, err := f.engine.PutService(ctx, tenant, "support", in, `"other", `+svc.ETag)
	if err != nil {
		t.Fatalf("PUT with a list holding the current tag: %v", err)
	}
	if err := f.engine.DeleteService(ctx, tenant, "support", strings.Trim(next.ETag, `"`)); err != nil {
		t.Errorf("DELETE with the current tag unquoted: %v", err)
	}
}

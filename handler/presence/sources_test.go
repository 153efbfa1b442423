package presence

// Tests of source choice and fallback (sources.go): which source a poll
// reads through, and why.

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

var (
	errMFA         = &switchboard.SourceError{Reason: switchboard.SourceMFARequired, Message: "the tenant requires MFA", Code: "AADSTS50076"}
	errNotInvited  = &switchboard.SourceError{Reason: switchboard.SourceNotInvited, Message: "not a guest", Code: "AADSTS50020"}
	errPassword    = &switchboard.SourceError{Reason: switchboard.SourceWrongPassword, Message: "wrong password", Code: "AADSTS50126"}
	errNoConsent   = &switchboard.SourceError{Reason: switchboard.SourcePermissionNotGranted, Message: "no consent", Status: 403}
	errGraphFailed = &switchboard.SourceError{Reason: switchboard.SourceGraphError, Message: "Graph answered 503", Status: 503}
)

func TestPollSources(t *testing.T) {
	cases := []struct {
		name         string
		guest        bool
		noApp        bool
		fail         map[switchboard.PresenceSource]*switchboard.SourceError
		wantCalls    string
		wantSource   switchboard.PresenceSource // of every reading; "" when nothing may be written
		wantStatus   map[switchboard.PresenceSource]switchboard.SourceReason
		wantInvited  map[switchboard.PresenceSource]bool
		wantUsedNone bool
	}{
		{name: "account 1 works", guest: true,
			wantCalls: "account1", wantSource: switchboard.SourceAccount1,
			wantStatus: map[switchboard.PresenceSource]switchboard.SourceReason{switchboard.SourceAccount1: ""}, wantInvited: map[switchboard.PresenceSource]bool{switchboard.SourceAccount1: true}},
		{name: "account 1 needs MFA, account 2 takes over in the same poll", guest: true,
			fail:      map[switchboard.PresenceSource]*switchboard.SourceError{switchboard.SourceAccount1: errMFA},
			wantCalls: "account1,account2", wantSource: switchboard.SourceAccount2,
			wantStatus: map[switchboard.PresenceSource]switchboard.SourceReason{switchboard.SourceAccount1: switchboard.SourceMFARequired, switchboard.SourceAccount2: ""}, wantInvited: map[switchboard.PresenceSource]bool{switchboard.SourceAccount1: true, switchboard.SourceAccount2: true}},
		{name: "both accounts fail, application permission takes over", guest: true,
			fail:      map[switchboard.PresenceSource]*switchboard.SourceError{switchboard.SourceAccount1: errNotInvited, switchboard.SourceAccount2: errPassword},
			wantCalls: "account1,account2,application", wantSource: switchboard.SourceApplication,
			wantStatus: map[switchboard.PresenceSource]switchboard.SourceReason{switchboard.SourceAccount1: switchboard.SourceNotInvited, switchboard.SourceAccount2: switchboard.SourceWrongPassword, switchboard.SourceApplication: ""}, wantInvited: map[switchboard.PresenceSource]bool{switchboard.SourceAccount1: false}},
		{name: "everything fails: statuses recorded, nothing written", guest: true,
			fail:       map[switchboard.PresenceSource]*switchboard.SourceError{switchboard.SourceAccount1: errMFA, switchboard.SourceAccount2: errNotInvited, switchboard.SourceApplication: errNoConsent},
			wantCalls:  "account1,account2,application",
			wantStatus: map[switchboard.PresenceSource]switchboard.SourceReason{switchboard.SourceAccount1: switchboard.SourceMFARequired, switchboard.SourceAccount2: switchboard.SourceNotInvited, switchboard.SourceApplication: switchboard.SourcePermissionNotGranted}, wantUsedNone: true},
		{name: "tracking over guest accounts off: application only", guest: false,
			wantCalls: "application", wantSource: switchboard.SourceApplication,
			wantStatus: map[switchboard.PresenceSource]switchboard.SourceReason{switchboard.SourceApplication: ""}},
		{name: "no source enabled: nothing tried, nothing written", guest: false, noApp: true,
			wantCalls: "", wantUsedNone: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, store.NewMemoryTables(), tc.guest, func(o *PollerOptions) { o.ApplicationConfigured = !tc.noApp })
			ids := userIDs(20)
			e.tracked.set(tenantA, ids)
			for _, id := range ids {
				e.graph.set(id, switchboard.Available, switchboard.ActivityAvailable)
			}
			e.graph.fail = tc.fail
			sum := e.poll(t)

			if got := sourcesOf(e.graph.callLog()); got != tc.wantCalls {
				t.Errorf("calls through %q, want %q", got, tc.wantCalls)
			}
			got := e.readings(t, ids)
			fig := sum.Tenants[tenantA]
			if tc.wantUsedNone {
				if len(got) != 0 || e.tables.Writes(presenceTableName) != 0 {
					t.Errorf("%d readings, %d presence writes; want none", len(got), e.tables.Writes(presenceTableName))
				}
				if fig.Error == "" {
					t.Errorf("figures carry no error: %+v", fig)
				}
			} else {
				if len(got) != len(ids) {
					t.Fatalf("%d readings, want %d", len(got), len(ids))
				}
				for _, p := range got {
					if switchboard.PresenceSource(p.Source) != tc.wantSource || p.Extended != tc.wantSource.Extended() {
						t.Fatalf("reading %+v: source %q extended %v, want %q %v", p, p.Source, p.Extended, tc.wantSource, tc.wantSource.Extended())
					}
				}
				if fig.ShardsConfirmed != fig.Shards || fig.Changed != len(ids) {
					t.Errorf("figures %+v: want every shard confirmed and %d changed", fig, len(ids))
				}
			}
			snap, err := e.store.Status(context.Background(), tenantA)
			if err != nil {
				t.Fatal(err)
			}
			for src, reason := range tc.wantStatus {
				st := snap.Sources[src]
				if reason == "" {
					if st.LastSuccessAt.IsZero() || st.Failing() {
						t.Errorf("%s: status %+v, want a success", src, st)
					}
					continue
				}
				if !st.Failing() || st.LastReason != reason || st.LastMessage == "" {
					t.Errorf("%s: status %+v, want failing with %q", src, st, reason)
				}
				if st.RetryAt.IsZero() {
					t.Errorf("%s: failure %q sets no pause before the next attempt", src, reason)
				}
			}
			for src, want := range tc.wantInvited {
				if st := snap.Sources[src]; st.Invited == nil || *st.Invited != want {
					t.Errorf("%s: invited %v, want %v", src, st.Invited, want)
				}
			}
		})
	}
}

func TestSourcePausesAfterItsOwnFailure(t *testing.T) {
	e := newEnv(t, store.NewMemoryTables(), true, func(o *PollerOptions) { o.SourceCooldown = 5 * time.Minute })
	ids := userIDs(5)
	e.tracked.set(tenantA, ids)
	for _, id := range ids {
		e.graph.set(id, switchboard.Available, switchboard.ActivityAvailable)
	}
	e.graph.fail = map[switchboard.PresenceSource]*switchboard.SourceError{switchboard.SourceAccount1: errPassword}
	e.poll(t)
	e.graph.resetCalls()
	e.clock.Advance(30 * time.Second)
	e.poll(t)
	if got := sourcesOf(e.graph.callLog()); got != "account2" {
		t.Errorf("second poll called %q; want account2 only while account 1 pauses (a wrong password retried every 30 s locks the account)", got)
	}
	e.graph.fail = nil
	e.graph.resetCalls()
	e.clock.Advance(5 * time.Minute)
	e.poll(t)
	if got := sourcesOf(e.graph.callLog()); got != "account1" {
		t.Errorf("after the pause called %q, want account1 again", got)
	}
}

func TestTransientSignInFailureDoesNotPauseTheSource(t *testing.T) {
	e := newEnv(t, store.NewMemoryTables(), true)
	ids := userIDs(10)
	e.tracked.set(tenantA, ids)
	for _, id := range ids {
		e.graph.set(id, switchboard.Available, switchboard.ActivityAvailable)
	}
	e.graph.fail[switchboard.SourceAccount1] = &switchboard.SourceError{Reason: switchboard.SourceSignInError, Message: "Microsoft Entra ID could not be reached for the sign-in", Transient: true}
	e.poll(t)
	snap, err := e.store.Status(context.Background(), tenantA)
	if err != nil {
		t.Fatal(err)
	}
	st := snap.Sources[switchboard.SourceAccount1]
	if got, want := st.LastReason, switchboard.SourceSignInError; got != want {
		t.Errorf("account 1 last reason %q, want %q", got, want)
	}
	if !st.RetryAt.IsZero() {
		t.Errorf("account 1 paused until %v by an Entra outage, want not paused", st.RetryAt)
	}
	delete(e.graph.fail, switchboard.SourceAccount1)
	e.graph.resetCalls()
	e.clock.Advance(30 * time.Second)
	e.poll(t)
	if got, want := sourcesOf(e.graph.callLog()), string(switchboard.SourceAccount1); got != want {
		t.Errorf("next poll read through %q, want %q", got, want)
	}
}

func TestSourceErrorDisqualifies(t *testing.T) {
	cases := []struct {
		reason switchboard.SourceReason
		want   bool
	}{
		{switchboard.SourceThrottled, false}, {switchboard.SourceGraphError, false}, {switchboard.SourceUserNotFound, false},
		{switchboard.SourceMFARequired, true}, {switchboard.SourceNotInvited, true}, {switchboard.SourceWrongPassword, true},
		{switchboard.SourcePermissionNotGranted, true}, {switchboard.SourceSignInBlocked, true}, {switchboard.SourceAppMisconfigured, true},
	}
	for _, tc := range cases {
		t.Run(string(tc.reason), func(t *testing.T) {
			if got := (&switchboard.SourceError{Reason: tc.reason}).Disqualifies(); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	wrapped := switchboard.AsSourceError(switchboard.SourceAccount2, errors.New("connection reset"))
	if wrapped.Source != switchboard.SourceAccount2 || wrapped.Reason != switchboard.SourceGraphError {
		t.Errorf("a plain error becomes %+v, want a Graph error of account2", wrapped)
	}
}

type settingsFunc func(ctx context.Context, tenant string) (bool, error)

func (f settingsFunc) TrackOverGuestAccounts(ctx context.Context, tenant string) (bool, error) {
	return f(ctx, tenant)
}

func TestCandidates(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	paused := SourceStatus{PresenceSourceStatus: switchboard.PresenceSourceStatus{RetryAt: now.Add(time.Minute)}}
	pauseOver := SourceStatus{PresenceSourceStatus: switchboard.PresenceSourceStatus{RetryAt: now.Add(-time.Second)}}
	var (
		a1, a2, app = switchboard.PresenceSource(switchboard.SourceAccount1), switchboard.PresenceSource(switchboard.SourceAccount2),
			switchboard.PresenceSource(switchboard.SourceApplication)
	)
	cases := []struct {
		name        string
		guest       bool
		settingsErr error
		noSettings  bool
		account1    string
		account2    string
		noApp       bool
		statuses    map[switchboard.PresenceSource]SourceStatus
		want        []switchboard.PresenceSource
		wantErr     bool
	}{
		{name: "guest accounts on: account 1, account 2, application", guest: true, account1: "p1", account2: "p2",
			want: []switchboard.PresenceSource{a1, a2, app}},
		{name: "guest accounts off: application only", guest: false, account1: "p1", account2: "p2",
			want: []switchboard.PresenceSource{app}},
		{name: "no settings service: application only", noSettings: true, account1: "p1", account2: "p2",
			want: []switchboard.PresenceSource{app}},
		{name: "settings unreadable: application only, error returned", settingsErr: errors.New("table down"), account1: "p1", account2: "p2",
			want: []switchboard.PresenceSource{app}, wantErr: true},
		{name: "account 2 not configured", guest: true, account1: "p1",
			want: []switchboard.PresenceSource{a1, app}},
		{name: "account 1 not configured", guest: true, account2: "p2",
			want: []switchboard.PresenceSource{a2, app}},
		{name: "no application secret", guest: true, account1: "p1", account2: "p2", noApp: true,
			want: []switchboard.PresenceSource{a1, a2}},
		{name: "account 1 pausing after its own failure", guest: true, account1: "p1", account2: "p2",
			statuses: map[switchboard.PresenceSource]SourceStatus{a1: paused},
			want:     []switchboard.PresenceSource{a2, app}},
		{name: "a pause that is over counts no more", guest: true, account1: "p1", account2: "p2",
			statuses: map[switchboard.PresenceSource]SourceStatus{a1: pauseOver, app: pauseOver},
			want:     []switchboard.PresenceSource{a1, a2, app}},
		{name: "everything pausing: nothing to try", guest: true, account1: "p1", account2: "p2",
			statuses: map[switchboard.PresenceSource]SourceStatus{a1: paused, a2: paused, app: paused}},
		{name: "nothing configured", guest: true, noApp: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := PollerOptions{Account1UPN: tc.account1, Account2UPN: tc.account2, ApplicationConfigured: !tc.noApp}
			if !tc.noSettings {
				o.Settings = settingsFunc(func(context.Context, string) (bool, error) { return tc.guest, tc.settingsErr })
			}
			p := &Poller{o: o}
			got, err := p.candidates(context.Background(), tenantA, tc.statuses, now)
			if !slices.Equal(got, tc.want) {
				t.Errorf("candidates = %v, want %v", got, tc.want)
			}
			if (err != nil) != tc.wantErr {
				t.Errorf("error = %v, want one: %v", err, tc.wantErr)
			}
		})
	}
}

// TestReadFallback drives one call (tenantPoll.read) through scripted
// failures of each source.
func TestReadFallback(t *testing.T) {
	a1, a2, app := switchboard.PresenceSource(switchboard.SourceAccount1), switchboard.PresenceSource(switchboard.SourceAccount2),
		switchboard.PresenceSource(switchboard.SourceApplication)
	all := []switchboard.PresenceSource{a1, a2, app}
	errThrottled := &switchboard.SourceError{Reason: switchboard.SourceThrottled, Message: "429", Status: 429, RetryAfter: 2 * time.Second}
	errSignInDown := &switchboard.SourceError{Reason: switchboard.SourceSignInError, Message: "Entra unreachable", Transient: true}
	cases := []struct {
		name string
		// script answers the n-th call (from 0) through a source; nil: success.
		script      map[switchboard.PresenceSource][]error
		sources     []switchboard.PresenceSource
		wantCalls   string
		wantSource  switchboard.PresenceSource // "" when the call fails
		wantDead    []switchboard.PresenceSource
		wantErr     string // part of the error's message
		wantPaused  []switchboard.PresenceSource
		wantSpent   int
		wantErrors  int
		wantThrottl int
	}{
		{name: "first source works", sources: all, wantCalls: "account1", wantSource: a1, wantSpent: 1},
		{name: "MFA drops account 1 for the poll: account 2 takes the call", sources: all,
			script:    map[switchboard.PresenceSource][]error{a1: {errMFA}},
			wantCalls: "account1,account2", wantSource: a2, wantDead: []switchboard.PresenceSource{a1}, wantPaused: []switchboard.PresenceSource{a1},
			wantSpent: 1, wantErrors: 1},
		{name: "a Graph error is tried twice, then the next source", sources: all,
			script:    map[switchboard.PresenceSource][]error{a1: {errGraphFailed, errGraphFailed}},
			wantCalls: "account1,account1,account2", wantSource: a2, wantSpent: 3, wantErrors: 2},
		{name: "one Graph error, then the same source works", sources: all,
			script:    map[switchboard.PresenceSource][]error{a1: {errGraphFailed}},
			wantCalls: "account1,account1", wantSource: a1, wantSpent: 2, wantErrors: 1},
		{name: "throttled: waits and tries the same source", sources: all,
			script:    map[switchboard.PresenceSource][]error{a1: {errThrottled}},
			wantCalls: "account1,account1", wantSource: a1, wantSpent: 2, wantErrors: 1, wantThrottl: 1},
		{name: "an unreachable Entra neither drops nor pauses the source, costs no call", sources: all,
			script:    map[switchboard.PresenceSource][]error{a1: {errSignInDown}},
			wantCalls: "account1,account1", wantSource: a1, wantSpent: 1, wantErrors: 1},
		{name: "every source fails for a reason of its own", sources: all,
			script:    map[switchboard.PresenceSource][]error{a1: {errMFA}, a2: {errNotInvited}, app: {errNoConsent}},
			wantCalls: "account1,account2,application", wantDead: all, wantPaused: all,
			wantErr: "every source failed: account1: mfa-required; account2: not-invited; application: permission-not-granted", wantSpent: 1, wantErrors: 3},
		{name: "no source: not configured, no call", sources: nil, wantErr: "not-configured"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, store.NewMemoryTables(), true)
			n := map[switchboard.PresenceSource]int{}
			e.graph.failIf = func(src switchboard.PresenceSource, ids []string) error {
				e.graph.mu.Lock()
				defer e.graph.mu.Unlock()
				i := n[src]
				n[src]++
				if i < len(tc.script[src]) {
					return tc.script[src][i]
				}
				return nil
			}
			e.graph.set("u1", switchboard.Busy, switchboard.ActivityInACall)
			tp := e.poller.startTenantPoll(context.Background(), pollPlan{tenant: tenantA, plannedAt: e.clock.Now()}, e.clock.Now().Add(25*time.Second),
				&PollFigures{}, e.poller.o.Log)
			tp.sources = tc.sources
			readings, src, _, err := tp.read(context.Background(), []string{"u1"})

			if got := sourcesOf(e.graph.callLog()); got != tc.wantCalls {
				t.Errorf("calls through %q, want %q", got, tc.wantCalls)
			}
			if src != tc.wantSource {
				t.Errorf("read through %q, want %q", src, tc.wantSource)
			}
			if tc.wantErr == "" && (err != nil || len(readings) != 1) {
				t.Errorf("read = %v, %v; want one reading", readings, err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("error %v, want one saying %q", err, tc.wantErr)
			}
			for _, s := range all {
				if dead := tp.dead[s] != nil; dead != slices.Contains(tc.wantDead, s) {
					t.Errorf("%s dropped for the poll: %v, want %v", s, dead, !dead)
				}
				if paused := tp.statuses[s].RetryAt.After(e.clock.Now()); paused != slices.Contains(tc.wantPaused, s) {
					t.Errorf("%s pausing: %v, want %v", s, paused, !paused)
				}
			}
			if tp.calls != tc.wantSpent || tp.errors != tc.wantErrors || tp.throttled != tc.wantThrottl {
				t.Errorf("calls spent %d, errors %d, throttled %d; want %d, %d, %d", tp.calls, tp.errors, tp.throttled, tc.wantSpent, tc.wantErrors, tc.wantThrottl)
			}
		})
	}
}

package graph_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"switchboard/handler/dev/graphsim"
	"switchboard/handler/httpapi"
	"switchboard/handler/presence"
	"switchboard/handler/richnotify"
	"switchboard/handler/switchboard"
)

// Presence change notifications end to end: the simulator's subscriptions
// and encrypted notifications, the real Graph adapter, PresenceNotifications
// on a loopback HTTP server, readings in Azurite.

// switchableGuest is a tenant setting a test turns off.
type switchableGuest struct{ on *atomic.Bool }

func (g switchableGuest) TrackOverGuestAccounts(context.Context, string) (bool, error) {
	return g.on.Load(), nil
}

type notifyEnv struct {
	*pollEnv
	guest    *atomic.Bool
	cert     *richnotify.Certificate
	recv     *presence.Notifications
	sub      *presence.Subscriber
	svc      *presence.Service
	endpoint string
	async    chan func(context.Context)
}

type notifyConfig struct {
	maxUsers int
	// reconcileEvery 1ns reads the covered agents at every Maintain.
	reconcileEvery time.Duration
	recent         presence.RoutingActivity
	url            func(base string) string // the notification URL given to Graph
	now            func() time.Time
}

func newNotifyEnv(t *testing.T, users int, c notifyConfig) *notifyEnv {
	t.Helper()
	if c.now == nil {
		c.now = time.Now
	}
	e := &notifyEnv{pollEnv: newPollEnv(t, fullyConsented, users, c.now), async: make(chan func(context.Context), 16), guest: &atomic.Bool{}}
	e.guest.Store(true)
	e.sim.SetClock(c.now)
	pemBytes, err := richnotify.GenerateCertificate("switchboard test")
	if err != nil {
		t.Fatal(err)
	}
	if e.cert, err = richnotify.ParseCertificate(pemBytes); err != nil {
		t.Fatal(err)
	}
	router := httpapi.NewRouter(slog.New(slog.DiscardHandler), nil)
	srv := httptest.NewServer(router)
	t.Cleanup(srv.Close)
	e.endpoint = srv.URL + "/api/presence-notifications"
	notifyURL := e.endpoint
	if c.url != nil {
		notifyURL = c.url(srv.URL)
	}
	e.sub, err = presence.NewSubscriber(presence.SubscriberOptions{
		Store: e.store, Graph: e.client, Subs: e.client, Tracked: tracked{tenantID: e.ids()}, Settings: switchableGuest{e.guest},
		NotificationURL: notifyURL, Certificate: e.cert, Account1UPN: account1, Account2UPN: account2,
		Now: c.now, MaxUsers: c.maxUsers, ReconcileEvery: c.reconcileEvery, Recent: c.recent,
		// Lifecycle work runs when the test says, so it can look in between.
		Async: func(f func(context.Context)) { e.async <- f },
	})
	if err != nil {
		t.Fatal(err)
	}
	e.recv, err = presence.NewNotifications(presence.NotificationsOptions{Store: e.store, Certificate: e.cert, Lifecycle: e.sub, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	(&httpapi.NotificationsAPI{Receiver: e.recv}).Register(router)
	e.svc, err = presence.NewService(presence.ServiceOptions{Store: e.store, Graph: e.client, Settings: switchableGuest{e.guest}, Now: c.now,
		Account1UPN: account1, Account2UPN: account2, ApplicationConfigured: true, NotificationsConfigured: true})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// runAsync runs the lifecycle work queued so far.
func (e *notifyEnv) runAsync(t *testing.T) {
	t.Helper()
	for {
		select {
		case f := <-e.async:
			f(context.Background())
		default:
			return
		}
	}
}

func (e *notifyEnv) maintain(t *testing.T) presence.HousekeepingReport {
	t.Helper()
	rep, err := e.sub.Maintain(context.Background(), tenantID)
	if err != nil {
		t.Logf("maintain: %v", err)
	}
	return rep
}

func (e *notifyEnv) view(t *testing.T) presence.NotificationsView {
	t.Helper()
	tr, err := e.svc.Tracking(context.Background(), tenantID)
	if err != nil {
		t.Fatal(err)
	}
	return tr.Notifications
}

// waitFor polls cond until it holds; the timeout is generous (no timing
// is asserted here: latency is the benchmark's).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *notifyEnv) reading(t *testing.T, user string) switchboard.Presence {
	t.Helper()
	m, err := e.store.Readings(context.Background(), tenantID, []string{user})
	if err != nil {
		t.Fatal(err)
	}
	return m[user]
}

func TestNotificationValidationHandshake(t *testing.T) {
	router := httpapi.NewRouter(slog.New(slog.DiscardHandler), nil)
	(&httpapi.NotificationsAPI{Receiver: nil}).Register(router)
	srv := httptest.NewServer(router)
	defer srv.Close()
	token := "Validation: Testing client application reachability for subscription Request-Id: 3b5e-<x>&y"
	resp, err := http.Post(srv.URL+"/api/presence-notifications?validationToken="+url.QueryEscape(token), "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") || string(body) != token {
		t.Fatalf("got %d %q %q, want 200 text/plain with the decoded token", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}

func TestSubscriptionNeedsTheHandshakeOnBothURLs(t *testing.T) {
	// An endpoint that does not echo the token: Graph (the simulator)
	// refuses the subscription, which is recorded as failing.
	e := newNotifyEnv(t, 5, notifyConfig{url: func(base string) string { return base + "/api/nowhere" }})
	e.poll(t)
	e.maintain(t)
	if subs := e.sim.Subscriptions(tenantID); len(subs) != 0 {
		t.Fatalf("%d subscriptions created without a handshake", len(subs))
	}
	if st := e.sim.Stats(); st.ValidationFailures == 0 {
		t.Fatalf("no validation was attempted: %+v", st)
	}
	v := e.view(t)
	if v.State != presence.NotifyFailing || v.Covered != 0 || v.LastError == "" {
		t.Fatalf("view %+v, want failing, nothing covered, an error", v)
	}
}

func TestCoveredChangeIsStoredWithoutAPoll(t *testing.T) {
	e := newNotifyEnv(t, 10, notifyConfig{})
	e.poll(t)
	e.maintain(t)
	if subs := e.sim.Subscriptions(tenantID); len(subs) != 1 || len(subs[0].Users) != 10 {
		t.Fatalf("subscriptions %+v, want one over the 10 agents", subs)
	}
	if v := e.view(t); v.State != presence.NotifyActive || v.Covered != 10 {
		t.Fatalf("view %+v, want active over 10", v)
	}
	e.sim.ResetStats()
	user := e.users[3].ID
	e.sim.SetPresence(tenantID, user, "Busy", "InACall", false)
	waitFor(t, "the notified reading", func() bool { return e.reading(t, user).Activity == "InACall" })
	p := e.reading(t, user)
	if p.Source != string(switchboard.SourceAccount1) || !p.Extended || p.Availability != "Busy" {
		t.Fatalf("reading %+v, want Busy/InACall, extended, through account1", p)
	}
	if st := e.sim.Stats(); st.PresenceCalls != 0 || st.NotificationsSent == 0 {
		t.Fatalf("stats %+v: want the change by notification, with no presence read", st)
	}
	if c := e.recv.Counts(); c.Accepted == 0 || c.Written == 0 {
		t.Fatalf("counts %+v", c)
	}
}

func TestRejectedNotificationsChangeNothing(t *testing.T) {
	e := newNotifyEnv(t, 4, notifyConfig{})
	e.poll(t)
	e.maintain(t)
	subs := e.sim.Subscriptions(tenantID)
	if len(subs) != 1 {
		t.Fatalf("%d subscriptions", len(subs))
	}
	sub := subs[0]
	user := e.users[0].ID
	before := e.reading(t, user)
	resource, _ := json.Marshal(map[string]any{"id": user, "availability": "DoNotDisturb", "activity": "Presenting"})
	good, err := richnotify.Encrypt(e.cert.X509(), e.cert.ID(), resource)
	if err != nil {
		t.Fatal(err)
	}
	tampered := good
	{
		other, _ := richnotify.Encrypt(e.cert.X509(), e.cert.ID(), []byte(`{"id":"`+user+`","availability":"Offline","activity":"Offline"}`))
		tampered.Data = other.Data // valid ciphertext, but not what was signed
	}
	item := func(subID, clientState string, c richnotify.Content) map[string]any {
		return map[string]any{"subscriptionId": subID, "clientState": clientState, "changeType": "updated", "tenantId": tenantID, "encryptedContent": c}
	}
	cases := []struct {
		name  string
		item  map[string]any
		count func(presence.NotificationCounts) int
	}{
		{"wrong client state", item(sub.ID, sub.ClientState+"x", good), func(c presence.NotificationCounts) int { return c.WrongClientState }},
		{"tampered data", item(sub.ID, sub.ClientState, tampered), func(c presence.NotificationCounts) int { return c.BadSignature }},
		{"unknown subscription", item("00000000-0000-4000-8000-00000000dead", sub.ClientState, good), func(c presence.NotificationCounts) int { return c.UnknownSubscription }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			was := tc.count(e.recv.Counts())
			body, _ := json.Marshal(map[string]any{"value": []any{tc.item}})
			resp, err := http.Post(e.endpoint, "application/json", strings.NewReader(string(body)))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("status %d, want 202 (never a retry-forever 5xx)", resp.StatusCode)
			}
			if got := tc.count(e.recv.Counts()); got != was+1 {
				t.Fatalf("counted %d, want %d", got, was+1)
			}
			if p := e.reading(t, user); p.Availability != before.Availability || p.Activity != before.Activity || !p.ChangedAt.Equal(before.ChangedAt) {
				t.Fatalf("reading changed: %+v, was %+v", p, before)
			}
		})
	}
	// A body that is not a notification collection is refused (400).
	resp, err := http.Post(e.endpoint, "application/json", strings.NewReader(`{"value":`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("malformed body: %d, want 400", resp.StatusCode)
	}
	// And the genuine one is taken.
	body, _ := json.Marshal(map[string]any{"value": []any{item(sub.ID, sub.ClientState, good)}})
	resp, err = http.Post(e.endpoint, "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if p := e.reading(t, user); p.Activity != "Presenting" {
		t.Fatalf("the genuine notification was not stored: %+v", p)
	}
}

func TestMissedPollsTheCoveredAgents(t *testing.T) {
	e := newNotifyEnv(t, 6, notifyConfig{})
	e.poll(t)
	e.maintain(t)
	// Graph loses the notification: the change reaches nobody...
	e.sim.SetNotificationDelay(time.Hour, time.Hour)
	user := e.users[2].ID
	e.sim.SetPresence(tenantID, user, "Away", "Away", false)
	e.sim.ResetStats()
	sub := e.sim.Subscriptions(tenantID)[0]
	if err := e.sim.SendLifecycle(sub.ID, "missed"); err != nil {
		t.Fatal(err)
	}
	// ...and until its agents are read, the subscription vouches for
	// nothing: the stale reading is not confirmed now.
	if v := e.view(t); v.State != presence.NotifyFailing {
		t.Fatalf("after missed: view %+v, want failing until the agents are read", v)
	}
	e.runAsync(t)
	if st := e.sim.Stats(); st.PresenceCalls == 0 {
		t.Fatalf("missed did not read the covered agents: %+v", st)
	}
	if p := e.reading(t, user); p.Availability != "Away" {
		t.Fatalf("reading %+v, want Away after the read", p)
	}
	if v := e.view(t); v.State != presence.NotifyActive || v.Covered != 6 {
		t.Fatalf("view %+v, want active again", v)
	}
}

func TestSubscriptionRemovedIsRecreated(t *testing.T) {
	e := newNotifyEnv(t, 3, notifyConfig{})
	e.poll(t)
	e.maintain(t)
	old := e.sim.Subscriptions(tenantID)[0]
	if err := e.sim.SendLifecycle(old.ID, "subscriptionRemoved"); err != nil {
		t.Fatal(err)
	}
	e.runAsync(t)
	subs := e.sim.Subscriptions(tenantID)
	if len(subs) != 1 || subs[0].ID == old.ID || len(subs[0].Users) != 3 {
		t.Fatalf("subscriptions %+v, want a new one over the 3 agents (old %s)", subs, old.ID)
	}
	if v := e.view(t); v.State != presence.NotifyActive {
		t.Fatalf("view %+v", v)
	}
}

type testClock struct{ t time.Time }

func (c *testClock) now() time.Time { return c.t }

func TestRenewalBeforeTheGrantedExpiry(t *testing.T) {
	clock := &testClock{t: time.Now()}
	e := newNotifyEnv(t, 3, notifyConfig{now: clock.now})
	e.sim.SetSubscriptionGrant(20 * time.Minute) // Graph grants less than the 60 min asked
	e.poll(t)
	e.maintain(t)
	first := e.sim.Subscriptions(tenantID)[0]
	if d := first.ExpiresAt.Sub(clock.t); d > 21*time.Minute {
		t.Fatalf("granted %v", d)
	}
	clock.t = clock.t.Add(4 * time.Minute) // 16 min left: not yet
	if rep := e.maintain(t); rep.Renewed != 0 || rep.Created != 0 {
		t.Fatalf("report %+v, want nothing done with 16 min left", rep)
	}
	clock.t = clock.t.Add(2 * time.Minute) // 14 min left: renew
	if rep := e.maintain(t); rep.Renewed != 1 || rep.Created != 0 {
		t.Fatalf("report %+v, want one renewal", rep)
	}
	after := e.sim.Subscriptions(tenantID)[0]
	if after.ID != first.ID || !after.ExpiresAt.After(first.ExpiresAt) {
		t.Fatalf("after renewal %+v, before %+v", after, first)
	}
	if v := e.view(t); len(v.Subscriptions) != 1 || !v.Subscriptions[0].ExpiresAt.Equal(after.ExpiresAt) {
		t.Fatalf("view %+v does not show the granted expiry %v", v, after.ExpiresAt)
	}
}

func TestCoveredAgentsNeverGoStaleWhileActive(t *testing.T) {
	clock := &testClock{t: time.Now()}
	e := newNotifyEnv(t, 5, notifyConfig{now: clock.now})
	e.poll(t)
	e.maintain(t)
	for i := 0; i < 12; i++ { // an hour and a half without a poll
		clock.t = clock.t.Add(8 * time.Minute)
		e.maintain(t) // housekeeping renews and reconciles
		for _, u := range e.users {
			if p := e.reading(t, u.ID); p.Stale(clock.t, 120*time.Second) {
				t.Fatalf("after %v: %s is stale (%+v)", time.Duration(i+1)*8*time.Minute, u.ID, p)
			}
		}
	}
	// Once the subscription fails, its agents are polled at once...
	if fig := e.poll(t); fig.Users != 0 || fig.Covered != 5 {
		t.Fatalf("poll while covered: %+v, want nothing read", fig)
	}
	e.sim.FailRenewals(100)
	clock.t = clock.t.Add(50 * time.Minute)
	e.maintain(t)
	if fig := e.poll(t); fig.Users != 5 || fig.Covered != 0 {
		t.Fatalf("poll after the failure: %+v, want the 5 read", fig)
	}
	// ...and without polls they go stale truthfully.
	e.sim.SetPresence(tenantID, e.users[0].ID, "Away", "Away", false)
	clock.t = clock.t.Add(10 * time.Minute)
	if p := e.reading(t, e.users[0].ID); !p.Stale(clock.t, 120*time.Second) {
		t.Fatalf("reading %+v confirmed %v after the subscription failed", p, clock.t.Sub(p.ConfirmedAt))
	}
}

func TestFailingAccountMovesItsSubscription(t *testing.T) {
	t.Run("to account 2 when it has none", func(t *testing.T) {
		e := newNotifyEnv(t, 4, notifyConfig{maxUsers: 5, reconcileEvery: time.Nanosecond})
		e.poll(t)
		e.maintain(t)
		if subs := e.sim.Subscriptions(tenantID); len(subs) != 1 || subs[0].UPN != account1 {
			t.Fatalf("subscriptions %+v, want one through account 1", subs)
		}
		// Account 1 is no longer a guest: the reconciliation read finds it
		// failing (the poll no longer reads its covered agents).
		e.sim.AddTenant(tenantID, graphsim.TenantOptions{DelegatedConsent: true, AppConsent: true, Guests: []string{account2}})
		e.maintain(t) // the read fails: the subscription fails, the account pauses
		e.maintain(t) // its agents move to account 2
		v := e.view(t)
		var a2 *presence.SubscriptionView
		for i := range v.Subscriptions {
			if v.Subscriptions[i].Account == 2 {
				a2 = &v.Subscriptions[i]
			}
		}
		if a2 == nil || a2.Users != 4 || a2.State != presence.NotifyActive {
			t.Fatalf("view %+v, want account 2 active over the 4 agents", v)
		}
	})
	t.Run("else back to polling", func(t *testing.T) {
		e := newNotifyEnv(t, 8, notifyConfig{maxUsers: 5, reconcileEvery: time.Nanosecond})
		e.poll(t)
		e.maintain(t)
		v := e.view(t)
		if len(v.Subscriptions) != 2 || v.Covered != 8 {
			t.Fatalf("view %+v, want two subscriptions over 8", v)
		}
		e.sim.AddTenant(tenantID, graphsim.TenantOptions{DelegatedConsent: true, AppConsent: true, Guests: []string{account2}})
		e.maintain(t)
		e.maintain(t)
		v = e.view(t)
		if fig := e.poll(t); fig.Users != 5 || fig.Covered != 3 {
			t.Fatalf("poll %+v, want account 1's 5 agents read and account 2's 3 covered", fig)
		}
		if v.Covered != 3 || v.State != presence.NotifyFailing {
			t.Fatalf("view %+v, want account 2 keeping its 3 and account 1's 5 polled", v)
		}
		for _, s := range v.Subscriptions {
			if s.Account == 2 && (s.Users != 3 || s.State != presence.NotifyActive) {
				t.Fatalf("account 2: %+v", s)
			}
			if s.Account == 1 && s.State != presence.NotifyFailing {
				t.Fatalf("account 1: %+v", s)
			}
		}
	})
}

func TestTwoThousandAgentsBothAccounts(t *testing.T) {
	e := newNotifyEnv(t, 2000, notifyConfig{})
	e.poll(t)
	e.maintain(t)
	subs := e.sim.Subscriptions(tenantID)
	if len(subs) != 2 || len(subs[0].Users) != 650 || len(subs[1].Users) != 650 {
		t.Fatalf("%d subscriptions, want two of 650", len(subs))
	}
	covered := map[string]bool{}
	for _, s := range subs {
		for _, u := range s.Users {
			covered[u] = true
		}
	}
	if v := e.view(t); v.Covered != 1300 {
		t.Fatalf("covered %d, want 1300", v.Covered)
	}
	// The poll reads the 700 others, every tick, and keeps the covered
	// agents' readings.
	e.sim.ResetStats()
	fig := e.poll(t)
	if fig.Users != 700 || fig.Covered != 1300 || fig.Calls != 2 {
		t.Fatalf("poll figures %+v, want 700 read in 2 calls, 1300 covered", fig)
	}
	if st := e.sim.Stats(); st.PresenceIDs != 700 {
		t.Fatalf("the poll asked for %d ids, want 700", st.PresenceIDs)
	}
	if got := e.readings(t); len(got) != 2000 {
		t.Fatalf("%d readings after the poll, want all 2000 kept", len(got))
	}
	// With no routing history the set is the lowest user ids.
	ids := e.ids()
	slices.Sort(ids)
	for i, id := range ids {
		if covered[id] != (i < 1300) {
			t.Fatalf("user %d (%s) covered=%v", i, id, covered[id])
		}
	}
}

func TestLostSubscriptionIsClearedAfterA409(t *testing.T) {
	e := newNotifyEnv(t, 3, notifyConfig{})
	e.poll(t)
	e.maintain(t)
	old := e.sim.Subscriptions(tenantID)
	if len(old) != 1 {
		t.Fatalf("%d subscriptions", len(old))
	}
	// The deployment loses its row (an instance died between creating
	// the subscription and saving it): Graph refuses a second one (409).
	state, err := e.tables.Table(context.Background(), "presencestate")
	if err != nil {
		t.Fatal(err)
	}
	if err := state.Delete(context.Background(), tenantID, "notify.account1", "*"); err != nil {
		t.Fatal(err)
	}
	e.maintain(t)
	subs := e.sim.Subscriptions(tenantID)
	if len(subs) != 1 || subs[0].ID == old[0].ID {
		t.Fatalf("subscriptions %+v, want the lost one replaced (was %s)", subs, old[0].ID)
	}
	if st := e.sim.Stats(); st.Conflicts != 1 {
		t.Fatalf("conflicts %d, want the one 409 that led to the clean-up", st.Conflicts)
	}
	if v := e.view(t); v.State != presence.NotifyActive || v.Covered != 3 {
		t.Fatalf("view %+v", v)
	}
}

func TestSubscriptionsDeletedWhenTheTenantStopsTrackingOverGuests(t *testing.T) {
	e := newNotifyEnv(t, 3, notifyConfig{})
	e.poll(t)
	e.maintain(t)
	if n := len(e.sim.Subscriptions(tenantID)); n != 1 {
		t.Fatalf("%d subscriptions", n)
	}
	e.guest.Store(false)
	if rep := e.maintain(t); rep.Deleted != 1 {
		t.Fatalf("report %+v, want one deleted", rep)
	}
	if n := len(e.sim.Subscriptions(tenantID)); n != 0 {
		t.Fatalf("%d subscriptions left in Graph", n)
	}
	e.guest.Store(true) // the view reads the rows: none left
	if v := e.view(t); v.State != presence.NotifyOff || len(v.Subscriptions) != 0 {
		t.Fatalf("view %+v, want off with no subscription", v)
	}
}

func TestReauthorizationRequiredReauthorizesAndRenews(t *testing.T) {
	e := newNotifyEnv(t, 3, notifyConfig{})
	e.sim.SetSubscriptionGrant(30 * time.Minute)
	e.poll(t)
	e.maintain(t)
	sub := e.sim.Subscriptions(tenantID)[0]
	e.sim.ResetStats()
	if err := e.sim.SendLifecycle(sub.ID, "reauthorizationRequired"); err != nil {
		t.Fatal(err)
	}
	e.runAsync(t)
	if st := e.sim.Stats(); st.Reauthorized != 1 || st.SubscriptionsRenewed != 1 {
		t.Fatalf("stats %+v, want one reauthorization and one renewal", st)
	}
	if after := e.sim.Subscriptions(tenantID)[0]; after.ID != sub.ID || after.ExpiresAt.Before(sub.ExpiresAt) {
		t.Fatalf("after %+v, before %+v", after, sub)
	}
}

// lastRouted is routing's word on who was routed when.
type lastRouted struct {
	mu sync.Mutex
	at map[string]time.Time
}

func (l *lastRouted) LastRouted(context.Context, string) (map[string]time.Time, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.at), nil
}

func TestCoveredSetIsRechosenAtMostEvery15Minutes(t *testing.T) {
	clock := &testClock{t: time.Now()}
	recent := &lastRouted{at: map[string]time.Time{}}
	e := newNotifyEnv(t, 3, notifyConfig{now: clock.now, maxUsers: 1, recent: recent})
	ids := e.ids()
	slices.Sort(ids)
	recent.at[ids[2]] = clock.t // the most recently routed agent comes first
	e.poll(t)
	e.maintain(t)
	covered := func() []string {
		var out []string
		for _, s := range e.sim.Subscriptions(tenantID) {
			out = append(out, s.Users...)
		}
		slices.Sort(out)
		return out
	}
	// One user per subscription (maxUsers 1), two accounts: the recent
	// agent and the lowest id.
	if got, want := covered(), []string{ids[0], ids[2]}; !slices.Equal(got, want) {
		t.Fatalf("covered %v, want %v", got, want)
	}
	clock.t = clock.t.Add(5 * time.Minute)
	recent.at[ids[1]] = clock.t
	if rep := e.maintain(t); rep.Created != 0 {
		t.Fatalf("re-chosen after 5 min: %+v", rep)
	}
	clock.t = clock.t.Add(11 * time.Minute) // 16 min since the choice
	if rep := e.maintain(t); rep.Created != 1 {
		t.Fatalf("report %+v, want the changed subscription re-created (the other only kept)", rep)
	}
	if got, want := covered(), []string{ids[1], ids[2]}; !slices.Equal(got, want) {
		t.Fatalf("covered %v, want %v", got, want)
	}
}

package interact_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"switchboard/handler/interact"
	"switchboard/handler/internal/fakeclock"
	"switchboard/handler/outbox"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// fakeSettings are tenants' settings in memory.
type fakeSettings struct {
	mu sync.Mutex
	m  map[string]interact.TenantConfig
}

func defaults() interact.TenantConfig {
	return interact.TenantConfig{RecoverySeconds: 20, Authorization: switchboard.InteractAuthorizationNone}
}

func (f *fakeSettings) Config(ctx context.Context, tenant string) (interact.TenantConfig, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.m[tenant]; ok {
		return s, nil
	}
	return defaults(), nil
}

func (f *fakeSettings) set(tenant string, fn func(*interact.TenantConfig)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.m[tenant]
	if !ok {
		s = defaults()
	}
	fn(&s)
	f.m[tenant] = s
}

// fakeACS issues identities and tokens per endpoint; every token differs.
type fakeACS struct {
	mu         sync.Mutex
	identities map[string]string // id -> endpoint
	tokens     int
	fail       error
}

func (f *fakeACS) CreateIdentity(ctx context.Context, cs switchboard.ACSConnectionString, scopes []string) (string, interact.AccessToken, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return "", interact.AccessToken{}, f.fail
	}
	if !slices.Equal(scopes, []string{"chat", "voip"}) {
		return "", interact.AccessToken{}, fmt.Errorf("scopes %v", scopes)
	}
	id := fmt.Sprintf("8:acs:%d", len(f.identities)+1)
	f.identities[id] = cs.Endpoint
	f.tokens++
	return id, interact.AccessToken{Token: fmt.Sprintf("token-%d", f.tokens), ExpiresOn: time.Now().Add(24 * time.Hour)}, nil
}

func (f *fakeACS) IssueToken(ctx context.Context, cs switchboard.ACSConnectionString, id string, scopes []string) (interact.AccessToken, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ep, ok := f.identities[id]; !ok || ep != cs.Endpoint {
		return interact.AccessToken{}, switchboard.Errorf(switchboard.ENOTFOUND, "fake", "no identity %s at %s", id, cs.Endpoint)
	}
	f.tokens++
	return interact.AccessToken{Token: fmt.Sprintf("token-%d", f.tokens), ExpiresOn: time.Now().Add(24 * time.Hour)}, nil
}

// fakeMeetings creates meetings, or fails as told.
type fakeMeetings struct {
	mu         sync.Mutex
	n          int
	organizers []string
	fail       error
}

func (f *fakeMeetings) CreateMeeting(ctx context.Context, tenant, organizer, subject string, start time.Time, d time.Duration) (interact.Meeting, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return interact.Meeting{}, f.fail
	}
	f.n++
	f.organizers = append(f.organizers, organizer)
	return interact.Meeting{ID: fmt.Sprintf("meeting-%d", f.n), JoinURL: fmt.Sprintf("https://teams.example/l/meetup-join/%d", f.n)}, nil
}

// fakeTimers records the scheduled messages; tests deliver them.
type fakeTimers struct {
	mu  sync.Mutex
	due []scheduled
}

type scheduled struct {
	at   time.Time
	body []byte
}

func (f *fakeTimers) Schedule(ctx context.Context, at time.Time, body []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.due = append(f.due, scheduled{at, body})
	return nil
}

// fire delivers every message due by now, as the queue would.
func (f *fakeTimers) fire(ctx context.Context, svc *interact.Service, now time.Time) (n int, err error) {
	f.mu.Lock()
	var ready, later []scheduled
	for _, s := range f.due {
		if !now.Before(s.at) {
			ready = append(ready, s)
		} else {
			later = append(later, s)
		}
	}
	f.due = later
	f.mu.Unlock()
	for _, s := range ready {
		if _, err := svc.HandleTimer(ctx, s.body); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// fakeDistribution is a waiting line as section 10 runs it, reduced to
// what sessions see: a conversation queued in order of arrival, offered
// and accepted as the test says, connected, ended or put back.
type fakeDistribution struct {
	mu     sync.Mutex
	clock  *fakeclock.Clock
	convs  map[string]*fakeConv
	events []string // "released <agent> <conv> acw=<bool>", "requeued <conv>", ...
}

type fakeConv struct {
	context             map[string]string
	id, service, direct string
	state, agent        string
	queuedAt            time.Time
	declined            []string
}

func newFakeDistribution(c *fakeclock.Clock) *fakeDistribution {
	return &fakeDistribution{clock: c, convs: map[string]*fakeConv{}}
}

func (f *fakeDistribution) Enqueue(ctx context.Context, tenant, service string, c interact.NewConversation) (interact.ConversationState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if service == "no-such-service" {
		return interact.ConversationState{}, switchboard.Errorf(switchboard.ENOTFOUND, "fake", "no service %s", service)
	}
	f.convs[c.ID] = &fakeConv{id: c.ID, service: service, state: interact.ConvQueued, queuedAt: f.clock.Now(), context: c.Context}
	return f.stateLocked(c.ID), nil
}

// stranger is a user distribution could never offer anything (a member of
// no service).
const stranger = "0f3e2d1c-0000-4000-8000-0000000000ee"

func (f *fakeDistribution) CheckDirect(ctx context.Context, tenant, agent string) error {
	if agent == stranger {
		return switchboard.FieldError("fake", "userId", "%s is a member of none of this tenant's services", agent)
	}
	return nil
}

func (f *fakeDistribution) OfferDirect(ctx context.Context, tenant, agent string, c interact.NewConversation) (interact.ConversationState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.convs[c.ID] = &fakeConv{id: c.ID, direct: agent, state: interact.ConvOffered, queuedAt: f.clock.Now()}
	return f.stateLocked(c.ID), nil
}

func (f *fakeDistribution) State(ctx context.Context, tenant, id string) (interact.ConversationState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.convs[id] == nil {
		return interact.ConversationState{}, switchboard.Errorf(switchboard.ENOTFOUND, "fake", "no conversation %s", id)
	}
	return f.stateLocked(id), nil
}

// stateLocked computes the position: waiting conversations of the same
// service in order of arrival (then id).
func (f *fakeDistribution) stateLocked(id string) interact.ConversationState {
	c := f.convs[id]
	st := interact.ConversationState{State: c.state, Agent: c.agent}
	if c.state == interact.ConvQueued || c.state == interact.ConvOffered {
		line := f.lineLocked(c.service)
		st.Position = slices.Index(line, id) + 1
	}
	return st
}

func (f *fakeDistribution) lineLocked(service string) []string {
	var waiting []*fakeConv
	for _, c := range f.convs {
		if c.service == service && (c.state == interact.ConvQueued || c.state == interact.ConvOffered) {
			waiting = append(waiting, c)
		}
	}
	sort.Slice(waiting, func(i, j int) bool {
		if !waiting[i].queuedAt.Equal(waiting[j].queuedAt) {
			return waiting[i].queuedAt.Before(waiting[j].queuedAt)
		}
		return waiting[i].id < waiting[j].id
	})
	ids := make([]string, len(waiting))
	for i, c := range waiting {
		ids[i] = c.id
	}
	return ids
}

func (f *fakeDistribution) End(ctx context.Context, tenant, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.convs[id]
	switch {
	case c == nil:
		return switchboard.Errorf(switchboard.ENOTFOUND, "fake", "no conversation %s", id)
	case c.state == interact.ConvConnected:
		f.events = append(f.events, fmt.Sprintf("released %s %s acw=true", c.agent, id))
		c.state = "Ended"
	case c.state == interact.ConvQueued || c.state == interact.ConvOffered:
		c.state = "Abandoned"
		f.events = append(f.events, "abandoned "+id)
	}
	return nil
}

func (f *fakeDistribution) Requeue(ctx context.Context, tenant, id string) (interact.ConversationState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.convs[id]
	if c == nil {
		return interact.ConversationState{}, switchboard.Errorf(switchboard.ENOTFOUND, "fake", "no conversation %s", id)
	}
	if c.state == interact.ConvConnected {
		f.events = append(f.events, fmt.Sprintf("released %s %s acw=false", c.agent, id), "requeued "+id)
		c.declined = append(c.declined, c.agent)
		c.state, c.agent = interact.ConvQueued, ""
	}
	return f.stateLocked(id), nil
}

// accept connects a waiting conversation to agent, as an accepted offer.
func (f *fakeDistribution) accept(id, agent string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.convs[id]
	if c == nil || (c.state != interact.ConvQueued && c.state != interact.ConvOffered) {
		return fmt.Errorf("conversation %s is not waiting", id)
	}
	if slices.Contains(c.declined, agent) {
		return fmt.Errorf("conversation %s is not offered to %s again", id, agent)
	}
	c.state, c.agent = interact.ConvConnected, agent
	return nil
}

func (f *fakeDistribution) contextOf(id string) map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.convs[id].context
}

func (f *fakeDistribution) line(service string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lineLocked(service)
}

func (f *fakeDistribution) log() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.events, "\n")
}

// fakeOutbox hands over outbox rows as the events capability does: on
// Flush it reads them, records them and deletes them.
type fakeOutbox struct {
	tables   store.Tables
	mu       sync.Mutex
	prepared int
	events   []switchboard.Event
}

func (f *fakeOutbox) Prepare(ctx context.Context, table, pk string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.prepared++
	return nil
}

func (f *fakeOutbox) Flush(ctx context.Context, table, pk string) {
	t, _ := f.tables.Table(ctx, table)
	rows, err := outbox.Read(ctx, t, pk)
	if err != nil {
		panic(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range rows {
		f.events = append(f.events, r.Event)
		_ = t.Delete(ctx, pk, r.RowKey, "")
	}
}

// types returns the types of the events of one subject, in order.
func (f *fakeOutbox) types(subject string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, e := range f.events {
		if e.Subject == subject {
			out = append(out, strings.TrimPrefix(e.Type, "switchboard.interactSession.")+"/"+fmt.Sprint(e.Sequence))
		}
	}
	return out
}

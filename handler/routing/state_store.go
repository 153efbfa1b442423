package routing

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// The state table holds, per tenant (partition key), rows of four kinds:
//
//	a|h|<user>      a hold: the agent holds a conversation. It exists only
//	                while held (or until an expired hold is swept), so one
//	                range query reads every hold of the tenant.
//	a|i|<shard>     the idle ledger: when each agent's last conversation
//	                ended, packed into idleShards rows. LongestIdle needs it
//	                for every member on every route: a row per agent would
//	                be a 1,000-row read per route (over 100 ms on Azurite).
//	c|<conversation> the conversation index: which agents hold it, so that
//	                the same conversation asked twice returns the same hold
//	                and Release finds its agents.
//	r|<service>     the round-robin position of a service.
//	outbox|...      agent events written with a hold change (package
//	                outbox), until the events capability hands them on.
//
// Holds and ledger share the prefix "a|" so that one query reads both.
const (
	agentPrefix = "a|"
	holdPrefix  = "a|h|"
	idlePrefix  = "a|i|"
	convPrefix  = "c|"
	rrPrefix    = "r|"
)

type stateStore struct {
	t store.Table
	// ledgerLocks serialises this process's ledger updates per row, so
	// that concurrent releases in one instance do not fight over ETags.
	ledgerLocks [64]sync.Mutex
}

// hold is a hold row.
type hold struct {
	UserID         string
	ConversationID string
	ServiceID      string
	HeldAt         time.Time
	ExpiresAt      time.Time
	UntilReleased  bool
	// Kind is switchboard.HoldConversation, HoldOffer, HoldRona or
	// HoldAfterCallWork.
	Kind string
	// Rona, on an offer, is the RONA its ring-out puts the agent into (0:
	// none, as for Broadcast or with RONA off). It is stored with the
	// offer so that the ring-out needs no later write to hold the agent
	// out (see current).
	Rona time.Duration
	ETag string
}

// current returns the hold as it stands at now, and whether it is a
// ring-out: an offer carrying a RONA whose ring time is up is that RONA,
// from the end of the ring for Rona, although the row still reads "offer"
// until the lapse message or the expiry sweep writes the RONA (with its
// ronaStarted event). Every instance decides the same from the row alone,
// so no route can take the agent between the ring's end and the lapse.
func (h hold) current(now time.Time) (hold, bool) {
	if h.Kind != switchboard.HoldOffer || h.Rona <= 0 || h.UntilReleased || now.Before(h.ExpiresAt) {
		return h, false
	}
	r := h
	r.Kind, r.HeldAt, r.ExpiresAt, r.Rona = switchboard.HoldRona, h.ExpiresAt, h.ExpiresAt.Add(h.Rona), 0
	return r, true
}

func (h hold) state() AgentState {
	return AgentState{
		ConversationID: h.ConversationID,
		ServiceID:      h.ServiceID,
		HeldAt:         h.HeldAt,
		HoldExpiresAt:  h.ExpiresAt,
		UntilReleased:  h.UntilReleased,
		Kind:           h.Kind,
	}
}

// expiredAt returns when an expired hold stopped holding.
func (h hold) expiredAt() time.Time {
	if h.UntilReleased {
		return h.HeldAt.Add(MaxUntilReleased)
	}
	return h.ExpiresAt
}

func encodeHold(tenant string, h hold) store.Entity {
	props := map[string]any{
		"conversationId": h.ConversationID,
		"serviceId":      h.ServiceID,
		"heldAt":         h.HeldAt.UTC(),
		"untilReleased":  h.UntilReleased,
	}
	if !h.ExpiresAt.IsZero() {
		props["expiresAt"] = h.ExpiresAt.UTC()
	}
	if h.Kind != "" {
		props["kind"] = h.Kind
	}
	if h.Kind == switchboard.HoldOffer && h.Rona > 0 {
		props["ronaMs"] = h.Rona.Milliseconds()
	}
	return store.Entity{PartitionKey: tenant, RowKey: holdPrefix + h.UserID, Props: props}
}

func decodeHold(e store.Entity) hold {
	return hold{
		UserID:         strings.TrimPrefix(e.RowKey, holdPrefix),
		ConversationID: e.String("conversationId"),
		ServiceID:      e.String("serviceId"),
		HeldAt:         e.Time("heldAt"),
		ExpiresAt:      e.Time("expiresAt"),
		UntilReleased:  e.Bool("untilReleased"),
		Kind:           e.String("kind"),
		Rona:           time.Duration(e.Int64("ronaMs")) * time.Millisecond,
		ETag:           e.ETag,
	}
}

// snapshot is a tenant's agent state as one query read it.
type snapshot struct {
	holds map[string]hold
	idle  map[string]time.Time
}

// holdStates returns the agent state of every hold row as it stands at
// now (a ring-out is its RONA). An expired hold still in the table counts
// as free, idle since it expired; the ledger's idle times are merged by
// Decide.
func holdStates(holds map[string]hold, now time.Time) map[string]AgentState {
	out := make(map[string]AgentState, len(holds))
	for u, h := range holds {
		h, _ = h.current(now)
		st := h.state()
		if !st.Holding(now) {
			st.IdleSince = h.expiredAt()
		}
		out[u] = st
	}
	return out
}

func (s *stateStore) snapshot(ctx context.Context, tenant string) (snapshot, error) {
	snap := snapshot{holds: map[string]hold{}, idle: map[string]time.Time{}}
	err := store.QueryAll(ctx, s.t, store.Query{PartitionKey: tenant, Prefix: agentPrefix}, func(e store.Entity) error {
		switch {
		case strings.HasPrefix(e.RowKey, holdPrefix):
			h := decodeHold(e)
			snap.holds[h.UserID] = h
		case strings.HasPrefix(e.RowKey, idlePrefix):
			for u, t := range decodeLedger(e) {
				snap.idle[u] = t
			}
		}
		return nil
	})
	return snap, err
}

// acquire takes a hold on h.UserID. prev is the hold row seen in the
// snapshot, if any (it must be free, or held by the same conversation). It
// reports false, without error, when someone else got there first.
func (s *stateStore) acquire(ctx context.Context, tenant string, h hold, prev *hold) (hold, bool, error) {
	e := encodeHold(tenant, h)
	var err error
	if prev != nil && prev.ETag == "" {
		// An update without If-Match would take the row whatever it holds.
		return hold{}, false, nil
	}
	if prev != nil {
		h.ETag, err = s.t.Update(ctx, e, prev.ETag)
		if switchboard.IsCode(err, switchboard.ENOTFOUND) {
			prev = nil // the expired row was swept meanwhile
		}
	}
	if prev == nil {
		h.ETag, err = s.t.Insert(ctx, e)
	}
	switch switchboard.ErrorCode(err) {
	case "":
		return h, true, nil
	case switchboard.ECONFLICT, switchboard.EPRECONDITION:
		// Taken or changed by someone else since the snapshot.
		return hold{}, false, nil
	}
	return hold{}, false, err
}

// getHold reads one agent's hold row. Returns ENOTFOUND when there is none.
func (s *stateStore) getHold(ctx context.Context, tenant, user string) (hold, error) {
	e, err := s.t.Get(ctx, tenant, holdPrefix+user)
	if err != nil {
		return hold{}, err
	}
	return decodeHold(e), nil
}

// holds returns every hold row of a tenant.
func (s *stateStore) holds(ctx context.Context, tenant string) ([]hold, error) {
	var out []hold
	err := store.QueryAll(ctx, s.t, store.Query{PartitionKey: tenant, Prefix: holdPrefix}, func(e store.Entity) error {
		out = append(out, decodeHold(e))
		return nil
	})
	return out, err
}

// conversation is a conversation index row.
type conversation struct {
	ID            string
	ServiceID     string
	Agents        []switchboard.Assignment
	UntilReleased bool
	HeldAt        time.Time
	ExpiresAt     time.Time // zero when held until released
	ETag          string
}

// live reports whether the conversation still holds its agents at now.
func (c conversation) live(now time.Time) bool {
	return AgentState{ConversationID: c.ID, HeldAt: c.HeldAt, HoldExpiresAt: c.ExpiresAt, UntilReleased: c.UntilReleased}.Holding(now)
}

func encodeConversation(tenant string, c conversation) store.Entity {
	agents := make([]string, len(c.Agents))
	for i, a := range c.Agents {
		agents[i] = a.UserID
	}
	b, _ := json.Marshal(agents)
	props := map[string]any{
		"serviceId":     c.ServiceID,
		"agents":        string(b),
		"untilReleased": c.UntilReleased,
		"heldAt":        c.HeldAt.UTC(),
	}
	if !c.ExpiresAt.IsZero() {
		props["expiresAt"] = c.ExpiresAt.UTC()
	}
	return store.Entity{PartitionKey: tenant, RowKey: convPrefix + c.ID, Props: props}
}

func decodeConversation(e store.Entity) conversation {
	c := conversation{
		ID:            strings.TrimPrefix(e.RowKey, convPrefix),
		ServiceID:     e.String("serviceId"),
		UntilReleased: e.Bool("untilReleased"),
		HeldAt:        e.Time("heldAt"),
		ExpiresAt:     e.Time("expiresAt"),
		ETag:          e.ETag,
	}
	var agents []string
	_ = json.Unmarshal([]byte(e.String("agents")), &agents)
	for _, u := range agents {
		c.Agents = append(c.Agents, switchboard.Assignment{UserID: u, HoldExpiresAt: c.ExpiresAt})
	}
	return c
}

// getConversation reads a conversation index row. Returns ENOTFOUND when
// there is none.
func (s *stateStore) getConversation(ctx context.Context, tenant, id string) (conversation, error) {
	e, err := s.t.Get(ctx, tenant, convPrefix+id)
	if err != nil {
		return conversation{}, err
	}
	return decodeConversation(e), nil
}

// putConversation inserts the index row, or replaces the (expired) one
// whose ETag is ifMatch. Returns ECONFLICT or EPRECONDITION when another
// request wrote it first.
func (s *stateStore) putConversation(ctx context.Context, tenant string, c conversation, ifMatch string) (string, error) {
	e := encodeConversation(tenant, c)
	if ifMatch != "" {
		etag, err := s.t.Update(ctx, e, ifMatch)
		if !switchboard.IsCode(err, switchboard.ENOTFOUND) {
			return etag, err
		}
		// The expired row was swept meanwhile: insert afresh.
	}
	return s.t.Insert(ctx, e)
}

func (s *stateStore) deleteConversation(ctx context.Context, tenant string, c conversation) error {
	err := s.t.Delete(ctx, tenant, convPrefix+c.ID, c.ETag)
	if switchboard.IsCode(err, switchboard.ENOTFOUND) || switchboard.IsCode(err, switchboard.EPRECONDITION) {
		return nil
	}
	return err
}

// conversations returns every conversation index row of a tenant.
func (s *stateStore) conversations(ctx context.Context, tenant string) ([]conversation, error) {
	var out []conversation
	err := store.QueryAll(ctx, s.t, store.Query{PartitionKey: tenant, Prefix: convPrefix}, func(e store.Entity) error {
		out = append(out, decodeConversation(e))
		return nil
	})
	return out, err
}

// roundRobin returns the member a service's round robin chose last and the
// row's ETag ("" when there is no row yet).
func (s *stateStore) roundRobin(ctx context.Context, tenant, service string) (last, etag string, err error) {
	e, err := s.t.Get(ctx, tenant, rrPrefix+service)
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return "", "", nil
	}
	if err != nil {
		return "", "", err
	}
	return e.String("last"), e.ETag, nil
}

// advanceRoundRobin records user as the last chosen. Concurrent routes of
// the same service all move it; each write is ETag-guarded and retried on a
// fresh read, so the position is one of the members chosen, never a torn
// value, and it lives in storage: every instance sees it.
func (s *stateStore) advanceRoundRobin(ctx context.Context, tenant, service, user, etag string) error {
	e := store.Entity{PartitionKey: tenant, RowKey: rrPrefix + service, Props: map[string]any{"last": user}}
	for attempt := 0; attempt < 5; attempt++ {
		var err error
		if etag == "" {
			_, err = s.t.Insert(ctx, e)
		} else {
			_, err = s.t.Update(ctx, e, etag)
		}
		if err == nil {
			return nil
		}
		if !switchboard.IsCode(err, switchboard.ECONFLICT) && !switchboard.IsCode(
			err,
			switchboard.EPRECONDITION,
		) && !switchboard.IsCode(err, switchboard.ENOTFOUND) {
			return err
		}
		if _, etag, err = s.roundRobin(ctx, tenant, service); err != nil {
			return err
		}
	}
	return switchboard.Errorf(
		switchboard.EUNAVAILABLE,
		"routing.RoundRobin",
		"the round-robin position of service %s is contended; it was not advanced",
		service,
	)
}

func (s *stateStore) deleteRoundRobin(ctx context.Context, tenant, service string) error {
	err := s.t.Delete(ctx, tenant, rrPrefix+service, "")
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return nil
	}
	return err
}

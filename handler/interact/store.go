package interact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"

	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// TableName holds the sessions: partition = tenant; rows "s|<id>" (a
// session), "open" (the count of sessions not Ended) and
// "rate|<address hash>|<minute>" (new sessions from one address in one
// minute).
const TableName = "interactsessions"

const (
	openRow      = "open"
	sessionRow   = "s|"
	ratePrefix   = "rate|"
	maxAttempts  = 8
	pendingEnd   = "end"
	pendingQueue = "requeue"
)

// Session is one widget session as stored.
type Session struct {
	TenantID  string            `json:"-"`
	ID        string            `json:"id"`
	ServiceID string            `json:"serviceId,omitempty"`
	Direct    string            `json:"directUserId,omitempty"` // the agent of a direct session
	Customer  Customer          `json:"customer"`
	Context   map[string]string `json:"context,omitempty"`
	// Phase is Waiting, Connected or Ended; the public state is Suspended
	// while a party is away from a Waiting or Connected session.
	Phase             string    `json:"phase"`
	Agent             string    `json:"agent,omitempty"`
	CustomerAwayUntil time.Time `json:"customerAwayUntil,omitzero"`
	AgentAwayUntil    time.Time `json:"agentAwayUntil,omitzero"`
	RecoverySeconds   int       `json:"recoverySeconds"`
	ACSEndpoint       string    `json:"acsEndpoint"`
	ACSUser           string    `json:"acsUser"`
	Meeting           Meeting   `json:"meeting"`
	// ResumeHash is the SHA-256 of the resume token: the token itself is
	// only the widget's.
	ResumeHash string    `json:"resumeHash"`
	CreatedAt  time.Time `json:"createdAt"`
	EndedAt    time.Time `json:"endedAt,omitzero"`
	Outcome    string    `json:"outcome,omitempty"`
	// Pending is a change of the conversation decided and written here but
	// not yet made in distribution (end, requeue): whoever reads the
	// session next finishes it.
	Pending string `json:"pending,omitempty"`
	// Sequence numbers the session's events.
	Sequence int64 `json:"sequence,omitempty"`

	etag string
}

// ConversationID is the session's conversation in distribution.
func (s Session) ConversationID() string { return "interact:" + s.ID }

// State is the public state.
func (s Session) State() string {
	if s.Phase != StateEnded && (!s.CustomerAwayUntil.IsZero() || !s.AgentAwayUntil.IsZero()) {
		return StateSuspended
	}
	return s.Phase
}

// suspension returns who is away and until when (the earlier time).
func (s Session) suspension() (string, time.Time) {
	c, a := s.CustomerAwayUntil, s.AgentAwayUntil
	switch {
	case s.Phase == StateEnded || c.IsZero() && a.IsZero():
		return "", time.Time{}
	case a.IsZero():
		return PartyCustomer, c
	case c.IsZero():
		return PartyAgent, a
	case c.Before(a):
		return PartyBoth, c
	}
	return PartyBoth, a
}

// nextDue is when the session's recovery timer must act (zero: none).
func (s Session) nextDue() time.Time {
	_, at := s.suspension()
	return at
}

func (s Session) entity() (store.Entity, error) {
	raw, err := json.Marshal(s)
	if err != nil {
		return store.Entity{}, err
	}
	return store.Entity{PartitionKey: s.TenantID, RowKey: sessionRow + s.ID, Props: map[string]any{
		"Data": string(raw), "Phase": s.Phase,
	}}, nil
}

func sessionFrom(tenant string, e store.Entity) (Session, error) {
	var s Session
	if err := json.Unmarshal([]byte(e.String("Data")), &s); err != nil {
		return Session{}, switchboard.Errorf(switchboard.EINTERNAL, "interact.read", "session row %s of tenant %s is unreadable", e.RowKey, tenant)
	}
	s.TenantID, s.etag = tenant, e.ETag
	return s, nil
}

// sessions is the table of sessions.
type sessions struct{ t store.Table }

func (st sessions) get(ctx context.Context, tenant, id string) (Session, error) {
	e, err := st.t.Get(ctx, tenant, sessionRow+id)
	if err != nil {
		return Session{}, err
	}
	return sessionFrom(tenant, e)
}

// counter is a count row with its ETag ("" when it does not exist).
type counter struct {
	n    int64
	etag string
}

func (st sessions) counter(ctx context.Context, tenant, row string) (counter, error) {
	e, err := st.t.Get(ctx, tenant, row)
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return counter{}, nil
	}
	if err != nil {
		return counter{}, err
	}
	return counter{n: e.Int64("Count"), etag: e.ETag}, nil
}

// counterOp writes a count row: an insert when it did not exist, else a
// replace guarded by its ETag.
func counterOp(tenant, row string, c counter, n int64, extra map[string]any) store.Op {
	props := map[string]any{"Count": n}
	for k, v := range extra {
		props[k] = v
	}
	e := store.Entity{PartitionKey: tenant, RowKey: row, Props: props}
	if c.etag == "" {
		return store.Op{Kind: store.OpInsert, Entity: e}
	}
	return store.Op{Kind: store.OpUpdate, Entity: e, IfMatch: c.etag}
}

// rateRow is the row counting new sessions from addr in the minute of at.
func rateRow(addr string, at time.Time) string {
	sum := sha256.Sum256([]byte(addr))
	return ratePrefix + hex.EncodeToString(sum[:12]) + "|" + strconv.FormatInt(at.Unix()/60, 10)
}

// retrying reports whether a batch or write lost a race worth retrying.
func retrying(err error) bool {
	return switchboard.IsCode(err, switchboard.EPRECONDITION) || switchboard.IsCode(err, switchboard.ECONFLICT)
}

package distribution

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"switchboard/handler/outbox"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// TableName is the table of conversations. Per tenant (partition key):
//
//	c|<conversation>          the conversation (JSON in doc), ETag-guarded
//	w|<service>|<conversation> the waiting-line entry of a Queued or
//	                          Offered conversation: what a distribution
//	                          pass needs to order and match it without
//	                          reading the conversation
//
// Both rows of a conversation are written in one entity-group transaction,
// so the line never disagrees with the conversations.
const TableName = "Distribution"

const (
	convPrefix = "c|"
	linePrefix = "w|"
)

type conversations struct {
	t store.Table
	// events publishes the conversations' history as events (SPEC section
	// 11), written in the same batch as the change; nil: none.
	events switchboard.EventOutbox
}

func lineKey(service, id string) string { return linePrefix + service + "|" + id }

// entry is a waiting-line row.
type entry struct {
	ID             string
	ServiceID      string
	Priority       int
	QueuedAt       time.Time
	Deadline       time.Time
	Ringing        bool
	RingingN       int       // how many offers ring (0 with Ringing: written before it was kept; take it as full)
	RingExpires    time.Time // earliest expiry of a ringing offer
	RequiredSkills []switchboard.Skill
	PreferredUsers []string
	Declined       []string
}

// encodeConversation renders the conversation's row; write names the
// write (save decides by it whether a failed write landed).
func encodeConversation(c Conversation, write string) store.Entity {
	doc, _ := json.Marshal(c)
	props := map[string]any{"serviceId": c.ServiceID, "state": c.State, "doc": string(doc), "write": write}
	if !c.EndedAt.IsZero() {
		props["endedAt"] = c.EndedAt.UTC()
	}
	if !c.ConnectedAt.IsZero() {
		props["connectedAt"] = c.ConnectedAt.UTC()
	}
	return store.Entity{PartitionKey: c.TenantID, RowKey: convPrefix + c.ID, Props: props}
}

// conversationEvents turns the conversation's unpublished history entries
// into events, each with the conversation after the change and the state
// it had before (prev; "" for a new conversation), and numbers them.
func conversationEvents(c *Conversation, prev string) ([]switchboard.Event, error) {
	type withPrevious struct {
		Conversation
		PreviousState *string `json:"previousState"`
	}
	var p *string
	if prev != "" {
		p = &prev
	}
	data, err := json.Marshal(withPrevious{*c, p})
	if err != nil {
		return nil, switchboard.Wrap(switchboard.EINTERNAL, "distribution.events", err)
	}
	evs := make([]switchboard.Event, 0, len(c.Unpublished))
	for _, h := range c.Unpublished {
		c.Sequence++
		evs = append(evs, switchboard.Event{
			ID: uuid.NewString(), Type: switchboard.ConversationEventType(h.Event), TenantID: c.TenantID, ServiceID: h.ServiceID,
			Subject: "conversations/" + c.ID, Sequence: c.Sequence, Time: h.At, Data: data,
		})
	}
	return evs, nil
}

func decodeConversation(e store.Entity) (Conversation, error) {
	var c Conversation
	if err := json.Unmarshal([]byte(e.String("doc")), &c); err != nil {
		return c, switchboard.Errorf(switchboard.EINTERNAL, "distribution.decode", "conversation row %s is unreadable: %v", e.RowKey, err)
	}
	c.TenantID, c.ETag = e.PartitionKey, e.ETag
	return c, nil
}

func encodeEntry(c Conversation) store.Entity {
	j := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	var ringing bool
	var expires time.Time
	n := 0
	for _, o := range c.Ringing() {
		ringing = true
		n++
		if expires.IsZero() || o.ExpiresAt.Before(expires) {
			expires = o.ExpiresAt
		}
	}
	props := map[string]any{
		"priority": int32(c.Priority), "queuedAt": c.QueuedAt.UTC(), "deadline": c.Deadline.UTC(),
		"ringing": ringing, "skills": j(c.RequiredSkills), "preferred": j(c.PreferredUsers), "declined": j(c.Declined),
	}
	if ringing {
		props["ringExpires"], props["ringingN"] = expires.UTC(), int32(n)
	}
	return store.Entity{PartitionKey: c.TenantID, RowKey: lineKey(lineOf(c), c.ID), Props: props}
}

func decodeEntry(e store.Entity) entry {
	rest := strings.TrimPrefix(e.RowKey, linePrefix)
	service, id, _ := strings.Cut(rest, "|")
	en := entry{ID: id, ServiceID: service, Priority: int(e.Int64("priority")), QueuedAt: e.Time("queuedAt"), Deadline: e.Time("deadline"),
		Ringing: e.Bool("ringing"), RingingN: int(e.Int64("ringingN")), RingExpires: e.Time("ringExpires")}
	_ = json.Unmarshal([]byte(e.String("skills")), &en.RequiredSkills)
	_ = json.Unmarshal([]byte(e.String("preferred")), &en.PreferredUsers)
	_ = json.Unmarshal([]byte(e.String("declined")), &en.Declined)
	return en
}

// get reads a conversation. Returns ENOTFOUND.
func (s *conversations) get(ctx context.Context, tenant, id string) (Conversation, error) {
	e, err := s.t.Get(ctx, tenant, convPrefix+id)
	if err != nil {
		if switchboard.IsCode(err, switchboard.ENOTFOUND) {
			return Conversation{}, &switchboard.Error{Code: switchboard.ENOTFOUND, Op: "distribution.Get", Message: "no conversation " + id + " in this tenant"}
		}
		return Conversation{}, switchboard.Wrap(switchboard.EUNAVAILABLE, "distribution.Get", err)
	}
	return decodeConversation(e)
}

// save writes next over cur (nil: insert) with its line entry, in one
// transaction conditional on cur's ETag. Returns ECONFLICT when inserting
// an existing conversation, EPRECONDITION when cur is stale, and an
// unsure error (see isUnsure) when it cannot tell whether the write
// landed. The returned conversation has no ETag (read it again to write it
// again).
//
// A write that timed out may still have landed, and the client's own retry
// of it then fails on the ETag (or the insert) its first try used up. Each
// write therefore carries an id in the row, and a failed write is decided
// by reading the row back: a write that landed is a success, so that its
// effects (the offers' holds, the history's events) are kept and carried
// out rather than undone under a conversation that records them.
func (s *conversations) save(ctx context.Context, cur *Conversation, next Conversation) (Conversation, error) {
	write := uuid.NewString()
	c := encodeConversation(next, write)
	var ops []store.Op
	if cur == nil {
		ops = append(ops, store.Op{Kind: store.OpInsert, Entity: c})
	} else {
		ops = append(ops, store.Op{Kind: store.OpUpdate, Entity: c, IfMatch: cur.ETag})
		if cur.Waiting() && (!next.Waiting() || lineOf(*cur) != lineOf(next)) {
			ops = append(ops, store.Op{Kind: store.OpDelete, Entity: store.Entity{PartitionKey: cur.TenantID, RowKey: lineKey(lineOf(*cur), cur.ID)}, IfMatch: "*"})
		}
	}
	if next.Waiting() {
		ops = append(ops, store.Op{Kind: store.OpUpsert, Entity: encodeEntry(next)})
	}
	published := false
	if s.events != nil && len(next.Unpublished) > 0 {
		prev := ""
		if cur != nil {
			prev = cur.State
		}
		evs, err := conversationEvents(&next, prev)
		if err != nil {
			return next, err
		}
		eops, err := outbox.Ops(next.TenantID, evs)
		if err != nil {
			return next, err
		}
		if err := s.events.Prepare(ctx, TableName, next.TenantID); err != nil {
			return next, err
		}
		ops = append(ops, eops...)
		// The conversation row carries the sequence the events took.
		ops[0].Entity = encodeConversation(next, write)
		published = true
	}
	err := s.t.Batch(ctx, ops)
	if err != nil {
		if switchboard.IsCode(err, switchboard.ENOTFOUND) && cur != nil {
			// The line entry was already gone (housekeeping): write without
			// deleting it.
			ops = slices.DeleteFunc(ops, func(o store.Op) bool { return o.Kind == store.OpDelete })
			err = s.t.Batch(ctx, ops)
		}
	}
	if err != nil {
		err = s.decide(ctx, cur, next, write, err)
	}
	switch switchboard.ErrorCode(err) {
	case "":
		next.ETag, next.Unpublished = "", nil
		if published {
			go s.events.Flush(context.WithoutCancel(ctx), TableName, next.TenantID)
		}
		return next, nil
	case switchboard.ECONFLICT, switchboard.EPRECONDITION:
		return next, err
	}
	if isUnsure(err) {
		return next, err
	}
	return next, switchboard.Wrap(switchboard.EUNAVAILABLE, "distribution.save", err)
}

// decide settles a failed write by reading the conversation back: nil when
// the write landed after all; the write's error when another write is
// there instead (so this one never can land); unsure when the row is as it
// was (the write may still be under way) or cannot be read.
func (s *conversations) decide(ctx context.Context, cur *Conversation, next Conversation, write string, err error) error {
	e, gerr := s.t.Get(context.WithoutCancel(ctx), next.TenantID, convPrefix+next.ID)
	switch {
	case gerr == nil && e.String("write") == write:
		return nil
	case gerr == nil && (cur == nil || e.ETag != cur.ETag):
		return err
	case switchboard.IsCode(gerr, switchboard.ENOTFOUND) && cur != nil:
		return err // deleted (retention): nothing of this write is there
	case switchboard.IsCode(err, switchboard.ECONFLICT) || switchboard.IsCode(err, switchboard.EPRECONDITION):
		if gerr == nil {
			return err // the store refused it for the row as it is
		}
	}
	return unsure{switchboard.Wrap(switchboard.EUNAVAILABLE, "distribution.save", errors.Join(err, gerr))}
}

// unsure is a write's failure that leaves open whether it landed: its
// effects are kept (an offer's hold then lapses by itself at its ring
// time, and housekeeping lapses an offer the conversation records) rather
// than undone under a conversation that may record them.
type unsure struct{ error }

func (u unsure) Unwrap() error { return u.error }

func isUnsure(err error) bool {
	var u unsure
	return errors.As(err, &u)
}

// line returns a service's waiting-line entries in queue order.
func (s *conversations) line(ctx context.Context, tenant, service string) ([]entry, error) {
	var out []entry
	err := store.QueryAll(ctx, s.t, store.Query{PartitionKey: tenant, Prefix: linePrefix + service + "|"}, func(e store.Entity) error {
		out = append(out, decodeEntry(e))
		return nil
	})
	if err != nil {
		return nil, switchboard.Wrap(switchboard.EUNAVAILABLE, "distribution.line", err)
	}
	sortEntries(out)
	return out, nil
}

// allLines returns every waiting-line entry of a tenant.
func (s *conversations) allLines(ctx context.Context, tenant string) ([]entry, error) {
	var out []entry
	err := store.QueryAll(ctx, s.t, store.Query{PartitionKey: tenant, Prefix: linePrefix}, func(e store.Entity) error {
		out = append(out, decodeEntry(e))
		return nil
	})
	return out, err
}

func sortEntries(es []entry) {
	slices.SortFunc(es, func(a, b entry) int {
		switch {
		case before(a.Priority, a.QueuedAt, a.ID, b.Priority, b.QueuedAt, b.ID):
			return -1
		case before(b.Priority, b.QueuedAt, b.ID, a.Priority, a.QueuedAt, a.ID):
			return 1
		}
		return 0
	})
}

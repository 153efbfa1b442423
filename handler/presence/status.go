package presence

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"switchboard/handler/outbox"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// SourceStatus is how one source fares in one tenant: what the tracking
// view shows, and the sequence of its events.
type SourceStatus struct {
	switchboard.PresenceSourceStatus
	// EventSeq counts the source's stateChanged events (their sequence).
	EventSeq int64
}

// succeeded returns st after a successful read at now.
func (st SourceStatus) succeeded(now time.Time) SourceStatus {
	yes := true
	st.LastSuccessAt = now
	st.PermissionGranted = &yes
	if st.Source.Account() != 0 {
		st.Invited = &yes
	}
	st.RetryAt = time.Time{}
	st.ConsecutiveFailures = 0
	return st
}

// failed returns st after se at now; a failure that disqualifies the
// source backs it off for cooldown, doubling with each consecutive
// failure up to eight times that.
func (st SourceStatus) failed(now time.Time, se *switchboard.SourceError, cooldown time.Duration) SourceStatus {
	yes, no := true, false
	st.LastErrorAt = now
	st.LastReason, st.LastMessage, st.LastCode = se.Reason, se.Message, se.Code
	st.ConsecutiveFailures++
	account := st.Source.Account() != 0
	switch se.Reason {
	case switchboard.SourceNotInvited:
		if account {
			st.Invited = &no
		}
	case switchboard.SourcePermissionNotGranted:
		if account {
			st.Invited = &yes // it signed in: consent is what is missing
		}
		st.PermissionGranted = &no
	case switchboard.SourceMFARequired:
		if account {
			st.Invited = &yes // the tenant knows the account: it wants a second factor
		}
	}
	if se.Disqualifies() && cooldown > 0 {
		backoff := cooldown << min(st.ConsecutiveFailures-1, 3)
		st.RetryAt = now.Add(backoff)
	}
	return st
}

func sourceStatusFromEntity(src switchboard.PresenceSource, e store.Entity) SourceStatus {
	st := SourceStatus{
		PresenceSourceStatus: switchboard.PresenceSourceStatus{
			Source:              src,
			LastSuccessAt:       e.Time("LastSuccessAt"),
			LastErrorAt:         e.Time("LastErrorAt"),
			LastReason:          switchboard.SourceReason(e.String("LastReason")),
			LastMessage:         e.String("LastMessage"),
			LastCode:            e.String("LastCode"),
			Invited:             triState(e.String("Invited")),
			PermissionGranted:   triState(e.String("PermissionGranted")),
			RetryAt:             e.Time("RetryAt"),
			ConsecutiveFailures: int(e.Int64("ConsecutiveFailures")),
		},
		EventSeq: e.Int64("EventSeq"),
	}
	return st
}

func (st SourceStatus) entity(tenant string) store.Entity {
	props := map[string]any{
		"LastReason":          string(st.LastReason),
		"LastMessage":         st.LastMessage,
		"LastCode":            st.LastCode,
		"Invited":             triString(st.Invited),
		"PermissionGranted":   triString(st.PermissionGranted),
		"ConsecutiveFailures": int64(st.ConsecutiveFailures),
		"EventSeq":            st.EventSeq,
	}
	// Table Storage has no null: a zero time is left out (and reads back
	// as zero).
	for name, t := range map[string]time.Time{"LastSuccessAt": st.LastSuccessAt, "LastErrorAt": st.LastErrorAt, "RetryAt": st.RetryAt} {
		if !t.IsZero() {
			props[name] = t.UTC()
		}
	}
	return store.Entity{PartitionKey: tenant, RowKey: sourceRowKey(st.Source), Props: props}
}

func triState(s string) *bool {
	switch s {
	case "true":
		b := true
		return &b
	case "false":
		b := false
		return &b
	}
	return nil
}

func triString(b *bool) string {
	if b == nil {
		return ""
	}
	if *b {
		return "true"
	}
	return "false"
}

// PollFigures are the figures of a tenant's poll: what the tracking view
// shows of the last one (stored as its JSON), and whether it could not
// even read its state.
type PollFigures struct {
	switchboard.PresencePollFigures

	storageFailed bool // the poll could not read its state: nothing was tried
}

func (f PollFigures) entity(tenant string) store.Entity {
	b, _ := json.Marshal(f)
	return store.Entity{PartitionKey: tenant, RowKey: rowLastPoll, Props: map[string]any{"Figures": string(b)}}
}

func pollFiguresFromEntity(e store.Entity) (PollFigures, bool) {
	var f PollFigures
	if err := json.Unmarshal([]byte(e.String("Figures")), &f); err != nil {
		return PollFigures{}, false
	}
	return f, true
}

// Snapshot is what the API shows of a tenant's presence tracking state.
type Snapshot struct {
	Sources map[switchboard.PresenceSource]SourceStatus
	// Figures are the last timer poll's, ShardFigures the last fanned-out
	// shard's.
	Figures      PollFigures
	ShardFigures PollFigures
	Shards       int
}

// Status reads the tenant's source statuses and last poll figures from
// storage (not from the cache: an admin asking wants what is stored).
func (s *Store) Status(ctx context.Context, tenant string) (Snapshot, error) {
	tc := s.cache(tenant)
	tc.load.Lock()
	err := s.syncState(ctx, tenant, tc)
	tc.load.Unlock()
	if err != nil {
		return Snapshot{}, switchboard.Wrap(switchboard.EUNAVAILABLE, "presence.Status", err)
	}
	tc.mu.RLock()
	defer tc.mu.RUnlock()
	snap := Snapshot{
		Sources:      make(map[switchboard.PresenceSource]SourceStatus, len(tc.sources)),
		Figures:      tc.figures,
		ShardFigures: tc.shardFigures,
		Shards:       tc.lay.Shards,
	}
	for k, v := range tc.sources {
		snap.Sources[k] = v
	}
	return snap, nil
}

// SaveSourceStatus writes one source's status (Test UPN).
func (s *Store) SaveSourceStatus(ctx context.Context, tenant string, st SourceStatus) error {
	err := s.saveState(ctx, tenant, []store.Op{{Kind: store.OpUpsert, Entity: st.entity(tenant)}})
	if err != nil {
		return switchboard.Wrap(switchboard.EUNAVAILABLE, "presence.SaveSourceStatus", err)
	}
	return nil
}

// sourceState is a source's state as events name it.
func sourceState(st SourceStatus) string {
	switch {
	case st.Failing():
		return "failing"
	case !st.LastSuccessAt.IsZero():
		return "ok"
	}
	return "unknown"
}

// sourceEvents adds to ops, for every source status among them whose state
// (ok, failing) differs from the one this process knows, the event
// switchboard.presenceSource.stateChanged as an outbox row, and counts it in
// the status row's EventSeq. It returns the ops to write in one batch.
func (s *Store) sourceEvents(tenant string, ops []store.Op) ([]store.Op, error) {
	if s.events == nil {
		return ops, nil
	}
	tc := s.cache(tenant)
	tc.mu.RLock()
	known := make(map[switchboard.PresenceSource]SourceStatus, len(tc.sources))
	for k, v := range tc.sources {
		known[k] = v
	}
	tc.mu.RUnlock()
	var evs []switchboard.Event
	now := s.now()
	for i, o := range ops {
		for _, src := range switchboard.PresenceSources {
			if o.Entity.RowKey != sourceRowKey(src) {
				continue
			}
			prev, next := known[src], sourceStatusFromEntity(src, o.Entity)
			seq := prev.EventSeq
			if from, to := sourceState(prev), sourceState(next); from != to {
				seq++
				data, _ := json.Marshal(sourceEventData{Source: string(src), State: to, PreviousState: from,
					Reason: string(next.LastReason), Message: next.LastMessage, LastSuccessAt: next.LastSuccessAt, LastErrorAt: next.LastErrorAt})
				evs = append(evs, switchboard.Event{ID: uuid.Must(uuid.NewV7()).String(), Type: "switchboard.presenceSource.stateChanged",
					TenantID: tenant, Subject: "presence-sources/" + string(src), Sequence: seq, Time: now, Data: data})
			}
			ops[i].Entity.Props["EventSeq"] = seq
		}
	}
	if len(evs) == 0 {
		return ops, nil
	}
	rows, err := outbox.Ops(tenant, evs)
	if err != nil {
		return nil, err
	}
	return append(ops, rows...), nil
}

// sourceEventData is the data of switchboard.presenceSource.stateChanged.
type sourceEventData struct {
	Source        string    `json:"source"`
	State         string    `json:"state"`
	PreviousState string    `json:"previousState"`
	Reason        string    `json:"reason,omitempty"`
	Message       string    `json:"message,omitempty"`
	LastSuccessAt time.Time `json:"lastSuccessAt,omitzero"`
	LastErrorAt   time.Time `json:"lastErrorAt,omitzero"`
}

// saveState writes rows of the tenant's state partition (source statuses,
// figures) and keeps the cache in step. A source's change of state is
// written with its event, in one batch.
func (s *Store) saveState(ctx context.Context, tenant string, ops []store.Op) error {
	if len(ops) == 0 {
		return nil
	}
	ops, err := s.sourceEvents(tenant, ops)
	if err != nil {
		return err
	}
	withEvents := len(ops) > 0 && outbox.IsRow(ops[len(ops)-1].Entity.RowKey)
	if withEvents {
		if err := s.events.Prepare(ctx, stateTableName, tenant); err != nil {
			return err
		}
		if err := s.state.Batch(ctx, ops); err != nil {
			return err
		}
		s.events.Flush(ctx, stateTableName, tenant)
	} else if _, err := store.WriteBatched(ctx, s.state, ops); err != nil {
		return err
	}
	tc := s.cache(tenant)
	tc.mu.Lock()
	defer tc.mu.Unlock()
	for _, o := range ops {
		switch o.Entity.RowKey {
		case rowLastPoll:
			tc.figures, _ = pollFiguresFromEntity(o.Entity)
		case rowLastShardPoll:
			tc.shardFigures, _ = pollFiguresFromEntity(o.Entity)
		}
		for _, src := range switchboard.PresenceSources {
			if o.Entity.RowKey == sourceRowKey(src) {
				tc.sources[src] = sourceStatusFromEntity(src, o.Entity)
			}
		}
	}
	return nil
}

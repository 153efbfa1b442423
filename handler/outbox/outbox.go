// Package outbox writes a capability's events as rows in the same entity
// group transaction as the change that caused them (the transactional
// outbox pattern): the change and its events are stored together or not at
// all. The events capability reads the rows back, hands them to delivery and
// deletes them (switchboard.EventOutbox).
package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// RowPrefix starts the row key of every outbox row; capabilities keep their
// own rows under other prefixes in the same partition.
const RowPrefix = "outbox|"

// Ops returns the insert operations that record evs in partition pk, to be
// added to the batch that writes the change itself. Each event needs an ID,
// a Type, a TenantID and a Time.
func Ops(pk string, evs []switchboard.Event) ([]store.Op, error) {
	ops := make([]store.Op, 0, len(evs))
	for _, ev := range evs {
		if ev.ID == "" || ev.Type == "" || ev.TenantID == "" || ev.Time.IsZero() {
			return nil, switchboard.Errorf(switchboard.EINTERNAL, "outbox.Ops", "event without id, type, tenant or time: %+v", ev)
		}
		body, err := json.Marshal(row{ev.ID, ev.Type, ev.TenantID, ev.ServiceID, ev.Subject, ev.Sequence, ev.Time, ev.Data})
		if err != nil {
			return nil, switchboard.Wrap(switchboard.EINTERNAL, "outbox.Ops", err)
		}
		ops = append(ops, store.Op{Kind: store.OpInsert, Entity: store.Entity{
			PartitionKey: pk,
			RowKey:       RowKey(ev),
			Props:        map[string]any{"Event": string(body)},
		}})
	}
	return ops, nil
}

// RowKey is the outbox row key of ev: ordered by time, then id, so rows read
// back in the order the events happened.
func RowKey(ev switchboard.Event) string {
	return fmt.Sprintf("%s%020d|%s", RowPrefix, ev.Time.UTC().UnixNano(), ev.ID)
}

type row struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	TenantID  string          `json:"tenantId"`
	ServiceID string          `json:"serviceId,omitempty"`
	Subject   string          `json:"subject"`
	Sequence  int64           `json:"sequence"`
	Time      time.Time       `json:"time"`
	Data      json.RawMessage `json:"data,omitempty"`
}

// Pending is one outbox row read back.
type Pending struct {
	RowKey string
	ETag   string
	Event  switchboard.Event
}

// Read returns the outbox rows of partition pk in the order they were
// written. A row that does not decode is returned with an empty Event.ID,
// so that the caller can remove it rather than trip over it forever.
func Read(ctx context.Context, t store.Table, pk string) ([]Pending, error) {
	var out []Pending
	err := store.QueryAll(ctx, t, store.Query{PartitionKey: pk, Prefix: RowPrefix}, func(e store.Entity) error {
		var r row
		p := Pending{RowKey: e.RowKey, ETag: e.ETag}
		if json.Unmarshal([]byte(e.String("Event")), &r) == nil && r.ID != "" {
			p.Event = switchboard.Event{ID: r.ID, Type: r.Type, TenantID: r.TenantID, ServiceID: r.ServiceID,
				Subject: r.Subject, Sequence: r.Sequence, Time: r.Time, Data: r.Data}
		}
		out = append(out, p)
		return nil
	})
	return out, err
}

// IsRow reports whether a row key is an outbox row's, for capabilities that
// scan their partitions and must skip these rows.
func IsRow(rowKey string) bool { return strings.HasPrefix(rowKey, RowPrefix) }

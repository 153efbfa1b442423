package events

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"switchboard/handler/outbox"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// Prepare implements switchboard.EventOutbox: it records, before the
// capability's batch is written, that partition pk of table may hold outbox
// rows.
func (s *Service) Prepare(ctx context.Context, table, pk string) error {
	key := indexKey(table, pk)
	now := s.o.Now()
	s.mu.Lock()
	at, ok := s.prepared[key]
	s.mu.Unlock()
	if ok && now.Sub(at) < preparedFor {
		return nil
	}
	_, err := s.table.Upsert(ctx, store.Entity{PartitionKey: indexPK, RowKey: key, Props: map[string]any{"Table": table, "Partition": pk, "At": now.UTC()}})
	if err != nil {
		return switchboard.Wrap(switchboard.EUNAVAILABLE, "events.Prepare", err)
	}
	s.mu.Lock()
	s.prepared[key] = now
	if len(s.prepared) > 100_000 { // a bound, not a cache policy: forget all, re-prepare as needed
		s.prepared = map[string]time.Time{key: now}
	}
	s.mu.Unlock()
	return nil
}

func indexKey(table, pk string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(table)) + "|" + base64.RawURLEncoding.EncodeToString([]byte(pk))
}

// Flush implements switchboard.EventOutbox.
func (s *Service) Flush(ctx context.Context, table, pk string) {
	if _, err := s.flush(ctx, table, pk); err != nil {
		s.o.Log.Warn("events: outbox not flushed now; housekeeping will", "table", table, "err", err)
	}
}

// flush hands the outbox rows of one partition to delivery and returns how
// many there were.
func (s *Service) flush(ctx context.Context, table, pk string) (int, error) {
	t, err := s.o.Tables.Table(ctx, table)
	if err != nil {
		return 0, err
	}
	rows, err := outbox.Read(ctx, t, pk)
	if err != nil || len(rows) == 0 {
		return 0, err
	}
	subs := map[string][]Subscription{}
	var done []store.Op
	for _, r := range rows {
		if r.Event.ID == "" {
			s.o.Log.Error("events: an outbox row that does not decode is dropped", "table", table, "row", r.RowKey)
		} else if err := s.fanOut(ctx, r.Event, subs); err != nil {
			break // keep this row and the rest, in order, for the next flush
		}
		done = append(done, store.Op{Kind: store.OpDelete, Entity: store.Entity{PartitionKey: pk, RowKey: r.RowKey}, IfMatch: r.ETag})
	}
	for _, op := range done {
		// One by one: a concurrent flush may have removed some already.
		if err := t.Delete(
			ctx,
			pk,
			op.Entity.RowKey,
			op.IfMatch,
		); err != nil && !switchboard.IsCode(err, switchboard.ENOTFOUND) && !switchboard.IsCode(err, switchboard.EPRECONDITION) {
			return len(done), err
		}
	}
	if len(done) < len(rows) {
		return len(done), switchboard.Errorf(switchboard.EUNAVAILABLE, "events.flush", "%d of %d outbox rows left for later", len(rows)-len(done), len(rows))
	}
	return len(done), nil
}

// fanOut writes ev into the lane of every matching subscription and sends
// one message per subscription. subs caches the subscriptions per tenant
// for one flush.
func (s *Service) fanOut(ctx context.Context, ev switchboard.Event, subs map[string][]Subscription) error {
	list, ok := subs[ev.TenantID]
	if !ok {
		var err error
		if list, err = s.List(ctx, ev.TenantID); err != nil {
			return err
		}
		subs[ev.TenantID] = list
	}
	var body []byte
	for _, sub := range list {
		if !matches(sub, ev) {
			continue
		}
		if body == nil {
			var err error
			if body, err = CloudEvent(ev); err != nil {
				s.o.Log.Error("events: an event that cannot be encoded is dropped", "eventId", ev.ID, "type", ev.Type, "err", err)
				return nil
			}
		}
		pk := lanePartition(ev.TenantID, sub.ID)
		rk := laneKey(ev)
		if _, err := s.table.Upsert(ctx, store.Entity{PartitionKey: pk, RowKey: rk, Props: map[string]any{
			"EventId": ev.ID, "Type": ev.Type, "Subject": ev.Subject, "Body": string(body), "Attempts": int64(0),
		}}); err != nil {
			return err
		}
		if err := s.kick(ctx, kick{Tenant: ev.TenantID, Sub: sub.ID, Subject: subjectKey(ev.Subject), Row: rk}, time.Time{}, ev.ID+"|"+sub.ID); err != nil {
			return err
		}
	}
	return nil
}

func laneKey(ev switchboard.Event) string {
	return fmt.Sprintf("%s%s|%020d|%s", lanePrefix, subjectKey(ev.Subject), ev.Sequence, ev.ID)
}

// kick is the message that asks EventDelivery to deliver a lane.
type kick struct {
	Tenant  string `json:"t"`
	Sub     string `json:"sub"`
	Subject string `json:"subject"`
	// Row is the lane row of the event the message was sent for ("" for
	// a message that continues a lane).
	Row string `json:"row,omitempty"`
}

func (s *Service) kick(ctx context.Context, k kick, at time.Time, messageID string) error {
	if s.o.Queue == nil {
		return nil // no broker: the lane waits (logged at start)
	}
	b, _ := json.Marshal(k)
	_, err := s.o.Queue.Send(ctx, s.o.QueueName, switchboard.Message{Body: b, MessageID: messageID, ScheduledAt: at})
	return err
}

// CloudEvent returns ev as a CloudEvents 1.0 structured JSON document: the
// exact bytes every attempt sends and signs.
func CloudEvent(ev switchboard.Event) ([]byte, error) {
	ce := cloudevents.NewEvent(cloudevents.VersionV1)
	ce.SetID(ev.ID)
	source := "/tenants/" + ev.TenantID
	if ev.ServiceID != "" {
		source += "/services/" + ev.ServiceID
	}
	ce.SetSource(source)
	ce.SetType(ev.Type)
	ce.SetSubject(ev.Subject)
	ce.SetTime(ev.Time.UTC())
	// The CloudEvents sequence extension is a string compared as text: the
	// zero-padded number orders the same way as text and as a number.
	ce.SetExtension("sequence", fmt.Sprintf("%020d", ev.Sequence))
	data := ev.Data
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	if err := ce.SetData(cloudevents.ApplicationJSON, data); err != nil {
		return nil, err
	}
	if err := ce.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(ce)
}

// SweepOutbox flushes every partition of the outbox index (what a crash
// between a change and its Flush left behind) and removes index rows that
// have been idle and empty long enough. It stops when ctx is near its end.
func (s *Service) SweepOutbox(ctx context.Context, near func() bool) (flushed int, err error) {
	now := s.o.Now()
	var errs []error
	err = store.QueryAll(ctx, s.table, store.Query{PartitionKey: indexPK}, func(e store.Entity) error {
		if near() {
			return errStop
		}
		n, ferr := s.flush(ctx, e.String("Table"), e.String("Partition"))
		flushed += n
		if ferr != nil {
			errs = append(errs, fmt.Errorf("%s/%s: %w", e.String("Table"), e.String("Partition"), ferr))
			return nil
		}
		if n == 0 && now.Sub(e.Timestamp) > indexIdle && now.Sub(e.Time("At")) > indexIdle {
			// ETag-guarded: a Prepare since our read keeps the row.
			_ = s.table.Delete(ctx, indexPK, e.RowKey, e.ETag)
		}
		return nil
	})
	if err == errStop {
		err = nil
	}
	if err == nil && len(errs) > 0 {
		err = fmt.Errorf("events outbox: %d partitions not flushed: %v", len(errs), errs[0])
	}
	return flushed, err
}

type stopErr struct{}

func (stopErr) Error() string { return "stop" }

var errStop error = stopErr{}

package switchboard

import (
	"context"
	"encoding/json"
	"time"
)

// Event is a change one capability reports to the tenant's event
// subscriptions (SPEC section 11): a conversation offered, an outbound task
// that changed state, an agent entering RONA. The capability that owns the
// change builds it and records it in the same unit of work as the change
// (package outbox); delivery is the events capability's business.
type Event struct {
	// ID is unique per event: the CloudEvents id and the webhook-id, the
	// same on every retry.
	ID string
	// Type is switchboard.<resource>.<event>, e.g.
	// switchboard.conversation.offered.
	Type     string
	TenantID string
	// ServiceID is the service the resource belongs to, or "" for events
	// of the whole tenant (a presence source); it filters subscriptions
	// that name services and makes the CloudEvents source.
	ServiceID string
	// Subject names the resource: conversations/{c}, outbound-tasks/{id},
	// agents/{u}, presence-sources/{name}.
	Subject string
	// Sequence increases with every event of the same subject; receivers
	// order and de-duplicate by it.
	Sequence int64
	Time     time.Time
	// Data is the resource after the change, with previousState.
	Data json.RawMessage
}

// EventOutbox publishes events that a capability wrote as outbox rows in
// the same batch as the change they describe (package outbox builds those
// rows). Prepare is called before such a batch is written and Flush after
// it: together they guarantee that a crash at any point loses no event.
type EventOutbox interface {
	// Prepare records that partition pk of table may hold outbox rows, so
	// that housekeeping finds them if the process dies before Flush.
	// Returns EUNAVAILABLE when storage cannot be reached; the caller must
	// then not write its batch.
	Prepare(ctx context.Context, table, pk string) error
	// Flush hands the outbox rows of partition pk of table to delivery and
	// removes them. It never fails the caller's operation: what it cannot
	// hand over now, housekeeping hands over later.
	Flush(ctx context.Context, table, pk string)
}

package switchboard

import (
	"context"
	"encoding/json"
	"strings"
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

// EventTypes is the event catalogue of SPEC section 11: every type a
// subscription may name, by resource.
var EventTypes = []string{
	"switchboard.conversation.queued", "switchboard.conversation.offered", "switchboard.conversation.offerDeclined",
	"switchboard.conversation.offerLapsed", "switchboard.conversation.offerRescinded", "switchboard.conversation.connected",
	"switchboard.conversation.ended", "switchboard.conversation.abandoned", "switchboard.conversation.timedOut",
	"switchboard.conversation.rejected", "switchboard.conversation.forwarded", "switchboard.conversation.callbackScheduled",
	OutboundTaskStateChanged,
	"switchboard.agent.ronaStarted", "switchboard.agent.ronaEnded", "switchboard.agent.afterCallWorkStarted",
	"switchboard.agent.afterCallWorkEnded",
	"switchboard.presenceSource.stateChanged",
	"switchboard.interactSession.started", "switchboard.interactSession.suspended", "switchboard.interactSession.resumed",
	"switchboard.interactSession.ended",
}

// EventResource returns the resource an event type is about
// ("conversation" for switchboard.conversation.offered), "" for a type
// not shaped switchboard.<resource>.<event>.
func EventResource(eventType string) string {
	rest, ok := strings.CutPrefix(eventType, "switchboard.")
	if !ok {
		return ""
	}
	resource, _, ok := strings.Cut(rest, ".")
	if !ok {
		return ""
	}
	return resource
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

// Event subscription states.
const (
	SubscriptionActive   = "active"
	SubscriptionFailing  = "failing"
	SubscriptionDisabled = "disabled"
)

// EventSubscription is a receiver of a tenant's events (SPEC section 11).
type EventSubscription struct {
	ID       string   `json:"id"`
	TenantID string   `json:"tenantId"`
	URL      string   `json:"url"`
	Events   []string `json:"events"`
	// Services limits the subscription to events of these services;
	// empty: every service, and the events of the whole tenant.
	Services    []string  `json:"services,omitempty"`
	Description string    `json:"description,omitempty"`
	State       string    `json:"state"`
	CreatedAt   time.Time `json:"createdAt"`
	// LastDeliveryAt is the last attempt, successful or not.
	LastDeliveryAt   *time.Time `json:"lastDeliveryAt"`
	LastSuccessAt    *time.Time `json:"lastSuccessAt"`
	LastError        string     `json:"lastError,omitempty"`
	FailedDeliveries int64      `json:"failedDeliveries"`
	// Secret is set once, in the reply to its creation.
	Secret string `json:"secret,omitempty"`
}

// EventSubscriptionRequest is what a caller asks to subscribe.
type EventSubscriptionRequest struct {
	URL         string   `json:"url"`
	Events      []string `json:"events"`
	Services    []string `json:"services,omitempty"`
	Description string   `json:"description,omitempty"`
}

// Event delivery states.
const (
	DeliveryPending      = "pending"
	DeliveryDelivered    = "delivered"
	DeliveryDeadLettered = "deadLettered"
)

// EventDelivery is one event's delivery to one subscription.
type EventDelivery struct {
	EventID    string     `json:"eventId"`
	Type       string     `json:"type"`
	Subject    string     `json:"subject"`
	State      string     `json:"state"`
	StatusCode int        `json:"statusCode,omitempty"`
	Attempts   int        `json:"attempts"`
	FirstTryAt time.Time  `json:"firstTryAt"`
	LastTryAt  time.Time  `json:"lastTryAt"`
	NextTryAt  *time.Time `json:"nextTryAt"`
	LastError  string     `json:"lastError,omitempty"`
}

// EventSubscriptions manages a tenant's subscriptions.
type EventSubscriptions interface {
	// Create returns the subscription with its secret, shown this once.
	// Returns EINVALID naming the field (url refused: not https, or a host
	// on a private address), ELIMIT at 50 per tenant, EUNAVAILABLE.
	Create(ctx context.Context, tenantID string, req EventSubscriptionRequest) (EventSubscription, error)
	// List and Get never return the secret. Get returns ENOTFOUND.
	List(ctx context.Context, tenantID string) ([]EventSubscription, error)
	Get(ctx context.Context, tenantID, id string) (EventSubscription, error)
	// Delete returns ENOTFOUND when there is no such subscription.
	Delete(ctx context.Context, tenantID, id string) error
	// Deliveries returns the last 100, newest first. Returns ENOTFOUND.
	Deliveries(ctx context.Context, tenantID, id string) ([]EventDelivery, error)
}

// Package events delivers the changes of every capability to the tenant's
// event subscriptions (SPEC section 11): webhooks that receive CloudEvents
// signed the Standard Webhooks way, at least once, retried for 24 hours.
//
// The path of one event:
//
//  1. The capability that owns a change writes the event as an outbox row in
//     the same batch as the change (package outbox), after Prepare has
//     recorded its partition in the outbox index; then it calls Flush.
//  2. Flush (or, after a crash, housekeeping through the index) copies the
//     event into one lane row per matching subscription, sends one message
//     per event and subscription to EVENTS_QUEUE, and deletes the outbox row.
//  3. The EventDelivery function takes the message, leases the lane of the
//     event's (subscription, subject) and delivers its rows in sequence order;
//     a failure keeps the row, schedules the next try as a message and stops
//     the lane, so that later events of that subject never overtake it.
//
// Every step may run twice (a crash, a redelivered message) without a
// second delivery of a delivered event: lane rows are keyed by event, and a
// delivered row is gone.
//
// Layout of the events table:
//
//	sub|<tenant>            <subscription id>          a subscription
//	sub|<tenant>            ~count                     how many it has (the cap)
//	lane|<tenant>|<sub>     q|<subject>|<seq>|<event>  an event waiting for delivery
//	lane|<tenant>|<sub>     k|<subject>                the lane's lease
//	dlv|<tenant>|<sub>      <inverted time>|<event>    the delivery log
//	outboxidx               <table>|<partition>        partitions that may hold outbox rows
package events

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"switchboard/handler/egress"
	"switchboard/handler/secrets/reseal"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// TableName is the table of subscriptions, lanes and the delivery log.
const TableName = "events"

// Limits of SPEC section 11.
const (
	MaxSubscriptions = 50
	// DeliveryTimeout is how long a receiver has to answer 2xx.
	DeliveryTimeout = 10 * time.Second
	// RetryFor is how long an event is retried before it is dead-lettered;
	// a subscription without one success for as long is disabled.
	RetryFor = 24 * time.Hour
	// KeptDeliveries is how many deliveries the log keeps per subscription.
	KeptDeliveries = 100
)

// retryAfter is the wait after each failed attempt: 10 s, 30 s, 1, 5, 10,
// 30 and 60 min, then hourly.
var retryAfter = []time.Duration{10 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute,
	10 * time.Minute, 30 * time.Minute, time.Hour}

// RetryDelay returns the wait after the attempts-th failed attempt (1-based).
func RetryDelay(attempts int) time.Duration {
	if attempts < 1 {
		attempts = 1
	}
	if attempts <= len(retryAfter) {
		return retryAfter[attempts-1]
	}
	return time.Hour
}

// Sealer encrypts subscription secrets at rest (a *secrets.Keyring).
type Sealer = reseal.Keyring

// Options configures a Service. Tables, Secrets and Guard are required;
// without a Queue events are recorded but not delivered (logged at start).
type Options struct {
	Tables    store.Tables
	Queue     switchboard.Queue
	QueueName string // EVENTS_QUEUE
	Secrets   Sealer
	// Guard decides which receiver URLs may be called, at creation and at
	// every delivery.
	Guard egress.Guard
	// Client delivers; nil: Guard.Client(DeliveryTimeout).
	Client *http.Client
	Now    func() time.Time
	Log    *slog.Logger
	NewID  func() string
	// Budget bounds how long one EventDelivery invocation delivers before
	// it hands the rest of a lane to a new message (default 60 s).
	Budget time.Duration
}

// Service is the events capability.
type Service struct {
	o     Options
	table store.Table

	// prepared remembers partitions whose outbox index row this process
	// wrote recently, so that a busy partition costs one index write per
	// preparedFor, not one per change.
	mu       sync.Mutex
	prepared map[string]time.Time

	logged atomic.Int64 // new delivery log rows written, for trimming
}

// preparedFor is how long a Prepare is remembered; index rows untouched for
// indexIdle are removed by housekeeping once their partition is empty,
// which is safe because no process remembers them that long.
const (
	preparedFor = 5 * time.Minute
	indexIdle   = 30 * time.Minute
)

// New returns the events capability.
func New(ctx context.Context, o Options) (*Service, error) {
	const op = "events.New"
	if o.Tables == nil || o.Secrets == nil {
		return nil, switchboard.Errorf(switchboard.EINTERNAL, op, "tables and secrets are required")
	}
	if o.Queue != nil && o.QueueName == "" {
		return nil, switchboard.Errorf(switchboard.EINTERNAL, op, "a queue needs a queue name")
	}
	t, err := o.Tables.Table(ctx, TableName)
	if err != nil {
		return nil, err
	}
	if o.Client == nil {
		o.Client = o.Guard.Client(DeliveryTimeout)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.NewID == nil {
		o.NewID = func() string { return uuid.Must(uuid.NewV7()).String() }
	}
	if o.Budget <= 0 {
		o.Budget = 60 * time.Second
	}
	return &Service{o: o, table: t, prepared: map[string]time.Time{}}, nil
}

func subPartition(tenant string) string       { return "sub|" + tenant }
func lanePartition(tenant, sub string) string { return "lane|" + tenant + "|" + sub }
func logPartition(tenant, sub string) string  { return "dlv|" + tenant + "|" + sub }

const (
	countKey   = "~count"
	indexPK    = "outboxidx"
	lanePrefix = "q|"
	leasePfx   = "k|"
)

// subjectKey makes a subject usable in a row key: subjects are made of ids
// (letters, digits and . _ : @ -) joined by '/', which keys refuse.
func subjectKey(subject string) string {
	b := []byte(subject)
	for i, c := range b {
		if c == '/' {
			b[i] = '~'
		}
	}
	return string(b)
}

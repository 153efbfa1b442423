package switchboard

import (
	"context"
	"time"
)

// Message is a message to put on a queue.
type Message struct {
	Body []byte
	// MessageID lets Service Bus duplicate detection drop a resend.
	MessageID string
	// ScheduledAt delays delivery; zero delivers now.
	ScheduledAt time.Time
	// ContentType is application/json unless set.
	ContentType string
}

// Queue sends messages to Service Bus queues (or, locally, the local
// runner's in-process queues). Returns EUNAVAILABLE when the broker cannot
// be reached.
type Queue interface {
	// Send puts msg on the queue and returns its sequence number when it
	// was scheduled (0 otherwise).
	Send(ctx context.Context, queue string, msg Message) (int64, error)
	// Cancel cancels a scheduled message by its sequence number. A message
	// already delivered or cancelled is not an error.
	Cancel(ctx context.Context, queue string, sequenceNumber int64) error
}

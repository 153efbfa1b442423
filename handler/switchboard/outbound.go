package switchboard

import "time"

// OutboundTask is an outbound task (package outbound keeps them).
type OutboundTask struct {
	ID                  string
	TenantID            string
	ServiceID           string
	State               string
	ReferenceID         string // "" when the caller gave none
	Destination         string
	DueAt               time.Time
	Priority            int
	MaxAttempts         int
	MaxQueueTimeSeconds int
	PreferredUsers      []string
	Context             map[string]string
	// Agent is the user the task is assigned to while InProgress (and the
	// last one after it ends).
	Agent string
	// Attempts counts assignments: each time the task went InProgress.
	Attempts  int
	CreatedAt time.Time
	UpdatedAt time.Time

	// QueuedAt is when the task entered the queue for its current attempt
	// (its due time, or when a failed attempt put it back): the order among
	// waiting tasks of the same priority.
	QueuedAt time.Time
	// Deadline is when waiting for an agent ends (QueuedAt plus
	// MaxQueueTimeSeconds): the task then expires.
	Deadline time.Time
	// Try numbers the task's messages: only a message carrying the current
	// Try may act on the task, so a redelivered or superseded message is a
	// no-op.
	Try int
	// SequenceNumber is the Service Bus sequence number of the current
	// try's scheduled message (0 when it was sent for immediate delivery),
	// kept to cancel it.
	SequenceNumber int64
	// NextTryAt is when the current try's message is due.
	NextTryAt time.Time
	// SendPending is true from the write that starts a try until its
	// message is known to be on the queue; housekeeping resends a try whose
	// sender died in between.
	SendPending bool
	// AssignedAt is when the task last went InProgress.
	AssignedAt time.Time
	// EndedAt is when the task reached its final state; Note says why (or
	// is the caller's note from complete).
	EndedAt time.Time
	Note    string

	// ETag is Table Storage's ETag of the row the task was read from: it
	// guards the task's next write. The API never shows it.
	ETag string
}

// NewOutboundTask is a schedule request, as the API receives it. Nil pointers take
// the defaults.
type NewOutboundTask struct {
	Destination         string
	DueDateTimeUTC      string // RFC 3339; empty or past means now
	ReferenceID         string
	Priority            *int
	MaxAttempts         *int
	MaxQueueTimeSeconds *int
	PreferredUsers      []string
	Context             map[string]string
}

// Page sizes of the outbound task list.
const (
	DefaultOutboundListTop = 50
	MaxOutboundListTop     = 100
)

// OutboundListOptions selects a page of a service's tasks.
type OutboundListOptions struct {
	State        string // "" for every state
	Top          int    // 0 for DefaultOutboundListTop
	Continuation string // from the previous page
}

// OutboundListPage is a page of tasks in creation order.
type OutboundListPage struct {
	Tasks []OutboundTask
	// Continuation fetches the next page; "" on the last one.
	Continuation string
}

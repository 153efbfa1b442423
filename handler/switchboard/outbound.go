package switchboard

import (
	"encoding/json"
	"time"
)

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
	// EventSeq counts the task's stateChanged events: the sequence of the
	// last one written (SPEC section 11).
	EventSeq int64

	// ETag is Table Storage's ETag of the row the task was read from: it
	// guards the task's next write. The API never shows it.
	ETag string
}

// OutboundCompletion is a complete call: the outcome, the caller's note,
// and which attempt it is for (Attempt, the task's attempts as the caller
// saw it, or IfMatch, the ETag the API showed with the task; either
// may be unset).
type OutboundCompletion struct {
	Outcome string // Completed (the default) or Failed
	Note    string
	// Attempt, when not nil, names the attempt this completion is for.
	Attempt *int
	// IfMatch, when not "", is the If-Match header: the task as the caller
	// saw it.
	IfMatch string
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

// OutboundTaskAgent is the agent of a task as the API shows it.
type OutboundTaskAgent struct {
	UserID string `json:"userId"`
}

// OutboundTaskView is a task as the API returns it and its events carry
// (SPEC section 6). agent is set from the first assignment on (after the
// task ends it names the agent who had it last); referenceId is null when
// none was given.
type OutboundTaskView struct {
	ID                  string             `json:"id"`
	ServiceID           string             `json:"serviceId"`
	State               string             `json:"state"`
	ReferenceID         *string            `json:"referenceId"`
	Destination         string             `json:"destination"`
	DueDateTimeUTC      time.Time          `json:"dueDateTimeUtc"`
	Priority            int                `json:"priority"`
	MaxAttempts         int                `json:"maxAttempts"`
	MaxQueueTimeSeconds int                `json:"maxQueueTimeSeconds"`
	PreferredUsers      []string           `json:"preferredUsers"`
	Context             map[string]string  `json:"context"`
	Agent               *OutboundTaskAgent `json:"agent"`
	Attempts            int                `json:"attempts"`
	CreatedAt           time.Time          `json:"createdAt"`
	UpdatedAt           time.Time          `json:"updatedAt"`
}

// View returns t as the API shows it.
func (t OutboundTask) View() OutboundTaskView {
	out := OutboundTaskView{
		ID:                  t.ID,
		ServiceID:           t.ServiceID,
		State:               t.State,
		Destination:         t.Destination,
		DueDateTimeUTC:      t.DueAt,
		Priority:            t.Priority,
		MaxAttempts:         t.MaxAttempts,
		MaxQueueTimeSeconds: t.MaxQueueTimeSeconds,
		PreferredUsers:      t.PreferredUsers,
		Context:             t.Context,
		Attempts:            t.Attempts,
		CreatedAt:           t.CreatedAt,
		UpdatedAt:           t.UpdatedAt,
	}
	if t.ReferenceID != "" {
		out.ReferenceID = &t.ReferenceID
	}
	if t.Agent != "" {
		out.Agent = &OutboundTaskAgent{UserID: t.Agent}
	}
	if out.PreferredUsers == nil {
		out.PreferredUsers = []string{}
	}
	if out.Context == nil {
		out.Context = map[string]string{}
	}
	return out
}

// OutboundTaskStateChanged is the type of the event a task's creation and
// each change of its state emit.
const OutboundTaskStateChanged = "switchboard.outboundTask.stateChanged"

// OutboundTaskEventData is the data of OutboundTaskStateChanged: the task
// after the change (its fields inline), with the state before it (null on
// creation).
type OutboundTaskEventData struct {
	OutboundTaskView
	PreviousState *string `json:"previousState"`
}

// OutboundTaskPatch is a JSON merge patch (RFC 7396) of a waiting task's
// changeable fields: dueDateTimeUtc, priority, maxQueueTimeSeconds,
// preferredUsers and context.
type OutboundTaskPatch struct {
	// Merge is the patch document as received.
	Merge json.RawMessage
	// IfMatch is the task's ETag the caller saw ("" or "*": any).
	IfMatch string
}

// Package outbound runs the outbound tasks that Power Automate schedules
// (SPEC section 6): admission under an exact per-service cap, one Service
// Bus message per task scheduled for its due time, the worker that assigns
// a due task to an agent through the routing engine (or tries again until
// its queue time runs out), and the housekeeping that reconciles the cap's
// counters and releases what a lost message or a crash left behind.
//
// # Storage
//
// Everything about the tasks of one service lives in one Table Storage
// partition (PartitionKey tenant|service), so that a task and its slot
// change together in one entity-group transaction:
//
//	counter          Count: the slots in use (Scheduled + Queued + InProgress)
//	task|<id>        the task (ids are UUIDv7: row order is creation order)
//	open|<id>        index row of a task that holds a slot (state, priority)
//	ref|<sha256>     the task id of a referenceId (idempotency key)
//
// Admission writes counter+1, the task, its open row and its ref row in one
// batch guarded by the counter's ETag: a task never exists without its
// slot, two instances can never both take the last slot, and a crash
// cannot leak one. Every move to a final state writes the task, counter-1
// and the open row's deletion in one batch the same way. A registry
// partition ("services") lists the partitions for housekeeping.
package outbound

import (
	"encoding/json"
	"fmt"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"switchboard/handler/switchboard"
)

// Task states (SPEC section 6).
const (
	StateScheduled  = "Scheduled"  // waiting for its due time
	StateQueued     = "Queued"     // due, waiting for a free agent
	StateInProgress = "InProgress" // assigned: the agent is held until complete
	StateCompleted  = "Completed"
	StateFailed     = "Failed"
	StateCancelled  = "Cancelled"
	StateExpired    = "Expired"
)

// States lists every state, in lifecycle order.
var States = []string{StateScheduled, StateQueued, StateInProgress, StateCompleted, StateFailed, StateCancelled, StateExpired}

// Outcomes a complete call may report.
const (
	OutcomeCompleted = "Completed"
	OutcomeFailed    = "Failed"
)

// Outcomes lists the outcomes complete accepts.
var Outcomes = []string{OutcomeCompleted, OutcomeFailed}

// Bounds of the request fields: the validator enforces them and the
// connector's schema states them (a test checks that the two agree).
const (
	MaxScheduleAhead           = 365 * 24 * time.Hour
	MinPriority                = 1
	MaxPriority                = 99
	DefaultPriority            = 50
	MinMaxAttempts             = 1
	MaxMaxAttempts             = 10
	DefaultMaxAttempts         = 1
	MinMaxQueueTimeSeconds     = 5
	MaxMaxQueueTimeSeconds     = 3600
	DefaultMaxQueueTimeSeconds = 300
	MaxPreferredUsers          = 10
	MaxReferenceIDLength       = 128
	MaxDestinationLength       = 256
	MaxContextEntries          = 32
	MaxContextKeyLength        = 64
	MaxContextValueLength      = 1024
	MaxNoteLength              = 1024
	// MaxContextBytes bounds the context's JSON encoding.
	MaxContextBytes = 8 << 10
)

// Counted reports whether a task in state holds a slot of its service's
// cap.
func Counted(state string) bool {
	return state == StateScheduled || state == StateQueued || state == StateInProgress
}

// Final reports whether state is one a task never leaves.
func Final(state string) bool {
	return state == StateCompleted || state == StateFailed || state == StateCancelled || state == StateExpired
}

// ValidState reports whether s names a state.
func ValidState(s string) bool {
	for _, st := range States {
		if st == s {
			return true
		}
	}
	return false
}

// Task is an outbound task; the type is domain vocabulary (the HTTP layer
// renders it).
type Task = switchboard.OutboundTask

// conversationID is the routing conversation that holds the agent of the
// task's attempt (attempts count from 1). One per attempt, so that a stale
// worker releasing its own reservation can never free the hold of a later
// attempt.
func conversationID(taskID string, attempt int) string {
	return ConversationPrefix + taskID + ":" + strconv.Itoa(attempt)
}

// ConversationPrefix starts the routing conversation id of every outbound
// task attempt (switchboard.IsTaskConversation tells them).
const ConversationPrefix = switchboard.TaskConversationPrefix

// NewTask is a schedule request, as the API receives it (domain
// vocabulary).
type NewTask = switchboard.NewOutboundTask

var (
	phoneSeparators = strings.NewReplacer(" ", "", "-", "", ".", "", "(", "", ")", "")
	e164            = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
)

// NormalizeDestination returns a phone number in E.164 form ("+" and 7 to
// 15 digits; spaces, dashes, dots and parentheses are dropped) or a UPN or
// e-mail address, lower-cased; false when d is neither.
func NormalizeDestination(d string) (string, bool) {
	d = strings.TrimSpace(d)
	if d == "" || len(d) > MaxDestinationLength {
		return "", false
	}
	if strings.HasPrefix(d, "+") {
		p := phoneSeparators.Replace(d)
		return p, e164.MatchString(p)
	}
	addr, err := mail.ParseAddress(d)
	if err != nil || addr.Name != "" || addr.Address != d {
		return "", false
	}
	local, domain, ok := strings.Cut(d, "@")
	if !ok || local == "" || !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") {
		return "", false
	}
	return strings.ToLower(d), true
}

// validateNewTask checks n against SPEC section 6 and returns the task it
// defines, defaults applied and the due time no earlier than now. Errors
// are EINVALID and name the JSON field.
func validateNewTask(n NewTask, now time.Time) (Task, error) {
	const op = "outbound.Schedule"
	t := Task{Priority: DefaultPriority, MaxAttempts: DefaultMaxAttempts, MaxQueueTimeSeconds: DefaultMaxQueueTimeSeconds}
	if strings.TrimSpace(n.Destination) == "" {
		return t, switchboard.FieldError(op, "destination", "destination is required: a phone number in E.164 form (+41440000000) or a UPN / e-mail address")
	}
	dest, ok := NormalizeDestination(n.Destination)
	if !ok {
		return t, switchboard.FieldError(op, "destination", "destination %q is neither a phone number in E.164 form (+ and 7 to 15 digits) nor a "+
			"UPN / e-mail address", truncate(n.Destination, 64))
	}
	t.Destination = dest
	t.DueAt = now
	if n.DueDateTimeUTC != "" {
		due, err := time.Parse(time.RFC3339Nano, n.DueDateTimeUTC)
		if err != nil {
			return t, switchboard.FieldError(op, "dueDateTimeUtc", "dueDateTimeUtc %q is not an RFC 3339 date-time such as "+
				"2026-11-22T12:00:00Z", truncate(n.DueDateTimeUTC, 64))
		}
		if due.After(now.Add(MaxScheduleAhead)) {
			// A task holds a slot of the cap until it ends: one due in
			// years would hold it for years.
			return t, switchboard.FieldError(op, "dueDateTimeUtc", "dueDateTimeUtc may be at most %d days ahead", int(MaxScheduleAhead/(24*time.Hour)))
		}
		if due.After(now) {
			t.DueAt = due
		}
	}
	t.DueAt = t.DueAt.UTC().Truncate(time.Millisecond)
	if n.ReferenceID != "" {
		if utf8.RuneCountInString(n.ReferenceID) > MaxReferenceIDLength || !utf8.ValidString(n.ReferenceID) || strings.TrimSpace(n.ReferenceID) != n.ReferenceID {
			return t, switchboard.FieldError(
				op,
				"referenceId",
				"referenceId must be at most %d characters without leading or trailing spaces",
				MaxReferenceIDLength,
			)
		}
		t.ReferenceID = n.ReferenceID
	}
	for _, f := range []struct {
		field  string
		v      *int
		dst    *int
		lo, hi int
	}{
		{"priority", n.Priority, &t.Priority, MinPriority, MaxPriority},
		{"maxAttempts", n.MaxAttempts, &t.MaxAttempts, MinMaxAttempts, MaxMaxAttempts},
		{"maxQueueTimeSeconds", n.MaxQueueTimeSeconds, &t.MaxQueueTimeSeconds, MinMaxQueueTimeSeconds, MaxMaxQueueTimeSeconds},
	} {
		if f.v == nil {
			continue
		}
		if *f.v < f.lo || *f.v > f.hi {
			return t, switchboard.FieldError(op, f.field, "%s must be between %d and %d, not %d", f.field, f.lo, f.hi, *f.v)
		}
		*f.dst = *f.v
	}
	if len(n.PreferredUsers) > MaxPreferredUsers {
		return t, switchboard.FieldError(op, "preferredUsers", "at most %d preferred users, not %d", MaxPreferredUsers, len(n.PreferredUsers))
	}
	t.PreferredUsers = []string{}
	seen := map[string]bool{}
	for i, u := range n.PreferredUsers {
		id, ok := switchboard.NormalizeGUID(u)
		if !ok {
			return t, switchboard.FieldError(op, fmt.Sprintf("preferredUsers[%d]", i), "preferred user %q is not an Entra object id (a GUID)", truncate(u, 64))
		}
		if !seen[id] {
			seen[id] = true
			t.PreferredUsers = append(t.PreferredUsers, id)
		}
	}
	if len(n.Context) > MaxContextEntries {
		return t, switchboard.FieldError(op, "context", "at most %d context entries, not %d", MaxContextEntries, len(n.Context))
	}
	t.Context = map[string]string{}
	for k, v := range n.Context {
		if k == "" || utf8.RuneCountInString(k) > MaxContextKeyLength {
			return t, switchboard.FieldError(op, "context", "context keys must be 1 to %d characters", MaxContextKeyLength)
		}
		if utf8.RuneCountInString(v) > MaxContextValueLength {
			return t, switchboard.FieldError(op, "context."+k, "context values must be at most %d characters", MaxContextValueLength)
		}
		t.Context[k] = v
	}
	if b, _ := json.Marshal(t.Context); len(b) > MaxContextBytes {
		return t, switchboard.FieldError(op, "context", "the context is larger than %d bytes as JSON", MaxContextBytes)
	}
	return t, nil
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

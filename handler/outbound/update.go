package outbound

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"switchboard/handler/switchboard"
)

// Patchable lists the fields Update changes (SPEC section 6, the seed
// product's "Update a scheduler entry").
var Patchable = []string{"dueDateTimeUtc", "priority", "maxQueueTimeSeconds", "preferredUsers", "context"}

// PatchDoc is the merge-patch form of a task's changeable fields (the
// connector's schema of the PATCH body is checked against it). A field
// the patch sets to null takes its default, as if absent when scheduling
// (a due time of null means now).
type PatchDoc struct {
	DueDateTimeUTC      *string           `json:"dueDateTimeUtc,omitempty"`
	Priority            *int              `json:"priority,omitempty"`
	MaxQueueTimeSeconds *int              `json:"maxQueueTimeSeconds,omitempty"`
	PreferredUsers      []string          `json:"preferredUsers,omitempty"`
	Context             map[string]string `json:"context,omitempty"`
}

// parsePatch checks that raw is a JSON object naming only changeable
// fields, and returns the fields it names.
func parsePatch(op string, raw []byte) (map[string]json.RawMessage, error) {
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&fields); err != nil || fields == nil || dec.More() {
		return nil, switchboard.Errorf(
			switchboard.EINVALID,
			op,
			"the body must be a JSON merge patch: an object with some of %s",
			strings.Join(Patchable, ", "),
		)
	}
	for name := range fields {
		ok := false
		for _, p := range Patchable {
			ok = ok || p == name
		}
		if !ok {
			return nil, switchboard.FieldError(op, name, "%s cannot be changed; a task's %s can", truncate(name, 40), strings.Join(Patchable, ", "))
		}
	}
	return fields, nil
}

// decodeMerged reads the merged document field by field, so that a value
// of the wrong type is refused naming its field.
func decodeMerged(op string, merged []byte) (PatchDoc, error) {
	var fields map[string]json.RawMessage
	var d PatchDoc
	if err := json.Unmarshal(merged, &fields); err != nil {
		return d, switchboard.Wrap(switchboard.EINTERNAL, op, err)
	}
	for _, f := range []struct {
		name, want string
		dst        any
	}{
		{"dueDateTimeUtc", "an RFC 3339 date-time string", &d.DueDateTimeUTC},
		{"priority", "an integer", &d.Priority},
		{"maxQueueTimeSeconds", "an integer", &d.MaxQueueTimeSeconds},
		{"preferredUsers", "an array of Entra object ids", &d.PreferredUsers},
		{"context", "an object of string values", &d.Context},
	} {
		if raw, ok := fields[f.name]; ok {
			if err := json.Unmarshal(raw, f.dst); err != nil {
				return d, switchboard.FieldError(op, f.name, "%s must be %s", f.name, f.want)
			}
		}
	}
	return d, nil
}

func patchDocOf(t Task) PatchDoc {
	due := t.DueAt.Format(time.RFC3339Nano)
	return PatchDoc{DueDateTimeUTC: &due, Priority: &t.Priority, MaxQueueTimeSeconds: &t.MaxQueueTimeSeconds,
		PreferredUsers: t.PreferredUsers, Context: t.Context}
}

// Update changes a Scheduled or Queued task's due time, priority, queue
// time, preferred users or context with a JSON merge patch (RFC 7396),
// validated as when scheduling. A new due time reschedules the task: its
// next try's message is sent for the new time and the old one cancelled (a
// superseded try, it changes nothing should it come anyway); a task
// waiting in the queue that is now due later is Scheduled again. Returns
// EINVALID naming the field, ENOTFOUND, EPRECONDITION when p.IfMatch is not
// the task's ETag, ECONFLICT once the task is InProgress or has ended,
// EUNAVAILABLE.
func (s *Service) Update(ctx context.Context, tenant, service, id string, p switchboard.OutboundTaskPatch) (Task, error) {
	const op = "outbound.Update"
	if err := checkIDs(op, tenant, service); err != nil {
		return Task{}, err
	}
	if err := checkTaskID(op, id); err != nil {
		return Task{}, err
	}
	fields, err := parsePatch(op, p.Merge)
	if err != nil {
		return Task{}, err
	}
	_, dueTouched := fields["dueDateTimeUtc"]
	pk := partition(tenant, service)
	var cur Task // the task as read before the write that changed it
	rescheduled, stale := false, false
	done, err := s.move(ctx, taskMove{op: op, pk: pk, id: id, tries: maxWriteRetries,
		decide: func(c Task) (Task, bool, error) {
			if !etagMatches(p.IfMatch, c.ETag) {
				stale = true
				return Task{}, false, &switchboard.Error{Code: switchboard.EPRECONDITION, Op: op, Type: "precondition-failed",
					Message: "task " + id + " has changed since it was read (If-Match): read it again"}
			}
			switch {
			case c.State == StateInProgress:
				return Task{}, false, &switchboard.Error{Code: switchboard.ECONFLICT, Op: op, Type: "outbound-task-in-progress",
					Message: "task " + id + " is in progress with an agent and cannot be changed"}
			case !waiting(c):
				return Task{}, false, &switchboard.Error{
					Code:    switchboard.ECONFLICT,
					Op:      op,
					Type:    "outbound-task-finished",
					Message: "task " + id + " has already ended (" + c.State + ")",
				}
			}
			next, changed, moved, err := s.patched(op, c, p.Merge, dueTouched)
			if err != nil || !changed {
				return c, false, err
			}
			cur, rescheduled = c, moved
			return next, true, nil
		}})
	if err != nil {
		if switchboard.IsCode(err, switchboard.EPRECONDITION) && !stale {
			return Task{}, switchboard.Errorf(switchboard.EUNAVAILABLE, op, "task %s keeps changing; retry", id)
		}
		return Task{}, err
	}
	if !rescheduled {
		// Read back for the ETag (batches return none): the reply's ETag
		// guards the caller's next change.
		return s.getTask(ctx, pk, id)
	}
	seq, err := s.send(ctx, done, s.now())
	if err != nil {
		// The new try stays pending: the old message, when it comes, sends
		// it (it is the try before), as does housekeeping after
		// ResendAfter; so the old one is left alone.
		s.o.Log.Warn("outbound: rescheduled task not sent now; its old message or housekeeping will send it", "task", id, "err", err)
		return s.getTask(ctx, pk, id)
	}
	if sent, ok := s.markSent(ctx, done, seq); ok {
		done = sent
	}
	if cur.SequenceNumber > 0 && s.o.Queue != nil {
		if err := s.o.Queue.Cancel(ctx, s.o.QueueName, cur.SequenceNumber); err != nil {
			// Its try is superseded: it changes nothing when it comes.
			s.o.Log.Warn("outbound: superseded scheduled message not cancelled", "task", id, "err", err)
		}
	}
	return s.getTask(ctx, pk, id)
}

// patched returns c with the merge patch applied and validated; changed
// is false when the patch changes nothing, moved when the task needs a new
// try (a new due time, or a queue time that now ends before the next try).
func (s *Service) patched(op string, c Task, merge []byte, dueTouched bool) (next Task, changed, moved bool, err error) {
	base, err := json.Marshal(patchDocOf(c))
	if err != nil {
		return Task{}, false, false, switchboard.Wrap(switchboard.EINTERNAL, op, err)
	}
	merged, err := jsonpatch.MergePatch(base, merge)
	if err != nil {
		return Task{}, false, false, switchboard.Errorf(switchboard.EINVALID, op, "the body is not a JSON merge patch")
	}
	d, err := decodeMerged(op, merged)
	if err != nil {
		return Task{}, false, false, err
	}
	now := s.now()
	n := NewTask{Destination: c.Destination, Priority: d.Priority, MaxQueueTimeSeconds: d.MaxQueueTimeSeconds,
		MaxAttempts: &c.MaxAttempts, PreferredUsers: d.PreferredUsers, Context: d.Context}
	if dueTouched && d.DueDateTimeUTC != nil {
		n.DueDateTimeUTC = *d.DueDateTimeUTC
	}
	v, err := validateNewTask(n, now)
	if err != nil {
		var e *switchboard.Error
		if errors.As(err, &e) {
			ce := *e
			ce.Op = op
			return Task{}, false, false, &ce
		}
		return Task{}, false, false, err
	}
	next = c
	next.Priority, next.MaxQueueTimeSeconds, next.PreferredUsers, next.Context = v.Priority, v.MaxQueueTimeSeconds, v.PreferredUsers, v.Context
	if dueTouched && !v.DueAt.Equal(c.DueAt) && (v.DueAt.After(now) || c.DueAt.After(now)) {
		// A new due time (a past one, for a task already due, changes
		// nothing: it stays where it is in the queue).
		next.DueAt, next.QueuedAt = v.DueAt, v.DueAt
		if next.DueAt.After(now) {
			next.State = StateScheduled
		}
		moved = true
	}
	next.Deadline = next.QueuedAt.Add(time.Duration(next.MaxQueueTimeSeconds) * time.Second)
	if !moved && next.State == StateQueued && next.NextTryAt.After(next.Deadline) {
		moved = true // the queue time now ends before the next try: try at its end
	}
	if moved {
		next.Try, next.SendPending, next.SequenceNumber = c.Try+1, true, 0
		next.NextTryAt = next.DueAt
		if next.State == StateQueued {
			next.NextTryAt = s.retryAt(now, next.Deadline)
		}
		if next.NextTryAt.Before(now) {
			next.NextTryAt = now
		}
	}
	changed = moved || next.Priority != c.Priority || next.MaxQueueTimeSeconds != c.MaxQueueTimeSeconds ||
		!slices.Equal(next.PreferredUsers, c.PreferredUsers) || !maps.Equal(next.Context, c.Context)
	if changed {
		next.UpdatedAt = now
	}
	return next, changed, moved, nil
}

// etagMatches reports whether an If-Match value admits etag: empty or "*"
// admit any, otherwise one of its entity tags must be the task's under the
// strong comparison (switchboard.IfMatchHolds).
func etagMatches(ifMatch, etag string) bool {
	ifMatch = strings.TrimSpace(ifMatch)
	return ifMatch == "" || ifMatch == "*" || switchboard.IfMatchHolds(ifMatch, etag)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

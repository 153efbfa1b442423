package outbound

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// TableName is the table of the outbound tasks.
const TableName = "outbound"

// Row keys and prefixes inside a service's partition.
const (
	counterKey   = "counter"
	taskPrefix   = "task|"
	openPrefix   = "open|"
	refPrefix    = "ref|"
	registryPK   = "services"
	partitionSep = "|"
)

// partition is the PartitionKey of a service's tasks.
func partition(tenant, service string) string { return tenant + partitionSep + service }

func taskKey(id string) string { return taskPrefix + id }
func openKey(id string) string { return openPrefix + id }

// refKey is the row of a referenceId: hashed, because a referenceId may
// hold characters Table Storage refuses in keys.
func refKey(referenceID string) string {
	h := sha256.Sum256([]byte(referenceID))
	return refPrefix + hex.EncodeToString(h[:])
}

// counter is a service's slot counter.
type counter struct {
	count  int
	exists bool
	etag   string
}

func readCounter(e store.Entity) counter {
	return counter{count: int(e.Int64("Count")), exists: true, etag: e.ETag}
}

// op returns the batch operation that sets the counter to n.
func (c counter) op(pk string, n int) store.Op {
	e := store.Entity{PartitionKey: pk, RowKey: counterKey, Props: map[string]any{"Count": int64(max(n, 0))}}
	if !c.exists {
		return store.Op{Kind: store.OpInsert, Entity: e}
	}
	return store.Op{Kind: store.OpUpdate, Entity: e, IfMatch: c.etag}
}

func taskEntity(t Task) store.Entity {
	pu, _ := json.Marshal(t.PreferredUsers)
	cx, _ := json.Marshal(t.Context)
	p := map[string]any{
		"TenantId":            t.TenantID,
		"ServiceId":           t.ServiceID,
		"State":               t.State,
		"ReferenceId":         t.ReferenceID,
		"Destination":         t.Destination,
		"DueAt":               t.DueAt,
		"Priority":            int64(t.Priority),
		"MaxAttempts":         int64(t.MaxAttempts),
		"MaxQueueTimeSeconds": int64(t.MaxQueueTimeSeconds),
		"PreferredUsers":      string(pu),
		"Context":             string(cx),
		"Agent":               t.Agent,
		"Attempts":            int64(t.Attempts),
		"CreatedAt":           t.CreatedAt,
		"UpdatedAt":           t.UpdatedAt,
		"QueuedAt":            t.QueuedAt,
		"Deadline":            t.Deadline,
		"Try":                 int64(t.Try),
		"SequenceNumber":      t.SequenceNumber,
		"SendPending":         t.SendPending,
		"Note":                t.Note,
		"EventSeq":            t.EventSeq,
	}
	// Table Storage refuses DateTime values before 1601: unset times stay out.
	for name, v := range map[string]time.Time{"NextTryAt": t.NextTryAt, "AssignedAt": t.AssignedAt, "EndedAt": t.EndedAt} {
		if !v.IsZero() {
			p[name] = v
		}
	}
	return store.Entity{PartitionKey: partition(t.TenantID, t.ServiceID), RowKey: taskKey(t.ID), Props: p}
}

func taskFromEntity(e store.Entity) (Task, error) {
	const op = "outbound.readTask"
	t := Task{
		ID:                  strings.TrimPrefix(e.RowKey, taskPrefix),
		TenantID:            e.String("TenantId"),
		ServiceID:           e.String("ServiceId"),
		State:               e.String("State"),
		ReferenceID:         e.String("ReferenceId"),
		Destination:         e.String("Destination"),
		DueAt:               e.Time("DueAt").UTC(),
		Priority:            int(e.Int64("Priority")),
		MaxAttempts:         int(e.Int64("MaxAttempts")),
		MaxQueueTimeSeconds: int(e.Int64("MaxQueueTimeSeconds")),
		Agent:               e.String("Agent"),
		Attempts:            int(e.Int64("Attempts")),
		CreatedAt:           e.Time("CreatedAt").UTC(),
		UpdatedAt:           e.Time("UpdatedAt").UTC(),
		QueuedAt:            e.Time("QueuedAt").UTC(),
		Deadline:            e.Time("Deadline").UTC(),
		Try:                 int(e.Int64("Try")),
		SequenceNumber:      e.Int64("SequenceNumber"),
		NextTryAt:           utcOrZero(e.Time("NextTryAt")),
		SendPending:         e.Bool("SendPending"),
		AssignedAt:          utcOrZero(e.Time("AssignedAt")),
		EndedAt:             utcOrZero(e.Time("EndedAt")),
		Note:                e.String("Note"),
		EventSeq:            e.Int64("EventSeq"),
		ETag:                e.ETag,
	}
	if err := json.Unmarshal([]byte(e.String("PreferredUsers")), &t.PreferredUsers); err != nil {
		return t, switchboard.Errorf(switchboard.EINTERNAL, op, "task %s: unreadable preferred users", t.ID)
	}
	if err := json.Unmarshal([]byte(e.String("Context")), &t.Context); err != nil {
		return t, switchboard.Errorf(switchboard.EINTERNAL, op, "task %s: unreadable context", t.ID)
	}
	if t.PreferredUsers == nil {
		t.PreferredUsers = []string{}
	}
	if t.Context == nil {
		t.Context = map[string]string{}
	}
	if !ValidState(t.State) {
		return t, switchboard.Errorf(switchboard.EINTERNAL, op, "task %s: unknown state %q", t.ID, t.State)
	}
	return t, nil
}

func utcOrZero(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

// openEntry is the index row of a task that holds a slot: what the
// worker needs to pick the next waiting task without reading every task.
type openEntry struct {
	ID       string
	State    string
	Priority int
	DueAt    time.Time
	QueuedAt time.Time
	Deadline time.Time
	// PreferredUsers are the task's (distribution's line ranks them
	// first); empty in rows written before they were kept here.
	PreferredUsers []string
}

func openEntity(t Task) store.Entity {
	e := store.Entity{PartitionKey: partition(t.TenantID, t.ServiceID), RowKey: openKey(t.ID), Props: map[string]any{
		"State":    t.State,
		"Priority": int64(t.Priority),
		"DueAt":    t.DueAt,
		"QueuedAt": t.QueuedAt,
		"Deadline": t.Deadline,
	}}
	if len(t.PreferredUsers) > 0 {
		pu, _ := json.Marshal(t.PreferredUsers)
		e.Props["PreferredUsers"] = string(pu)
	}
	return e
}

func openFromEntity(e store.Entity) openEntry {
	o := openEntry{
		ID:       strings.TrimPrefix(e.RowKey, openPrefix),
		State:    e.String("State"),
		Priority: int(e.Int64("Priority")),
		DueAt:    e.Time("DueAt").UTC(),
		QueuedAt: e.Time("QueuedAt").UTC(),
		Deadline: e.Time("Deadline").UTC(),
	}
	if pu := e.String("PreferredUsers"); pu != "" {
		// Unreadable: the line ranks nobody first; the assignment reads
		// the task's own row.
		_ = json.Unmarshal([]byte(pu), &o.PreferredUsers)
	}
	return o
}

// waiting reports whether the task waits for an agent at now: due and not
// yet assigned.
func (o openEntry) waiting(now time.Time) bool {
	return o.State == StateQueued || (o.State == StateScheduled && !o.DueAt.After(now))
}

func refEntity(pk, referenceID, taskID string) store.Entity {
	return store.Entity{PartitionKey: pk, RowKey: refKey(referenceID), Props: map[string]any{"TaskId": taskID, "ReferenceId": referenceID}}
}

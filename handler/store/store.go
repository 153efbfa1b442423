// Package store is the entity-table layer every Switchboard capability keeps
// its state in. Table is a small interface over Azure Table Storage semantics
// (partition and row keys, ETags, single-partition batches of at most 100
// operations); package aztable implements it on Azure Table Storage and
// Memory implements it in process. Both pass the same contract suite
// (package storetest).
package store

import (
	"context"
	"fmt"
	"sort"
	"time"

	"switchboard/handler/switchboard"
)

// MaxBatch is the most operations one entity group transaction may hold.
const MaxBatch = 100

// Entity is one row. Props values are string, bool, int32, int64, float64,
// time.Time or []byte; everything else must be encoded by the caller (JSON
// text in a string property, usually). ETag is set on read and ignored on
// write (writes take the ETag to match as a separate argument).
type Entity struct {
	PartitionKey string
	RowKey       string
	ETag         string
	Timestamp    time.Time
	Props        map[string]any
}

// String returns the property as a string, or "" when it is missing or not
// a string.
func (e Entity) String(name string) string {
	s, _ := e.Props[name].(string)
	return s
}

// Int64 returns the property as an int64 (int32 and int64 both read), or 0.
func (e Entity) Int64(name string) int64 {
	switch v := e.Props[name].(type) {
	case int64:
		return v
	case int32:
		return int64(v)
	case int:
		return int64(v)
	case float64:
		return int64(v)
	}
	return 0
}

// Bool returns the property as a bool, or false.
func (e Entity) Bool(name string) bool {
	b, _ := e.Props[name].(bool)
	return b
}

// Time returns the property as a time, or the zero time.
func (e Entity) Time(name string) time.Time {
	t, _ := e.Props[name].(time.Time)
	return t
}

// Query selects rows of a table. An empty PartitionKey scans every
// partition; PartitionPrefix keeps to the partitions whose key starts with
// it (a range of partitions, which Table Storage scans without reading the
// others). RowKeyFrom (inclusive) and RowKeyTo (exclusive) bound the row
// keys when set; Prefix is a shorthand for the range of keys starting with
// it. Top caps the page size (0 means the table's default, at most 1,000).
// Continuation is the token of a previous page.
type Query struct {
	PartitionKey    string
	PartitionPrefix string
	RowKeyFrom      string
	RowKeyTo        string
	Prefix          string
	Top             int
	Continuation    string
}

// Page is one page of a query. Continuation is empty on the last page.
type Page struct {
	Entities     []Entity
	Continuation string
}

// OpKind is the kind of a batch operation.
type OpKind int

const (
	OpInsert OpKind = iota // fails with ECONFLICT when the row exists
	OpUpsert               // insert or replace
	OpMerge                // insert or merge properties
	OpUpdate               // replace an existing row, If-Match ETag ("*" or "" for any)
	OpDelete               // delete an existing row, If-Match ETag ("*" or "" for any)
)

// Op is one operation of a batch.
type Op struct {
	Kind    OpKind
	Entity  Entity // for OpDelete only the keys are used
	IfMatch string
}

// Table is one table. Every method returns *switchboard.Error values:
// ENOTFOUND, ECONFLICT, EPRECONDITION (ETag mismatch), EINVALID (a key or
// property Table Storage would refuse) and EUNAVAILABLE (storage
// unreachable or throttled).
type Table interface {
	// Get reads one row. Returns ENOTFOUND if it does not exist.
	Get(ctx context.Context, pk, rk string) (Entity, error)
	// Insert adds a row and returns its ETag. Returns ECONFLICT if it exists.
	Insert(ctx context.Context, e Entity) (string, error)
	// Update replaces an existing row when its ETag matches ifMatch ("" or
	// "*" match any) and returns the new ETag. Returns ENOTFOUND if there is
	// no such row and EPRECONDITION if the ETag does not match.
	Update(ctx context.Context, e Entity, ifMatch string) (string, error)
	// Upsert inserts or replaces a row and returns its ETag.
	Upsert(ctx context.Context, e Entity) (string, error)
	// Delete removes a row when its ETag matches ifMatch ("" or "*" match
	// any). Returns ENOTFOUND if there is no such row and EPRECONDITION if
	// the ETag does not match.
	Delete(ctx context.Context, pk, rk, ifMatch string) error
	// Query returns one page of rows in (PartitionKey, RowKey) order.
	Query(ctx context.Context, q Query) (Page, error)
	// Batch runs up to MaxBatch operations on one partition atomically: all
	// or none. Returns EINVALID for an empty, oversized or mixed-partition
	// batch (checked here: Azurite does not), or the error of the first
	// failing operation (ECONFLICT, ENOTFOUND, EPRECONDITION), in which case
	// nothing was written.
	Batch(ctx context.Context, ops []Op) error
}

// CheckBatch returns EINVALID unless ops is a batch Table Storage accepts:
// 1 to MaxBatch operations, all on one partition, each row at most once.
func CheckBatch(ops []Op) error {
	const op = "store.Batch"
	if len(ops) == 0 {
		return switchboard.Errorf(switchboard.EINVALID, op, "empty batch")
	}
	if len(ops) > MaxBatch {
		return switchboard.Errorf(switchboard.EINVALID, op, "batch of %d operations exceeds the limit of %d", len(ops), MaxBatch)
	}
	pk := ops[0].Entity.PartitionKey
	seen := make(map[string]bool, len(ops))
	for _, o := range ops {
		if o.Entity.PartitionKey != pk {
			return switchboard.Errorf(switchboard.EINVALID, op, "batch mixes partitions %q and %q", pk, o.Entity.PartitionKey)
		}
		if seen[o.Entity.RowKey] {
			return switchboard.Errorf(switchboard.EINVALID, op, "batch names row %q twice", o.Entity.RowKey)
		}
		seen[o.Entity.RowKey] = true
	}
	return nil
}

// WriteBatched runs ops as as few batches as Table Storage allows: grouped
// by partition, in chunks of at most MaxBatch. A later operation on a row
// already in the current chunk starts a new chunk, so order is kept. It
// stops at the first failing batch; batches already written stay written.
// It returns the number of batches written.
func WriteBatched(ctx context.Context, t Table, ops []Op) (int, error) {
	byPartition := make(map[string][]Op)
	var order []string
	for _, o := range ops {
		pk := o.Entity.PartitionKey
		if _, ok := byPartition[pk]; !ok {
			order = append(order, pk)
		}
		byPartition[pk] = append(byPartition[pk], o)
	}
	sort.Strings(order)
	batches := 0
	for _, pk := range order {
		var chunk []Op
		rows := map[string]bool{}
		flush := func() error {
			if len(chunk) == 0 {
				return nil
			}
			if err := t.Batch(ctx, chunk); err != nil {
				return fmt.Errorf("partition %q: %w", pk, err)
			}
			batches++
			chunk, rows = nil, map[string]bool{}
			return nil
		}
		for _, o := range byPartition[pk] {
			if len(chunk) == MaxBatch || rows[o.Entity.RowKey] {
				if err := flush(); err != nil {
					return batches, err
				}
			}
			chunk = append(chunk, o)
			rows[o.Entity.RowKey] = true
		}
		if err := flush(); err != nil {
			return batches, err
		}
	}
	return batches, nil
}

// QueryAll pages through q and calls fn for every row until fn returns an
// error or the rows run out.
func QueryAll(ctx context.Context, t Table, q Query, fn func(Entity) error) error {
	for {
		page, err := t.Query(ctx, q)
		if err != nil {
			return err
		}
		for _, e := range page.Entities {
			if err := fn(e); err != nil {
				return err
			}
		}
		if page.Continuation == "" {
			return nil
		}
		q.Continuation = page.Continuation
	}
}

// Tables opens tables by name, creating each on first use.
type Tables interface {
	Table(ctx context.Context, name string) (Table, error)
	// Ping checks that storage is reachable (for the health endpoint).
	Ping(ctx context.Context) error
}

// Prefixed returns Tables whose table names all start with prefix: tests
// share one storage account and stay out of each other's way with it.
func Prefixed(t Tables, prefix string) Tables { return prefixed{t, prefix} }

type prefixed struct {
	Tables
	prefix string
}

func (p prefixed) Table(ctx context.Context, name string) (Table, error) {
	return p.Tables.Table(ctx, p.prefix+name)
}

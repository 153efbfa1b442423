package fakes

import (
	"context"
	"sync/atomic"

	"switchboard/handler/store"
)

// DeleteRace is storage that runs Race once, just before the first delete
// of a row of table TableName whose key Match accepts (a Delete, or a
// Batch whose first operation deletes it): a writer getting in between a
// read of the row and its delete.
type DeleteRace struct {
	store.Tables
	TableName string
	Match     func(rowKey string) bool
	Race      func()
	raced     atomic.Bool
}

// Raced reports whether Race ran.
func (r *DeleteRace) Raced() bool { return r.raced.Load() }

// Table implements store.Tables.
func (r *DeleteRace) Table(ctx context.Context, name string) (store.Table, error) {
	t, err := r.Tables.Table(ctx, name)
	if err != nil || name != r.TableName {
		return t, err
	}
	return deleteRaceTable{t, r}, nil
}

type deleteRaceTable struct {
	store.Table
	r *DeleteRace
}

func (t deleteRaceTable) before(rk string) {
	if t.r.Race != nil && t.r.Match(rk) && t.r.raced.CompareAndSwap(false, true) {
		t.r.Race()
	}
}

func (t deleteRaceTable) Delete(ctx context.Context, pk, rk, ifMatch string) error {
	t.before(rk)
	return t.Table.Delete(ctx, pk, rk, ifMatch)
}

func (t deleteRaceTable) Batch(ctx context.Context, ops []store.Op) error {
	if len(ops) > 0 && ops[0].Kind == store.OpDelete {
		t.before(ops[0].Entity.RowKey)
	}
	return t.Table.Batch(ctx, ops)
}

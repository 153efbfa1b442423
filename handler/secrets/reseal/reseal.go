// Package reseal seals the secrets kept in table rows again under the
// current SECRETS_KEY: one row when its owner reads or writes it (Row,
// Write), every row of a query in the Housekeeping sweep (Sweep). Settings
// (ACS connection strings) and events (subscription secrets) both use it,
// so that a key rotation retires the previous key the same way for every
// secret: once a sweep finds nothing left under it.
package reseal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// Keyring is what re-sealing needs of a *secrets.Keyring.
type Keyring interface {
	Seal(plaintext, aad string) (string, error)
	Open(stored, aad string) (plaintext string, reseal bool, err error)
	NeedsReseal(stored string) bool
}

// Column is one sealed property of a row and the additional data its value
// is bound to (the value was sealed with it, and opens only with it).
type Column struct {
	Prop string
	AAD  func(e store.Entity) string
}

// Unreadable is the error of a stored secret the keyring cannot open: it
// wraps secrets.ErrUnknownKey (sealed under a key that is neither
// SECRETS_KEY nor SECRETS_KEY_PREVIOUS) or secrets.ErrCorrupt. Nothing is
// written over such a value: restoring its key brings it back.
type Unreadable struct {
	Prop string
	Err  error
}

func (u *Unreadable) Error() string {
	return fmt.Sprintf("the stored %s cannot be opened: %v", u.Prop, u.Err)
}

func (u *Unreadable) Unwrap() error { return u.Err }

// Needed reports, without decrypting, whether a column of e is stored in
// plain text (from before encryption) or sealed under another key.
func Needed(k Keyring, e store.Entity, cols []Column) bool {
	for _, c := range cols {
		if k.NeedsReseal(e.String(c.Prop)) {
			return true
		}
	}
	return false
}

// Row returns a copy of e whose columns are all sealed under the current
// key, and whether any needed it; every other property is kept as it is.
// A column that cannot be opened is an *Unreadable error.
func Row(k Keyring, e store.Entity, cols []Column) (store.Entity, bool, error) {
	if !Needed(k, e, cols) {
		return e, false, nil
	}
	next := store.Entity{PartitionKey: e.PartitionKey, RowKey: e.RowKey, ETag: e.ETag, Props: make(map[string]any, len(e.Props))}
	for p, v := range e.Props {
		next.Props[p] = v
	}
	for _, c := range cols {
		stored := e.String(c.Prop)
		if !k.NeedsReseal(stored) {
			continue
		}
		aad := c.AAD(e)
		plain, _, err := k.Open(stored, aad)
		if err != nil {
			return e, false, &Unreadable{Prop: c.Prop, Err: err}
		}
		if next.Props[c.Prop], err = k.Seal(plain, aad); err != nil {
			return e, false, switchboard.Wrap(switchboard.EINTERNAL, "reseal.Row", err)
		}
	}
	return next, true, nil
}

// Write seals e's columns again under the current key and writes e back
// under the ETag it was read with, returning the new ETag (e's own when
// nothing needed sealing). A row changed or deleted since it was read is
// not written (EPRECONDITION, ENOTFOUND): whoever wrote it sealed it
// under their key, and what they wrote is kept.
func Write(ctx context.Context, t store.Table, k Keyring, e store.Entity, cols []Column) (string, error) {
	next, changed, err := Row(k, e, cols)
	if err != nil || !changed {
		return e.ETag, err
	}
	return t.Update(ctx, next, e.ETag)
}

// Report is what one sweep did.
type Report struct {
	Rows       int // rows read that hold secrets
	Resealed   int // rows sealed again under SECRETS_KEY
	Unreadable int // rows with a secret the keyring cannot open (left as stored)
	Skipped    int // rows that changed during the sweep (their writer sealed them)
}

func (r Report) String() string {
	return fmt.Sprintf("%d rows, %d re-sealed under the current key, %d unreadable, %d changed meanwhile",
		r.Rows, r.Resealed, r.Unreadable, r.Skipped)
}

// Sweep seals again, under the current key, every row of a query that
// needs it, so that SECRETS_KEY_PREVIOUS can be retired once a sweep
// reports none re-sealed and none unreadable.
type Sweep struct {
	Name    string // the log's prefix: "settings", "events"
	Table   store.Table
	Keyring Keyring
	Query   store.Query
	// Match picks the rows of the query that hold secrets (nil: all).
	Match   func(store.Entity) bool
	Columns []Column
	Log     *slog.Logger
}

// Run sweeps once. Each row is written under its own ETag, so a write
// made meanwhile is never lost (the row is skipped: its writer sealed it);
// a row whose secret cannot be opened is left as stored, counted and
// logged. stop is asked between pages; the next run starts again from the
// beginning.
func (s Sweep) Run(ctx context.Context, stop func() bool) (Report, error) {
	op := s.Name + ".ResealSecrets"
	var rep Report
	var errs []error
	q := s.Query
	for {
		page, err := s.Table.Query(ctx, q)
		if err != nil {
			return rep, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
		}
		for _, e := range page.Entities {
			if s.Match != nil && !s.Match(e) {
				continue
			}
			rep.Rows++
			if !Needed(s.Keyring, e, s.Columns) {
				continue
			}
			_, err := Write(ctx, s.Table, s.Keyring, e, s.Columns)
			var unreadable *Unreadable
			switch {
			case err == nil:
				rep.Resealed++
			case switchboard.IsCode(err, switchboard.EPRECONDITION), switchboard.IsCode(err, switchboard.ENOTFOUND):
				rep.Skipped++
			case errors.As(err, &unreadable):
				rep.Unreadable++
				if s.Log != nil {
					s.Log.Error(s.Name+": a stored secret cannot be opened; left as stored (restore its key as SECRETS_KEY_PREVIOUS)",
						"partition", e.PartitionKey, "row", e.RowKey, "property", unreadable.Prop, "err", unreadable.Err)
				}
			default:
				errs = append(errs, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err))
			}
		}
		if page.Continuation == "" || stop() || ctx.Err() != nil {
			break
		}
		q.Continuation = page.Continuation
	}
	return rep, errors.Join(errs...)
}

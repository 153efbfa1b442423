package settings

import (
	"context"
	"errors"

	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// ResealReport is what one sweep of ResealSecrets did.
type ResealReport struct {
	Rows       int // settings rows read
	Resealed   int // rows whose secrets were sealed again under SECRETS_KEY
	Unreadable int // rows with a secret the keyring cannot open (left as stored)
	Skipped    int // rows that changed during the sweep (their writer sealed them)
}

// ResealSecrets is the Housekeeping job that seals every tenant secret
// under the current key: values stored in plain text (before encryption)
// or sealed under SECRETS_KEY_PREVIOUS, so that the previous key can be
// retired once a sweep finds none left. A row is rewritten with its own
// ETag and keeps its public ETag (the settings did not change); a row
// written meanwhile is skipped, as its writer sealed it. A row whose secret
// cannot be opened is left as stored and counted. stop is asked between
// pages; the sweep resumes from the start next time.
func (s *Service) ResealSecrets(ctx context.Context, stop func() bool) (ResealReport, error) {
	const op = "settings.ResealSecrets"
	var rep ResealReport
	var errs []error
	q := store.Query{}
	for {
		page, err := s.table.Query(ctx, q)
		if err != nil {
			return rep, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
		}
		for _, e := range page.Entities {
			if e.RowKey != rowKey {
				continue
			}
			rep.Rows++
			if !s.needsReseal(e) {
				continue
			}
			switch err := s.reseal(ctx, e); {
			case err == nil:
				rep.Resealed++
			case switchboard.IsCode(err, switchboard.EPRECONDITION), switchboard.IsCode(err, switchboard.ENOTFOUND):
				rep.Skipped++
			case switchboard.ErrorType(err) == "secret-unreadable":
				rep.Unreadable++
				s.o.Log.Error("settings: a stored secret cannot be opened; left as stored", "tenant", e.PartitionKey, "err", err)
			default:
				errs = append(errs, err)
			}
		}
		if page.Continuation == "" || stop() || ctx.Err() != nil {
			break
		}
		q.Continuation = page.Continuation
	}
	return rep, errors.Join(errs...)
}

func (s *Service) needsReseal(e store.Entity) bool {
	for _, f := range secretFields {
		if s.o.Secrets.NeedsReseal(e.String(f.prop)) {
			return true
		}
	}
	return false
}

// reseal seals e's secrets again under the current key, writing e back
// with its ETag: every other property is kept as stored.
func (s *Service) reseal(ctx context.Context, e store.Entity) error {
	const op = "settings.reseal"
	next := store.Entity{PartitionKey: e.PartitionKey, RowKey: e.RowKey, Props: make(map[string]any, len(e.Props))}
	for k, v := range e.Props {
		next.Props[k] = v
	}
	for _, f := range secretFields {
		stored := e.String(f.prop)
		if !s.o.Secrets.NeedsReseal(stored) {
			continue
		}
		aad := secretAAD(e.PartitionKey, f.field)
		plain, _, err := s.o.Secrets.Open(stored, aad)
		if err != nil {
			return unreadableSecret(op, e.PartitionKey, f.field, err)
		}
		if next.Props[f.prop], err = s.o.Secrets.Seal(plain, aad); err != nil {
			return switchboard.Wrap(switchboard.EINTERNAL, op, err)
		}
	}
	_, err := s.table.Update(ctx, next, e.ETag)
	return err
}

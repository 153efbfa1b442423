package interact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// AssistantTableName keeps each user's ACS identity per ACS resource:
// partition = tenant, row "<user>|<hash of the endpoint>".
const AssistantTableName = "assistantidentities"

// AssistantToken returns an ACS token (scopes chat, voip) for user, from
// the tenant's own ACS when assistant.useOwnAcsInstance, otherwise from
// the deployment's. The user keeps one ACS identity per ACS resource: the
// first call creates it, later ones issue tokens for it. Returns ECONFLICT
// (TypeAssistantNotConfig) when the chosen ACS is not configured, and the
// ACS errors.
func (s *Service) AssistantToken(ctx context.Context, tenant, user string) (ACSView, error) {
	const op = "interact.AssistantToken"
	id, ok := switchboard.NormalizeGUID(user)
	if !ok {
		return ACSView{}, switchboard.Errorf(switchboard.EINVALID, op, "the caller's object id (oid) %q is not a GUID", clip(user))
	}
	st, err := s.o.Settings.Config(ctx, tenant)
	if err != nil {
		return ACSView{}, err
	}
	raw, field := s.o.DeploymentACS, ""
	if st.AssistantOwnACS {
		raw, field = st.AssistantACSConnectionString, "assistant.acsConnectionString"
	}
	if raw == "" {
		msg := "this deployment has no ACS of its own (ACS_CONNECTION_STRING): set assistant.useOwnAcsInstance with assistant.acsConnectionString, " +
			"or ask the operator to configure one"
		if field != "" {
			msg = "assistant.useOwnAcsInstance is on but assistant.acsConnectionString is not set"
		}
		return ACSView{}, &switchboard.Error{Code: switchboard.ECONFLICT, Op: op, Type: TypeAssistantNotConfig, Field: field, Message: msg}
	}
	cs, err := switchboard.ParseACSConnectionString(raw)
	if err != nil {
		return ACSView{}, &switchboard.Error{
			Code:    switchboard.ECONFLICT,
			Op:      op,
			Type:    TypeAssistantNotConfig,
			Field:   field,
			Message: "the ACS connection string is not usable",
		}
	}
	sum := sha256.Sum256([]byte(cs.Endpoint))
	row := id + "|" + hex.EncodeToString(sum[:12])
	for attempt := 0; attempt < maxAttempts; attempt++ {
		e, err := s.assistant.Get(ctx, tenant, row)
		switch {
		case err == nil:
			acsUser := e.String("Identity")
			tok, err := s.o.ACS.IssueToken(ctx, cs, acsUser, SessionScopes)
			if switchboard.IsCode(err, switchboard.ENOTFOUND) {
				// The identity was deleted in ACS: the user gets a new one.
				if err := s.assistant.Delete(ctx, tenant, row, e.ETag); err != nil && !retrying(err) && !switchboard.IsCode(err, switchboard.ENOTFOUND) {
					return ACSView{}, err
				}
				continue
			}
			if err != nil {
				return ACSView{}, err
			}
			return ACSView{Endpoint: cs.Endpoint, UserID: acsUser, Token: tok.Token, ExpiresOn: tok.ExpiresOn}, nil
		case !switchboard.IsCode(err, switchboard.ENOTFOUND):
			return ACSView{}, err
		}
		acsUser, tok, err := s.o.ACS.CreateIdentity(ctx, cs, SessionScopes)
		if err != nil {
			return ACSView{}, err
		}
		_, err = s.assistant.Insert(ctx, store.Entity{PartitionKey: tenant, RowKey: row, Props: map[string]any{
			"Identity": acsUser, "Endpoint": cs.Endpoint, "CreatedAt": s.now(),
		}})
		if switchboard.IsCode(err, switchboard.ECONFLICT) {
			continue // a concurrent first call won: use its identity
		}
		if err != nil {
			return ACSView{}, err
		}
		return ACSView{Endpoint: cs.Endpoint, UserID: acsUser, Token: tok.Token, ExpiresOn: tok.ExpiresOn}, nil
	}
	return ACSView{}, switchboard.Errorf(switchboard.EUNAVAILABLE, op, "the user's ACS identity changes too often; try again")
}

// Housekeep acts on recovery times whose message is late by more than the
// grace, finishes pending conversation changes, brings every open session
// up to date with its conversation (one that ended elsewhere ends the
// session), and deletes ended sessions past their retention and old rate
// rows. It works until ctx ends.
func (s *Service) Housekeep(ctx context.Context) (string, error) {
	now := s.now()
	var acted, deleted, errs int
	var firstErr error
	q := store.Query{}
	for {
		page, err := s.sessions.t.Query(ctx, q)
		if err != nil {
			return "", err
		}
		for _, e := range page.Entities {
			if ctx.Err() != nil {
				return summary(acted, deleted, errs), ctx.Err()
			}
			var err error
			switch {
			case strings.HasPrefix(e.RowKey, ratePrefix):
				if now.Sub(e.Time("At")) > 2*time.Minute {
					if err = s.sessions.t.Delete(ctx, e.PartitionKey, e.RowKey, e.ETag); err == nil {
						deleted++
					}
				}
			case strings.HasPrefix(e.RowKey, sessionRow):
				sess, perr := sessionFrom(e.PartitionKey, e)
				if perr != nil {
					err = perr
					break
				}
				switch due := sess.nextDue(); {
				case sess.Phase == StateEnded && sess.Pending == "" && now.Sub(sess.EndedAt) > EndedRetention:
					if err = s.sessions.t.Delete(ctx, e.PartitionKey, e.RowKey, e.ETag); err == nil {
						deleted++
					}
				case sess.Pending != "" || !due.IsZero() && now.Sub(due) > s.o.Grace:
					if _, err = s.load(ctx, sess.TenantID, sess.ID); err == nil {
						acted++
					}
				case sess.Phase != StateEnded:
					// A widget closed without a leave: its session follows
					// its conversation (timed out, released elsewhere), so
					// it does not hold a place in the tenant's limit.
					var l loaded
					if l, err = s.load(ctx, sess.TenantID, sess.ID); err == nil && l.s.Phase == StateEnded {
						acted++
					}
				}
			}
			if err != nil && !retrying(err) && !switchboard.IsCode(err, switchboard.ENOTFOUND) {
				errs++
				if firstErr == nil {
					firstErr = err
				}
			}
		}
		if page.Continuation == "" {
			break
		}
		q.Continuation = page.Continuation
	}
	return summary(acted, deleted, errs), firstErr
}

func summary(acted, deleted, errs int) string {
	return fmt.Sprintf("sessions acted on %d, rows deleted %d, errors %d", acted, deleted, errs)
}

package events

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"switchboard/handler/secrets"
	"switchboard/handler/secrets/reseal"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// leaseFor is how long a lane's lease holds: longer than one invocation's
// budget plus one delivery, so a live drainer never loses it.
func (s *Service) leaseFor() time.Duration { return s.o.Budget + 2*DeliveryTimeout }

// Report says what one EventDelivery message did, for the invocation log.
type Report struct {
	Delivered, Failed, DeadLettered int
	// Skipped says why nothing was delivered, when nothing was.
	Skipped string
}

func (r Report) String() string {
	if r.Skipped != "" {
		return "skipped: " + r.Skipped
	}
	return fmt.Sprintf("%d delivered, %d failed (retry scheduled), %d dead-lettered", r.Delivered, r.Failed, r.DeadLettered)
}

// Handle delivers the lane a message names. It returns an error only for
// what a redelivery may fix (storage or the queue unreachable); a message
// that makes no sense is dropped and reported.
func (s *Service) Handle(ctx context.Context, body []byte) (Report, error) {
	var k kick
	if err := json.Unmarshal(body, &k); err != nil || k.Tenant == "" || k.Sub == "" || k.Subject == "" {
		return Report{Skipped: "a message that is not an event delivery"}, nil
	}
	sub, e, err := s.get(ctx, k.Tenant, k.Sub)
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		s.deletePartition(ctx, lanePartition(k.Tenant, k.Sub))
		return Report{Skipped: "the subscription was deleted"}, nil
	}
	if err != nil {
		return Report{}, err
	}
	if sub.State == StateDisabled {
		return Report{Skipped: "the subscription is disabled"}, nil
	}
	// A secret under SECRETS_KEY_PREVIOUS opens; the delivery's update of
	// the subscription (updateSub) seals it again under SECRETS_KEY.
	secret, _, err := s.o.Secrets.Open(e.String("Secret"), secretAAD(k.Tenant, k.Sub))
	if err != nil {
		return s.unopened(ctx, sub, k, err)
	}
	pk := lanePartition(k.Tenant, k.Sub)
	lease, ok, err := s.acquire(ctx, pk, k.Subject)
	if err != nil {
		return Report{}, err
	}
	if !ok {
		// Another invocation drains this lane. It may have read the lane
		// before this message's event was written: unless the event is
		// gone (delivered), look again soon.
		if k.Row != "" {
			if _, err := s.table.Get(ctx, pk, k.Row); switchboard.IsCode(err, switchboard.ENOTFOUND) {
				return Report{Skipped: "delivered by another invocation"}, nil
			}
		}
		return Report{Skipped: "the lane is being delivered by another invocation"},
			s.kick(ctx, k, s.o.Now().Add(2*time.Second), "")
	}
	defer func() { _ = s.table.Delete(context.WithoutCancel(ctx), pk, leasePfx+k.Subject, lease) }()
	return s.drain(ctx, sub, secret, k)
}

// acquire takes the lane's lease, returning its ETag, or ok false when a
// live lease is someone else's.
func (s *Service) acquire(ctx context.Context, pk, subject string) (etag string, ok bool, err error) {
	now := s.o.Now()
	e := store.Entity{PartitionKey: pk, RowKey: leasePfx + subject, Props: map[string]any{"Until": now.Add(s.leaseFor()).UTC()}}
	etag, err = s.table.Insert(ctx, e)
	if err == nil {
		return etag, true, nil
	}
	if !switchboard.IsCode(err, switchboard.ECONFLICT) {
		return "", false, err
	}
	cur, err := s.table.Get(ctx, pk, e.RowKey)
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return s.acquire(ctx, pk, subject)
	}
	if err != nil {
		return "", false, err
	}
	if cur.Time("Until").After(now) {
		return "", false, nil
	}
	etag, err = s.table.Update(ctx, e, cur.ETag) // an expired lease: its holder died
	if switchboard.IsCode(err, switchboard.EPRECONDITION) || switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return "", false, nil
	}
	return etag, err == nil, err
}

// drain delivers the lane's rows in order until one fails, the lane is
// empty, or the budget is spent.
func (s *Service) drain(ctx context.Context, sub Subscription, secret string, k kick) (Report, error) {
	var rep Report
	pk := lanePartition(k.Tenant, k.Sub)
	stopAt := s.o.Now().Add(s.o.Budget)
	var rows []store.Entity
	if err := store.QueryAll(ctx, s.table, store.Query{PartitionKey: pk, Prefix: lanePrefix + k.Subject + "|"}, func(e store.Entity) error {
		rows = append(rows, e)
		return nil
	}); err != nil {
		return rep, err
	}
	for _, row := range rows {
		now := s.o.Now()
		if now.After(stopAt) {
			return rep, s.kick(ctx, kick{Tenant: k.Tenant, Sub: k.Sub, Subject: k.Subject}, time.Time{}, "") // the rest in a new invocation
		}
		if next := row.Time("NextTryAt"); next.After(now.Add(time.Second)) {
			// Waiting for its retry. The failure scheduled a message for
			// then; schedule one again in case that one was lost with a
			// crash (a duplicate finds the lane leased or done).
			again := kick{Tenant: k.Tenant, Sub: k.Sub, Subject: k.Subject}
			return rep, s.kick(ctx, again, next, fmt.Sprintf("%s|%s|retry%d", row.String("EventId"), k.Sub, row.Int64("Attempts")))
		}
		res := s.attempt(ctx, sub, secret, row)
		switch {
		case res.gone:
			s.o.Log.Info("events: receiver answered 410 Gone; subscription deleted", "tenant", k.Tenant, "subscription", k.Sub)
			if err := s.Delete(ctx, k.Tenant, k.Sub); err != nil && !switchboard.IsCode(err, switchboard.ENOTFOUND) {
				return rep, err
			}
			return rep, nil
		case res.ok:
			rep.Delivered++
			if err := s.delivered(ctx, sub, row, res); err != nil {
				return rep, err
			}
		default:
			dead, err := s.failed(ctx, sub, k, row, res)
			if err != nil {
				return rep, err
			}
			if !dead {
				rep.Failed++
				return rep, nil // later events of this subject wait behind it
			}
			rep.DeadLettered++
		}
	}
	return rep, nil
}

type result struct {
	ok, gone bool
	status   int
	err      string
	at       time.Time
}

// attempt sends one lane row to the receiver.
func (s *Service) attempt(ctx context.Context, sub Subscription, secret string, row store.Entity) result {
	now := s.o.Now()
	res := result{at: now}
	body := []byte(row.String("Body"))
	u, err := s.o.Guard.CheckURL(ctx, "url", sub.URL)
	if err != nil {
		res.err = "the receiver's URL is refused: " + switchboard.ErrorMessage(err)
		return res
	}
	actx, cancel := context.WithTimeout(ctx, DeliveryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		res.err = "the request could not be built"
		return res
	}
	id := row.String("EventId")
	ts := now.Unix()
	sig, err := Sign(secret, id, ts, body)
	if err != nil {
		res.err = "the event could not be signed"
		return res
	}
	req.Header.Set("Content-Type", "application/cloudevents+json; charset=utf-8")
	req.Header.Set("User-Agent", "Switchboard-Events/1")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", sig)
	resp, err := s.o.Client.Do(req)
	if err != nil {
		res.err = describeTransportError(err)
		return res
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	res.status = resp.StatusCode
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		res.ok = true
	case resp.StatusCode == http.StatusGone:
		res.gone = true
	default:
		res.err = fmt.Sprintf("the receiver answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	return res
}

// describeTransportError says what went wrong without the error's text,
// which can carry the URL (and whatever a tenant put in its query).
func describeTransportError(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "Client.Timeout") || strings.Contains(msg, "deadline exceeded"):
		return fmt.Sprintf("the receiver did not answer within %s", DeliveryTimeout)
	case strings.Contains(msg, "connection refused"):
		return "the receiver refused the connection"
	case strings.Contains(msg, "loopback, private"):
		return "the receiver's host now resolves to a loopback, private, link-local or unspecified address"
	case strings.Contains(msg, "certificate") || strings.Contains(msg, "tls:"):
		return "the receiver's TLS certificate is not trusted"
	case strings.Contains(msg, "no such host") || strings.Contains(msg, "does not resolve"):
		return "the receiver's host name does not resolve"
	}
	return "the receiver could not be reached"
}

// Sign returns the webhook-signature header of Standard Webhooks:
// "v1," and the base64 HMAC-SHA256 of "{id}.{timestamp}.{body}" under the
// secret's key (the base64 after "whsec_").
func Sign(secret, id string, timestamp int64, body []byte) (string, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.", id, timestamp)
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// logKey orders the delivery log newest first.
func logKey(firstTry time.Time, eventID string) string {
	return fmt.Sprintf("%019d|%s", math.MaxInt64-firstTry.UnixNano(), eventID)
}

func firstTry(row store.Entity, now time.Time) time.Time {
	if t := row.Time("FirstTryAt"); !t.IsZero() {
		return t
	}
	return now
}

func (s *Service) logDelivery(ctx context.Context, sub Subscription, row store.Entity, res result, state string, attempts int, next time.Time) {
	ft := firstTry(row, res.at)
	p := map[string]any{
		"EventId": row.String("EventId"), "Type": row.String("Type"), "Subject": row.String("Subject"), "State": state,
		"StatusCode": int64(res.status), "Attempts": int64(attempts), "FirstTryAt": ft, "LastTryAt": res.at, "LastError": res.err,
	}
	if !next.IsZero() {
		p["NextTryAt"] = next
	}
	if _, err := s.table.Upsert(
		ctx,
		store.Entity{PartitionKey: logPartition(sub.TenantID, sub.ID), RowKey: logKey(ft, row.String("EventId")), Props: p},
	); err != nil {
		s.o.Log.Warn("events: delivery log not written", "subscription", sub.ID, "err", err)
	}
	if attempts == 1 && s.logged.Add(1)%trimEvery == 0 {
		s.trimLog(ctx, logPartition(sub.TenantID, sub.ID))
	}
}

// trimEvery is how many new log rows a process writes between two trims:
// the log may grow to KeptDeliveries + trimEvery rows between them.
const trimEvery = 20

// trimLog deletes the log rows past the newest KeptDeliveries.
func (s *Service) trimLog(ctx context.Context, pk string) {
	var old []store.Op
	n := 0
	_ = store.QueryAll(ctx, s.table, store.Query{PartitionKey: pk}, func(e store.Entity) error {
		if n++; n > KeptDeliveries {
			old = append(old, store.Op{Kind: store.OpDelete, Entity: store.Entity{PartitionKey: pk, RowKey: e.RowKey}, IfMatch: "*"})
		}
		return nil
	})
	if len(old) > 0 {
		if _, err := store.WriteBatched(ctx, s.table, old); err != nil {
			s.o.Log.Warn("events: delivery log not trimmed", "partition", pk, "err", err)
		}
	}
}

// delivered removes a delivered row and records the success.
func (s *Service) delivered(ctx context.Context, sub Subscription, row store.Entity, res result) error {
	attempts := int(row.Int64("Attempts")) + 1
	s.logDelivery(ctx, sub, row, res, DeliveryDelivered, attempts, time.Time{})
	if err := s.table.Delete(ctx, row.PartitionKey, row.RowKey, "*"); err != nil && !switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return err
	}
	at := res.at.UTC()
	return s.updateSub(ctx, sub, func(c *Subscription) {
		c.LastDeliveryAt, c.LastSuccessAt, c.LastError = &at, &at, ""
		c.State = StateActive
	})
}

// failed records a failed attempt: the next try is scheduled, or after
// RetryFor the event is dead-lettered (kept in the log, counted on the
// subscription) and, without one success for RetryFor, the subscription is
// disabled. It reports whether the row was dead-lettered.
func (s *Service) failed(ctx context.Context, sub Subscription, k kick, row store.Entity, res result) (dead bool, err error) {
	attempts := int(row.Int64("Attempts")) + 1
	ft := firstTry(row, res.at)
	at := res.at.UTC()
	if res.at.Sub(ft) >= RetryFor {
		s.logDelivery(ctx, sub, row, res, DeliveryDeadLettered, attempts, time.Time{})
		if err := s.table.Delete(ctx, row.PartitionKey, row.RowKey, "*"); err != nil && !switchboard.IsCode(err, switchboard.ENOTFOUND) {
			return false, err
		}
		s.o.Log.Warn(
			"events: event dead-lettered after 24 h of failed deliveries",
			"subscription",
			sub.ID,
			"eventId",
			row.String("EventId"),
			"lastError",
			res.err,
		)
		return true, s.updateSub(ctx, sub, func(c *Subscription) {
			c.LastDeliveryAt, c.LastError = &at, res.err
			c.FailedDeliveries++
			since := c.CreatedAt
			if c.LastSuccessAt != nil {
				since = *c.LastSuccessAt
			}
			c.State = StateFailing
			if res.at.Sub(since) >= RetryFor {
				c.State = StateDisabled
			}
		})
	}
	next := res.at.Add(RetryDelay(attempts))
	row.Props["Attempts"] = int64(attempts)
	row.Props["FirstTryAt"] = ft
	row.Props["NextTryAt"] = next
	row.Props["LastError"] = res.err
	if _, err := s.table.Update(ctx, row, "*"); err != nil {
		return false, err
	}
	s.logDelivery(ctx, sub, row, res, DeliveryPending, attempts, next)
	if err := s.kick(
		ctx,
		kick{Tenant: k.Tenant, Sub: k.Sub, Subject: k.Subject},
		next,
		fmt.Sprintf("%s|%s|retry%d", row.String("EventId"), sub.ID, attempts),
	); err != nil {
		return false, err
	}
	return false, s.updateSub(ctx, sub, func(c *Subscription) {
		c.LastDeliveryAt, c.LastError = &at, res.err
		if c.State != StateDisabled {
			c.State = StateFailing
		}
	})
}

// updateSub applies change to the stored subscription, retrying on a
// concurrent update (other lanes of the same subscription). The write
// seals the secret again under the current key if it was not (one that
// cannot be opened is kept as stored).
func (s *Service) updateSub(ctx context.Context, sub Subscription, change func(*Subscription)) error {
	for range 10 {
		cur, e, err := s.get(ctx, sub.TenantID, sub.ID)
		if switchboard.IsCode(err, switchboard.ENOTFOUND) {
			return nil
		}
		if err != nil {
			return err
		}
		change(&cur)
		next := subEntity(cur, e.String("Secret"))
		if sealed, _, err := reseal.Row(s.o.Secrets, next, secretColumns); err == nil {
			next = sealed
		}
		_, err = s.table.Update(ctx, next, e.ETag)
		if switchboard.IsCode(err, switchboard.EPRECONDITION) {
			continue
		}
		if switchboard.IsCode(err, switchboard.ENOTFOUND) {
			return nil
		}
		return err
	}
	return switchboard.Errorf(switchboard.EUNAVAILABLE, "events.updateSub", "too many concurrent updates of subscription %s", sub.ID)
}

// unopenedWait is how long the lane of a subscription whose secret cannot
// be opened waits before it looks again.
const unopenedWait = 10 * time.Minute

// unopened keeps the lane of a subscription whose secret the keyring
// cannot open: its events wait (none is lost or sent unsigned), the
// subscription's lastError and the log say why and what fixes it, and the
// lane looks again in unopenedWait, so that restoring the key as
// SECRETS_KEY_PREVIOUS resumes delivery by itself.
func (s *Service) unopened(ctx context.Context, sub Subscription, k kick, err error) (Report, error) {
	why := "it does not authenticate (altered, or copied from another subscription)"
	if errors.Is(err, secrets.ErrUnknownKey) {
		why = "it was sealed under a key that is neither SECRETS_KEY nor SECRETS_KEY_PREVIOUS (the operator restores that key as SECRETS_KEY_PREVIOUS)"
	}
	msg := "events wait undelivered: the subscription's signing secret cannot be opened: " + why
	s.o.Log.Error("events: "+msg, "tenant", k.Tenant, "subscription", k.Sub)
	if err := s.updateSub(ctx, sub, func(c *Subscription) {
		c.LastError = msg
		if c.State == StateActive {
			c.State = StateFailing
		}
	}); err != nil {
		return Report{}, err
	}
	at := s.o.Now().Add(unopenedWait)
	again := kick{Tenant: k.Tenant, Sub: k.Sub, Subject: k.Subject}
	return Report{Skipped: msg}, s.kick(ctx, again, at, fmt.Sprintf("%s|%s|unopened|%d", k.Sub, subjectKey(k.Subject), at.Unix()/int64(unopenedWait.Seconds())))
}

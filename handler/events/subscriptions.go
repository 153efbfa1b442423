package events

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"switchboard/handler/secrets/reseal"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// Types is the event catalogue of SPEC section 11.
var Types = switchboard.EventTypes

// Subscription is a stored subscription.
type Subscription = switchboard.EventSubscription

// NewSubscription is what a caller asks to subscribe.
type NewSubscription = switchboard.EventSubscriptionRequest

const (
	StateActive   = switchboard.SubscriptionActive
	StateFailing  = switchboard.SubscriptionFailing
	StateDisabled = switchboard.SubscriptionDisabled
)

// matches reports whether the subscription takes ev.
func matches(s Subscription, ev switchboard.Event) bool {
	if s.State == StateDisabled {
		return false
	}
	if len(s.Services) > 0 && !slices.Contains(s.Services, ev.ServiceID) {
		return false
	}
	for _, t := range s.Events {
		if t == "*" || t == ev.Type || (strings.HasSuffix(t, ".*") && strings.HasPrefix(ev.Type, strings.TrimSuffix(t, "*"))) {
			return true
		}
	}
	return false
}

// validate checks a new subscription's fields other than the URL.
func validate(op string, n NewSubscription) error {
	if len(n.Events) == 0 {
		return switchboard.FieldError(op, "events", "events is required: a list of event types, or [\"*\"] for all")
	}
	if len(n.Events) > len(Types)+1 {
		return switchboard.FieldError(op, "events", "events lists %d types; there are only %d", len(n.Events), len(Types))
	}
	for i, t := range n.Events {
		if t == "*" || slices.Contains(Types, t) {
			continue
		}
		if strings.HasSuffix(t, ".*") && slices.ContainsFunc(Types, func(k string) bool { return strings.HasPrefix(k, strings.TrimSuffix(t, "*")) }) {
			continue
		}
		return switchboard.FieldError(
			op,
			fmt.Sprintf("events[%d]", i),
			"unknown event type %q: use one of the catalogue (e.g. switchboard.conversation.offered), a resource with .* (switchboard.conversation.*), or *",
			t,
		)
	}
	if len(n.Services) > 100 {
		return switchboard.FieldError(op, "services", "services lists %d services; at most 100", len(n.Services))
	}
	for i, s := range n.Services {
		if !switchboard.ValidID(s) {
			return switchboard.FieldError(op, fmt.Sprintf("services[%d]", i), "service id %q is not a valid id", s)
		}
	}
	if len(n.Description) > 500 {
		return switchboard.FieldError(op, "description", "description is %d characters long; at most 500", len(n.Description))
	}
	return nil
}

// newSecret returns a Standard Webhooks secret: whsec_ and the base64 of 32
// random bytes.
func newSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("events: no randomness: " + err.Error())
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

func secretAAD(tenant, id string) string { return "events|" + tenant + "|" + id }

// Create adds a subscription and returns it with its secret, the only time
// the secret is shown. Returns EINVALID naming the field (url: not https,
// or a host on a private address), ELIMIT at MaxSubscriptions, EUNAVAILABLE.
func (s *Service) Create(ctx context.Context, tenant string, n NewSubscription) (Subscription, error) {
	const op = "events.Create"
	if err := validate(op, n); err != nil {
		return Subscription{}, err
	}
	if n.URL == "" {
		return Subscription{}, switchboard.FieldError(op, "url", "url is required: the https address that receives the events")
	}
	if len(n.URL) > 2048 {
		return Subscription{}, switchboard.FieldError(op, "url", "url is %d characters long; at most 2048", len(n.URL))
	}
	if _, err := s.o.Guard.CheckURL(ctx, "url", n.URL); err != nil {
		return Subscription{}, switchboard.Wrap(switchboard.EINVALID, op, err)
	}
	secret := newSecret()
	sub := Subscription{ID: s.o.NewID(), TenantID: tenant, URL: n.URL, Events: n.Events, Services: n.Services,
		Description: n.Description, State: StateActive, CreatedAt: s.o.Now().UTC()}
	sealed, err := s.o.Secrets.Seal(secret, secretAAD(tenant, sub.ID))
	if err != nil {
		return Subscription{}, switchboard.Wrap(switchboard.EINTERNAL, op, err)
	}
	pk := subPartition(tenant)
	for range 10 {
		cnt, etag, err := s.count(ctx, pk)
		if err != nil {
			return Subscription{}, err
		}
		if cnt >= MaxSubscriptions {
			return Subscription{}, &switchboard.Error{Code: switchboard.ELIMIT, Op: op, Type: "subscription-limit-reached",
				Message: fmt.Sprintf("the tenant has %d event subscriptions, the most it may have; delete one first", MaxSubscriptions)}
		}
		ops := []store.Op{{Kind: store.OpInsert, Entity: subEntity(sub, sealed)}, countOp(pk, cnt+1, etag)}
		err = s.table.Batch(ctx, ops)
		if switchboard.IsCode(err, switchboard.EPRECONDITION) || switchboard.IsCode(err, switchboard.ECONFLICT) {
			continue // another create or delete moved the count: read it again
		}
		if err != nil {
			return Subscription{}, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
		}
		sub.Secret = secret
		return sub, nil
	}
	return Subscription{}, switchboard.Errorf(switchboard.EUNAVAILABLE, op, "too many concurrent changes to the tenant's subscriptions; try again")
}

func (s *Service) count(ctx context.Context, pk string) (int, string, error) {
	e, err := s.table.Get(ctx, pk, countKey)
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return 0, "", nil
	}
	if err != nil {
		return 0, "", err
	}
	return int(e.Int64("Count")), e.ETag, nil
}

func countOp(pk string, n int, etag string) store.Op {
	e := store.Entity{PartitionKey: pk, RowKey: countKey, Props: map[string]any{"Count": int64(max(n, 0))}}
	if etag == "" {
		return store.Op{Kind: store.OpInsert, Entity: e}
	}
	return store.Op{Kind: store.OpUpdate, Entity: e, IfMatch: etag}
}

func subEntity(sub Subscription, sealedSecret string) store.Entity {
	ev, _ := json.Marshal(sub.Events)
	sv, _ := json.Marshal(sub.Services)
	p := map[string]any{
		"Url": sub.URL, "Events": string(ev), "Services": string(sv), "Description": sub.Description,
		"State": sub.State, "CreatedAt": sub.CreatedAt, "Secret": sealedSecret,
		"LastError": sub.LastError, "FailedDeliveries": sub.FailedDeliveries,
	}
	if sub.LastDeliveryAt != nil {
		p["LastDeliveryAt"] = *sub.LastDeliveryAt
	}
	if sub.LastSuccessAt != nil {
		p["LastSuccessAt"] = *sub.LastSuccessAt
	}
	return store.Entity{PartitionKey: subPartition(sub.TenantID), RowKey: sub.ID, Props: p}
}

func subFrom(tenant string, e store.Entity) Subscription {
	s := Subscription{ID: e.RowKey, TenantID: tenant, URL: e.String("Url"), Description: e.String("Description"),
		State: e.String("State"), CreatedAt: e.Time("CreatedAt"), LastError: e.String("LastError"),
		FailedDeliveries: e.Int64("FailedDeliveries")}
	_ = json.Unmarshal([]byte(e.String("Events")), &s.Events)
	_ = json.Unmarshal([]byte(e.String("Services")), &s.Services)
	if t := e.Time("LastDeliveryAt"); !t.IsZero() {
		s.LastDeliveryAt = &t
	}
	if t := e.Time("LastSuccessAt"); !t.IsZero() {
		s.LastSuccessAt = &t
	}
	if s.State == "" {
		s.State = StateActive
	}
	return s
}

// List returns the tenant's subscriptions, without secrets.
func (s *Service) List(ctx context.Context, tenant string) ([]Subscription, error) {
	var out []Subscription
	err := store.QueryAll(ctx, s.table, store.Query{PartitionKey: subPartition(tenant)}, func(e store.Entity) error {
		if e.RowKey != countKey {
			out = append(out, subFrom(tenant, e))
		}
		return nil
	})
	if err != nil {
		return nil, switchboard.Wrap(switchboard.EUNAVAILABLE, "events.List", err)
	}
	return out, nil
}

// Get returns one subscription, without its secret. A secret found under
// SECRETS_KEY_PREVIOUS (or in plain text) is sealed again under SECRETS_KEY
// on the way. Returns ENOTFOUND.
func (s *Service) Get(ctx context.Context, tenant, id string) (Subscription, error) {
	sub, e, err := s.get(ctx, tenant, id)
	if err == nil && reseal.Needed(s.o.Secrets, e, secretColumns) {
		s.resealRead(ctx, e)
	}
	return sub, err
}

// get returns the subscription and its stored row (the sealed secret in
// "Secret", and the ETag).
func (s *Service) get(ctx context.Context, tenant, id string) (Subscription, store.Entity, error) {
	const op = "events.Get"
	notFound := &switchboard.Error{Code: switchboard.ENOTFOUND, Op: op, Message: fmt.Sprintf("no event subscription %q in this tenant", id)}
	if id == countKey {
		return Subscription{}, store.Entity{}, notFound
	}
	e, err := s.table.Get(ctx, subPartition(tenant), id)
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return Subscription{}, store.Entity{}, notFound
	}
	if err != nil {
		return Subscription{}, store.Entity{}, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	}
	return subFrom(tenant, e), e, nil
}

// secretColumns is the sealed property of a subscription row, bound to
// its tenant and id.
var secretColumns = []reseal.Column{{Prop: "Secret", AAD: func(e store.Entity) string {
	return secretAAD(strings.TrimPrefix(e.PartitionKey, subPartition("")), e.RowKey)
}}}

// resealRead seals the secret of a subscription row read under the
// previous key again under the current one. Best effort: the housekeeping
// sweep does the same, and a row changed meanwhile was sealed by its
// writer.
func (s *Service) resealRead(ctx context.Context, e store.Entity) {
	_, err := reseal.Write(ctx, s.table, s.o.Secrets, e, secretColumns)
	var unreadable *reseal.Unreadable
	if err != nil && !errors.As(err, &unreadable) && !switchboard.IsCode(err, switchboard.EPRECONDITION) && !switchboard.IsCode(err, switchboard.ENOTFOUND) {
		s.o.Log.Warn("events: a subscription's secret was not re-sealed under the current key (housekeeping will)", "subscription", e.RowKey, "err", err)
	}
}

// ResealSecrets is the events share of the Housekeeping sweep that seals
// every stored secret under SECRETS_KEY: it reads the subscription rows of
// every tenant (the partitions "sub|...", a range Table Storage scans
// without reading lanes or logs) and re-seals those still under
// SECRETS_KEY_PREVIOUS or in plain text, each under its own ETag, so a
// concurrent update of the subscription is never lost.
func (s *Service) ResealSecrets(ctx context.Context, stop func() bool) (reseal.Report, error) {
	return reseal.Sweep{
		Name: "events", Table: s.table, Keyring: s.o.Secrets, Columns: secretColumns, Log: s.o.Log,
		Query: store.Query{PartitionPrefix: subPartition("")},
		Match: func(e store.Entity) bool { return e.RowKey != countKey },
	}.Run(ctx, stop)
}

// Delete removes a subscription, its waiting events and its delivery log.
// Returns ENOTFOUND when there is none (Power Automate may call twice).
func (s *Service) Delete(ctx context.Context, tenant, id string) error {
	const op = "events.Delete"
	if _, err := s.Get(ctx, tenant, id); err != nil {
		return err
	}
	pk := subPartition(tenant)
	for range 10 {
		cnt, etag, err := s.count(ctx, pk)
		if err != nil {
			return switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
		}
		ops := []store.Op{{Kind: store.OpDelete, Entity: store.Entity{PartitionKey: pk, RowKey: id}, IfMatch: "*"}, countOp(pk, cnt-1, etag)}
		if etag == "" { // a subscription without a count row: only remove it
			ops = ops[:1]
		}
		err = s.table.Batch(ctx, ops)
		if switchboard.IsCode(err, switchboard.EPRECONDITION) || switchboard.IsCode(err, switchboard.ECONFLICT) {
			continue
		}
		if switchboard.IsCode(err, switchboard.ENOTFOUND) {
			return &switchboard.Error{Code: switchboard.ENOTFOUND, Op: op, Message: fmt.Sprintf("no event subscription %q in this tenant", id)}
		}
		if err != nil {
			return switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
		}
		// Waiting events and the log go after the subscription: a lane
		// that finds its subscription gone drops its rows anyway.
		s.deletePartition(ctx, lanePartition(tenant, id))
		s.deletePartition(ctx, logPartition(tenant, id))
		return nil
	}
	return switchboard.Errorf(switchboard.EUNAVAILABLE, op, "too many concurrent changes to the tenant's subscriptions; try again")
}

func (s *Service) deletePartition(ctx context.Context, pk string) {
	var ops []store.Op
	_ = store.QueryAll(ctx, s.table, store.Query{PartitionKey: pk}, func(e store.Entity) error {
		ops = append(ops, store.Op{Kind: store.OpDelete, Entity: store.Entity{PartitionKey: pk, RowKey: e.RowKey}, IfMatch: "*"})
		return nil
	})
	if len(ops) > 0 {
		if _, err := store.WriteBatched(ctx, s.table, ops); err != nil {
			s.o.Log.Warn("events: rows of a deleted subscription left behind (housekeeping removes them)", "partition", pk, "err", err)
		}
	}
}

// Delivery is one event's delivery to one subscription.
type Delivery = switchboard.EventDelivery

const (
	DeliveryPending      = switchboard.DeliveryPending
	DeliveryDelivered    = switchboard.DeliveryDelivered
	DeliveryDeadLettered = switchboard.DeliveryDeadLettered
)

// Deliveries returns the subscription's last KeptDeliveries deliveries,
// newest first. Returns ENOTFOUND for an unknown subscription.
func (s *Service) Deliveries(ctx context.Context, tenant, id string) ([]Delivery, error) {
	if _, err := s.Get(ctx, tenant, id); err != nil {
		return nil, err
	}
	page, err := s.table.Query(ctx, store.Query{PartitionKey: logPartition(tenant, id), Top: KeptDeliveries})
	if err != nil {
		return nil, switchboard.Wrap(switchboard.EUNAVAILABLE, "events.Deliveries", err)
	}
	out := make([]Delivery, 0, len(page.Entities))
	for _, e := range page.Entities {
		out = append(out, deliveryFrom(e))
	}
	return out, nil
}

func deliveryFrom(e store.Entity) Delivery {
	d := Delivery{EventID: e.String("EventId"), Type: e.String("Type"), Subject: e.String("Subject"), State: e.String("State"),
		StatusCode: int(e.Int64("StatusCode")), Attempts: int(e.Int64("Attempts")), FirstTryAt: e.Time("FirstTryAt"),
		LastTryAt: e.Time("LastTryAt"), LastError: e.String("LastError")}
	if t := e.Time("NextTryAt"); !t.IsZero() && d.State == DeliveryPending {
		d.NextTryAt = &t
	}
	return d
}

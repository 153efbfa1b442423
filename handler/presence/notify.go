package presence

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"switchboard/handler/richnotify"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// Lifecycle events Graph sends (lifecycleEvent).
const (
	LifecycleReauthorizationRequired = "reauthorizationRequired"
	LifecycleSubscriptionRemoved     = "subscriptionRemoved"
	LifecycleMissed                  = "missed"
)

// NotificationsOptions configures Notifications. Store and Certificate
// are required.
type NotificationsOptions struct {
	Store       *Store
	Certificate *richnotify.Certificate
	// Lifecycle acts on a lifecycle notification (the Subscriber); nil
	// ignores them.
	Lifecycle LifecycleHandler
	// Queue and QueueName take what cannot be written within WriteWithin
	// (PRESENCE_QUEUE); a nil Queue leaves such writes to finish late.
	Queue     switchboard.Queue
	QueueName string
	// WriteWithin bounds the writes made before the reply (default 2 s,
	// so that the reply is well within Graph's 3 s).
	WriteWithin time.Duration
	Now         func() time.Time
	Log         *slog.Logger
}

// LifecycleHandler acts on lifecycle notifications.
type LifecycleHandler interface {
	// Lifecycle records event for the tenant's subscription of src at
	// once (a missed or removed subscription stops vouching for its users)
	// and does, or queues, what it calls for.
	Lifecycle(ctx context.Context, tenant string, src switchboard.PresenceSource, event string) error
}

// Notifications receives Graph's presence change notifications
// (PresenceNotifications): it checks each one against its subscription,
// decrypts it and writes changed readings at once.
type Notifications struct {
	o NotificationsOptions

	mu     sync.Mutex
	counts NotificationCounts
	// lastSeen throttles the LastNotificationAt writes per subscription.
	lastSeen map[string]time.Time
	reread   map[string]time.Time // per tenant: last state read for an unknown subscription
}

// NotificationCounts counts what this process received, by outcome.
type NotificationCounts struct {
	Accepted            int // change notifications that passed every check
	Written             int // readings written (changed)
	Queued              int // readings sent through the queue
	Lifecycle           int
	MalformedBodies     int
	Malformed           int // notifications missing what they need
	UnknownSubscription int
	WrongClientState    int
	BadSignature        int // dataSignature, data key or certificate wrong
	NotCovered          int // a presence of a user the subscription does not cover
}

// NewNotifications returns a Notifications.
func NewNotifications(o NotificationsOptions) (*Notifications, error) {
	if o.Store == nil || o.Certificate == nil {
		return nil, switchboard.Errorf(switchboard.EINTERNAL, "presence.NewNotifications", "store and certificate are required")
	}
	if o.WriteWithin <= 0 {
		o.WriteWithin = 2 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Notifications{o: o, lastSeen: map[string]time.Time{}, reread: map[string]time.Time{}}, nil
}

// Counts returns the counters.
func (n *Notifications) Counts() NotificationCounts {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.counts
}

func (n *Notifications) count(f func(*NotificationCounts)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	f(&n.counts)
}

type notificationJSON struct {
	SubscriptionID   string              `json:"subscriptionId"`
	ClientState      string              `json:"clientState"`
	ChangeType       string              `json:"changeType"`
	LifecycleEvent   string              `json:"lifecycleEvent"`
	TenantID         string              `json:"tenantId"`
	EncryptedContent *richnotify.Content `json:"encryptedContent"`
}

type presenceResource struct {
	ID                  string `json:"id"`
	Availability        string `json:"availability"`
	Activity            string `json:"activity"`
	OutOfOfficeSettings *struct {
		IsOutOfOffice *bool `json:"isOutOfOffice"`
	} `json:"outOfOfficeSettings"`
}

// Handle processes one POST of notifications. It returns EINVALID only
// for a body that is not a notification collection; every notification
// that fails a check is counted and logged (without its content) and
// skipped, so that Graph is not made to retry what will never pass.
func (n *Notifications) Handle(ctx context.Context, body []byte) error {
	var payload struct {
		Value []json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(body, &payload); err != nil || payload.Value == nil {
		n.count(func(c *NotificationCounts) { c.MalformedBodies++ })
		n.o.Log.Warn("presence notifications: body is not a notification collection", "bytes", len(body))
		return switchboard.Errorf(switchboard.EINVALID, "presence.Notifications", "the body is not a change notification collection")
	}
	now := n.o.Now()
	byTenant := map[string][]NotifiedReading{}
	for _, raw := range payload.Value {
		if tenant, r, ok := n.accept(ctx, raw, now); ok {
			byTenant[tenant] = append(byTenant[tenant], r)
		}
	}
	n.writeAll(ctx, byTenant)
	return nil
}

// accept checks one notification against its subscription and returns
// the reading it carries; a lifecycle notification is handed to
// Lifecycle. It returns false for anything else, counted and logged.
func (n *Notifications) accept(ctx context.Context, raw json.RawMessage, now time.Time) (string, NotifiedReading, bool) {
	var m notificationJSON
	if err := json.Unmarshal(raw, &m); err != nil || m.SubscriptionID == "" || m.TenantID == "" {
		n.count(func(c *NotificationCounts) { c.Malformed++ })
		n.o.Log.Warn("presence notification ignored: malformed")
		return "", NotifiedReading{}, false
	}
	log := n.o.Log.With("tenant", m.TenantID, "subscription", m.SubscriptionID)
	sub, ok := n.find(ctx, m.TenantID, m.SubscriptionID)
	if !ok {
		n.count(func(c *NotificationCounts) { c.UnknownSubscription++ })
		log.Warn("presence notification ignored: unknown subscription")
		return "", NotifiedReading{}, false
	}
	if subtle.ConstantTimeCompare([]byte(m.ClientState), []byte(sub.ClientState)) != 1 || sub.ClientState == "" {
		n.count(func(c *NotificationCounts) { c.WrongClientState++ })
		log.Warn("presence notification ignored: wrong client state")
		return "", NotifiedReading{}, false
	}
	if m.LifecycleEvent != "" {
		n.count(func(c *NotificationCounts) { c.Lifecycle++ })
		log.Info("presence subscription lifecycle notification", "event", m.LifecycleEvent, "account", sub.Source)
		if n.o.Lifecycle != nil {
			if err := n.o.Lifecycle.Lifecycle(ctx, m.TenantID, sub.Source, m.LifecycleEvent); err != nil {
				log.Warn("presence subscription lifecycle handling failed; housekeeping takes it over", "event", m.LifecycleEvent, "err", err)
			}
		}
		return "", NotifiedReading{}, false
	}
	r, ok := n.decode(m, sub, log)
	if !ok {
		return "", NotifiedReading{}, false
	}
	n.count(func(c *NotificationCounts) { c.Accepted++ })
	n.seen(ctx, m.TenantID, sub, now)
	return m.TenantID, NotifiedReading{PresenceReading: r, Source: sub.Source, At: now}, true
}

// decode decrypts a change notification's content and returns the
// reading, if it is the presence of a user sub covers.
func (n *Notifications) decode(m notificationJSON, sub subState, log *slog.Logger) (switchboard.PresenceReading, bool) {
	if m.EncryptedContent == nil {
		n.count(func(c *NotificationCounts) { c.Malformed++ })
		log.Warn("presence notification ignored: no encryptedContent")
		return switchboard.PresenceReading{}, false
	}
	plain, err := n.o.Certificate.Decrypt(*m.EncryptedContent)
	if err != nil {
		n.count(func(c *NotificationCounts) { c.BadSignature++ })
		log.Warn("presence notification ignored: it does not decrypt", "err", err)
		return switchboard.PresenceReading{}, false
	}
	var p presenceResource
	if err := json.Unmarshal(plain, &p); err != nil || p.ID == "" || p.Availability == "" {
		n.count(func(c *NotificationCounts) { c.Malformed++ })
		log.Warn("presence notification ignored: the resource is not a presence")
		return switchboard.PresenceReading{}, false
	}
	if !covers(sub, p.ID) {
		n.count(func(c *NotificationCounts) { c.NotCovered++ })
		log.Warn("presence notification ignored: a user the subscription does not cover")
		return switchboard.PresenceReading{}, false
	}
	r := switchboard.PresenceReading{UserID: p.ID, Availability: p.Availability, Activity: p.Activity}
	if r.Activity == "" {
		r.Activity = switchboard.ActivityPresenceUnknown
	}
	if p.OutOfOfficeSettings != nil && p.OutOfOfficeSettings.IsOutOfOffice != nil {
		r.OutOfOffice = *p.OutOfOfficeSettings.IsOutOfOffice
	}
	return r, true
}

// writeAll writes each tenant's readings at once, all within one
// deadline: Graph batches notifications of many subscriptions (tenants)
// into one POST, and the reply is due in 3 s.
func (n *Notifications) writeAll(ctx context.Context, byTenant map[string][]NotifiedReading) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.o.WriteWithin)
	defer cancel()
	var wg sync.WaitGroup
	for tenant, readings := range byTenant {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.write(wctx, ctx, tenant, readings)
		}()
	}
	wg.Wait()
}

// find returns the subscription a notification names, reading the state
// partition again when this process does not know it (another instance
// created it).
func (n *Notifications) find(ctx context.Context, tenant, id string) (subState, bool) {
	if _, err := uuid.Parse(tenant); err != nil || store.CheckKey("tenant", tenant) != nil {
		return subState{}, false
	}
	if sub, ok := n.o.Store.cachedSubscription(tenant, id); ok {
		return sub, true
	}
	if !n.mayReread(tenant) {
		return subState{}, false
	}
	sub, ok, err := n.o.Store.storedSubscription(ctx, tenant, id)
	if err != nil {
		n.o.Log.Warn("presence notification: reading the subscriptions failed", "tenant", tenant, "err", err)
	}
	return sub, ok
}

// mayReread limits the state reads an unknown subscription id causes (the
// endpoint is public): at most one per tenant every 5 s.
func (n *Notifications) mayReread(tenant string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	now := n.o.Now()
	if len(n.reread) > 10000 {
		n.reread = map[string]time.Time{}
	}
	if last, ok := n.reread[tenant]; ok && now.Sub(last) < 5*time.Second {
		return false
	}
	n.reread[tenant] = now
	return true
}

func covers(sub subState, user string) bool {
	for _, u := range sub.Users {
		if u == user {
			return true
		}
	}
	return false
}

// seen records the subscription's last notification, at most every 30 s
// per subscription and process (it is for people, not for freshness).
func (n *Notifications) seen(ctx context.Context, tenant string, sub subState, now time.Time) {
	n.mu.Lock()
	last := n.lastSeen[sub.ID]
	if now.Sub(last) < 30*time.Second {
		n.mu.Unlock()
		return
	}
	n.lastSeen[sub.ID] = now
	n.mu.Unlock()
	err := n.o.Store.mergeSubscription(
		ctx,
		tenant,
		sub.Source,
		map[string]any{"LastNotificationAt": now.UTC()},
		func(s *subState) { s.LastNotificationAt = now },
	)
	if err != nil {
		n.o.Log.Warn("presence notification: recording it failed", "tenant", tenant, "err", err)
	}
}

// write writes readings until wctx ends (WriteWithin); what is not
// written by then goes through the queue.
func (n *Notifications) write(wctx, ctx context.Context, tenant string, readings []NotifiedReading) {
	written, err := n.o.Store.writeNotified(wctx, tenant, readings)
	n.count(func(c *NotificationCounts) { c.Written += written })
	if err == nil {
		return
	}
	if n.o.Queue == nil {
		n.o.Log.Warn(
			"presence notification: writing failed and no queue takes it; the next poll reconciles",
			"tenant",
			tenant,
			"readings",
			len(readings),
			"err",
			err,
		)
		return
	}
	body, _ := json.Marshal(NotifyMessage{Kind: notifyKindReadings, Tenant: tenant, Readings: readings})
	qctx, qcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer qcancel()
	if _, qerr := n.o.Queue.Send(qctx, n.o.QueueName, switchboard.Message{Body: body, ContentType: "application/json"}); qerr != nil {
		n.o.Log.Error("presence notification: neither written nor queued; the next poll "+
			"reconciles", "tenant", tenant, "readings", len(readings), "err", err, "queueErr", qerr)
		return
	}
	n.count(func(c *NotificationCounts) { c.Queued += len(readings) })
	n.o.Log.Info("presence notification: written late through the queue", "tenant", tenant, "readings", len(readings), "err", err)
}

// NotifyMessage is a PRESENCE_QUEUE message of the notifications:
// readings not written in time.
type NotifyMessage struct {
	Kind     string            `json:"kind"`
	Tenant   string            `json:"tenant"`
	Readings []NotifiedReading `json:"readings"`
}

const notifyKindReadings = "notified-readings"

// IsNotifyMessage reports whether a PRESENCE_QUEUE message body is a
// NotifyMessage (the others are the poll's shard messages).
func IsNotifyMessage(body []byte) bool {
	var probe struct {
		Kind string `json:"kind"`
	}
	return json.Unmarshal(body, &probe) == nil && probe.Kind == notifyKindReadings
}

// HandleQueued writes queued readings. A malformed message is logged and
// dropped; a failed write is returned (the message comes back).
func (n *Notifications) HandleQueued(ctx context.Context, m NotifyMessage) error {
	if m.Tenant == "" || store.CheckKey("tenant", m.Tenant) != nil || len(m.Readings) == 0 || len(m.Readings) > 10*switchboard.MaxPresenceIDsPerCall {
		n.o.Log.Error("presence notify message dropped: invalid", "tenant", m.Tenant)
		return nil
	}
	for _, r := range m.Readings {
		if !validUserID(r.UserID) || r.Source.Account() == 0 || r.At.IsZero() {
			n.o.Log.Error("presence notify message dropped: invalid reading", "tenant", m.Tenant)
			return nil
		}
	}
	written, err := n.o.Store.writeNotified(ctx, m.Tenant, m.Readings)
	n.count(func(c *NotificationCounts) { c.Written += written })
	if err != nil {
		return switchboard.Wrap(switchboard.EUNAVAILABLE, "presence.HandleQueued", err)
	}
	return nil
}

// DecodeNotifyMessage parses a NotifyMessage.
func DecodeNotifyMessage(body []byte) (NotifyMessage, error) {
	var m NotifyMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return m, fmt.Errorf("presence notify message: %w", err)
	}
	if m.Kind != notifyKindReadings {
		return m, errors.New("presence notify message: unknown kind")
	}
	return m, nil
}

package events

import (
	"context"
	"maps"
	"strings"
	"sync"
	"testing"

	"switchboard/handler/egress"
	"switchboard/handler/secrets"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// otherTenant has subscriptions too: the sweep must find every tenant's.
const otherTenant = "0b6f5bd2-5d0e-4c42-9b1e-3a7c1f0d2e11"

func keyring(t *testing.T, cur, prev string) *secrets.Keyring {
	t.Helper()
	k, err := secrets.New(cur, prev)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// rekey replaces the fixture's service by one over the same tables, queue
// and clock with keys: the deployment restarted with other SECRETS_KEY
// settings. tables, when not nil, stands in for the fixture's.
func (f *fixture) rekey(keys *secrets.Keyring, tables store.Tables) {
	f.t.Helper()
	if tables == nil {
		tables = f.tables
	}
	svc, err := New(context.Background(), Options{
		Tables: tables, Queue: f.q, QueueName: "events", Secrets: keys,
		Guard: egress.Guard{AllowPrivate: true, Dial: loopbackDialer(f.t)},
		Now:   f.clock.Now,
	})
	if err != nil {
		f.t.Fatal(err)
	}
	f.svc, f.keys = svc, keys
}

func (f *fixture) storedSub(tenantID, id string) store.Entity {
	f.t.Helper()
	tbl, _ := f.tables.Table(context.Background(), TableName)
	e, err := tbl.Get(context.Background(), subPartition(tenantID), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return e
}

// sealedUnder fails unless the subscription's stored secret is sealed
// under key and opens, with that key alone, to want.
func (f *fixture) sealedUnder(tenantID, id, key, want string) {
	f.t.Helper()
	only := keyring(f.t, key, "")
	stored := f.storedSub(tenantID, id).String("Secret")
	if !strings.HasPrefix(stored, "sb1:"+only.KeyID()+":") {
		f.t.Fatalf("subscription %s: stored secret %q, want it sealed under key %s", id, stored, only.KeyID())
	}
	if got, _, err := only.Open(stored, secretAAD(tenantID, id)); err != nil || got != want {
		f.t.Fatalf("subscription %s: opens with the current key alone to %q, %v; want its secret", id, got, err)
	}
}

func (f *fixture) deliverOne(rcv *receiver, subject string) {
	f.t.Helper()
	before := len(rcv.got)
	f.emit([]switchboard.Event{event("switchboard.conversation.queued", "support", subject, f.clock.Now())}, false)
	f.pump()
	if len(rcv.got) != before+1 || !rcv.verifyOK {
		f.t.Fatalf("receiver got %d events (verified %v), want %d verified with the subscription's secret", len(rcv.got), rcv.verifyOK, before+1)
	}
}

// After a rotation the old key still opens every secret; a delivery and a
// Get re-seal what they read, the housekeeping sweep re-seals the rest of
// every tenant (plain-text rows from before encryption included), and then
// the old key can go: deliveries still verify with the same whsec_ secret.
func TestRotationResealsSubscriptionSecrets(t *testing.T) {
	f := newFixture(t, true)
	oldKey, nextKey := secrets.GenerateKey(), secrets.GenerateKey()
	f.rekey(keyring(t, oldKey, ""), nil)
	rcv := newReceiver(t)
	delivered := f.subscribe(rcv.URL, NewSubscription{})
	rcv.secret = delivered.Secret
	read := f.subscribe(rcv.URL+"/read", NewSubscription{Services: []string{"sales"}})
	swept := f.subscribe(rcv.URL+"/swept", NewSubscription{Services: []string{"sales"}})
	ctx := context.Background()
	elsewhere, err := f.svc.Create(ctx, otherTenant, NewSubscription{URL: rcv.URL + "/other", Events: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	legacy, err := f.svc.Create(ctx, otherTenant, NewSubscription{URL: rcv.URL + "/legacy", Events: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}
	// A row as it was before secrets were sealed: the secret in plain text.
	tbl, _ := f.tables.Table(ctx, TableName)
	row := f.storedSub(otherTenant, legacy.ID)
	row.Props["Secret"] = legacy.Secret
	if _, err := tbl.Update(ctx, row, row.ETag); err != nil {
		t.Fatal(err)
	}

	rotated := keyring(t, nextKey, oldKey)
	f.rekey(rotated, nil)
	f.deliverOne(rcv, "conversations/c-1")
	f.sealedUnder(tenant, delivered.ID, nextKey, delivered.Secret)
	if _, err := f.svc.Get(ctx, tenant, read.ID); err != nil {
		t.Fatal(err)
	}
	f.sealedUnder(tenant, read.ID, nextKey, read.Secret)
	if got := f.storedSub(tenant, swept.ID).String("Secret"); !strings.HasPrefix(got, "sb1:"+keyring(t, oldKey, "").KeyID()+":") {
		t.Fatalf("a subscription neither read nor written is stored as %q: want it still under the old key before the sweep", got)
	}

	rep, err := f.svc.ResealSecrets(ctx, func() bool { return false })
	if err != nil || rep.Rows != 5 || rep.Resealed != 3 || rep.Unreadable != 0 || rep.Skipped != 0 {
		t.Fatalf("ResealSecrets = %+v, %v; want 5 rows, 3 re-sealed (one per tenant's remaining rows)", rep, err)
	}
	f.sealedUnder(tenant, swept.ID, nextKey, swept.Secret)
	f.sealedUnder(otherTenant, elsewhere.ID, nextKey, elsewhere.Secret)
	f.sealedUnder(otherTenant, legacy.ID, nextKey, legacy.Secret)
	if got, _ := f.svc.Get(ctx, tenant, swept.ID); got.URL != swept.URL || got.Services[0] != "sales" || got.State != StateActive {
		t.Errorf("after the sweep the subscription reads %+v: re-sealing changes nothing else", got)
	}
	if rep, err := f.svc.ResealSecrets(ctx, func() bool { return false }); err != nil || rep.Resealed != 0 || rep.Rows != 5 {
		t.Errorf("second sweep = %+v, %v; want nothing left to re-seal", rep, err)
	}

	// SECRETS_KEY_PREVIOUS removed: every subscription still delivers,
	// signed with the secret shown when it was created.
	f.rekey(keyring(t, nextKey, ""), nil)
	f.deliverOne(rcv, "conversations/c-2")
	for _, s := range []Subscription{delivered, read, swept} {
		if _, secret, err := f.secretOf(tenant, s.ID); err != nil || secret != s.Secret {
			t.Errorf("subscription %s with the new key alone: %v; want its secret", s.ID, err)
		}
	}
}

// secretOf opens a subscription's secret as delivery does.
func (f *fixture) secretOf(tenantID, id string) (Subscription, string, error) {
	sub, e, err := f.svc.get(context.Background(), tenantID, id)
	if err != nil {
		return sub, "", err
	}
	secret, _, err := f.keys.Open(e.String("Secret"), secretAAD(tenantID, id))
	return sub, secret, err
}

// hookTables runs hook once, right after the first query of the events
// table returns: a write made between the sweep's read and its own.
type hookTables struct {
	store.Tables
	once sync.Once
	hook func()
}

type hookTable struct {
	store.Table
	h *hookTables
}

func (h *hookTables) Table(ctx context.Context, name string) (store.Table, error) {
	t, err := h.Tables.Table(ctx, name)
	if err != nil || name != TableName {
		return t, err
	}
	return hookTable{t, h}, nil
}

func (t hookTable) Query(ctx context.Context, q store.Query) (store.Page, error) {
	p, err := t.Table.Query(ctx, q)
	if q.PartitionPrefix != "" {
		t.h.once.Do(t.h.hook)
	}
	return p, err
}

// A subscription updated between the sweep's read and its write keeps the
// update: the sweep writes under the ETag it read, loses, and counts the
// row as changed meanwhile (the writer sealed it under the current key).
func TestSweepLosesNoConcurrentUpdate(t *testing.T) {
	f := newFixture(t, true)
	oldKey, nextKey := secrets.GenerateKey(), secrets.GenerateKey()
	f.rekey(keyring(t, oldKey, ""), nil)
	sub := f.subscribe("http://127.0.0.1:9/hook", NewSubscription{})
	rotated := keyring(t, nextKey, oldKey)
	f.rekey(rotated, nil)
	writer := f.svc
	ctx := context.Background()
	hooked := &hookTables{Tables: f.tables, hook: func() {
		if err := writer.updateSub(ctx, sub, func(c *Subscription) { c.LastError, c.FailedDeliveries = "the receiver answered 503", 7 }); err != nil {
			t.Error(err)
		}
	}}
	f.rekey(rotated, hooked)
	rep, err := f.svc.ResealSecrets(ctx, func() bool { return false })
	if err != nil || rep.Skipped != 1 || rep.Resealed != 0 {
		t.Fatalf("ResealSecrets = %+v, %v; want the row skipped as changed meanwhile", rep, err)
	}
	got, err := f.svc.Get(ctx, tenant, sub.ID)
	if err != nil || got.FailedDeliveries != 7 || got.LastError != "the receiver answered 503" {
		t.Fatalf("after the sweep: %+v, %v; want the concurrent update kept", got, err)
	}
	f.sealedUnder(tenant, sub.ID, nextKey, sub.Secret)
}

// The same under real concurrency: sweeps racing with updates of every
// subscription lose none of the updates, and leave every secret sealed
// under the current key.
func TestSweepRacingUpdatesLosesNone(t *testing.T) {
	f := newFixture(t, true)
	oldKey, nextKey := secrets.GenerateKey(), secrets.GenerateKey()
	f.rekey(keyring(t, oldKey, ""), nil)
	var subs []Subscription
	for range 10 {
		subs = append(subs, f.subscribe("http://127.0.0.1:9/hook", NewSubscription{}))
	}
	rotated := keyring(t, nextKey, oldKey)
	f.rekey(rotated, nil)
	ctx := context.Background()
	const writers, each = 4, 5
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				for _, s := range subs {
					if err := f.svc.updateSub(ctx, s, func(c *Subscription) { c.FailedDeliveries++ }); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.svc.ResealSecrets(ctx, func() bool { return false }); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, s := range subs {
		got, err := f.svc.Get(ctx, tenant, s.ID)
		if err != nil || got.FailedDeliveries != writers*each {
			t.Fatalf("subscription %s: %d updates kept (%v), want %d", s.ID, got.FailedDeliveries, err, writers*each)
		}
		f.sealedUnder(tenant, s.ID, nextKey, s.Secret)
	}
}

// A secret sealed under a key the deployment no longer has: the sweep
// leaves it as stored and counts it, deliveries wait (none sent, none
// lost) with the reason on the subscription, and restoring the key as
// SECRETS_KEY_PREVIOUS delivers them, signed with the same secret.
func TestUnknownKeyWaitsAndLosesNothing(t *testing.T) {
	f := newFixture(t, true)
	// The clock starts one wait in the past, so that the delivery after
	// the wait is signed at about real time (receivers check it).
	f.clock.Set(f.clock.Now().Add(-unopenedWait))
	lostKey, otherKey := secrets.GenerateKey(), secrets.GenerateKey()
	f.rekey(keyring(t, lostKey, ""), nil)
	rcv := newReceiver(t)
	sub := f.subscribe(rcv.URL, NewSubscription{})
	rcv.secret = sub.Secret
	before := f.storedSub(tenant, sub.ID)

	f.rekey(keyring(t, otherKey, ""), nil)
	ctx := context.Background()
	rep, err := f.svc.ResealSecrets(ctx, func() bool { return false })
	if err != nil || rep.Unreadable != 1 || rep.Resealed != 0 {
		t.Fatalf("ResealSecrets = %+v, %v; want the row counted unreadable", rep, err)
	}
	if after := f.storedSub(tenant, sub.ID); !maps.Equal(after.Props, before.Props) {
		t.Fatalf("the sweep changed the row:\nbefore %v\nafter  %v", before.Props, after.Props)
	}

	ev := event("switchboard.conversation.queued", "support", "conversations/c-7", f.clock.Now())
	f.emit([]switchboard.Event{ev}, false)
	f.pump()
	if len(rcv.got) != 0 || len(rcv.headers) != 0 {
		t.Fatalf("the receiver got %d requests: nothing may be sent without the subscription's secret", len(rcv.headers))
	}
	got, err := f.svc.Get(ctx, tenant, sub.ID)
	if err != nil || got.State != StateFailing || !strings.Contains(got.LastError, "SECRETS_KEY_PREVIOUS") || strings.Contains(got.LastError, "sb1:") {
		t.Fatalf("subscription %+v, %v; want failing, its lastError naming SECRETS_KEY_PREVIOUS", got, err)
	}
	if stored := f.storedSub(tenant, sub.ID).String("Secret"); stored != before.String("Secret") {
		t.Fatalf("the stored secret changed to %q", stored)
	}
	if sched := f.q.scheduled(); len(sched) != 1 || !sched[0].Equal(f.clock.Now().Add(unopenedWait)) {
		t.Fatalf("scheduled %v; want one look again in %s", sched, unopenedWait)
	}

	// The operator restores the lost key as the previous one.
	restored := keyring(t, otherKey, lostKey)
	f.rekey(restored, nil)
	f.clock.Advance(unopenedWait)
	f.pump()
	if len(rcv.ids) != 1 || rcv.ids[0] != ev.ID || !rcv.verifyOK {
		t.Fatalf("after the key came back: ids %v (verified %v); want %s, signed with the same secret", rcv.ids, rcv.verifyOK, ev.ID)
	}
	f.sealedUnder(tenant, sub.ID, otherKey, sub.Secret)
	if got, _ := f.svc.Get(ctx, tenant, sub.ID); got.State != StateActive || got.LastError != "" {
		t.Errorf("after the delivery: %+v; want active again", got)
	}
}

package presence

import (
	"context"
	"encoding/json"
	"switchboard/handler/switchboard"
	"sync/atomic"
	"testing"
	"time"

	"switchboard/handler/internal/fakes"
	"switchboard/handler/richnotify"
	"switchboard/handler/store"
)

// slowTables makes presence-table batches wait for their context while
// slow is set: storage too slow to answer Graph in time.
type slowTables struct {
	store.Tables
	slow *atomic.Bool
}

func (s slowTables) Table(ctx context.Context, name string) (store.Table, error) {
	t, err := s.Tables.Table(ctx, name)
	if err != nil || name != presenceTableName {
		return t, err
	}
	return slowTable{t, s.slow}, nil
}

type slowTable struct {
	store.Table
	slow *atomic.Bool
}

func (t slowTable) Batch(ctx context.Context, ops []store.Op) error {
	if t.slow.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	return t.Table.Batch(ctx, ops)
}

// polledStore returns a store over tables in which one poll read user of
// tenant (Available), and its clock.
func polledStore(t *testing.T, tables store.Tables, tenant, user string) (*Store, *clock) {
	t.Helper()
	ctx := context.Background()
	clk := newClock()
	st, err := NewStore(ctx, StoreOptions{Tables: tables, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	g := newFakeGraph()
	g.set(user, "Available", "Available")
	tr := &fakeTracked{}
	tr.set(tenant, []string{user})
	poller, err := NewPoller(PollerOptions{Store: st, Graph: g, Tracked: tr, Settings: fakeSettings{true}, Account1UPN: "a1@x", Now: clk.Now, Sleep: clk.Sleep})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := poller.Poll(ctx, clk.Now().Add(25*time.Second)); err != nil {
		t.Fatal(err)
	}
	return st, clk
}

func TestNotificationsOverflowThroughTheQueue(t *testing.T) {
	ctx := context.Background()
	const tenant, user = "11111111-2222-4333-8444-555555555555", "00000000-0000-4000-8000-000000000001"
	var slow atomic.Bool
	st, clk := polledStore(t, slowTables{store.NewMemoryTables(), &slow}, tenant, user)
	if err := st.saveSubscription(ctx, tenant, subState{Source: switchboard.SourceAccount1, ID: "sub-1", ClientState: "state-1", Users: []string{user},
		State: SubActive, ExpiresAt: clk.Now().Add(time.Hour), ReadAt: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	pemBytes, _ := richnotify.GenerateCertificate("test")
	cert, err := richnotify.ParseCertificate(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	q := fakes.NewQueue(clk.Now)
	n, err := NewNotifications(NotificationsOptions{Store: st, Certificate: cert, Queue: q, QueueName: "presence-poll", WriteWithin: 50 * time.Millisecond, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	content, _ := richnotify.Encrypt(cert.X509(), cert.ID(), []byte(`{"id":"`+user+`","availability":"Busy","activity":"InACall"}`))
	body, _ := json.Marshal(map[string]any{"value": []any{map[string]any{
		"subscriptionId": "sub-1", "clientState": "state-1", "changeType": "updated", "tenantId": tenant, "encryptedContent": content}}})

	slow.Store(true)
	if err := n.Handle(ctx, body); err != nil {
		t.Fatal(err)
	}
	if sent := q.Messages(); len(sent) != 1 || !IsNotifyMessage(sent[0].Msg.Body) {
		t.Fatalf("sent %d messages, want the reading queued", len(sent))
	}
	if c := n.Counts(); c.Queued != 1 || c.Written != 0 {
		t.Fatalf("counts %+v", c)
	}

	slow.Store(false)
	m, err := DecodeNotifyMessage(q.Last().Msg.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.HandleQueued(ctx, m); err != nil {
		t.Fatal(err)
	}
	got, err := st.Readings(ctx, tenant, []string{user})
	if err != nil {
		t.Fatal(err)
	}
	if p := got[user]; p.Activity != "InACall" || p.Source != string(switchboard.SourceAccount1) {
		t.Fatalf("reading %+v, want the queued Busy/InACall through account1", p)
	}
	// The same message again (a redelivery) changes nothing more.
	before := n.Counts().Written
	if err := n.HandleQueued(ctx, m); err != nil || n.Counts().Written != before {
		t.Fatalf("redelivery: err %v, written %d -> %d", err, before, n.Counts().Written)
	}
}

package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"switchboard/handler/egress"
	"switchboard/handler/events"
	"switchboard/handler/functions"
	"switchboard/handler/secrets"
	"switchboard/handler/store"
)

// The Housekeeping timer's events job re-seals, under SECRETS_KEY, the
// subscription secrets still sealed under SECRETS_KEY_PREVIOUS: after one
// run the previous key can be removed.
func TestEventsHousekeepingResealsSubscriptionSecrets(t *testing.T) {
	ctx := context.Background()
	tables := store.NewMemoryTables()
	oldKey, newKey := secrets.GenerateKey(), secrets.GenerateKey()
	newEvents := func(cur, prev string) *events.Service {
		t.Helper()
		k, err := secrets.New(cur, prev)
		if err != nil {
			t.Fatal(err)
		}
		svc, err := events.New(ctx, events.Options{Tables: tables, Secrets: k, Guard: egress.Guard{AllowPrivate: true}})
		if err != nil {
			t.Fatal(err)
		}
		return svc
	}
	const tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	sub, err := newEvents(oldKey, "").Create(ctx, tenant, events.NewSubscription{URL: "http://127.0.0.1:9/hook", Events: []string{"*"}})
	if err != nil {
		t.Fatal(err)
	}

	a := &app{events: newEvents(newKey, oldKey)}
	hctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := eventsHousekeeping(a).run(hctx, &functions.Invocation{}); err != nil {
		t.Fatalf("events housekeeping: %v", err)
	}

	tb, _ := tables.Table(ctx, events.TableName)
	row, err := tb.Get(ctx, "sub|"+tenant, sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	only, _ := secrets.New(newKey, "")
	if stored := row.String("Secret"); !strings.HasPrefix(stored, "sb1:"+only.KeyID()+":") {
		t.Fatalf("after housekeeping the secret is stored as %q: want it sealed under SECRETS_KEY", stored)
	}
	if got, _, err := only.Open(row.String("Secret"), "events|"+tenant+"|"+sub.ID); err != nil || got != sub.Secret {
		t.Fatalf("with SECRETS_KEY alone the secret opens to %q, %v; want the one shown at creation", got, err)
	}
}

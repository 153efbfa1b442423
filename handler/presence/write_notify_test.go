package presence

import (
	"context"
	"testing"
	"time"

	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// A poll's reading taken before a notification arrived must not overwrite
// the notified reading when the poll commits after it.
func TestPollDoesNotOverwriteANewerNotification(t *testing.T) {
	ctx := context.Background()
	const tenant, user = "t1", "00000000-0000-4000-8000-000000000002"
	st, clk := polledStore(t, store.NewMemoryTables(), tenant, user)
	readAt := clk.Now() // the poll's call went out here and saw Busy...
	clk.Advance(time.Second)
	// ...then the user became Available again and Graph notified it.
	if _, err := st.writeNotified(ctx, tenant, []NotifiedReading{{PresenceReading: switchboard.PresenceReading{UserID: user, Availability: "Available", Activity: "Available", OutOfOffice: true},
		Source: switchboard.SourceAccount1, At: clk.Now()}}); err != nil {
		t.Fatal(err)
	}
	lay, err := st.prepare(ctx, tenant, 1, 400, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	gen, n := lay.target()
	w := shardWrite{shard: shardOf(user, n), users: []string{user}, complete: true, readAt: readAt, source: switchboard.SourceAccount1,
		readings: map[string]sourcedReading{user: {PresenceReading: switchboard.PresenceReading{UserID: user, Availability: "Busy", Activity: "InACall"}, Source: switchboard.SourceAccount1, At: readAt}}}
	if _, err := st.commit(ctx, tenant, gen, []shardWrite{w}); err != nil {
		t.Fatal(err)
	}
	got, err := st.Readings(ctx, tenant, []string{user})
	if err != nil {
		t.Fatal(err)
	}
	if p := got[user]; p.Activity != "Available" || !p.OutOfOffice {
		t.Fatalf("reading %+v: the older poll reading overwrote the notification", p)
	}
}

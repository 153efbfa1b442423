package presence

import (
	"context"
	"testing"

	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// BenchmarkReadings measures what routing asks of the store for a
// 1,000-member service in a 100,000-agent tenant (served from the cache).
func BenchmarkReadings(b *testing.B) {
	e := newEnv(b, store.NewMemoryTables(), true)
	ids := userIDs(100000)
	e.tracked.set(tenantA, ids)
	for _, id := range ids {
		e.graph.set(id, switchboard.Available, switchboard.ActivityAvailable)
	}
	e.poll(b)
	members := ids[:1000]
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m, err := e.store.Readings(ctx, tenantA, members)
		if err != nil || len(m) != len(members) {
			b.Fatalf("%d readings, %v", len(m), err)
		}
	}
}

// Package storetest is the contract every store.Table implementation must
// meet. The in-memory table and the Azure adapter (against Azurite) both run
// it, so unit tests on the memory table mean the same as on Azure.
package storetest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// Run runs the contract against fresh tables from newTable.
func Run(t *testing.T, newTable func(t *testing.T) store.Table) {
	ctx := context.Background()
	ent := func(pk, rk string, props map[string]any) store.Entity {
		return store.Entity{PartitionKey: pk, RowKey: rk, Props: props}
	}
	wantCode := func(t *testing.T, err error, code string) {
		t.Helper()
		if got := switchboard.ErrorCode(err); got != code {
			t.Fatalf("error code = %q (%v), want %q", got, err, code)
		}
	}

	t.Run("property types round-trip", func(t *testing.T) {
		tb := newTable(t)
		when := time.Date(2026, 11, 22, 12, 0, 30, 123456000, time.UTC)
		props := map[string]any{
			"s":   "text with 'quotes' and ünïcode",
			"b":   true,
			"i32": int32(-7),
			"i64": int64(1) << 40,
			"f":   2.5,
			"t":   when,
			"bin": []byte{0, 1, 2, 255},
		}
		if _, err := tb.Insert(ctx, ent("p", "r", props)); err != nil {
			t.Fatal(err)
		}
		got, err := tb.Get(ctx, "p", "r")
		if err != nil {
			t.Fatal(err)
		}
		if got.ETag == "" {
			t.Error("ETag empty after Get")
		}
		for k, want := range props {
			if fmt.Sprintf("%T %v", got.Props[k], got.Props[k]) != fmt.Sprintf("%T %v", want, want) {
				t.Errorf("property %s = %T %v, want %T %v", k, got.Props[k], got.Props[k], want, want)
			}
		}
		if got.String("s") != props["s"] || got.Int64("i64") != 1<<40 || !got.Time("t").Equal(when) || !got.Bool("b") {
			t.Errorf("accessors disagree with the stored values: %+v", got.Props)
		}
	})

	t.Run("insert conflicts on an existing row", func(t *testing.T) {
		tb := newTable(t)
		if _, err := tb.Insert(ctx, ent("p", "r", nil)); err != nil {
			t.Fatal(err)
		}
		_, err := tb.Insert(ctx, ent("p", "r", nil))
		wantCode(t, err, switchboard.ECONFLICT)
	})

	t.Run("get of a missing row is not found", func(t *testing.T) {
		_, err := newTable(t).Get(ctx, "p", "missing")
		wantCode(t, err, switchboard.ENOTFOUND)
	})

	t.Run("update honours the ETag", func(t *testing.T) {
		tb := newTable(t)
		etag1, err := tb.Insert(ctx, ent("p", "r", map[string]any{"v": int32(1)}))
		if err != nil {
			t.Fatal(err)
		}
		etag2, err := tb.Update(ctx, ent("p", "r", map[string]any{"v": int32(2)}), etag1)
		if err != nil {
			t.Fatalf("update with the current ETag: %v", err)
		}
		if etag2 == etag1 {
			t.Errorf("ETag did not change on update")
		}
		_, err = tb.Update(ctx, ent("p", "r", map[string]any{"v": int32(3)}), etag1)
		wantCode(t, err, switchboard.EPRECONDITION)
		got, _ := tb.Get(ctx, "p", "r")
		if got.Int64("v") != 2 {
			t.Errorf("v = %d after a refused update, want 2", got.Int64("v"))
		}
		if _, err := tb.Update(ctx, ent("p", "r", map[string]any{"v": int32(4)}), "*"); err != nil {
			t.Errorf("update with *: %v", err)
		}
		_, err = tb.Update(ctx, ent("p", "absent", nil), "*")
		wantCode(t, err, switchboard.ENOTFOUND)
	})

	t.Run("update replaces the whole row", func(t *testing.T) {
		tb := newTable(t)
		etag, _ := tb.Insert(ctx, ent("p", "r", map[string]any{"a": "1", "b": "2"}))
		if _, err := tb.Update(ctx, ent("p", "r", map[string]any{"a": "3"}), etag); err != nil {
			t.Fatal(err)
		}
		got, _ := tb.Get(ctx, "p", "r")
		if _, ok := got.Props["b"]; ok || got.String("a") != "3" {
			t.Errorf("props = %v, want only a=3", got.Props)
		}
	})

	t.Run("concurrent updates with one ETag: exactly one wins", func(t *testing.T) {
		tb := newTable(t)
		etag, _ := tb.Insert(ctx, ent("p", "r", map[string]any{"v": int32(0)}))
		const n = 10
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins, refused := 0, 0
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				_, err := tb.Update(ctx, ent("p", "r", map[string]any{"v": int32(i + 1)}), etag)
				mu.Lock()
				defer mu.Unlock()
				switch switchboard.ErrorCode(err) {
				case "":
					wins++
				case switchboard.EPRECONDITION:
					refused++
				default:
					t.Errorf("unexpected error: %v", err)
				}
			}(i)
		}
		wg.Wait()
		if wins != 1 || refused != n-1 {
			t.Errorf("wins = %d, refused = %d; want 1 and %d", wins, refused, n-1)
		}
	})

	t.Run("upsert and delete", func(t *testing.T) {
		tb := newTable(t)
		if _, err := tb.Upsert(ctx, ent("p", "r", map[string]any{"v": "a"})); err != nil {
			t.Fatal(err)
		}
		if _, err := tb.Upsert(ctx, ent("p", "r", map[string]any{"v": "b"})); err != nil {
			t.Fatal(err)
		}
		got, _ := tb.Get(ctx, "p", "r")
		if got.String("v") != "b" {
			t.Errorf("v = %q, want b", got.String("v"))
		}
		wantCode(t, tb.Delete(ctx, "p", "r", `W/"datetime'2000-01-01T00%3A00%3A00Z'"`), switchboard.EPRECONDITION)
		if err := tb.Delete(ctx, "p", "r", got.ETag); err != nil {
			t.Fatal(err)
		}
		wantCode(t, tb.Delete(ctx, "p", "r", ""), switchboard.ENOTFOUND)
	})

	t.Run("query by partition, range and prefix, paged in key order", func(t *testing.T) {
		tb := newTable(t)
		for _, pk := range []string{"a", "b"} {
			var ops []store.Op
			for i := 0; i < 25; i++ {
				ops = append(ops, store.Op{Kind: store.OpInsert, Entity: ent(pk, fmt.Sprintf("k%02d", i), map[string]any{"i": int32(i)})})
			}
			if err := tb.Batch(ctx, ops); err != nil {
				t.Fatal(err)
			}
		}
		var rows []string
		q := store.Query{PartitionKey: "a", Top: 7}
		pages := 0
		for {
			page, err := tb.Query(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, e := range page.Entities {
				rows = append(rows, e.PartitionKey+"/"+e.RowKey)
			}
			if page.Continuation == "" {
				break
			}
			q.Continuation = page.Continuation
		}
		if len(rows) != 25 || rows[0] != "a/k00" || rows[24] != "a/k24" || pages != 4 {
			t.Errorf("got %d rows in %d pages (%v ... ), want 25 rows of partition a in 4 pages", len(rows), pages, rows[:min(3, len(rows))])
		}
		for i := 1; i < len(rows); i++ {
			if rows[i-1] >= rows[i] {
				t.Fatalf("rows out of order: %s before %s", rows[i-1], rows[i])
			}
		}
		count := func(q store.Query) int {
			n := 0
			if err := store.QueryAll(ctx, tb, q, func(store.Entity) error { n++; return nil }); err != nil {
				t.Fatal(err)
			}
			return n
		}
		if got := count(store.Query{PartitionKey: "b", Prefix: "k1"}); got != 10 {
			t.Errorf("prefix k1 in b: %d rows, want 10", got)
		}
		if got := count(store.Query{PartitionKey: "b", RowKeyFrom: "k05", RowKeyTo: "k08"}); got != 3 {
			t.Errorf("range [k05,k08) in b: %d rows, want 3", got)
		}
		if got := count(store.Query{Top: 10}); got != 50 {
			t.Errorf("all partitions: %d rows, want 50", got)
		}
		for _, pk := range []string{"sub|1", "sub|2", "suc", "su"} {
			if _, err := tb.Insert(ctx, ent(pk, "r", nil)); err != nil {
				t.Fatal(err)
			}
		}
		var got []string
		if err := store.QueryAll(ctx, tb, store.Query{PartitionPrefix: "sub|", Top: 1}, func(e store.Entity) error {
			got = append(got, e.PartitionKey)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if strings.Join(got, ",") != "sub|1,sub|2" {
			t.Errorf("partitions with prefix sub|, a row per page: %v, want sub|1 and sub|2", got)
		}
	})

	t.Run("batch is all or nothing", func(t *testing.T) {
		tb := newTable(t)
		etag, _ := tb.Insert(ctx, ent("p", "exists", map[string]any{"v": "old"}))
		err := tb.Batch(ctx, []store.Op{
			{Kind: store.OpInsert, Entity: ent("p", "new", nil)},
			{Kind: store.OpInsert, Entity: ent("p", "exists", nil)},
		})
		wantCode(t, err, switchboard.ECONFLICT)
		if _, err := tb.Get(ctx, "p", "new"); switchboard.ErrorCode(err) != switchboard.ENOTFOUND {
			t.Errorf("row of a failed batch was written (err %v)", err)
		}
		err = tb.Batch(ctx, []store.Op{
			{Kind: store.OpInsert, Entity: ent("p", "new", nil)},
			{Kind: store.OpUpdate, Entity: ent("p", "exists", map[string]any{"v": "new"}), IfMatch: `W/"datetime'2000-01-01T00%3A00%3A00Z'"`},
		})
		wantCode(t, err, switchboard.EPRECONDITION)
		err = tb.Batch(ctx, []store.Op{
			{Kind: store.OpInsert, Entity: ent("p", "new", nil)},
			{Kind: store.OpUpdate, Entity: ent("p", "exists", map[string]any{"v": "new"}), IfMatch: etag},
			{Kind: store.OpMerge, Entity: ent("p", "merged", map[string]any{"a": "1"})},
		})
		if err != nil {
			t.Fatalf("valid batch: %v", err)
		}
		got, _ := tb.Get(ctx, "p", "exists")
		if got.String("v") != "new" {
			t.Errorf("v = %q after the batch, want new", got.String("v"))
		}
		if err := tb.Batch(
			ctx,
			[]store.Op{{Kind: store.OpMerge, Entity: ent("p", "merged", map[string]any{"b": "2"})}, {Kind: store.OpDelete, Entity: ent("p", "new", nil)}},
		); err != nil {
			t.Fatal(err)
		}
		m, _ := tb.Get(ctx, "p", "merged")
		if m.String("a") != "1" || m.String("b") != "2" {
			t.Errorf("merge lost properties: %v", m.Props)
		}
		err = tb.Batch(ctx, []store.Op{{Kind: store.OpDelete, Entity: ent("p", "new", nil)}})
		wantCode(t, err, switchboard.ENOTFOUND)
	})

	t.Run("batch limits are enforced", func(t *testing.T) {
		tb := newTable(t)
		mixed := []store.Op{{Kind: store.OpUpsert, Entity: ent("p1", "r", nil)}, {Kind: store.OpUpsert, Entity: ent("p2", "r", nil)}}
		wantCode(t, tb.Batch(ctx, mixed), switchboard.EINVALID)
		var big []store.Op
		for i := 0; i <= store.MaxBatch; i++ {
			big = append(big, store.Op{Kind: store.OpUpsert, Entity: ent("p", fmt.Sprint(i), nil)})
		}
		wantCode(t, tb.Batch(ctx, big), switchboard.EINVALID)
		if _, err := tb.Get(ctx, "p", "0"); switchboard.ErrorCode(err) != switchboard.ENOTFOUND {
			t.Errorf("a refused batch wrote a row")
		}
		if err := tb.Batch(ctx, big[:store.MaxBatch]); err != nil {
			t.Errorf("batch of exactly %d: %v", store.MaxBatch, err)
		}
	})

	t.Run("WriteBatched splits by partition and size", func(t *testing.T) {
		tb := newTable(t)
		var ops []store.Op
		for i := 0; i < 250; i++ {
			ops = append(ops, store.Op{Kind: store.OpUpsert, Entity: ent(fmt.Sprintf("p%d", i%3), fmt.Sprintf("r%03d", i), map[string]any{"i": int32(i)})})
		}
		n, err := store.WriteBatched(ctx, tb, ops)
		if err != nil {
			t.Fatal(err)
		}
		// 84 + 83 + 83 rows: one batch each.
		if n != 3 {
			t.Errorf("batches = %d, want 3", n)
		}
		total := 0
		_ = store.QueryAll(ctx, tb, store.Query{}, func(store.Entity) error { total++; return nil })
		if total != 250 {
			t.Errorf("rows = %d, want 250", total)
		}
	})

	t.Run("invalid keys are refused before they reach storage", func(t *testing.T) {
		tb := newTable(t)
		for _, k := range []string{"a/b", "a#b", "a?b", "a\\b", "tab\there"} {
			_, err := tb.Insert(ctx, ent("p", k, nil))
			wantCode(t, err, switchboard.EINVALID)
		}
	})
}

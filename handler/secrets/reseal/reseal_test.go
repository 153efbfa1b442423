package reseal_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"switchboard/handler/secrets"
	"switchboard/handler/secrets/reseal"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

var cols = []reseal.Column{{Prop: "Secret", AAD: func(e store.Entity) string { return "t|" + e.PartitionKey + "|" + e.RowKey }}}

func keys(t *testing.T, cur, prev string) *secrets.Keyring {
	t.Helper()
	k, err := secrets.New(cur, prev)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Write re-seals only the sealed column, keeps every other property, and
// refuses to write over a row changed since it was read.
func TestWriteResealsUnderTheETagRead(t *testing.T) {
	ctx := context.Background()
	oldKey, newKey := secrets.GenerateKey(), secrets.GenerateKey()
	sealed, err := keys(t, oldKey, "").Seal("s3cret", "t|p|r")
	if err != nil {
		t.Fatal(err)
	}
	tb := store.NewMemory()
	if _, err := tb.Insert(ctx, store.Entity{PartitionKey: "p", RowKey: "r", Props: map[string]any{"Secret": sealed, "Other": "kept"}}); err != nil {
		t.Fatal(err)
	}
	read, _ := tb.Get(ctx, "p", "r")
	rotated := keys(t, newKey, oldKey)
	if !reseal.Needed(rotated, read, cols) {
		t.Fatal("a value under the previous key does not need re-sealing")
	}
	if _, err := tb.Update(ctx, store.Entity{PartitionKey: "p", RowKey: "r", Props: map[string]any{"Secret": sealed, "Other": "changed"}}, read.ETag); err != nil {
		t.Fatal(err)
	}
	if _, err := reseal.Write(ctx, tb, rotated, read, cols); !switchboard.IsCode(err, switchboard.EPRECONDITION) {
		t.Fatalf("Write of a row changed since it was read = %v, want EPRECONDITION", err)
	}
	read, _ = tb.Get(ctx, "p", "r")
	if _, err := reseal.Write(ctx, tb, rotated, read, cols); err != nil {
		t.Fatal(err)
	}
	after, _ := tb.Get(ctx, "p", "r")
	only := keys(t, newKey, "")
	if got, _, err := only.Open(after.String("Secret"), "t|p|r"); err != nil || got != "s3cret" || after.String("Other") != "changed" {
		t.Fatalf("after Write: secret %q (%v), Other %q; want the secret under the new key and Other kept", got, err, after.String("Other"))
	}
	if reseal.Needed(only, after, cols) {
		t.Error("a re-sealed row still needs re-sealing")
	}
}

// A value the keyring cannot open is an *Unreadable naming the property,
// wrapping the keyring's reason; nothing is written.
func TestRowUnreadable(t *testing.T) {
	sealed, _ := keys(t, secrets.GenerateKey(), "").Seal("s3cret", "t|p|r")
	e := store.Entity{PartitionKey: "p", RowKey: "r", Props: map[string]any{"Secret": sealed}}
	next, changed, err := reseal.Row(keys(t, secrets.GenerateKey(), ""), e, cols)
	var u *reseal.Unreadable
	if !errors.As(err, &u) || u.Prop != "Secret" || !errors.Is(err, secrets.ErrUnknownKey) || changed || next.String("Secret") != sealed {
		t.Fatalf("Row under an unknown key = %v (changed %v); want *Unreadable wrapping ErrUnknownKey, the row as it was", err, changed)
	}
	if strings.Contains(err.Error(), sealed) {
		t.Errorf("the error shows the stored value: %v", err)
	}
}

package settings_test

import (
	"maps"
	"strings"
	"testing"
	"time"

	"switchboard/handler/internal/testenv"
	"switchboard/handler/secrets"
	"switchboard/handler/settings"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

func testKeyring(t *testing.T, cur, prev string) *secrets.Keyring {
	t.Helper()
	k, err := secrets.New(cur, prev)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func storedRow(t *testing.T, tables store.Tables, tenantID string) store.Entity {
	t.Helper()
	tb, err := tables.Table(ctx, settings.TableName)
	if err != nil {
		t.Fatal(err)
	}
	e, err := tb.Get(ctx, tenantID, "settings")
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// assertSealedUnder fails unless both connection strings are stored sealed
// under k's current key and no property shows the plain text.
func assertSealedUnder(t *testing.T, e store.Entity, k *secrets.Keyring) {
	t.Helper()
	for name, v := range e.Props {
		if s, ok := v.(string); ok && (strings.Contains(s, secretKey) || strings.Contains(strings.ToLower(s), "accesskey")) {
			t.Errorf("stored property %s holds the connection string in plain text: %s", name, s)
		}
	}
	for _, p := range []string{"InteractAcsConnectionString", "AssistantAcsConnectionString"} {
		if v := e.String(p); !strings.HasPrefix(v, "sb1:"+k.KeyID()+":") {
			t.Errorf("stored %s = %q, want a value sealed under key %s", p, v, k.KeyID())
		}
	}
}

const bothSecrets = `{"interact":{"acsConnectionString":"%s"},"assistant":{"useOwnAcsInstance":true,"acsConnectionString":"%s"}}`

func patchBoth(t *testing.T, svc *settings.Service, tenantID string) string {
	t.Helper()
	_, etag, err := svc.Patch(ctx, tenantID, []byte(strings.ReplaceAll(bothSecrets, "%s", connString())), "")
	if err != nil {
		t.Fatal(err)
	}
	return etag
}

func TestStoredSecretsAreSealed(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		k := testKeyring(t, secrets.GenerateKey(), "")
		f := newService(t, tables, settings.Options{Secrets: k})
		patchBoth(t, f.svc, tenant)
		assertSealedUnder(t, storedRow(t, tables, tenant), k)
		st, err := f.svc.Lookup(ctx, tenant)
		if err != nil || st.Interact.ACSConnectionString.Reveal() != connString() || st.Assistant.ACSConnectionString.Reveal() != connString() {
			t.Fatalf("Lookup = %v: want both connection strings back", err)
		}
		v, _, err := f.svc.Get(ctx, tenant)
		if err != nil || !v.Interact.ACSConnectionStringSet || v.Interact.ACSEndpoint == nil {
			t.Fatalf("Get = %+v, %v: want the string marked set with its endpoint", v.Interact, err)
		}
	})
}

// A value sealed for one tenant does not open in another tenant's row.
func TestSealedSecretIsBoundToItsTenantAndField(t *testing.T) {
	tables := store.NewMemoryTables()
	k := testKeyring(t, secrets.GenerateKey(), "")
	f := newService(t, tables, settings.Options{Secrets: k})
	patchBoth(t, f.svc, tenant)
	const other = "0b6f5bd2-5d0e-4c42-9b1e-3a7c1f0d2e11"
	row := storedRow(t, tables, tenant)
	row.PartitionKey = other
	row.Props["InteractAcsConnectionString"] = row.Props["AssistantAcsConnectionString"]
	tb, _ := tables.Table(ctx, settings.TableName)
	if _, err := tb.Insert(ctx, row); err != nil {
		t.Fatal(err)
	}
	_, _, err := f.svc.Get(ctx, other)
	if !switchboard.IsCode(err, switchboard.EUNAVAILABLE) || switchboard.ErrorType(err) != "secret-unreadable" {
		t.Fatalf("Get of a row with a copied secret: %v, want EUNAVAILABLE secret-unreadable", err)
	}
}

func TestKeyRotation(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		oldKey, newKey := secrets.GenerateKey(), secrets.GenerateKey()
		before := testKeyring(t, oldKey, "")
		const second = "0b6f5bd2-5d0e-4c42-9b1e-3a7c1f0d2e11"
		f := newService(t, tables, settings.Options{Secrets: before})
		etag := patchBoth(t, f.svc, tenant)
		patchBoth(t, f.svc, second)

		// The new key is current, the old one previous: both rows still open.
		rotated := testKeyring(t, newKey, oldKey)
		g := newService(t, tables, settings.Options{Secrets: rotated})
		for _, id := range []string{tenant, second} {
			st, err := g.svc.Lookup(ctx, id)
			if err != nil || st.Interact.ACSConnectionString.Reveal() != connString() {
				t.Fatalf("Lookup(%s) after rotation = %v: want the connection string", id, err)
			}
		}
		// The next write re-seals under the new key.
		if _, _, err := g.svc.Patch(ctx, second, []byte(`{"interact":{"sessionRecoveryTimeoutSeconds":30}}`), ""); err != nil {
			t.Fatal(err)
		}
		assertSealedUnder(t, storedRow(t, tables, second), rotated)
		assertSealedUnder(t, storedRow(t, tables, tenant), before) // not written yet

		// The housekeeping sweep re-seals the rest and keeps the public ETag.
		rep, err := g.svc.ResealSecrets(ctx, func() bool { return false })
		if err != nil || rep.Resealed != 1 || rep.Rows != 2 || rep.Unreadable != 0 {
			t.Fatalf("ResealSecrets = %+v, %v; want 2 rows, 1 re-sealed", rep, err)
		}
		assertSealedUnder(t, storedRow(t, tables, tenant), rotated)
		if _, got, err := g.svc.Get(ctx, tenant); err != nil || got != etag {
			t.Errorf("ETag after the sweep = %q, %v; want %q: re-sealing changes no setting", got, err, etag)
		}
		if rep, err := g.svc.ResealSecrets(ctx, func() bool { return false }); err != nil || rep.Resealed != 0 {
			t.Errorf("second sweep = %+v, %v; want nothing left to re-seal", rep, err)
		}

		// The old key can now be retired.
		h := newService(t, tables, settings.Options{Secrets: testKeyring(t, newKey, "")})
		for _, id := range []string{tenant, second} {
			st, err := h.svc.Lookup(ctx, id)
			if err != nil || st.Assistant.ACSConnectionString.Reveal() != connString() {
				t.Fatalf("Lookup(%s) without the old key = %v: want the connection string", id, err)
			}
		}
	})
}

// Rows written before secrets were encrypted hold the connection strings in
// plain text: they are read as they are and re-sealed.
func TestRowsFromBeforeEncryption(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		tb, err := tables.Table(ctx, settings.TableName)
		if err != nil {
			t.Fatal(err)
		}
		const second = "0b6f5bd2-5d0e-4c42-9b1e-3a7c1f0d2e11"
		const widgetKey = "1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b"
		for _, id := range []string{tenant, second} {
			// The row as the code before this change wrote it.
			legacy := store.Entity{PartitionKey: id, RowKey: "settings", Props: map[string]any{
				"Settings":                     `{"outbound":{"maxScheduledTasksPerService":7},"interact":{"enabled":true,"sessionRecoveryTimeoutSeconds":20,"authorization":"None"},"assistant":{"useOwnAcsInstance":false},"attendantConsole":{"contactSearchFilter":"","teamVisibility":"AllMembers"},"presenceTracking":{"trackOverGuestAccounts":false}}`,
				"InteractAcsConnectionString":  connString(),
				"AssistantAcsConnectionString": "",
				"WidgetKey":                    widgetKey,
				"Version":                      "0123456789abcdef01234567",
				"UpdatedAt":                    time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
			}}
			if _, err := tb.Insert(ctx, legacy); err != nil {
				t.Fatal(err)
			}
		}
		k := testKeyring(t, secrets.GenerateKey(), "")
		f := newService(t, tables, settings.Options{Secrets: k})
		v, etag, err := f.svc.Get(ctx, tenant)
		if err != nil || !v.Interact.Enabled || !v.Interact.ACSConnectionStringSet || v.Interact.WidgetKey != widgetKey || v.Outbound.MaxScheduledTasksPerService != 7 {
			t.Fatalf("Get of a legacy row = %+v, %v: want it read as stored", v, err)
		}
		if etag != `"0123456789abcdef01234567"` {
			t.Errorf("ETag = %s, want the stored version", etag)
		}
		// Its next write seals it.
		if _, _, err := f.svc.Patch(ctx, second, []byte(`{"outbound":{"maxScheduledTasksPerService":8}}`), ""); err != nil {
			t.Fatal(err)
		}
		if got := storedRow(t, tables, second).String("InteractAcsConnectionString"); !strings.HasPrefix(got, "sb1:"+k.KeyID()+":") {
			t.Errorf("after a write: stored %q, want it sealed", got)
		}
		// The sweep seals the one not written.
		rep, err := f.svc.ResealSecrets(ctx, func() bool { return false })
		if err != nil || rep.Resealed != 1 {
			t.Fatalf("ResealSecrets = %+v, %v; want the legacy row re-sealed", rep, err)
		}
		row := storedRow(t, tables, tenant)
		if got := row.String("InteractAcsConnectionString"); !strings.HasPrefix(got, "sb1:"+k.KeyID()+":") || strings.Contains(got, secretKey) {
			t.Errorf("after the sweep: stored %q, want it sealed", got)
		}
		if row.String("WidgetKey") != widgetKey || row.String("Version") != "0123456789abcdef01234567" {
			t.Errorf("the sweep changed other properties: %v", row.Props)
		}
		if st, err := f.svc.Lookup(ctx, tenant); err != nil || st.Interact.ACSConnectionString.Reveal() != connString() {
			t.Errorf("Lookup after the sweep = %v: want the connection string", err)
		}
	})
}

// A value sealed under a key the deployment no longer has is a clear error
// naming the field and the fix; nothing is written over it, and restoring
// the key brings it back.
func TestUnknownKeyIsAClearErrorAndLosesNothing(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		lostKey := secrets.GenerateKey()
		f := newService(t, tables, settings.Options{Secrets: testKeyring(t, lostKey, "")})
		patchBoth(t, f.svc, tenant)
		if _, _, err := f.svc.Patch(ctx, tenant, []byte(`{"outbound":{"maxScheduledTasksPerService":9}}`), ""); err != nil {
			t.Fatal(err)
		}
		before := storedRow(t, tables, tenant)

		other := testKeyring(t, secrets.GenerateKey(), "")
		g := newService(t, tables, settings.Options{Secrets: other})
		_, _, err := g.svc.Get(ctx, tenant)
		if !switchboard.IsCode(err, switchboard.EUNAVAILABLE) || switchboard.ErrorType(err) != "secret-unreadable" ||
			switchboard.ErrorField(err) != "interact.acsConnectionString" || !strings.Contains(err.Error(), "SECRETS_KEY_PREVIOUS") {
			t.Fatalf("Get = %v; want EUNAVAILABLE secret-unreadable naming interact.acsConnectionString and SECRETS_KEY_PREVIOUS", err)
		}
		if strings.Contains(err.Error(), secretKey) || strings.Contains(err.Error(), before.String("InteractAcsConnectionString")) {
			t.Errorf("the error shows the stored value: %v", err)
		}
		if _, _, err := g.svc.Patch(ctx, tenant, []byte(`{"outbound":{"maxScheduledTasksPerService":10}}`), ""); switchboard.ErrorType(err) != "secret-unreadable" {
			t.Errorf("Patch of another field = %v; want secret-unreadable", err)
		}
		if _, _, err := g.svc.RefreshWidgetKey(ctx, tenant, ""); switchboard.ErrorType(err) != "secret-unreadable" {
			t.Errorf("RefreshWidgetKey = %v; want secret-unreadable", err)
		}
		if _, err := g.svc.CheckACS(ctx, tenant, settings.ACSCheckRequest{}); switchboard.ErrorType(err) != "secret-unreadable" {
			t.Errorf("CheckACS of the stored string = %v; want secret-unreadable", err)
		}
		// What needs no secret keeps working.
		if n, err := g.svc.MaxScheduledTasksPerService(ctx, tenant); err != nil || n != 9 {
			t.Errorf("MaxScheduledTasksPerService = %d, %v; want 9", n, err)
		}
		if rep, err := g.svc.ResealSecrets(ctx, func() bool { return false }); err != nil || rep.Unreadable != 1 || rep.Resealed != 0 {
			t.Errorf("ResealSecrets = %+v, %v; want the row counted unreadable and left", rep, err)
		}
		if after := storedRow(t, tables, tenant); !maps.Equal(after.Props, before.Props) {
			t.Fatalf("the row changed:\nbefore %v\nafter  %v", before.Props, after.Props)
		}

		// The operator restores the key as the previous one: all is back.
		h := newService(t, tables, settings.Options{Secrets: testKeyring(t, secrets.GenerateKey(), lostKey)})
		if st, err := h.svc.Lookup(ctx, tenant); err != nil || st.Interact.ACSConnectionString.Reveal() != connString() || st.Outbound.MaxScheduledTasksPerService != 9 {
			t.Fatalf("Lookup with the key restored = %v; want every setting back", err)
		}

		// Or a tenant admin sets both strings again, under the current key.
		_, _, err = g.svc.Patch(ctx, tenant, []byte(`{"interact":{"acsConnectionString":null}}`), "")
		if switchboard.ErrorType(err) != "secret-unreadable" || switchboard.ErrorField(err) != "assistant.acsConnectionString" {
			t.Errorf("Patch replacing one of two unreadable strings = %v; want secret-unreadable naming the other", err)
		}
		if _, _, err := g.svc.Patch(ctx, tenant, []byte(strings.ReplaceAll(bothSecrets, "%s", connString())), ""); err != nil {
			t.Fatalf("Patch replacing both = %v, want it accepted", err)
		}
		assertSealedUnder(t, storedRow(t, tables, tenant), other)
	})
}

package settings

// The settings row: one per tenant, read through the cache that follows
// storage and written under its ETag (read-modify-write, retried when a
// race is lost).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"switchboard/handler/secrets"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// TableName is the table the settings live in: one row per tenant
// (PartitionKey the tenant id, RowKey "settings").
const TableName = "settings"

const rowKey = "settings"

// maxAttempts bounds the read-modify-write retries of unconditional
// writes that lose a race.
const maxAttempts = 8

// record is one tenant's stored settings.
type record struct {
	settings    Settings
	exists      bool
	storageETag string // Table Storage's ETag: guards the read-modify-write
	version     string // the public ETag's value, new on every write
	updatedAt   time.Time
	// reseal: a secret is stored in plain text (written before secrets were
	// encrypted) or sealed under SECRETS_KEY_PREVIOUS.
	reseal bool
	// unopened holds, by field, why the keyring cannot open a stored
	// secret (sealed under an unknown key, or altered); openErr is the
	// first. Such a row is written only by a change that replaces them.
	unopened map[string]error
	openErr  error
}

// secretField is one tenant secret: its dotted name, its property in the
// row, and where it is in Settings.
type secretField struct {
	field, prop string
	of          func(*Settings) *Secret
}

var secretFields = []secretField{
	{"interact.acsConnectionString", "InteractAcsConnectionString", func(s *Settings) *Secret { return &s.Interact.ACSConnectionString }},
	{"assistant.acsConnectionString", "AssistantAcsConnectionString", func(s *Settings) *Secret { return &s.Assistant.ACSConnectionString }},
}

// secretAAD binds a sealed secret to its tenant and field: a value copied
// into another tenant's row, or into the other field, does not open.
func secretAAD(tenant, field string) string { return "settings|" + tenant + "|" + field }

// ETag returns the record's HTTP ETag (a strong one, quoted).
func (r record) ETag() string {
	if r.version == "" {
		return ""
	}
	return `"` + r.version + `"`
}

func (s *Service) read(ctx context.Context, tenant string) (record, error) {
	const op = "settings.read"
	e, err := s.table.Get(ctx, tenant, rowKey)
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		return record{settings: Defaults()}, nil
	}
	if err != nil {
		return record{}, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	}
	d := toDoc(Defaults())
	if raw := e.String("Settings"); raw != "" {
		if err := json.Unmarshal([]byte(raw), &d); err != nil {
			return record{}, switchboard.Errorf(switchboard.EINTERNAL, op, "the stored settings of tenant %s are unreadable", tenant)
		}
	}
	st := fromDoc(d)
	st.Interact.WidgetKey = e.String("WidgetKey")
	if raw := e.String("AttendantFilterCheck"); raw != "" {
		if err := json.Unmarshal([]byte(raw), &st.AttendantConsole.ContactSearchFilterCheck); err != nil {
			s.o.Log.Warn("settings: stored contact search filter check unreadable", "tenant", tenant)
		}
	}
	rec := record{exists: true, storageETag: e.ETag, version: e.String("Version"), updatedAt: e.Time("UpdatedAt")}
	for _, f := range secretFields {
		plain, reseal, err := s.o.Secrets.Open(e.String(f.prop), secretAAD(tenant, f.field))
		if err != nil {
			if rec.unopened == nil {
				rec.unopened = map[string]error{}
			}
			rec.unopened[f.field] = unreadableSecret(op, tenant, f.field, err)
			if rec.openErr == nil {
				rec.openErr = rec.unopened[f.field]
			}
			continue
		}
		*f.of(&st) = Secret(plain)
		rec.reseal = rec.reseal || reseal
	}
	rec.settings = st
	return rec, nil
}

// unreadableSecret is the error of a stored secret the keyring cannot open.
// Nothing is written over it: restoring the key it was sealed under (as
// SECRETS_KEY_PREVIOUS) brings it back.
func unreadableSecret(op, tenant, field string, err error) error {
	why := "does not authenticate (altered, or copied from another tenant or field)"
	if errors.Is(err, secrets.ErrUnknownKey) {
		why = "was sealed under a key that is neither SECRETS_KEY nor SECRETS_KEY_PREVIOUS"
	}
	return &switchboard.Error{Code: switchboard.EUNAVAILABLE, Op: op, Type: "secret-unreadable", Field: field,
		Message: fmt.Sprintf("the stored %s of tenant %s %s: the deployment's operator restores that key as SECRETS_KEY_PREVIOUS, or a tenant "+
			"admin sets %s again; nothing was changed", field, tenant, why, field)}
}

// write stores next over rec: an insert when rec was not stored, else an
// update that fails with EPRECONDITION when the row changed since rec was
// read (ECONFLICT from a racing insert is turned into EPRECONDITION too).
func (s *Service) write(ctx context.Context, tenant string, rec record, next Settings) (record, error) {
	d := toDoc(next)
	d.Interact.ACSConnectionString, d.Assistant.ACSConnectionString = "", ""
	raw, err := json.Marshal(d)
	if err != nil {
		return record{}, switchboard.Wrap(switchboard.EINTERNAL, "settings.write", err)
	}
	check := ""
	if c := next.AttendantConsole.ContactSearchFilterCheck; c.State != "" {
		b, _ := json.Marshal(c)
		check = string(b)
	}
	out := record{settings: next, exists: true, version: newVersion(), updatedAt: s.o.Now().UTC()}
	e := store.Entity{PartitionKey: tenant, RowKey: rowKey, Props: map[string]any{
		"Settings":             string(raw),
		"WidgetKey":            next.Interact.WidgetKey,
		"AttendantFilterCheck": check,
		"Version":              out.version,
		"UpdatedAt":            out.updatedAt,
	}}
	for _, f := range secretFields {
		// Every write seals under the current key: a value that was plain
		// text or under the previous key is re-sealed here.
		sealed, err := s.o.Secrets.Seal(f.of(&next).Reveal(), secretAAD(tenant, f.field))
		if err != nil {
			return record{}, switchboard.Wrap(switchboard.EINTERNAL, "settings.write", err)
		}
		e.Props[f.prop] = sealed
	}
	if rec.exists {
		out.storageETag, err = s.table.Update(ctx, e, rec.storageETag)
	} else {
		out.storageETag, err = s.table.Insert(ctx, e)
		if switchboard.IsCode(err, switchboard.ECONFLICT) {
			err = switchboard.Errorf(switchboard.EPRECONDITION, "settings.write", "the settings were created concurrently")
		}
	}
	if switchboard.IsCode(err, switchboard.ENOTFOUND) {
		err = switchboard.Errorf(switchboard.EPRECONDITION, "settings.write", "the settings were removed concurrently")
	}
	if err != nil {
		return record{}, err
	}
	s.search.Wrote(tenant, next.AttendantConsole)
	return out, nil
}

func newVersion() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// update runs a read-modify-write of the tenant's settings. With an If-Match
// condition (anything but "" and "*") the read must match it and a lost
// race is EPRECONDITION; without one, a lost race reads again and retries.
// replaces, when not nil, reports whether the change sets or clears a
// secret field: a row with a secret the keyring cannot open is written only
// by a change that replaces every such secret (nothing else is lost).
func (s *Service) update(
	ctx context.Context,
	op,
	tenant,
	ifMatch string,
	replaces func(field string) bool,
	change func(Settings) (Settings, error),
) (record, error) {
	conditional := strings.TrimSpace(ifMatch) != "" && strings.TrimSpace(ifMatch) != "*"
	for attempt := 1; ; attempt++ {
		rec, err := s.read(ctx, tenant)
		if err != nil {
			return record{}, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
		}
		if conditional && !switchboard.IfMatchHolds(ifMatch, rec.ETag()) {
			return record{}, switchboard.Errorf(switchboard.EPRECONDITION, op, "the settings changed since they were read (If-Match %s): read them "+
				"again and reapply the change", clip(strings.TrimSpace(ifMatch), 80))
		}
		for _, f := range secretFields {
			if err := rec.unopened[f.field]; err != nil && (replaces == nil || !replaces(f.field)) {
				return record{}, err
			}
		}
		next, err := change(rec.settings)
		if err != nil {
			return record{}, err
		}
		if next.Interact.WidgetKey == "" {
			next.Interact.WidgetKey = s.o.NewWidgetKey()
		}
		out, err := s.write(ctx, tenant, rec, next)
		if switchboard.IsCode(err, switchboard.EPRECONDITION) {
			if conditional {
				return record{}, switchboard.Errorf(
					switchboard.EPRECONDITION,
					op,
					"the settings were changed concurrently: read them again and reapply the change",
				)
			}
			if attempt < maxAttempts && ctx.Err() == nil {
				continue
			}
		}
		if err != nil {
			return record{}, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
		}
		return out, nil
	}
}

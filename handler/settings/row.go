package settings

// The settings row: one per tenant, read through the cache that follows
// storage and written under its ETag (read-modify-write, retried when a
// race is lost).

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

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
}

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
	st.Interact.ACSConnectionString = Secret(e.String("InteractAcsConnectionString"))
	st.Assistant.ACSConnectionString = Secret(e.String("AssistantAcsConnectionString"))
	st.Interact.WidgetKey = e.String("WidgetKey")
	if raw := e.String("AttendantFilterCheck"); raw != "" {
		if err := json.Unmarshal([]byte(raw), &st.AttendantConsole.ContactSearchFilterCheck); err != nil {
			s.o.Log.Warn("settings: stored contact search filter check unreadable", "tenant", tenant)
		}
	}
	return record{settings: st, exists: true, storageETag: e.ETag, version: e.String("Version"), updatedAt: e.Time("UpdatedAt")}, nil
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
		"Settings":                     string(raw),
		"InteractAcsConnectionString":  next.Interact.ACSConnectionString.Reveal(),
		"AssistantAcsConnectionString": next.Assistant.ACSConnectionString.Reveal(),
		"WidgetKey":                    next.Interact.WidgetKey,
		"AttendantFilterCheck":         check,
		"Version":                      out.version,
		"UpdatedAt":                    out.updatedAt,
	}}
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
func (s *Service) update(ctx context.Context, op, tenant, ifMatch string, change func(Settings) (Settings, error)) (record, error) {
	conditional := strings.TrimSpace(ifMatch) != "" && strings.TrimSpace(ifMatch) != "*"
	for attempt := 1; ; attempt++ {
		rec, err := s.read(ctx, tenant)
		if err != nil {
			return record{}, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
		}
		if conditional && !matchesIfMatch(ifMatch, rec.ETag()) {
			return record{}, switchboard.Errorf(switchboard.EPRECONDITION, op, "the settings changed since they were read (If-Match %s): read them again and reapply the change", clip(strings.TrimSpace(ifMatch), 80))
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
				return record{}, switchboard.Errorf(switchboard.EPRECONDITION, op, "the settings were changed concurrently: read them again and reapply the change")
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

// matchesIfMatch reports whether an If-Match header value (a list of
// ETags, or *) names etag. Quotes are optional: some clients drop them.
func matchesIfMatch(header, etag string) bool {
	if etag == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || t == etag || `"`+t+`"` == etag {
			return true
		}
	}
	return false
}

package settings

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"

	"switchboard/handler/internal/follow"
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

// ACSChecker verifies an ACS connection string; main gives the service
// the ACS adapter's client (*acs.Client).
type ACSChecker interface {
	// Check returns nil when the connection string can issue a token, an
	// error whose code and problem type say why not otherwise.
	Check(ctx context.Context, connString string) error
}

// Options configures a Service.
type Options struct {
	Tables store.Tables
	// Account1UPN and Account2UPN are the deployment's presence accounts
	// (PRESENCE_ACCOUNT1_UPN, PRESENCE_ACCOUNT2_UPN), shown read-only.
	Account1UPN, Account2UPN string
	// ACS checks connection strings. Required.
	ACS ACSChecker
	// Filters checks contact search filters against Graph (nil: every
	// filter is saved as unverified).
	Filters FilterChecker
	// AllowPrivateEndpoints (ALLOW_PRIVATE_ENDPOINTS, local development and
	// tests only) lets ACS connection strings name any https or http
	// endpoint; otherwise a patch may only store an ACS host on port 443.
	AllowPrivateEndpoints bool
	Now                   func() time.Time
	Log                   *slog.Logger
	// NewWidgetKey makes widget keys (nil: random GUIDs).
	NewWidgetKey func() string
}

// Service keeps the tenants' settings.
type Service struct {
	table store.Table
	o     Options

	search *follow.Cache[string, AttendantConsole] // ContactSearch's copies, by tenant
}

// New returns a Service over o.Tables.
func New(ctx context.Context, o Options) (*Service, error) {
	if o.Tables == nil {
		return nil, switchboard.Errorf(switchboard.EINTERNAL, "settings.New", "tables are required")
	}
	t, err := o.Tables.Table(ctx, TableName)
	if err != nil {
		return nil, err
	}
	if o.ACS == nil {
		return nil, switchboard.Errorf(switchboard.EINTERNAL, "settings.New", "an ACS checker is required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.NewWidgetKey == nil {
		o.NewWidgetKey = uuid.NewString
	}
	svc := &Service{table: t, o: o}
	svc.search = follow.New(follow.Options[string, AttendantConsole]{Load: svc.loadSearch, RefreshEvery: searchRefresh, MaxLag: searchMaxLag,
		RefreshFailed: func(tenant string, err error) {
			o.Log.Warn("settings: contact search settings not refreshed", "tenant", tenant, "err", err)
		}})
	return svc, nil
}

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

// Get returns the tenant's settings and their ETag. The first read of a
// tenant stores the defaults with a new widget key.
func (s *Service) Get(ctx context.Context, tenant string) (View, string, error) {
	const op = "settings.Get"
	for attempt := 1; ; attempt++ {
		rec, err := s.read(ctx, tenant)
		if err != nil {
			return View{}, "", err
		}
		if !rec.exists {
			st := rec.settings
			st.Interact.WidgetKey = s.o.NewWidgetKey()
			rec, err = s.write(ctx, tenant, rec, st)
			if switchboard.IsCode(err, switchboard.EPRECONDITION) && attempt < maxAttempts {
				continue // another request stored them first: read those
			}
			if err != nil {
				return View{}, "", switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
			}
		}
		return s.view(rec.settings), rec.ETag(), nil
	}
}

// Patch applies a JSON merge patch to the tenant's settings and returns the
// result and its new ETag. ifMatch is the If-Match header ("" or "*": no
// condition). Returns EINVALID (naming the field) for a patch DecodePatch
// or Validate refuses, in which case nothing is written, and EPRECONDITION
// when ifMatch is not the current ETag, or the settings changed while the
// patch was applied; of concurrent patches with the same ETag exactly one
// wins.
func (s *Service) Patch(ctx context.Context, tenant string, patch []byte, ifMatch string) (View, string, error) {
	const op = "settings.Patch"
	p, err := DecodePatch(patch)
	if err != nil {
		return View{}, "", err
	}
	// A new contact search filter is first run against Graph: refused
	// there, it is refused here; Graph out of reach, it is saved as
	// unverified. The check runs before the read-modify-write so that a
	// slow Graph does not hold it.
	var check FilterCheck
	if f, ok := p.filter(); ok && f != "" {
		if check, err = s.runFilterCheck(ctx, tenant, f); err != nil {
			return View{}, "", err
		}
		if check.State == FilterInvalid {
			return View{}, "", refusal(check)
		}
	}
	rec, err := s.update(ctx, op, tenant, ifMatch, func(cur Settings) (Settings, error) {
		next, err := p.Apply(cur)
		if err != nil {
			return next, err
		}
		if p.Touches(filterField) {
			next.AttendantConsole.ContactSearchFilterCheck = check // none for an empty filter
		}
		return next, s.checkEndpoints(op, p, next)
	})
	if err != nil {
		return View{}, "", err
	}
	s.o.Log.Info("settings changed", "tenant", tenant, "fields", sortedKeys(p.touched), "etag", rec.ETag())
	return s.view(rec.settings), rec.ETag(), nil
}

// checkEndpoints refuses a connection string the patch sets whose endpoint
// the ACS endpoint rules refuse (switchboard.ACSConnectionString.CheckEndpoint).
func (s *Service) checkEndpoints(op string, p *Patch, next Settings) error {
	for field, cs := range map[string]Secret{
		"interact.acsConnectionString":  next.Interact.ACSConnectionString,
		"assistant.acsConnectionString": next.Assistant.ACSConnectionString,
	} {
		if !p.Touches(field) || !cs.IsSet() {
			continue
		}
		parsed, err := switchboard.ParseACSConnectionString(cs.Reveal())
		if err == nil {
			err = parsed.CheckEndpoint(s.o.AllowPrivateEndpoints)
		}
		if err != nil {
			e := switchboard.FieldError(op, field, "%s is not a valid ACS connection string: %s", field, switchboard.ErrorMessage(err))
			e.Type = switchboard.ErrorType(err)
			return e
		}
	}
	return nil
}

// RefreshWidgetKey replaces the tenant's widget key with a new random one
// and returns the settings and their new ETag. ifMatch as for Patch.
func (s *Service) RefreshWidgetKey(ctx context.Context, tenant, ifMatch string) (View, string, error) {
	const op = "settings.RefreshWidgetKey"
	rec, err := s.update(ctx, op, tenant, ifMatch, func(cur Settings) (Settings, error) {
		old := cur.Interact.WidgetKey
		for range 3 {
			if key := s.o.NewWidgetKey(); key != old {
				cur.Interact.WidgetKey = key
				return cur, nil
			}
		}
		return cur, switchboard.Errorf(switchboard.EINTERNAL, op, "the widget key generator repeats itself")
	})
	if err != nil {
		return View{}, "", err
	}
	s.o.Log.Info("widget key refreshed", "tenant", tenant, "etag", rec.ETag())
	return s.view(rec.settings), rec.ETag(), nil
}

// Lookup returns the tenant's settings, or the defaults (without a widget
// key) when none are stored; it never writes. For the other capabilities:
// the poll, the outbound cap.
func (s *Service) Lookup(ctx context.Context, tenant string) (Settings, error) {
	rec, err := s.read(ctx, tenant)
	if err != nil {
		return Settings{}, err
	}
	return rec.settings, nil
}

// TrackOverGuestAccounts returns presenceTracking.trackOverGuestAccounts
// (false when never set). It implements presence.Settings.
func (s *Service) TrackOverGuestAccounts(ctx context.Context, tenant string) (bool, error) {
	st, err := s.Lookup(ctx, tenant)
	return st.PresenceTracking.TrackOverGuestAccounts, err
}

// MaxScheduledTasksPerService returns outbound.maxScheduledTasksPerService
// (20 when never set).
func (s *Service) MaxScheduledTasksPerService(ctx context.Context, tenant string) (int, error) {
	st, err := s.Lookup(ctx, tenant)
	if err != nil {
		return 0, err
	}
	return st.Outbound.MaxScheduledTasksPerService, nil
}

// view renders st. The presence accounts' status belongs to the presence
// capability: the view says not-configured for an account the deployment
// lacks and unknown for the others, and the HTTP layer fills in what
// presence reports.
func (s *Service) view(st Settings) View {
	upns := [2]string{s.o.Account1UPN, s.o.Account2UPN}
	status := [2]AccountStatus{{State: AccountUnknown}, {State: AccountUnknown}}
	for i, upn := range upns {
		if upn == "" {
			status[i] = AccountStatus{State: AccountNotConfigured}
		}
	}
	return render(st, upns, status)
}

// ACS check targets: whose stored connection string to check.
const (
	TargetInteract  = switchboard.ACSTargetInteract
	TargetAssistant = switchboard.ACSTargetAssistant
)

// ACSCheckRequest and ACSCheckResult are the ACS check's question and
// answer.
type (
	ACSCheckRequest = switchboard.ACSCheckRequest
	ACSCheckResult  = switchboard.ACSCheckResult
)

// CheckACS checks an ACS connection string by having ACS issue a token. A
// check that ran returns its result, failed or not; errors are for
// requests that cannot be checked: EINVALID (field connectionString or
// target) for a malformed string, an unknown target, both or a target
// without a stored string.
func (s *Service) CheckACS(ctx context.Context, tenant string, req ACSCheckRequest) (ACSCheckResult, error) {
	const op = "settings.CheckACS"
	cs := strings.TrimSpace(req.ConnectionString)
	target := strings.TrimSpace(req.Target)
	var res ACSCheckResult
	switch {
	case cs != "" && target != "":
		return res, switchboard.FieldError(op, "target", "give either connectionString (to check it before storing it) or target (to check the stored one), not both")
	case cs == "":
		if target == "" {
			target = TargetInteract
		}
		st, err := s.Lookup(ctx, tenant)
		if err != nil {
			return res, err
		}
		switch target {
		case TargetInteract:
			cs = st.Interact.ACSConnectionString.Reveal()
		case TargetAssistant:
			cs = st.Assistant.ACSConnectionString.Reveal()
		default:
			return res, switchboard.FieldError(op, "target", "target must be %s or %s (case-sensitive); got %q", TargetInteract, TargetAssistant, clip(target, 40))
		}
		if cs == "" {
			return res, switchboard.FieldError(op, "target", "no ACS connection string is stored for %s: set %s.acsConnectionString, or send connectionString to check one", target, target)
		}
		res.Target = target
	}
	parsed, err := switchboard.ParseACSConnectionString(cs)
	if err != nil {
		return res, err
	}
	res.Endpoint = parsed.Endpoint
	err = s.o.ACS.Check(ctx, cs)
	switch {
	case err == nil:
		res.OK = true
		res.Message = "ACS issued a VoIP token: the connection string works"
	case errors.Is(err, context.Canceled):
		return res, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	default:
		res.Reason = strings.TrimPrefix(switchboard.ErrorType(err), "acs-")
		if res.Reason == "" {
			res.Reason = "unexpected-response"
		}
		res.Message = switchboard.ErrorMessage(err)
	}
	s.o.Log.Info("acs check", "tenant", tenant, "target", res.Target, "endpoint", res.Endpoint, "ok", res.OK, "reason", res.Reason)
	return res, nil
}

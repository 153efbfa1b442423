package settings

import (
	"context"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"switchboard/handler/internal/follow"
	"switchboard/handler/secrets"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// Options configures a Service.
type Options struct {
	Tables store.Tables
	// Secrets seals the ACS connection strings at rest (required).
	Secrets *secrets.Keyring
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
	if o.Secrets == nil {
		return nil, switchboard.Errorf(switchboard.EINTERNAL, "settings.New", "a secrets keyring is required")
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

// Get returns the tenant's settings and their ETag. The first read of a
// tenant stores the defaults with a new widget key.
func (s *Service) Get(ctx context.Context, tenant string) (View, string, error) {
	const op = "settings.Get"
	for attempt := 1; ; attempt++ {
		rec, err := s.read(ctx, tenant)
		if err != nil {
			return View{}, "", err
		}
		if rec.openErr != nil {
			return View{}, "", rec.openErr
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
	rec, err := s.update(ctx, op, tenant, ifMatch, p.Touches, func(cur Settings) (Settings, error) {
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

// RefreshWidgetKey replaces the tenant's widget key with a new random one
// and returns the settings and their new ETag. ifMatch as for Patch.
func (s *Service) RefreshWidgetKey(ctx context.Context, tenant, ifMatch string) (View, string, error) {
	const op = "settings.RefreshWidgetKey"
	rec, err := s.update(ctx, op, tenant, ifMatch, nil, func(cur Settings) (Settings, error) {
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
// the poll, the outbound cap, Interact. Returns EUNAVAILABLE (type
// secret-unreadable) when a stored secret cannot be opened.
func (s *Service) Lookup(ctx context.Context, tenant string) (Settings, error) {
	rec, err := s.read(ctx, tenant)
	if err != nil {
		return Settings{}, err
	}
	if rec.openErr != nil {
		return Settings{}, rec.openErr
	}
	return rec.settings, nil
}

// lookupPlain returns the settings without their secrets, for the
// capabilities that need none: a secret the keyring cannot open does not
// stop the poll, the outbound cap or the contact search.
func (s *Service) lookupPlain(ctx context.Context, tenant string) (Settings, error) {
	rec, err := s.read(ctx, tenant)
	if err != nil {
		return Settings{}, err
	}
	if rec.openErr != nil {
		s.o.Log.Error("settings: a stored secret cannot be opened", "tenant", tenant, "err", rec.openErr)
	}
	st := rec.settings
	for _, f := range secretFields {
		*f.of(&st) = ""
	}
	return st, nil
}

// TrackOverGuestAccounts returns presenceTracking.trackOverGuestAccounts
// (false when never set). It implements presence.Settings.
func (s *Service) TrackOverGuestAccounts(ctx context.Context, tenant string) (bool, error) {
	st, err := s.lookupPlain(ctx, tenant)
	return st.PresenceTracking.TrackOverGuestAccounts, err
}

// MaxScheduledTasksPerService returns outbound.maxScheduledTasksPerService
// (20 when never set).
func (s *Service) MaxScheduledTasksPerService(ctx context.Context, tenant string) (int, error) {
	st, err := s.lookupPlain(ctx, tenant)
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

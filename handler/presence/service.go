package presence

import (
	"context"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"switchboard/handler/switchboard"
)

// ConsentScopes are the delegated permissions the presence accounts use,
// which a tenant admin grants through the admin-consent URL.
var ConsentScopes = []string{
	"https://graph.microsoft.com/Presence.Read.All",
	"https://graph.microsoft.com/User.Read",
	"https://graph.microsoft.com/User.ReadBasic.All",
}

// ServiceOptions configures a Service.
type ServiceOptions struct {
	Store      *Store
	Graph      Graph
	Settings   Settings // nil: tracking over guest accounts is off everywhere
	Now        func() time.Time
	StaleAfter time.Duration

	// AuthorityHost (https://login.microsoftonline.com/), ClientID (the
	// presence app) and ConsentRedirectURI (optional; one of the app's
	// redirect URIs) make the admin-consent URLs.
	AuthorityHost      string
	ClientID           string
	ConsentRedirectURI string

	Account1UPN, Account2UPN string
	ApplicationConfigured    bool
	// NotificationsConfigured: PRESENCE_NOTIFICATIONS_URL and the
	// certificate are set (section 14).
	NotificationsConfigured bool
}

// Service answers the presence API: tracking status, Test UPN, a user's
// stored presence.
type Service struct{ o ServiceOptions }

// NewService returns a Service.
func NewService(o ServiceOptions) (*Service, error) {
	if o.Store == nil || o.Graph == nil {
		return nil, switchboard.Errorf(switchboard.EINTERNAL, "presence.NewService", "store and graph are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = 120 * time.Second
	}
	return &Service{o: o}, nil
}

// Source states in the tracking view.
const (
	StateOK            = switchboard.PresenceSourceOK
	StateFailing       = switchboard.PresenceSourceFailing
	StateUntested      = switchboard.PresenceSourceUntested
	StateDisabled      = switchboard.PresenceSourceDisabled
	StateNotConfigured = switchboard.PresenceSourceNotConfigured
)

// The presence API's answers are domain vocabulary (the HTTP layer renders
// them).
type (
	Tracking     = switchboard.PresenceTracking
	SourceView   = switchboard.PresenceSourceView
	TestResult   = switchboard.PresenceTestResult
	UserPresence = switchboard.UserPresence
)

// Tracking returns the tenant's presence tracking state.
func (s *Service) Tracking(ctx context.Context, tenant string) (Tracking, error) {
	guest, err := s.trackOverGuestAccounts(ctx, tenant)
	if err != nil {
		return Tracking{}, err
	}
	snap, err := s.o.Store.Status(ctx, tenant)
	if err != nil {
		return Tracking{}, err
	}
	tr := Tracking{
		TrackOverGuestAccounts: guest,
		Sources:                s.views(guest, snap.Sources),
		AdminConsentURL:        s.ConsentURL(tenant, ConsentScopes),
		ApplicationConsentURL:  s.ConsentURL(tenant, []string{"https://graph.microsoft.com/.default"}),
		Shards:                 snap.Shards,
		StaleAfter:             s.o.StaleAfter,
	}
	if tr.Notifications, err = s.notifications(ctx, tenant, guest); err != nil {
		return Tracking{}, err
	}
	if !snap.Figures.StartedAt.IsZero() {
		f := snap.Figures.PresencePollFigures
		tr.LastPoll = &f
	}
	if !snap.ShardFigures.StartedAt.IsZero() {
		f := snap.ShardFigures.PresencePollFigures
		tr.LastShardPoll = &f
	}
	return tr, nil
}

// Accounts returns the two presence accounts with their status in the
// tenant (the settings API shows them read-only).
func (s *Service) Accounts(ctx context.Context, tenant string) ([]SourceView, error) {
	guest, err := s.trackOverGuestAccounts(ctx, tenant)
	if err != nil {
		return nil, err
	}
	snap, err := s.o.Store.Status(ctx, tenant)
	if err != nil {
		return nil, err
	}
	return s.views(guest, snap.Sources)[:2], nil
}

func (s *Service) trackOverGuestAccounts(ctx context.Context, tenant string) (bool, error) {
	if s.o.Settings == nil {
		return false, nil
	}
	guest, err := s.o.Settings.TrackOverGuestAccounts(ctx, tenant)
	if err != nil {
		return false, switchboard.Wrap(switchboard.EUNAVAILABLE, "presence.Tracking", err)
	}
	return guest, nil
}

func (s *Service) views(guest bool, statuses map[switchboard.PresenceSource]SourceStatus) []SourceView {
	var out []SourceView
	for _, src := range switchboard.PresenceSources {
		v := SourceView{Source: src, Account: src.Account(), Status: statuses[src].PresenceSourceStatus}
		v.Status.Source = src
		switch src {
		case switchboard.SourceAccount1:
			v.UPN, v.Configured = s.o.Account1UPN, s.o.Account1UPN != ""
			v.Enabled = v.Configured && guest
		case switchboard.SourceAccount2:
			v.UPN, v.Configured = s.o.Account2UPN, s.o.Account2UPN != ""
			v.Enabled = v.Configured && guest
		case switchboard.SourceApplication:
			v.Configured = s.o.ApplicationConfigured
			v.Enabled = v.Configured
		}
		switch {
		case !v.Configured:
			v.State = StateNotConfigured
		case !v.Enabled:
			v.State = StateDisabled
		case v.Status.Failing():
			v.State = StateFailing
		case !v.Status.LastSuccessAt.IsZero():
			v.State = StateOK
		default:
			v.State = StateUntested
		}
		out = append(out, v)
	}
	return out
}

// ConsentURL returns the admin-consent URL of the tenant for scopes.
func (s *Service) ConsentURL(tenant string, scopes []string) string {
	if s.o.ClientID == "" {
		return ""
	}
	host := s.o.AuthorityHost
	if host == "" {
		host = "https://login.microsoftonline.com/"
	}
	if !strings.HasSuffix(host, "/") {
		host += "/"
	}
	q := []string{
		"client_id=" + url.QueryEscape(s.o.ClientID),
		"scope=" + strings.ReplaceAll(url.QueryEscape(strings.Join(scopes, " ")), "+", "%20"),
	}
	if s.o.ConsentRedirectURI != "" {
		q = append(q, "redirect_uri="+url.QueryEscape(s.o.ConsentRedirectURI))
	}
	return host + url.PathEscape(tenant) + "/v2.0/adminconsent?" + strings.Join(q, "&")
}

// Test resolves upn and reads its presence now through presence account
// 1 or 2 (whether or not the tenant tracks over guest accounts yet: admins
// test before they switch it on). A failure of the account is a result,
// not an error, and is recorded in the account's status; a success clears
// the account's pause. Returns EINVALID for a malformed upn or account,
// or an account the deployment does not have.
func (s *Service) Test(ctx context.Context, tenant, upn string, account int) (TestResult, error) {
	const op = "presence.Test"
	upn = strings.TrimSpace(upn)
	if id, err := uuid.Parse(upn); err == nil {
		// An object id in any form uuid reads (urn:uuid:, braces, 32 hex
		// digits, upper case): Graph knows the user only by the canonical one.
		upn = id.String()
	} else if !validUPN(upn) {
		return TestResult{}, switchboard.FieldError(op, "upn", "upn must be a user principal name (name@domain) or a user object id")
	}
	var src switchboard.PresenceSource
	var configured bool
	switch account {
	case 1:
		src, configured = switchboard.SourceAccount1, s.o.Account1UPN != ""
	case 2:
		src, configured = switchboard.SourceAccount2, s.o.Account2UPN != ""
	default:
		return TestResult{}, switchboard.FieldError(op, "account", "account must be 1 or 2")
	}
	if !configured {
		return TestResult{}, switchboard.FieldError(op, "account", "presence account %d is not configured in this deployment", account)
	}
	res := TestResult{UPN: upn, Account: account, Source: src, Extended: src.Extended()}
	user, err := s.o.Graph.User(ctx, tenant, src, upn)
	if err == nil {
		res.User = &user
		res.ReadAt = s.o.Now()
		var readings []switchboard.PresenceReading
		readings, err = s.o.Graph.Presences(ctx, tenant, src, []string{user.ID})
		if err == nil {
			r := switchboard.PresenceReading{UserID: user.ID, Availability: switchboard.PresenceUnknown, Activity: switchboard.ActivityPresenceUnknown}
			for _, x := range readings {
				if x.UserID == user.ID {
					r = x
				}
			}
			res.Presence, res.OK = &r, true
		}
	}
	snap, serr := s.o.Store.Status(ctx, tenant)
	if serr != nil {
		return TestResult{}, serr
	}
	st := snap.Sources[src]
	st.Source = src
	if err != nil {
		res.Error = switchboard.AsSourceError(src, err)
		if res.Error.Reason == switchboard.SourceUserNotFound {
			// The account could read the directory: it works.
			st = st.succeeded(s.o.Now())
		} else {
			st = st.failed(s.o.Now(), res.Error, 0)
		}
	} else {
		st = st.succeeded(s.o.Now())
	}
	if err := s.o.Store.SaveSourceStatus(ctx, tenant, st); err != nil {
		return TestResult{}, err
	}
	return res, nil
}

func validUPN(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" || domain == "" || len(s) > 256 || strings.ContainsAny(s, " /\\?#\t\r\n") {
		return false
	}
	return true
}

// Reading returns the stored reading of user. Returns ENOTFOUND when the
// user's presence was never read.
func (s *Service) Reading(ctx context.Context, tenant, user string) (UserPresence, error) {
	m, err := s.o.Store.Readings(ctx, tenant, []string{user})
	if err != nil {
		return UserPresence{}, err
	}
	p, ok := m[user]
	if !ok {
		return UserPresence{}, switchboard.Errorf(switchboard.ENOTFOUND, "presence.Reading", "no presence was read for user %s in this tenant (is "+
			"the user a member of a service?)", user)
	}
	now := s.o.Now()
	return UserPresence{Presence: p, Age: p.Age(now), Stale: p.Stale(now, s.o.StaleAfter), StaleAfter: s.o.StaleAfter}, nil
}

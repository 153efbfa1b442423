package httpapi

import (
	"context"
	"net/http"
	"time"

	"switchboard/handler/switchboard"
)

// PresenceService is what the presence routes need.
type PresenceService interface {
	Tracking(ctx context.Context, tenant string) (switchboard.PresenceTracking, error)
	Test(ctx context.Context, tenant, upn string, account int) (switchboard.PresenceTestResult, error)
	Reading(ctx context.Context, tenant, user string) (switchboard.UserPresence, error)
}

// PresenceAPI serves presence tracking status, Test UPN and users'
// stored presence (SPEC sections 3 and 6).
type PresenceAPI struct {
	Service PresenceService
}

// Register adds the presence routes to r.
func (a *PresenceAPI) Register(r *Router) {
	r.Tenant("GET /api/tenants/{t}/presence-tracking", a.tracking)
	r.Tenant("POST /api/tenants/{t}/presence-tracking/test", a.test)
	r.Tenant("GET /api/tenants/{t}/users/{u}/presence", a.userPresence)
}

type sourceErrorJSON struct {
	At      *time.Time `json:"at,omitempty"`
	Reason  string     `json:"reason"`
	Message string     `json:"message"`
	Code    string     `json:"code,omitempty"`
}

type sourceJSON struct {
	Source              string           `json:"source"`
	Account             *int             `json:"account"`
	UPN                 *string          `json:"upn"`
	Configured          bool             `json:"configured"`
	Enabled             bool             `json:"enabled"`
	State               string           `json:"state"`
	InvitedAsGuest      *bool            `json:"invitedAsGuest"`
	PermissionGranted   *bool            `json:"permissionGranted"`
	LastSuccessAt       *time.Time       `json:"lastSuccessAt"`
	LastError           *sourceErrorJSON `json:"lastError"`
	PausedUntil         *time.Time       `json:"pausedUntil"`
	ConsecutiveFailures int              `json:"consecutiveFailures"`
}

type pollJSON struct {
	Kind            string    `json:"kind"`
	StartedAt       time.Time `json:"startedAt"`
	DurationMs      int64     `json:"durationMs"`
	Users           int       `json:"users"`
	Covered         int       `json:"covered"`
	Changed         int       `json:"changed"`
	Calls           int       `json:"calls"`
	Errors          int       `json:"errors"`
	Throttled       int       `json:"throttled"`
	Shards          int       `json:"shards"`
	ShardsConfirmed int       `json:"shardsConfirmed"`
	ShardsLeft      int       `json:"shardsLeft"`
	ShardsFannedOut int       `json:"shardsFannedOut"`
	Sources         []string  `json:"sources"`
	Error           *string   `json:"error"`
}

type trackingJSON struct {
	TrackOverGuestAccounts bool              `json:"trackOverGuestAccounts"`
	Sources                []sourceJSON      `json:"sources"`
	AdminConsentURL        string            `json:"adminConsentUrl"`
	ApplicationConsentURL  string            `json:"applicationConsentUrl"`
	StaleAfterSeconds      int               `json:"staleAfterSeconds"`
	Shards                 int               `json:"shards"`
	LastPoll               *pollJSON         `json:"lastPoll"`
	LastShardPoll          *pollJSON         `json:"lastShardPoll"`
	Notifications          notificationsJSON `json:"notifications"`
}

type subscriptionViewJSON struct {
	Account   int       `json:"account"`
	Users     int       `json:"users"`
	State     string    `json:"state"`
	ExpiresAt time.Time `json:"expiresAt"`
}

type notificationsJSON struct {
	State              string                 `json:"state"`
	Subscriptions      []subscriptionViewJSON `json:"subscriptions"`
	Covered            int                    `json:"covered"`
	LastNotificationAt *time.Time             `json:"lastNotificationAt"`
	LastError          *sourceErrorJSON       `json:"lastError"`
}

func renderNotifications(v switchboard.PresenceNotificationsView) notificationsJSON {
	out := notificationsJSON{State: v.State, Subscriptions: []subscriptionViewJSON{}, Covered: v.Covered, LastNotificationAt: timePtr(v.LastNotificationAt)}
	for _, s := range v.Subscriptions {
		out.Subscriptions = append(out.Subscriptions, subscriptionViewJSON{Account: s.Account, Users: s.Users, State: s.State, ExpiresAt: s.ExpiresAt})
	}
	if v.LastError != "" {
		out.LastError = &sourceErrorJSON{At: timePtr(v.LastErrorAt), Reason: "subscription", Message: v.LastError}
	}
	return out
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func renderSource(v switchboard.PresenceSourceView) sourceJSON {
	st := v.Status
	out := sourceJSON{
		Source: string(v.Source), Configured: v.Configured, Enabled: v.Enabled, State: v.State,
		InvitedAsGuest: st.Invited, PermissionGranted: st.PermissionGranted,
		LastSuccessAt: timePtr(st.LastSuccessAt), PausedUntil: timePtr(st.RetryAt), ConsecutiveFailures: st.ConsecutiveFailures,
	}
	if v.Account != 0 {
		n, upn := v.Account, v.UPN
		out.Account, out.UPN = &n, &upn
	}
	if st.LastReason != "" && !st.LastErrorAt.IsZero() {
		out.LastError = &sourceErrorJSON{At: timePtr(st.LastErrorAt), Reason: string(st.LastReason), Message: st.LastMessage, Code: st.LastCode}
	}
	return out
}

func renderPoll(f *switchboard.PresencePollFigures) *pollJSON {
	if f == nil {
		return nil
	}
	out := &pollJSON{Kind: f.Kind, StartedAt: f.StartedAt, DurationMs: f.Duration.Milliseconds(), Users: f.Users, Covered: f.Covered, Changed: f.Changed,
		Calls: f.Calls, Errors: f.Errors, Throttled: f.Throttled, Shards: f.Shards, ShardsConfirmed: f.ShardsConfirmed,
		ShardsLeft: f.ShardsLeft, ShardsFannedOut: f.ShardsFannedOut, Sources: []string{}}
	for _, s := range f.Sources {
		out.Sources = append(out.Sources, string(s))
	}
	if f.Error != "" {
		e := f.Error
		out.Error = &e
	}
	return out
}

func (a *PresenceAPI) tracking(w http.ResponseWriter, r *http.Request) error {
	tenant, err := TenantID(r)
	if err != nil {
		return err
	}
	tr, err := a.Service.Tracking(r.Context(), tenant)
	if err != nil {
		return err
	}
	out := trackingJSON{
		TrackOverGuestAccounts: tr.TrackOverGuestAccounts,
		Sources:                []sourceJSON{},
		AdminConsentURL:        tr.AdminConsentURL,
		ApplicationConsentURL:  tr.ApplicationConsentURL,
		StaleAfterSeconds:      int(tr.StaleAfter.Seconds()),
		Shards:                 tr.Shards,
		LastPoll:               renderPoll(tr.LastPoll),
		LastShardPoll:          renderPoll(tr.LastShardPoll),
		Notifications:          renderNotifications(tr.Notifications),
	}
	for _, v := range tr.Sources {
		out.Sources = append(out.Sources, renderSource(v))
	}
	return WriteJSON(w, http.StatusOK, out)
}

type testBody struct {
	UPN     string `json:"upn"`
	Account int    `json:"account"`
}

type testUserJSON struct {
	ID                string `json:"id"`
	UserPrincipalName string `json:"userPrincipalName"`
	DisplayName       string `json:"displayName"`
}

type presenceValueJSON struct {
	Availability string `json:"availability"`
	Activity     string `json:"activity"`
	OutOfOffice  bool   `json:"outOfOffice"`
}

type testJSON struct {
	UPN      string             `json:"upn"`
	Account  int                `json:"account"`
	Source   string             `json:"source"`
	OK       bool               `json:"ok"`
	User     *testUserJSON      `json:"user"`
	Presence *presenceValueJSON `json:"presence"`
	Extended bool               `json:"extended"`
	ReadAt   *time.Time         `json:"readAt"`
	Error    *sourceErrorJSON   `json:"error"`
}

func (a *PresenceAPI) test(w http.ResponseWriter, r *http.Request) error {
	tenant, err := TenantID(r)
	if err != nil {
		return err
	}
	var body testBody
	if err := DecodeJSON(r, &body); err != nil {
		return err
	}
	res, err := a.Service.Test(r.Context(), tenant, body.UPN, body.Account)
	if err != nil {
		return err
	}
	out := testJSON{UPN: res.UPN, Account: res.Account, Source: string(res.Source), OK: res.OK, Extended: res.Extended, ReadAt: timePtr(res.ReadAt)}
	if res.User != nil {
		out.User = &testUserJSON{ID: res.User.ID, UserPrincipalName: res.User.UserPrincipalName, DisplayName: res.User.DisplayName}
	}
	if res.Presence != nil {
		out.Presence = &presenceValueJSON{Availability: res.Presence.Availability, Activity: res.Presence.Activity, OutOfOffice: res.Presence.OutOfOffice}
	}
	if res.Error != nil {
		out.Error = &sourceErrorJSON{Reason: string(res.Error.Reason), Message: res.Error.Message, Code: res.Error.Code}
	}
	return WriteJSON(w, http.StatusOK, out)
}

type userPresenceJSON struct {
	UserID            string    `json:"userId"`
	Availability      string    `json:"availability"`
	Activity          string    `json:"activity"`
	OutOfOffice       bool      `json:"outOfOffice"`
	Source            string    `json:"source"`
	Extended          bool      `json:"extended"`
	ChangedAt         time.Time `json:"changedAt"`
	ConfirmedAt       time.Time `json:"confirmedAt"`
	AgeSeconds        int64     `json:"ageSeconds"`
	Stale             bool      `json:"stale"`
	StaleAfterSeconds int       `json:"staleAfterSeconds"`
}

func (a *PresenceAPI) userPresence(w http.ResponseWriter, r *http.Request) error {
	tenant, err := TenantID(r)
	if err != nil {
		return err
	}
	user, err := PathID(r, "u")
	if err != nil {
		return err
	}
	// An Entra object id is a GUID, stored (as services hold their
	// members) in its canonical lower-case form: any case finds it.
	if id, ok := switchboard.NormalizeGUID(user); ok {
		user = id
	}
	p, err := a.Service.Reading(r.Context(), tenant, user)
	if err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, userPresenceJSON{
		UserID: p.UserID, Availability: p.Availability, Activity: p.Activity, OutOfOffice: p.OutOfOffice,
		Source: p.Source, Extended: p.Extended, ChangedAt: p.ChangedAt, ConfirmedAt: p.ConfirmedAt,
		AgeSeconds: int64(p.Age.Seconds()), Stale: p.Stale, StaleAfterSeconds: int(p.StaleAfter.Seconds()),
	})
}

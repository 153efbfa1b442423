package httpapi

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"

	"switchboard/handler/switchboard"
)

// SettingsService is what the settings routes need (package settings).
type SettingsService interface {
	// Get returns the tenant's settings (the defaults when none are
	// stored) and their ETag. Returns EUNAVAILABLE when storage fails.
	Get(ctx context.Context, tenant string) (switchboard.SettingsView, string, error)
	// Patch applies a JSON merge patch. Returns EINVALID naming the field,
	// EPRECONDITION when ifMatch (a list of ETags) matches none.
	Patch(ctx context.Context, tenant string, patch []byte, ifMatch string) (switchboard.SettingsView, string, error)
	// RefreshWidgetKey replaces the widget key; errors as Patch.
	RefreshWidgetKey(ctx context.Context, tenant, ifMatch string) (switchboard.SettingsView, string, error)
	// CheckACS checks an ACS connection string: a check that ran returns
	// its result, ok or not. Returns EINVALID for a request that cannot
	// be checked.
	CheckACS(ctx context.Context, tenant string, req switchboard.ACSCheckRequest) (switchboard.ACSCheckResult, error)
	// CheckFilter checks a contact search filter against Graph without
	// saving it, or the stored one ("") recording the outcome: a check
	// that ran returns it, whatever it is. Returns EINVALID (field filter)
	// for a malformed filter, or none given and none stored.
	CheckFilter(ctx context.Context, tenant, filter string) (switchboard.FilterCheck, error)
}

// PresenceAccounts reports the deployment's presence accounts' status in a
// tenant (the presence capability).
type PresenceAccounts interface {
	// AccountStatus returns the status of presence account 1 and 2.
	AccountStatus(ctx context.Context, tenantID string) ([2]switchboard.AccountStatus, error)
}

// SettingsAPI serves a tenant's settings (SPEC sections 5 and 6). The
// answers combine the settings with the presence accounts' status.
type SettingsAPI struct {
	Service SettingsService
	// Accounts reports the presence accounts' status; nil, or failing,
	// shows it as unknown.
	Accounts PresenceAccounts

	log *slog.Logger
}

// Register adds the settings routes to r.
func (a *SettingsAPI) Register(r *Router) {
	a.log = r.log
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	r.Tenant("GET /api/tenants/{t}/settings", a.get)
	r.Tenant("PATCH /api/tenants/{t}/settings", a.patch)
	r.Tenant("POST /api/tenants/{t}/settings/widget-key/refresh", a.refreshWidgetKey)
	r.Tenant("POST /api/tenants/{t}/settings/acs-check", a.checkACS)
	r.Tenant("POST /api/tenants/{t}/settings/attendant-filter-check", a.checkFilter)
}

type filterCheckBody struct {
	Filter string `json:"filter"`
}

// checkFilter runs {"filter": "..."} against Graph without saving it, or
// with an empty body (or {}) the stored filter, recording the outcome; it
// answers 200 with the outcome: ok, invalid (Graph's message) or
// unverified.
func (a *SettingsAPI) checkFilter(w http.ResponseWriter, r *http.Request) error {
	tenant, err := TenantID(r)
	if err != nil {
		return err
	}
	var body filterCheckBody
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(raw)) > 0 {
		r.Body = io.NopCloser(bytes.NewReader(raw))
		if err := DecodeJSON(r, &body); err != nil {
			return err
		}
	}
	res, err := a.Service.CheckFilter(r.Context(), tenant, strings.TrimSpace(body.Filter))
	if err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, res)
}

// get answers the settings with their ETag; If-None-Match with the current
// ETag gets 304.
func (a *SettingsAPI) get(w http.ResponseWriter, r *http.Request) error {
	tenant, err := TenantID(r)
	if err != nil {
		return err
	}
	view, etag, err := a.Service.Get(r.Context(), tenant)
	if err != nil {
		return err
	}
	a.addAccountStatus(r.Context(), tenant, &view)
	w.Header().Set("ETag", etag)
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagListHas(inm, etag) {
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	return WriteJSON(w, http.StatusOK, view)
}

// addAccountStatus shows in view what the presence capability reports of
// the presence accounts the deployment has; a failure to read it leaves
// their status unknown, and the settings are answered all the same.
func (a *SettingsAPI) addAccountStatus(ctx context.Context, tenant string, view *switchboard.SettingsView) {
	if a.Accounts == nil {
		return
	}
	status, err := a.Accounts.AccountStatus(ctx, tenant)
	if err != nil {
		a.log.Warn("settings: presence account status unavailable", "tenant", tenant, "err", err)
		return
	}
	pt := &view.PresenceTracking
	if pt.Account1UPN != nil {
		pt.Account1Status = switchboard.NewAccountStatusView(status[0])
	}
	if pt.Account2UPN != nil {
		pt.Account2Status = switchboard.NewAccountStatusView(status[1])
	}
}

func etagListHas(list, etag string) bool {
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || t == etag || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// patch applies a JSON merge patch (RFC 7396): application/merge-patch+json
// or application/json, If-Match optional.
func (a *SettingsAPI) patch(w http.ResponseWriter, r *http.Request) error {
	tenant, err := TenantID(r)
	if err != nil {
		return err
	}
	body, err := readMergePatch(r)
	if err != nil {
		return err
	}
	view, etag, err := a.Service.Patch(r.Context(), tenant, body, ifMatchAll(r))
	if err != nil {
		return err
	}
	a.addAccountStatus(r.Context(), tenant, &view)
	w.Header().Set("ETag", etag)
	return WriteJSON(w, http.StatusOK, view)
}

// readMergePatch returns the body of a JSON merge patch request, after
// checking its Content-Type.
func readMergePatch(r *http.Request) ([]byte, error) {
	if err := mergePatchContentType(r.Header.Get("Content-Type")); err != nil {
		return nil, err
	}
	return io.ReadAll(r.Body) // a body past MaxBodyBytes is the router's 400
}

func mergePatchContentType(ct string) error {
	if ct == "" {
		return nil // taken as JSON, as the other routes do
	}
	mt, _, err := mime.ParseMediaType(ct)
	switch {
	case err != nil:
		return &switchboard.Error{Code: switchboard.EINVALID, Op: "http", Message: "malformed Content-Type"}
	case mt == "application/merge-patch+json" || mt == "application/json":
		return nil
	case mt == "application/json-patch+json":
		return &switchboard.Error{Code: switchboard.EINVALID, Op: "http", Message: "JSON Patch (RFC 6902) is not supported: send a JSON merge " +
			"patch (RFC 7396) as application/merge-patch+json or application/json"}
	}
	return &switchboard.Error{Code: switchboard.EINVALID, Op: "http", Message: "Content-Type " + mt + " is not supported: send a JSON merge patch " +
		"as application/merge-patch+json or application/json"}
}

// ifMatchAll returns the If-Match condition, all its header lines
// joined: settings and outbound tasks take a list of ETags.
func ifMatchAll(r *http.Request) string {
	return strings.Join(r.Header.Values("If-Match"), ",")
}

// refreshWidgetKey replaces the widget key; the body is ignored, If-Match
// optional.
func (a *SettingsAPI) refreshWidgetKey(w http.ResponseWriter, r *http.Request) error {
	tenant, err := TenantID(r)
	if err != nil {
		return err
	}
	view, etag, err := a.Service.RefreshWidgetKey(r.Context(), tenant, ifMatchAll(r))
	if err != nil {
		return err
	}
	a.addAccountStatus(r.Context(), tenant, &view)
	w.Header().Set("ETag", etag)
	return WriteJSON(w, http.StatusOK, view)
}

// checkACS checks {"connectionString": "..."} (not stored), or the stored
// string of {"target": "interact" | "assistant"}; an empty body checks
// interact's. A check that ran answers 200 with its result, ok or not.
func (a *SettingsAPI) checkACS(w http.ResponseWriter, r *http.Request) error {
	tenant, err := TenantID(r)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	var req switchboard.ACSCheckRequest
	if len(bytes.TrimSpace(body)) > 0 {
		r.Body = io.NopCloser(bytes.NewReader(body))
		if err := DecodeJSON(r, &req); err != nil {
			return err
		}
	}
	res, err := a.Service.CheckACS(r.Context(), tenant, req)
	if err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, res)
}

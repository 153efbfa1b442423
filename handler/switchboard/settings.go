package switchboard

import "time"

// The settings API's answers (SPEC sections 5 and 6). Package settings
// produces them; the HTTP layer adds the presence accounts' status, which
// the presence capability reports, so that neither capability imports the
// other.

// SettingsView is the settings as the API shows them: every setting, the widget
// key, the deployment's presence accounts with their status in the tenant,
// and for each ACS connection string only whether one is stored and the
// endpoint it names, never the string itself.
type SettingsView struct {
	Outbound         OutboundSettingsView         `json:"outbound"`
	Interact         InteractSettingsView         `json:"interact"`
	Assistant        AssistantSettingsView        `json:"assistant"`
	AttendantConsole AttendantConsoleSettingsView `json:"attendantConsole"`
	PresenceTracking PresenceTrackingSettingsView `json:"presenceTracking"`
}

// OutboundSettingsView is outbound.*.
type OutboundSettingsView struct {
	MaxScheduledTasksPerService int `json:"maxScheduledTasksPerService"`
}

// InteractSettingsView is interact.*.
type InteractSettingsView struct {
	Enabled                       bool    `json:"enabled"`
	ACSConnectionStringSet        bool    `json:"acsConnectionStringSet"`
	ACSEndpoint                   *string `json:"acsEndpoint"`
	O365UserID                    *string `json:"o365UserId"`
	WidgetKey                     string  `json:"widgetKey"`
	SessionRecoveryTimeoutSeconds int     `json:"sessionRecoveryTimeoutSeconds"`
	Authorization                 string  `json:"authorization"`
}

// AssistantSettingsView is assistant.*.
type AssistantSettingsView struct {
	UseOwnACSInstance      bool    `json:"useOwnAcsInstance"`
	ACSConnectionStringSet bool    `json:"acsConnectionStringSet"`
	ACSEndpoint            *string `json:"acsEndpoint"`
}

// AttendantConsoleSettingsView is attendantConsole.*.
type AttendantConsoleSettingsView struct {
	ContactSearchFilter string `json:"contactSearchFilter"`
	TeamVisibility      string `json:"teamVisibility"`
	// ContactSearchFilterCheck is null without a filter (or for one saved
	// before filters were checked).
	ContactSearchFilterCheck *FilterCheck `json:"contactSearchFilterCheck"`
}

// States of a contact search filter check.
const (
	FilterOK         = "ok"         // Graph accepted the filter
	FilterUnverified = "unverified" // Graph could not be asked (unreachable, 5xx, 429): saved unchecked
	FilterInvalid    = "invalid"    // Graph refused it (a PATCH refuses such a filter)
)

// Reasons of an invalid filter check.
const (
	FilterReasonInvalid           = "filter-invalid"
	FilterReasonPermissionMissing = "permission-missing"
)

// FilterCheck is the outcome of checking a contact search filter against
// Microsoft Graph.
type FilterCheck struct {
	State   string    `json:"state"`
	At      time.Time `json:"at"`
	Reason  string    `json:"reason,omitempty"`
	Message string    `json:"message,omitempty"`
}

// PresenceTrackingSettingsView is presenceTracking.*.
type PresenceTrackingSettingsView struct {
	TrackOverGuestAccounts bool              `json:"trackOverGuestAccounts"`
	Account1UPN            *string           `json:"account1Upn"`
	Account1Status         AccountStatusView `json:"account1Status"`
	Account2UPN            *string           `json:"account2Upn"`
	Account2Status         AccountStatusView `json:"account2Status"`
}

// AccountStatusView is one presence account's status in the tenant.
type AccountStatusView struct {
	State             string     `json:"state"`
	InvitedAsGuest    *bool      `json:"invitedAsGuest"`
	PermissionGranted *bool      `json:"permissionGranted"`
	LastSuccessAt     *time.Time `json:"lastSuccessAt"`
	LastErrorAt       *time.Time `json:"lastErrorAt"`
	LastErrorReason   *string    `json:"lastErrorReason"`
	LastError         *string    `json:"lastError"`
}

// AccountState says how a presence account fares in a tenant.
const (
	AccountOK            = "ok"             // the last attempt worked
	AccountFailing       = "failing"        // the last attempt failed
	AccountUntested      = "untested"       // enabled, never tried yet
	AccountDisabled      = "disabled"       // the tenant does not track over guest accounts
	AccountNotConfigured = "not-configured" // the deployment has no such account
	AccountUnknown       = "unknown"        // the status could not be read
)

// AccountStatus is the status of one presence account in one tenant.
type AccountStatus struct {
	State             string
	InvitedAsGuest    *bool // nil while unknown
	PermissionGranted *bool // nil while unknown
	LastSuccessAt     time.Time
	LastErrorAt       time.Time
	LastErrorReason   string // a stable reason (not-invited, permission-not-granted, mfa-required, ...)
	LastError         string // for people; never holds a secret
}

// ACS check targets: whose stored connection string to check.
const (
	ACSTargetInteract  = "interact"
	ACSTargetAssistant = "assistant"
)

// ACSCheckRequest asks to check either ConnectionString (not stored), or
// the stored connection string of Target (interact when both are empty).
type ACSCheckRequest struct {
	ConnectionString string `json:"connectionString"`
	Target           string `json:"target"`
}

// ACSCheckResult is the outcome of a check. Reason is empty when OK, else
// one of unreachable, access-key-refused, insufficient-permissions,
// endpoint-not-acs, endpoint-not-allowed, unexpected-response.
type ACSCheckResult struct {
	OK       bool   `json:"ok"`
	Target   string `json:"target,omitempty"`
	Endpoint string `json:"endpoint"`
	Reason   string `json:"reason,omitempty"`
	Message  string `json:"message"`
}

// NewAccountStatusView renders st for the API: an empty state is unknown,
// zero times are null.
func NewAccountStatusView(st AccountStatus) AccountStatusView {
	v := AccountStatusView{
		State:             st.State,
		InvitedAsGuest:    st.InvitedAsGuest,
		PermissionGranted: st.PermissionGranted,
		LastErrorReason:   optionalString(st.LastErrorReason),
		LastError:         optionalString(st.LastError),
	}
	if v.State == "" {
		v.State = AccountUnknown
	}
	if !st.LastSuccessAt.IsZero() {
		t := st.LastSuccessAt.UTC()
		v.LastSuccessAt = &t
	}
	if !st.LastErrorAt.IsZero() {
		t := st.LastErrorAt.UTC()
		v.LastErrorAt = &t
	}
	return v
}

func optionalString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

package settings

import (
	"time"

	"switchboard/handler/acs"
)

// View is the settings as the API shows them: every setting, the widget
// key, the deployment's presence accounts with their status in the tenant,
// and for each ACS connection string only whether one is stored and the
// endpoint it names, never the string itself.
type View struct {
	Outbound         OutboundView         `json:"outbound"`
	Interact         InteractView         `json:"interact"`
	Assistant        AssistantView        `json:"assistant"`
	AttendantConsole AttendantConsoleView `json:"attendantConsole"`
	PresenceTracking PresenceTrackingView `json:"presenceTracking"`
}

// OutboundView is outbound.*.
type OutboundView struct {
	MaxScheduledTasksPerService int `json:"maxScheduledTasksPerService"`
}

// InteractView is interact.*.
type InteractView struct {
	Enabled                       bool    `json:"enabled"`
	ACSConnectionStringSet        bool    `json:"acsConnectionStringSet"`
	ACSEndpoint                   *string `json:"acsEndpoint"`
	O365UserID                    *string `json:"o365UserId"`
	WidgetKey                     string  `json:"widgetKey"`
	SessionRecoveryTimeoutSeconds int     `json:"sessionRecoveryTimeoutSeconds"`
	Authorization                 string  `json:"authorization"`
}

// AssistantView is assistant.*.
type AssistantView struct {
	UseOwnACSInstance      bool    `json:"useOwnAcsInstance"`
	ACSConnectionStringSet bool    `json:"acsConnectionStringSet"`
	ACSEndpoint            *string `json:"acsEndpoint"`
}

// AttendantConsoleView is attendantConsole.*.
type AttendantConsoleView struct {
	ContactSearchFilter string `json:"contactSearchFilter"`
	TeamVisibility      string `json:"teamVisibility"`
	// ContactSearchFilterCheck is null without a filter (or for one saved
	// before filters were checked).
	ContactSearchFilterCheck *FilterCheck `json:"contactSearchFilterCheck"`
}

// PresenceTrackingView is presenceTracking.*.
type PresenceTrackingView struct {
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

func render(s Settings, upns [2]string, status [2]AccountStatus) View {
	var check *FilterCheck
	if c := s.AttendantConsole.ContactSearchFilterCheck; c.State != "" && s.AttendantConsole.ContactSearchFilter != "" {
		check = &c
	}
	return View{
		Outbound: OutboundView{MaxScheduledTasksPerService: s.Outbound.MaxScheduledTasksPerService},
		Interact: InteractView{
			Enabled:                       s.Interact.Enabled,
			ACSConnectionStringSet:        s.Interact.ACSConnectionString.IsSet(),
			ACSEndpoint:                   endpointOf(s.Interact.ACSConnectionString),
			O365UserID:                    optional(s.Interact.O365UserID),
			WidgetKey:                     s.Interact.WidgetKey,
			SessionRecoveryTimeoutSeconds: s.Interact.SessionRecoveryTimeoutSeconds,
			Authorization:                 s.Interact.Authorization,
		},
		Assistant: AssistantView{
			UseOwnACSInstance:      s.Assistant.UseOwnACSInstance,
			ACSConnectionStringSet: s.Assistant.ACSConnectionString.IsSet(),
			ACSEndpoint:            endpointOf(s.Assistant.ACSConnectionString),
		},
		AttendantConsole: AttendantConsoleView{
			ContactSearchFilter:      s.AttendantConsole.ContactSearchFilter,
			TeamVisibility:           s.AttendantConsole.TeamVisibility,
			ContactSearchFilterCheck: check,
		},
		PresenceTracking: PresenceTrackingView{
			TrackOverGuestAccounts: s.PresenceTracking.TrackOverGuestAccounts,
			Account1UPN:            optional(upns[0]),
			Account1Status:         renderStatus(status[0]),
			Account2UPN:            optional(upns[1]),
			Account2Status:         renderStatus(status[1]),
		},
	}
}

func renderStatus(st AccountStatus) AccountStatusView {
	v := AccountStatusView{
		State:             st.State,
		InvitedAsGuest:    st.InvitedAsGuest,
		PermissionGranted: st.PermissionGranted,
		LastErrorReason:   optional(st.LastErrorReason),
		LastError:         optional(st.LastError),
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

func endpointOf(cs Secret) *string {
	if !cs.IsSet() {
		return nil
	}
	parsed, err := acs.ParseConnectionString(cs.Reveal())
	if err != nil {
		return nil
	}
	return &parsed.Endpoint
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

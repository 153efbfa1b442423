package settings

import "switchboard/handler/switchboard"

// The API's views of the settings are domain vocabulary (the HTTP layer
// completes them with the presence accounts' status).
type (
	View                 = switchboard.SettingsView
	OutboundView         = switchboard.OutboundSettingsView
	InteractView         = switchboard.InteractSettingsView
	AssistantView        = switchboard.AssistantSettingsView
	AttendantConsoleView = switchboard.AttendantConsoleSettingsView
	PresenceTrackingView = switchboard.PresenceTrackingSettingsView
	AccountStatusView    = switchboard.AccountStatusView
)

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
			Account1Status:         switchboard.NewAccountStatusView(status[0]),
			Account2UPN:            optional(upns[1]),
			Account2Status:         switchboard.NewAccountStatusView(status[1]),
		},
	}
}

func endpointOf(cs Secret) *string {
	if !cs.IsSet() {
		return nil
	}
	parsed, err := switchboard.ParseACSConnectionString(cs.Reveal())
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

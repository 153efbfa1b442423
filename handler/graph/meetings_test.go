package graph_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"switchboard/handler/dev/graphsim"
	"switchboard/handler/graph"
	"switchboard/handler/switchboard"
)

// Meetings are created through the presence app against the simulator,
// and each thing a tenant admin must fix has its own problem type.
func TestCreateMeeting(t *testing.T) {
	sim, err := graphsim.Start(graphsim.Options{Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	sim.AddApp(appID, appSecret, true)
	const noConsent = "22222222-0000-4000-8000-000000000002"
	sim.AddTenant(tenantID, graphsim.TenantOptions{AppConsent: true, MeetingsConsent: true})
	sim.AddTenant(noConsent, graphsim.TenantOptions{AppConsent: true})
	users := sim.AddUsers(tenantID, "contoso.example", 2)
	other := sim.AddUsers(noConsent, "fabrikam.example", 1)
	sim.GrantMeetingPolicy(tenantID, users[0].ID, true)
	sim.GrantMeetingPolicy(noConsent, other[0].ID, true)
	c, err := graph.New(graph.Options{BaseURL: sim.GraphURL(), AuthorityHost: sim.AuthorityURL(), ClientID: appID, ClientSecret: appSecret,
		HTTPClient: sim.HTTPClient(), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	m, err := c.CreateMeeting(context.Background(), tenantID, users[0].ID, "Interact: Ada", start, time.Hour)
	if err != nil {
		t.Fatalf("CreateMeeting: %v", err)
	}
	if m.ID == "" || !strings.HasPrefix(m.JoinURL, "https://teams.microsoft.com/l/meetup-join/") {
		t.Errorf("meeting %+v lacks an id or join URL", m)
	}
	if got := sim.Meetings(tenantID)[users[0].ID]; got != 1 {
		t.Errorf("simulator saw %d meetings for the organizer, want 1", got)
	}
	cases := []struct {
		name, tenant, organizer string
		code, typ, says, field  string
	}{
		{"no application access policy", tenantID, users[1].ID, switchboard.EFORBIDDEN, graph.TypeMeetingPolicyMissing, "Grant-CsApplicationAccessPolicy", "interact.o365UserId"},
		{"user not found", tenantID, "33333333-0000-4000-8000-000000000003", switchboard.ENOTFOUND, graph.TypeMeetingUserNotFound, "not a user of this tenant", "interact.o365UserId"},
		{"permission not granted", noConsent, other[0].ID, switchboard.EFORBIDDEN, graph.TypeMeetingPermissionMissing, "OnlineMeetings.ReadWrite.All", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.CreateMeeting(context.Background(), tc.tenant, tc.organizer, "x", start, time.Hour)
			if switchboard.ErrorCode(err) != tc.code || switchboard.ErrorType(err) != tc.typ || switchboard.ErrorField(err) != tc.field {
				t.Fatalf("err = %v (code %q type %q field %q), want %q %q %q", err, switchboard.ErrorCode(err), switchboard.ErrorType(err), switchboard.ErrorField(err), tc.code, tc.typ, tc.field)
			}
			if !strings.Contains(switchboard.ErrorMessage(err), tc.says) {
				t.Errorf("message %q does not say %q", switchboard.ErrorMessage(err), tc.says)
			}
		})
	}
}

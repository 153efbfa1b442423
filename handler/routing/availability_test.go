package routing

import (
	"testing"

	sb "switchboard/handler/switchboard"
)

// ServicesAvailability gives each member the verdict a route would, and
// changes nothing: no hold, no round-robin move.
func TestServicesAvailability(t *testing.T) {
	f := newFixture(t, nil)
	us := users(1, 4)
	f.service("support", DistributionInput{Order: ptr(OrderRoundRobin)}, us[0], us[1], us[2])
	f.service("sales", DistributionInput{DeliverWhileBusy: ptr(true)}, us[2], us[3])
	f.available(us[0], us[1])
	f.presence.Set(us[2], sb.Busy, sb.ActivityInAMeeting)
	f.presence.Set(us[3], sb.Busy, sb.ActivityInACall)
	f.route(f.engine, "support", sb.RouteRequest{ConversationID: "c1", Reserve: true}) // holds us[0]

	got, err := f.engine.ServicesAvailability(ctx, tenant)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ServiceID != "sales" || got[1].ServiceID != "support" || got[1].Name == "" {
		t.Fatalf("services %+v, want sales and support", got)
	}
	want := map[string]map[string]string{ // service → user → reason ("" eligible)
		"support": {us[0]: sb.ReasonInConversation, us[1]: "", us[2]: sb.ReasonBusyNotDelivered},
		"sales":   {us[2]: "", us[3]: sb.ReasonInACall},
	}
	for _, s := range got {
		if len(s.Members) != len(want[s.ServiceID]) {
			t.Errorf("%s: %d members, want %d", s.ServiceID, len(s.Members), len(want[s.ServiceID]))
		}
		for _, m := range s.Members {
			w := want[s.ServiceID][m.UserID]
			if m.Eligible != (w == "") || m.Reason != w || m.Presence == nil {
				t.Errorf("%s/%s: eligible %v reason %q presence %v; want reason %q", s.ServiceID, m.UserID, m.Eligible, m.Reason, m.Presence, w)
			}
		}
	}
	// The round robin did not move: the next route still starts after us[0].
	d := f.route(f.engine, "support", sb.RouteRequest{ConversationID: "c2"})
	if len(d.Agents) != 1 || d.Agents[0].UserID != us[1] {
		t.Errorf("next route chose %+v, want %s", d.Agents, us[1])
	}
}

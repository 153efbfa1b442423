package distributione2e

import (
	"net/http"
	"slices"
	"testing"
	"time"
)

// A route API reservation (holdSeconds) that simply runs out frees its
// agent: the conversation another instance queued meanwhile is offered
// to that agent within 2 s of the hold's end (a Distributor due time), not
// at the next housekeeping tick (the timers do not run here at all).
func TestRouteHoldRunsOutEndToEnd(t *testing.T) {
	h := start(t, 1, 2)
	a := h.users[0]
	h.service("own", []string{a}, map[string]any{"ringSeconds": 30})
	h.poll()

	var route struct {
		Agents []struct {
			UserID        string    `json:"userId"`
			HoldExpiresAt time.Time `json:"holdExpiresAt"`
		} `json:"agents"`
	}
	status, _, raw := h.envs[0].Do(t, "POST", "/api/tenants/"+tenant+"/services/own/route",
		map[string]any{"conversationId": "own-queue-1", "reserve": true, "holdSeconds": 5})
	if status != http.StatusOK {
		t.Fatalf("route: %d %s", status, raw)
	}
	decode(t, raw, &route)
	if len(route.Agents) != 1 || route.Agents[0].UserID != a {
		t.Fatalf("route reserved %+v, want %s", route.Agents, a)
	}
	expires := route.Agents[0].HoldExpiresAt

	var c conversation
	status, _, raw = h.envs[1].Do(t, "POST", "/api/tenants/"+tenant+"/services/own/queue", map[string]any{"conversationId": "after-hold"})
	if status != http.StatusAccepted {
		t.Fatalf("enqueue: %d %s", status, raw)
	}
	decode(t, raw, &c)
	if c.State != "Queued" {
		t.Fatalf("enqueued while the agent is reserved: %s, want Queued", c.State)
	}
	if r := h.reason("own", a); r != "InConversation" {
		t.Errorf("reserved agent's reason %q, want InConversation", r)
	}
	offered := h.wait("after-hold offered when the reservation ends", 10*time.Second, func() bool {
		return slices.Equal(h.get("after-hold").ringing(), []string{a})
	})
	if offered.Before(expires.Add(-200 * time.Millisecond)) {
		t.Fatalf("offered at %v, before the reservation ended (%v)", offered, expires)
	}
	within2s(t, "the offer after the reservation ran out", offered, expires)
}

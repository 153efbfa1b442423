package e2e_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"switchboard/handler/dev/acstest"
	"switchboard/handler/dev/graphsim"
	"switchboard/handler/internal/e2e"
)

// sessionEnv is the handler behind the local runner on Azurite with the
// Graph simulator (presence, meetings) and a fake ACS, a service of two
// Available agents, and Interact enabled with a 5 s recovery time.
type sessionEnv struct {
	t      *testing.T
	env    *e2e.Env
	acs    *acstest.Server
	sim    *graphsim.Sim
	agents []string
	key    string
}

type sessionReply struct {
	SessionID   string `json:"sessionId"`
	State       string `json:"state"`
	ResumeToken string `json:"resumeToken"`
	Position    *int   `json:"position"`
	Agent       *struct {
		UserID string `json:"userId"`
	} `json:"agent"`
	SuspendedParty *string    `json:"suspendedParty"`
	SuspendedUntil *time.Time `json:"suspendedUntil"`
	Outcome        string     `json:"outcome"`
	ACS            *struct {
		UserID string `json:"userId"`
		Token  string `json:"token"`
	} `json:"acs"`
	Meeting *struct {
		JoinURL string `json:"joinUrl"`
	} `json:"meeting"`
}

func startSessions(t *testing.T) *sessionEnv {
	t.Helper()
	tn := e2e.NewTenant(t, e2e.TenantOptions{Sim: graphsim.Options{Seed: 23}, ID: interactTenant,
		App: "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4f", Secret: "e2e-interact-secret",
		Consent: graphsim.TenantOptions{MeetingsConsent: true}, Users: 2, Domain: "contoso.example", Available: true})
	sim := tn.Sim
	s := &sessionEnv{t: t, sim: sim, acs: acstest.NewServer(t), agents: tn.UserIDs()}
	organizer := sim.AddUsers(interactTenant, "contoso.example", 1)[0].ID
	sim.GrantMeetingPolicy(interactTenant, organizer, true)
	s.env = tn.Start(t, e2e.Options{Env: map[string]string{"SSL_CERT_FILE": tn.TrustAlso(t, s.acs.CertificatePEM())}})
	members := []map[string]any{{"userId": s.agents[0]}, {"userId": s.agents[1]}}
	if status, _, raw := s.env.Do(t, "PUT", "/api/tenants/"+interactTenant+"/services/support", map[string]any{
		"name": "Support", "members": members, "distribution": map[string]any{"ringSeconds": 60, "rona": map[string]any{"enabled": false}},
	}); status != http.StatusCreated {
		t.Fatalf("PUT service: %d %s", status, raw)
	}
	s.env.Invoke(t, "PresencePoll")
	status, _, raw := s.env.Do(t, "PATCH", "/api/tenants/"+interactTenant+"/settings", map[string]any{"interact": map[string]any{
		"enabled": true, "acsConnectionString": s.acs.ConnectionString(), "o365UserId": organizer, "sessionRecoveryTimeoutSeconds": 5,
	}}, "Content-Type", "application/merge-patch+json")
	if status != http.StatusOK {
		t.Fatalf("PATCH settings: %d %s", status, raw)
	}
	var st struct {
		Interact struct {
			WidgetKey string `json:"widgetKey"`
		} `json:"interact"`
	}
	_ = json.Unmarshal(raw, &st)
	s.key = st.Interact.WidgetKey
	return s
}

func (s *sessionEnv) create() sessionReply {
	s.t.Helper()
	return s.createFor("serviceId", "support")
}

// createFor starts a session for a service (field serviceId) or, direct,
// for one agent (field userId).
func (s *sessionEnv) createFor(field, id string) sessionReply {
	s.t.Helper()
	status, _, raw := s.env.Do(s.t, "POST", "/api/interact/"+interactTenant+"/sessions", map[string]any{field: id, "customer": map[string]any{"displayName": "Ada"}}, "X-Widget-Key", s.key)
	if status != http.StatusCreated {
		s.t.Fatalf("create: %d %s", status, raw)
	}
	var r sessionReply
	_ = json.Unmarshal(raw, &r)
	return r
}

func (s *sessionEnv) customer(method string, sess sessionReply, action string) (int, sessionReply) {
	s.t.Helper()
	p := "/api/interact/" + interactTenant + "/sessions/" + sess.SessionID
	if action != "" {
		p += "/" + action
	}
	status, _, raw := s.env.Do(s.t, method, p, nil, "X-Widget-Key", s.key, "X-Resume-Token", sess.ResumeToken)
	var r sessionReply
	_ = json.Unmarshal(raw, &r)
	return status, r
}

func (s *sessionEnv) tenantCall(method, path string, body any, want int) []byte {
	s.t.Helper()
	status, _, raw := s.env.Do(s.t, method, "/api/tenants/"+interactTenant+path, body)
	if status != want {
		s.t.Fatalf("%s %s: %d %s, want %d", method, path, status, raw, want)
	}
	return raw
}

// ringing returns the agents a conversation rings for.
func (s *sessionEnv) ringing(conv string) []string {
	s.t.Helper()
	var c struct {
		Offers []struct {
			UserID, State string
		} `json:"offers"`
	}
	_ = json.Unmarshal(s.tenantCall("GET", "/conversations/"+conv, nil, 200), &c)
	var out []string
	for _, o := range c.Offers {
		if o.State == "Ringing" {
			out = append(out, o.UserID)
		}
	}
	return out
}

func (s *sessionEnv) waitFor(what string, within time.Duration, cond func() bool) time.Time {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Now()
}

// offeredToOne waits (5 s) for conv to ring exactly one agent, and returns
// that agent.
func (s *sessionEnv) offeredToOne(what, conv string) string {
	s.t.Helper()
	var agent string
	s.waitFor(what, 5*time.Second, func() bool {
		r := s.ringing(conv)
		if len(r) == 1 {
			agent = r[0]
		}
		return len(r) == 1
	})
	return agent
}

// waitState waits for the customer's view of sess to be in state, and
// returns when it was seen.
func (s *sessionEnv) waitState(what string, within time.Duration, sess sessionReply, state string) time.Time {
	s.t.Helper()
	return s.waitFor(what, within, func() bool {
		_, r := s.customer("GET", sess, "")
		return r.State == state
	})
}

// A service session through the whole path: offered, accepted, Connected;
// the customer leaves and comes back within the recovery time (same agent,
// same meeting, new token for the same ACS identity); leaves for good:
// Ended within 2 s of the recovery time's end, the agent released.
func TestInteractServiceSessionEndToEnd(t *testing.T) {
	s := startSessions(t)
	sess := s.create()
	conv := "interact:" + sess.SessionID
	agent := s.offeredToOne("offered", conv)
	s.tenantCall("POST", "/conversations/"+conv+"/accept", map[string]any{"userId": agent}, 200)
	_, got := s.customer("GET", sess, "")
	if got.State != "Connected" || got.Agent == nil || got.Agent.UserID != agent {
		t.Fatalf("after accept: %+v", got)
	}
	s.customer("POST", sess, "leave")
	time.Sleep(2 * time.Second)
	status, back := s.customer("POST", sess, "rejoin")
	if status != 200 || back.State != "Connected" || back.Agent.UserID != agent || back.Meeting.JoinURL != sess.Meeting.JoinURL ||
		back.ACS.UserID != sess.ACS.UserID || back.ACS.Token == sess.ACS.Token {
		t.Fatalf("rejoin: %d %+v", status, back)
	}
	_, left := s.customer("POST", sess, "leave")
	due := *left.SuspendedUntil
	ended := s.waitState("Ended", 10*time.Second, sess, "Ended")
	if late := ended.Sub(due); late > 2*time.Second {
		t.Errorf("ended %s after the recovery time, want within 2 s", late)
	}
	var a struct {
		Conversation *struct{} `json:"conversation"`
	}
	_ = json.Unmarshal(s.tenantCall("GET", "/agents/"+agent, nil, 200), &a)
	if a.Conversation != nil {
		t.Errorf("agent %s still holds the conversation", agent)
	}
}

// The agent leaves and does not come back: the conversation is back in the
// queue at its original place (ahead of a later one), offered to the other
// agent, and the customer's session id and resume token still work.
func TestInteractAgentLeavesEndToEnd(t *testing.T) {
	s := startSessions(t)
	first := s.create()
	firstConv := "interact:" + first.SessionID
	x := s.offeredToOne("first offered", firstConv)
	s.tenantCall("POST", "/conversations/"+firstConv+"/accept", map[string]any{"userId": x}, 200)
	second := s.create()
	secondConv := "interact:" + second.SessionID
	y := s.agents[0]
	if y == x {
		y = s.agents[1]
	}
	s.waitFor("second offered to the other agent", 5*time.Second, func() bool { return slices.Equal(s.ringing(secondConv), []string{y}) })

	s.tenantCall("POST", "/interact/sessions/"+first.SessionID+"/agent-left", nil, 200)
	s.waitState("first back in the queue", 10*time.Second, first, "Waiting")
	var q struct {
		Conversations []struct {
			ConversationID string `json:"conversationId"`
		} `json:"conversations"`
	}
	_ = json.Unmarshal(s.tenantCall("GET", "/services/support/queue", nil, 200), &q)
	if len(q.Conversations) < 2 || q.Conversations[0].ConversationID != firstConv {
		t.Errorf("queue %+v, want the first session's conversation at the head", q.Conversations)
	}
	// The other agent declines the second: the first, ahead of it, goes to
	// that agent, and not to the one who left.
	s.tenantCall("POST", "/conversations/"+secondConv+"/decline", map[string]any{"userId": y}, 200)
	s.waitFor("first offered to the other agent", 5*time.Second, func() bool { return slices.Equal(s.ringing(firstConv), []string{y}) })
	s.tenantCall("POST", "/conversations/"+firstConv+"/accept", map[string]any{"userId": y}, 200)
	status, r := s.customer("POST", first, "rejoin")
	if status != 200 || r.State != "Connected" || r.Agent == nil || r.Agent.UserID != y || r.Meeting.JoinURL != first.Meeting.JoinURL {
		t.Errorf("the customer after the new agent accepted: %d %+v", status, r)
	}
}

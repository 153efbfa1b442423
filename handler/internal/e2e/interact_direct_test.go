package e2e_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"
)

// directConversation is what the conversation routes show of a direct
// session's conversation.
type directConversation struct {
	ServiceID    string `json:"serviceId"`
	DirectUserID string `json:"directUserId"`
	State        string `json:"state"`
	Outcome      string `json:"outcome"`
}

func (s *sessionEnv) conversation(id string) directConversation {
	s.t.Helper()
	var c directConversation
	_ = json.Unmarshal(s.tenantCall("GET", "/conversations/"+id, nil, http.StatusOK), &c)
	return c
}

// agentHolds reports whether the agent holds a conversation or an offer.
func (s *sessionEnv) agentHolds(user string) bool {
	s.t.Helper()
	var a struct {
		Conversation *struct{} `json:"conversation"`
		Offer        *struct{} `json:"offer"`
	}
	_ = json.Unmarshal(s.tenantCall("GET", "/agents/"+user, nil, http.StatusOK), &a)
	return a.Conversation != nil || a.Offer != nil
}

// endsAtRecoveryEnd waits for the session a party left (left is the reply
// to the leave) to end, and checks it ended within 2 s of the recovery
// time's end with the outcome given.
func (s *sessionEnv) endsAtRecoveryEnd(sess, left sessionReply, outcome string) {
	s.t.Helper()
	if left.SuspendedUntil == nil {
		s.t.Fatalf("left: %+v, want suspendedUntil", left)
	}
	due := *left.SuspendedUntil
	var last sessionReply
	ended := s.waitFor("Ended", 10*time.Second, func() bool {
		_, last = s.customer("GET", sess, "")
		return last.State == "Ended"
	})
	if late := ended.Sub(due); late > 2*time.Second || late < -2*time.Second {
		s.t.Errorf("ended %s after the recovery time, want within 2 s", late)
	}
	if last.Outcome != outcome {
		s.t.Errorf("outcome %q, want %q", last.Outcome, outcome)
	}
}

// offeredTo waits until the conversation rings for exactly that agent.
func (s *sessionEnv) offeredTo(conv, agent string) {
	s.t.Helper()
	s.waitFor(conv+" offered to "+agent, 5*time.Second, func() bool { return slices.Equal(s.ringing(conv), []string{agent}) })
}

// A direct session (userId) through the whole path: offered to that agent
// only, a decline ends it (Rejected: there is no other agent); the next
// one is accepted, Connected; the customer leaves and comes back within
// the recovery time (same agent, same meeting, new token for the same ACS
// identity); leaves for good: Ended within 2 s of the recovery time's end,
// the agent released.
func TestInteractDirectSessionEndToEnd(t *testing.T) {
	s := startSessions(t)
	agent := s.agents[0]

	// Presence is followed for services' members only: anyone else is
	// refused before an identity and a meeting are made.
	const stranger = "0f3e2d1c-0000-4000-8000-0000000000ee"
	status, _, raw := s.env.Do(t, "POST", "/api/interact/"+interactTenant+"/sessions", map[string]any{"userId": stranger}, "X-Widget-Key", s.key)
	var problem struct {
		Field string `json:"field"`
	}
	if _ = json.Unmarshal(raw, &problem); status != http.StatusBadRequest || problem.Field != "userId" {
		t.Errorf("a direct session for a user in no service: %d %s, want 400 naming userId", status, raw)
	}

	first := s.createFor("userId", agent)
	firstConv := "interact:" + first.SessionID
	if first.State != "Waiting" {
		t.Fatalf("created: %+v, want Waiting", first)
	}
	s.offeredTo(firstConv, agent)
	if c := s.conversation(firstConv); c.DirectUserID != agent || c.ServiceID != "" {
		t.Errorf("conversation %+v, want direct to %s with no service", c, agent)
	}
	s.tenantCall("POST", "/conversations/"+firstConv+"/decline", map[string]any{"userId": agent}, http.StatusOK)
	if _, r := s.customer("GET", first, ""); r.State != "Ended" || r.Outcome != "Rejected" {
		t.Errorf("after the agent declined: %s (%s), want Ended (Rejected)", r.State, r.Outcome)
	}

	sess := s.createFor("userId", agent)
	conv := "interact:" + sess.SessionID
	s.offeredTo(conv, agent)
	s.tenantCall("POST", "/conversations/"+conv+"/accept", map[string]any{"userId": agent}, http.StatusOK)
	if _, got := s.customer("GET", sess, ""); got.State != "Connected" || got.Agent == nil || got.Agent.UserID != agent {
		t.Fatalf("after accept: %+v", got)
	}
	s.customer("POST", sess, "leave")
	time.Sleep(2 * time.Second)
	status, back := s.customer("POST", sess, "rejoin")
	if status != http.StatusOK || back.State != "Connected" || back.Agent == nil || back.Agent.UserID != agent ||
		back.Meeting == nil || back.Meeting.JoinURL != sess.Meeting.JoinURL ||
		back.ACS == nil || back.ACS.UserID != sess.ACS.UserID || back.ACS.Token == sess.ACS.Token {
		t.Fatalf("rejoin: %d %+v", status, back)
	}
	_, left := s.customer("POST", sess, "leave")
	s.endsAtRecoveryEnd(sess, left, "customerLeft")
	if c := s.conversation(conv); c.State != "Ended" {
		t.Errorf("conversation %s, want Ended", c.State)
	}
	if s.agentHolds(agent) {
		t.Errorf("agent %s still holds the conversation", agent)
	}
	if status, _ := s.customer("POST", sess, "rejoin"); status != http.StatusGone {
		t.Errorf("rejoin after the recovery time: %d, want 410", status)
	}
}

// The agent of a direct session leaves: back within the recovery time the
// session continues (same agent, same meeting); gone for good it ends
// (agentLeft: a direct session has no queue to go back to), within 2 s of
// the recovery time's end, and the agent is released: a second direct
// session, which waited for the busy agent, is offered to it then.
func TestInteractDirectAgentLeavesEndToEnd(t *testing.T) {
	s := startSessions(t)
	agent := s.agents[1]
	sess := s.createFor("userId", agent)
	conv := "interact:" + sess.SessionID
	s.offeredTo(conv, agent)
	s.tenantCall("POST", "/conversations/"+conv+"/accept", map[string]any{"userId": agent}, http.StatusOK)
	next := s.createFor("userId", agent)
	nextConv := "interact:" + next.SessionID
	if _, r := s.customer("GET", next, ""); r.State != "Waiting" || r.Position == nil || *r.Position != 1 {
		t.Errorf("a direct session for the busy agent: %+v, want Waiting at position 1", r)
	}
	if c := s.conversation(nextConv); c.State != "Queued" {
		t.Errorf("its conversation %s while the agent is busy, want Queued", c.State)
	}

	s.tenantCall("POST", "/interact/sessions/"+sess.SessionID+"/agent-left", nil, http.StatusOK)
	if _, r := s.customer("GET", sess, ""); r.State != "Suspended" || r.SuspendedParty == nil || *r.SuspendedParty != "agent" {
		t.Fatalf("agent left: %+v, want Suspended by the agent", r)
	}
	time.Sleep(2 * time.Second)
	s.tenantCall("POST", "/interact/sessions/"+sess.SessionID+"/agent-rejoined", nil, http.StatusOK)
	if _, r := s.customer("GET", sess, ""); r.State != "Connected" || r.Agent == nil || r.Agent.UserID != agent ||
		r.Meeting == nil || r.Meeting.JoinURL != sess.Meeting.JoinURL {
		t.Fatalf("agent back within the time: %+v, want Connected with the same agent and meeting", r)
	}
	if c := s.conversation(conv); c.State != "Connected" {
		t.Errorf("conversation %s after the agent came back, want Connected", c.State)
	}

	var left sessionReply
	_ = json.Unmarshal(s.tenantCall("POST", "/interact/sessions/"+sess.SessionID+"/agent-left", nil, http.StatusOK), &left)
	s.endsAtRecoveryEnd(sess, left, "agentLeft")
	if c := s.conversation(conv); c.State != "Ended" {
		t.Errorf("conversation %s, want Ended (not back in a queue)", c.State)
	}
	s.offeredTo(nextConv, agent)
}

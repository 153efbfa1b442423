package e2e_test

import (
	"testing"
	"time"
)

// The agent of direct sessions signs out of Teams while one session's
// offer rings and another waits for it: the poll that reads it Offline
// ends the waiting session at once (Rejected: the agent is not signed in),
// not at the next housekeeping tick (the timers do not run here) nor at
// the wait limit; the ringing one rings out at its time.
func TestInteractDirectAgentSignsOutEndToEnd(t *testing.T) {
	s := startSessions(t)
	agent := s.agents[0]
	first := s.createFor("userId", agent)
	firstConv := "interact:" + first.SessionID
	s.offeredTo(firstConv, agent)
	next := s.createFor("userId", agent)
	if _, r := s.customer("GET", next, ""); r.State != "Waiting" {
		t.Fatalf("a direct session for the agent with an offer ringing: %+v, want Waiting", r)
	}

	s.sim.SetPresence(interactTenant, agent, "Offline", "Offline", false)
	polled := time.Now()
	s.env.Invoke(t, "PresencePoll")
	ended := s.waitFor("the waiting session ends after the Offline reading", 5*time.Second, func() bool {
		_, r := s.customer("GET", next, "")
		return r.State == "Ended"
	})
	if took := ended.Sub(polled); took > 2*time.Second {
		t.Errorf("the waiting session ended %s after the poll, want within 2 s", took)
	}
	if _, r := s.customer("GET", next, ""); r.Outcome != "Rejected" {
		t.Errorf("outcome %q, want Rejected", r.Outcome)
	}
	if c := s.conversation("interact:" + next.SessionID); c.State != "Rejected" {
		t.Errorf("its conversation %s, want Rejected", c.State)
	}
	if c := s.conversation(firstConv); c.State != "Offered" {
		t.Errorf("the ringing session's conversation %s, want still Offered (it rings out at its time)", c.State)
	}
}

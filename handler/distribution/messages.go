package distribution

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"switchboard/handler/switchboard"
)

// Message kinds on the distribution queue.
const (
	kindOfferLapse       = "offerLapse"
	kindWaitTimeout      = "waitTimeout"
	kindRonaEnd          = "ronaEnd"
	kindAfterCallWorkEnd = "afterCallWorkEnd"
	kindHoldEnd          = "holdEnd"
)

// message is a due time. Ref names what it is about, so that a message
// for something that has moved on changes nothing: the offer round
// (offeredAt), the wait (queuedAt), the RONA or after-call work (its end),
// the route API hold (its end; UserIDs are the agents it holds).
type message struct {
	Kind           string    `json:"kind"`
	TenantID       string    `json:"tenantId"`
	ConversationID string    `json:"conversationId,omitempty"`
	UserID         string    `json:"userId,omitempty"`
	UserIDs        []string  `json:"userIds,omitempty"`
	Ref            time.Time `json:"ref"`
	Due            time.Time `json:"due"`
}

func lapseMessage(c Conversation, offeredAt, expires time.Time) switchboard.Message {
	return encode(message{Kind: kindOfferLapse, TenantID: c.TenantID, ConversationID: c.ID, Ref: offeredAt, Due: expires})
}

func timeoutMessage(c Conversation) switchboard.Message {
	return encode(message{Kind: kindWaitTimeout, TenantID: c.TenantID, ConversationID: c.ID, Ref: c.QueuedAt, Due: c.Deadline})
}

func agentMessage(kind, tenant, user string, until time.Time) switchboard.Message {
	return encode(message{Kind: kind, TenantID: tenant, UserID: user, Ref: until, Due: until})
}

func encode(m message) switchboard.Message {
	b, _ := json.Marshal(m)
	subject := m.ConversationID
	if subject == "" {
		subject = m.UserID
	}
	return switchboard.Message{Body: b, ScheduledAt: m.Due, MessageID: fmt.Sprintf("%s.%s.%s.%d", m.Kind, m.TenantID, subject, m.Ref.UnixMilli())}
}

// sendMessage schedules a due time's message. A failed send is logged:
// housekeeping acts on what it would have done, within a tick.
func (s *Service) sendMessage(ctx context.Context, m switchboard.Message) {
	if s.o.Queue == nil {
		return
	}
	if _, err := s.o.Queue.Send(ctx, s.o.QueueName, m); err != nil {
		s.o.Log.Warn("distribution: due-time message not sent; housekeeping acts on it", "messageId", m.MessageID, "err", err)
	}
}

// Outcome says what Handle did with a message.
type Outcome struct {
	Action string // acted, noop, early, dropped
	Detail string
}

func (o Outcome) String() string {
	if o.Detail == "" {
		return o.Action
	}
	return o.Action + ": " + o.Detail
}

// Handle processes a Distributor message. A malformed message is dropped
// (nil error: retrying cannot help); one for something that has moved on
// (an offer already accepted, a conversation that ended, a RONA reset
// already) changes nothing, so a redelivered or duplicated message is
// harmless. An error means storage failed: the message is retried.
func (s *Service) Handle(ctx context.Context, body []byte) (Outcome, error) {
	var m message
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Outcome{Action: "dropped", Detail: fmt.Sprintf("malformed message (%v): %.120q", err, body)}, nil
	}
	if _, ok := switchboard.NormalizeGUID(m.TenantID); !ok || m.Ref.IsZero() {
		return Outcome{Action: "dropped", Detail: fmt.Sprintf("message without a tenant or reference: %.200q", body)}, nil
	}
	switch m.Kind {
	case kindOfferLapse, kindWaitTimeout:
		if !switchboard.ValidID(m.ConversationID) {
			return Outcome{Action: "dropped", Detail: "message without a valid conversationId"}, nil
		}
	case kindRonaEnd, kindAfterCallWorkEnd:
		if _, ok := switchboard.NormalizeGUID(m.UserID); !ok {
			return Outcome{Action: "dropped", Detail: "message without a valid userId"}, nil
		}
	case kindHoldEnd:
		if !switchboard.ValidID(m.ConversationID) || len(m.UserIDs) == 0 || len(m.UserIDs) > maxHoldEndUsers {
			return Outcome{Action: "dropped", Detail: "message without a valid conversationId or its agents"}, nil
		}
		for i, u := range m.UserIDs {
			id, ok := switchboard.NormalizeGUID(u)
			if !ok {
				return Outcome{Action: "dropped", Detail: "message with an invalid userId"}, nil
			}
			m.UserIDs[i] = id
		}
	default:
		return Outcome{Action: "dropped", Detail: fmt.Sprintf("unknown kind %q", m.Kind)}, nil
	}
	if early := m.Due.Sub(s.now()); early > time.Second {
		// Delivered before its time (a clock step, or sent unscheduled):
		// wait for it again.
		s.sendMessage(ctx, encode(m))
		return Outcome{Action: "early", Detail: "rescheduled for " + m.Due.Format(time.RFC3339Nano)}, nil
	}
	switch m.Kind {
	case kindOfferLapse:
		return s.lapse(ctx, m.TenantID, m.ConversationID, m.Ref)
	case kindWaitTimeout:
		return s.timeout(ctx, m.TenantID, m.ConversationID, m.Ref)
	case kindRonaEnd:
		return s.agentHoldEnd(ctx, m.TenantID, m.UserID, switchboard.HoldRona, m.Ref)
	case kindHoldEnd:
		return s.holdEnd(ctx, m)
	default:
		return s.agentHoldEnd(ctx, m.TenantID, m.UserID, switchboard.HoldAfterCallWork, m.Ref)
	}
}

// lapse ends the ringing offers of one offer round (offeredAt; zero: any
// round) whose ring time is up.
func (s *Service) lapse(ctx context.Context, tenant, conv string, offeredAt time.Time) (Outcome, error) {
	n := 0
	_, err := s.mutate(ctx, tenant, conv, func(c *Conversation, fx *effects) (bool, error) {
		n = 0
		now := s.now()
		svc, err := s.serviceFor(ctx, c)
		if err != nil && !switchboard.IsCode(err, switchboard.ENOTFOUND) {
			return false, err
		}
		for i, o := range c.Offers {
			if o.State != OfferRinging || !offeredAt.IsZero() && !o.OfferedAt.Equal(offeredAt) || o.ExpiresAt.After(now.Add(time.Second)) {
				continue
			}
			if err := s.endOffer(ctx, c, svc, o.UserID, false, fx); err != nil {
				return false, err
			}
			c.Offers[i].State = OfferLapsed
			c.Record(now, EventOfferLapsed, o.UserID, "")
			s.offerEnded(c, now, o.UserID, false, fx)
			n++
		}
		return n > 0, nil
	})
	switch {
	case switchboard.IsCode(err, switchboard.ENOTFOUND):
		return Outcome{Action: "noop", Detail: "no such conversation"}, nil
	case err != nil:
		return Outcome{}, err
	case n == 0:
		return Outcome{Action: "noop", Detail: "no offer of that round rings"}, nil
	}
	return Outcome{Action: "acted", Detail: fmt.Sprintf("%d offers of %s lapsed", n, conv)}, nil
}

// timeout applies onTimeout to a conversation that waited maxWaitSeconds
// in the queue it is in (queuedAt names the wait: a forwarded
// conversation waits anew).
func (s *Service) timeout(ctx context.Context, tenant, conv string, queuedAt time.Time) (Outcome, error) {
	acted := false
	c, err := s.mutate(ctx, tenant, conv, func(c *Conversation, fx *effects) (bool, error) {
		acted = false
		if !c.Waiting() || !c.QueuedAt.Equal(queuedAt) {
			return false, nil
		}
		svc, err := s.serviceFor(ctx, c)
		if switchboard.IsCode(err, switchboard.ENOTFOUND) {
			now := s.now()
			endRinging(c, now, "the service no longer exists", fx)
			c.EndAs(now, StateTimedOut, EventTimedOut, "the service no longer exists")
			acted = true
			return true, nil
		}
		if err != nil {
			return false, err
		}
		next, err := s.overflow(ctx, *c, svc, svc.Distribution.Queue.OnTimeout, "onTimeout", true, fx)
		if err != nil {
			return false, err
		}
		*c = next
		acted = true
		return true, nil
	})
	switch {
	case switchboard.IsCode(err, switchboard.ENOTFOUND):
		return Outcome{Action: "noop", Detail: "no such conversation"}, nil
	case err != nil:
		return Outcome{}, err
	case !acted:
		return Outcome{Action: "noop", Detail: "the conversation is " + c.State + " (or waits anew)"}, nil
	}
	return Outcome{Action: "acted", Detail: conv + " timed out: " + c.State}, nil
}

// agentHoldEnd ends an agent's RONA or after-call work at its time (with
// its event, routing's) and distributes the agent's services.
func (s *Service) agentHoldEnd(ctx context.Context, tenant, user, kind string, until time.Time) (Outcome, error) {
	user, _ = switchboard.NormalizeGUID(user)
	ended, err := s.o.Agents.EndAgentHold(ctx, tenant, user, kind, until, switchboard.HoldEndTime)
	if err != nil {
		return Outcome{}, err
	}
	if !ended {
		return Outcome{Action: "noop", Detail: "ended already"}, nil
	}
	if err := s.Distribute(ctx, tenant, nil, []string{user}); err != nil {
		return Outcome{Action: "acted", Detail: "distribution failed: " + err.Error()}, nil
	}
	return Outcome{Action: "acted", Detail: kind + " of " + user + " ended"}, nil
}

// maxHoldEndUsers bounds the agents of one holdEnd message (a route
// reserves at most a broadcast's worth).
const maxHoldEndUsers = 100

// HoldExpires is routing's Options.Expiring: a route API reservation of
// users for conversation ends by itself at expires, and nothing else would
// tell distribution that the agents are free. A due-time message at
// expires gives them their services' next items then (within the queue's
// delivery time, on whichever instance takes it). It is sent in the
// background: the route's reply does not wait for the queue. A lost send
// leaves the agents to the next event or housekeeping tick.
func (s *Service) HoldExpires(tenant, conversationID string, users []string, expires time.Time) {
	if s.o.Queue == nil || len(users) == 0 || expires.IsZero() {
		return
	}
	m := holdEndMessage(tenant, conversationID, users, expires)
	s.background(func(ctx context.Context) { s.sendMessage(ctx, m) })
}

func holdEndMessage(tenant, conv string, users []string, expires time.Time) switchboard.Message {
	expires = expires.UTC()
	return encode(message{Kind: kindHoldEnd, TenantID: tenant, ConversationID: conv, UserIDs: slices.Clone(users), Ref: expires, Due: expires})
}

// holdEnd distributes the services of the agents a route API hold (Ref
// its end) let go by running out. An agent that holds something else now
// (released early and given more work, or held again) is not free, and
// the rest changes nothing: a redelivered message runs one more pass, that
// finds nothing new to give. An agent still held by this hold (delivered
// a little early) has the message come back at its time.
func (s *Service) holdEnd(ctx context.Context, m message) (Outcome, error) {
	var free, busy []string
	for _, u := range m.UserIDs {
		h, err := s.o.Agents.Agent(ctx, m.TenantID, u)
		if err != nil {
			return Outcome{}, err
		}
		switch {
		case h.ConversationID == "":
			free = append(free, u)
		case h.ConversationID == m.ConversationID && h.Kind == switchboard.HoldConversation && h.ExpiresAt.Sub(m.Ref).Abs() <= time.Second:
			s.sendMessage(ctx, encode(m))
			return Outcome{Action: "early", Detail: "the hold of " + m.ConversationID + " has not ended yet; rescheduled"}, nil
		default:
			busy = append(busy, u)
		}
	}
	if len(free) == 0 {
		return Outcome{Action: "noop", Detail: fmt.Sprintf("the agents of %s hold other work now", m.ConversationID)}, nil
	}
	if err := s.Distribute(ctx, m.TenantID, nil, free); err != nil {
		return Outcome{Action: "acted", Detail: "distribution failed: " + err.Error()}, nil
	}
	return Outcome{Action: "acted", Detail: fmt.Sprintf("the hold of %s ended: %d agents free, %d busy", m.ConversationID, len(free), len(busy))}, nil
}

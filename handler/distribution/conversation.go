// Package distribution runs the waiting line of SPEC section 10:
// conversations queued per service, offered to agents one after another
// (or several at once for Broadcast) until one accepts, RONA, after-call
// work, timeouts and overflow, and outbound tasks served in the same line.
//
// Offers, RONA and after-call work are the agent's hold in the routing
// engine (one ETag-guarded row per agent), so "one offer or conversation per
// agent" is exact across instances; a conversation's own changes are
// writes conditional on its row's ETag. Due times (an offer lapsing, a
// wait timing out, RONA and after-call work ending) are scheduled messages
// on the distribution queue, handled by Handle; housekeeping catches what
// a lost message left.
package distribution

import (
	"regexp"
	"time"

	"switchboard/handler/switchboard"
)

// Conversation states.
const (
	StateQueued            = "Queued"
	StateOffered           = "Offered"
	StateConnected         = "Connected"
	StateEnded             = "Ended"
	StateAbandoned         = "Abandoned"
	StateTimedOut          = "TimedOut"
	StateRejected          = "Rejected"
	StateCallbackScheduled = "CallbackScheduled"
)

// Offer states.
const (
	OfferRinging   = "Ringing"
	OfferAccepted  = "Accepted"
	OfferDeclined  = "Declined"
	OfferLapsed    = "Lapsed"
	OfferRescinded = "Rescinded"
)

// History events, named as section 11's conversation event suffixes.
const (
	EventQueued            = "queued"
	EventOffered           = "offered"
	EventOfferDeclined     = "offerDeclined"
	EventOfferLapsed       = "offerLapsed"
	EventOfferRescinded    = "offerRescinded"
	EventConnected         = "connected"
	EventEnded             = "ended"
	EventAbandoned         = "abandoned"
	EventTimedOut          = "timedOut"
	EventRejected          = "rejected"
	EventForwarded         = "forwarded"
	EventCallbackScheduled = "callbackScheduled"
)

// Limits of a conversation.
const (
	MinPriority     = 1
	MaxPriority     = 99
	DefaultPriority = 50
	MaxPreferred    = 10
	MaxForwards     = 3
	MaxContext      = 32
	MaxContextKey   = 64
	MaxContextValue = 1024
	MaxDisplayName  = 256
	// MaxHistory bounds the stored history; the oldest events go first.
	MaxHistory = 200
	// Retention is how long an ended conversation stays readable.
	Retention = 7 * 24 * time.Hour
)

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// Customer is who the conversation is with.
type Customer struct {
	DisplayName string `json:"displayName,omitempty"`
	Phone       string `json:"phone,omitempty"`
}

// Offer is one offer of the conversation to an agent.
type Offer struct {
	UserID    string    `json:"userId"`
	OfferedAt time.Time `json:"offeredAt"`
	ExpiresAt time.Time `json:"expiresAt"`
	State     string    `json:"state"`
}

// Event is one entry of a conversation's history.
type Event struct {
	At        time.Time `json:"at"`
	Event     string    `json:"event"`
	UserID    string    `json:"userId,omitempty"`
	ServiceID string    `json:"serviceId,omitempty"`
	Detail    string    `json:"detail,omitempty"`
}

// Conversation is a conversation in (or through) a service's waiting line.
type Conversation struct {
	TenantID       string              `json:"-"`
	ID             string              `json:"conversationId"`
	ServiceID      string              `json:"serviceId"`
	State          string              `json:"state"`
	Priority       int                 `json:"priority"`
	RequiredSkills []switchboard.Skill `json:"requiredSkills"`
	PreferredUsers []string            `json:"preferredUsers"`
	Customer       Customer            `json:"customer"`
	Context        map[string]string   `json:"context"`
	QueuedAt       time.Time           `json:"queuedAt"`
	Offers         []Offer             `json:"offers"`
	// Declined lists agents not to offer the conversation again.
	Declined       []string  `json:"declined,omitempty"`
	Agent          string    `json:"agent,omitempty"`
	ConnectedAt    time.Time `json:"connectedAt,omitzero"`
	EndedAt        time.Time `json:"endedAt,omitzero"`
	Outcome        string    `json:"outcome,omitempty"`
	OutcomeDetail  string    `json:"outcomeDetail,omitempty"`
	ForwardedFrom  []string  `json:"forwardedFrom"`
	CallbackTaskID string    `json:"callbackTaskId,omitempty"`
	History        []Event   `json:"history"`
	// Deadline is when the wait times out (QueuedAt + maxWaitSeconds of
	// the service it waits in).
	Deadline time.Time `json:"deadline,omitzero"`

	ETag string `json:"-"`
}

// Waiting reports whether the conversation is in a waiting line.
func (c Conversation) Waiting() bool { return c.State == StateQueued || c.State == StateOffered }

// Final reports whether the conversation has ended, one way or another.
func (c Conversation) Final() bool { return !c.Waiting() && c.State != StateConnected }

// Ringing returns the offers that ring.
func (c Conversation) Ringing() []Offer {
	var out []Offer
	for _, o := range c.Offers {
		if o.State == OfferRinging {
			out = append(out, o)
		}
	}
	return out
}

// offerOf returns the index of the user's ringing offer, or -1.
func (c Conversation) offerOf(user string) int {
	for i, o := range c.Offers {
		if o.UserID == user && o.State == OfferRinging {
			return i
		}
	}
	return -1
}

func (c *Conversation) record(at time.Time, event, user, detail string) {
	c.History = append(c.History, Event{At: at, Event: event, UserID: user, ServiceID: c.ServiceID, Detail: detail})
	if len(c.History) > MaxHistory {
		c.History = append(c.History[:1:1], c.History[len(c.History)-MaxHistory+1:]...)
	}
}

// end puts a waiting conversation into a final state.
func (c *Conversation) end(at time.Time, state, event, detail string) {
	c.State, c.EndedAt, c.Outcome, c.OutcomeDetail = state, at, state, detail
	c.record(at, event, "", detail)
}

// before orders a waiting line: priority (99 most urgent), then queuedAt,
// then id.
func before(pa int, qa time.Time, ida string, pb int, qb time.Time, idb string) bool {
	if pa != pb {
		return pa > pb
	}
	if !qa.Equal(qb) {
		return qa.Before(qb)
	}
	return ida < idb
}

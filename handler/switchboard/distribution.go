package switchboard

import (
	"fmt"
	"regexp"
	"time"
)

// Distribution (SPEC section 10): the conversations of the services'
// waiting lines, their offers, and the agents' states, as the HTTP layer
// and the distribution capability share them.

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
	MinConversationPriority     = 1
	MaxConversationPriority     = 99
	DefaultConversationPriority = 50
	MaxForwards                 = 3
	MaxContext                  = 32
	MaxContextKey               = 64
	MaxContextValue             = 1024
	MaxDisplayName              = 256
	// MaxHistory bounds the stored history; the oldest events go first.
	MaxHistory = 200
	// ConversationRetention is how long an ended conversation stays
	// readable.
	ConversationRetention = 7 * 24 * time.Hour
)

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

// ConversationEvent is one entry of a conversation's history.
type ConversationEvent struct {
	At        time.Time `json:"at"`
	Event     string    `json:"event"`
	UserID    string    `json:"userId,omitempty"`
	ServiceID string    `json:"serviceId,omitempty"`
	Detail    string    `json:"detail,omitempty"`
}

// Conversation is a conversation in (or through) a service's waiting line.
type Conversation struct {
	TenantID       string            `json:"-"`
	ID             string            `json:"conversationId"`
	ServiceID      string            `json:"serviceId"`
	State          string            `json:"state"`
	Priority       int               `json:"priority"`
	RequiredSkills []Skill           `json:"requiredSkills"`
	PreferredUsers []string          `json:"preferredUsers"`
	Customer       Customer          `json:"customer"`
	Context        map[string]string `json:"context"`
	QueuedAt       time.Time         `json:"queuedAt"`
	Offers         []Offer           `json:"offers"`
	// Declined lists agents not to offer the conversation again.
	Declined       []string            `json:"declined,omitempty"`
	Agent          string              `json:"agent,omitempty"`
	ConnectedAt    time.Time           `json:"connectedAt,omitzero"`
	EndedAt        time.Time           `json:"endedAt,omitzero"`
	Outcome        string              `json:"outcome,omitempty"`
	OutcomeDetail  string              `json:"outcomeDetail,omitempty"`
	ForwardedFrom  []string            `json:"forwardedFrom"`
	CallbackTaskID string              `json:"callbackTaskId,omitempty"`
	History        []ConversationEvent `json:"history"`
	// DirectUserID is the one agent a direct conversation (an Interact
	// session with userId, SPEC section 12) is offered to; it has no
	// service (ServiceID is empty).
	DirectUserID string `json:"directUserId,omitempty"`
	// Deadline is when the wait times out (QueuedAt + maxWaitSeconds of
	// the service it waits in).
	Deadline time.Time `json:"deadline,omitzero"`
	// Sequence counts the conversation's events (SPEC section 11: the
	// events of one subject are ordered by it).
	Sequence int64 `json:"sequence,omitempty"`
	// Unpublished are the history entries recorded since the conversation
	// was read: the next write publishes them as events.
	Unpublished []ConversationEvent `json:"-"`

	ETag string `json:"-"`
}

// Direct reports whether the conversation is offered to one agent only,
// outside any service.
func (c Conversation) Direct() bool { return c.DirectUserID != "" }

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

// OfferOf returns the index of the user's ringing offer, or -1.
func (c Conversation) OfferOf(user string) int {
	for i, o := range c.Offers {
		if o.UserID == user && o.State == OfferRinging {
			return i
		}
	}
	return -1
}

func (c *Conversation) Record(at time.Time, event, user, detail string) {
	e := ConversationEvent{At: at, Event: event, UserID: user, ServiceID: c.ServiceID, Detail: detail}
	c.History = append(c.History, e)
	c.Unpublished = append(c.Unpublished, e)
	if len(c.History) > MaxHistory {
		c.History = append(c.History[:1:1], c.History[len(c.History)-MaxHistory+1:]...)
	}
}

// EndAs puts a waiting conversation into a final state.
func (c *Conversation) EndAs(at time.Time, state, event, detail string) {
	c.State, c.EndedAt, c.Outcome, c.OutcomeDetail = state, at, state, detail
	c.Record(at, event, "", detail)
}

// Before orders a waiting line: priority (99 most urgent), then queuedAt,
// then id.
func Before(pa int, qa time.Time, ida string, pb int, qb time.Time, idb string) bool {
	if pa != pb {
		return pa > pb
	}
	if !qa.Equal(qb) {
		return qa.Before(qb)
	}
	return ida < idb
}

// ConversationEventType is the event type (SPEC section 11) of a
// conversation's history entry: switchboard.conversation.<event>.
func ConversationEventType(event string) string { return "switchboard.conversation." + event }

// OfferNotPending is the problem type of an accept or decline whose offer
// is no longer ringing.
const OfferNotPending = "offer-not-pending"

// skillName is the pattern of a skill name.
var skillName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)

// ValidSkillName reports whether n is a skill name: 1-40 lower-case
// letters, digits and -, starting with a letter or digit.
func ValidSkillName(n string) bool { return skillName.MatchString(n) }

// CheckRequiredSkills validates a conversation's required skills (the
// same names and levels as members' skills, each name once).
func CheckRequiredSkills(op, field string, need []Skill) error {
	if len(need) > MaxSkillsPerMember {
		return FieldError(op, field, "at most %d required skills, not %d", MaxSkillsPerMember, len(need))
	}
	seen := map[string]bool{}
	for i, s := range need {
		f := fmt.Sprintf("%s[%d]", field, i)
		if !ValidSkillName(s.Name) {
			return FieldError(op, f+".name", "skill name %q must be 1-40 lower-case letters, digits and -, starting with a letter or digit", s.Name)
		}
		if seen[s.Name] {
			return FieldError(op, f+".name", "skill %q is required twice", s.Name)
		}
		seen[s.Name] = true
		if s.MinLevel < MinSkillLevel || s.MinLevel > MaxSkillLevel {
			return FieldError(op, f+".minLevel", "minLevel must be between %d and %d, not %d", MinSkillLevel, MaxSkillLevel, s.MinLevel)
		}
	}
	return nil
}

// OfferEnd says what ending an offer does to its agent.
type OfferEnd struct {
	// Rona > 0 puts the agent into RONA for that long.
	Rona time.Duration
	// Idle starts the agent's idle time now (a lapsed or declined offer
	// sends the agent to the back of LongestIdle; a rescinded one does not).
	Idle bool
}

// Why an agent's RONA or after-call work ended: the reason of its
// switchboard.agent.ronaEnded or afterCallWorkEnded event.
const (
	HoldEndTime    = "TimeEnded"       // at its time (its due message, or routing's expiry sweep)
	HoldEndEarly   = "EndedEarly"      // RONA reset, or after-call work ended, through the API
	HoldEndOffline = "PresenceOffline" // RONA ends when the agent's presence reads Offline
)

// AgentHold is an agent's hold as storage has it (Kind one of the Hold*
// kinds; ConversationID empty when it holds nothing), and when its idle
// time started (zero when never routed).
type AgentHold struct {
	Kind           string
	ConversationID string
	ServiceID      string
	HeldAt         time.Time
	ExpiresAt      time.Time // zero when held until released
	IdleSince      time.Time
}

// Callback is an outbound task a Callback overflow creates.
type Callback struct {
	ReferenceID string
	Destination string
	Priority    int
	Context     map[string]string
}

// WaitingTask is an outbound task waiting in a service's line.
type WaitingTask struct {
	ID             string
	Priority       int
	QueuedAt       time.Time
	PreferredUsers []string
}

// Positioned is a conversation with where it stands in its line.
type Positioned struct {
	Conversation
	// Position is the 1-based place in the line among conversations not
	// yet connected (0 when it is not waiting).
	Position    int
	WaitSeconds int
}

// QueueView is a service's waiting line as supervisors see it.
type QueueView struct {
	Conversations         []Positioned
	Waiting               int
	Offered               int
	LongestWaitSeconds    int
	AgentsEligible        int
	AgentsInRona          int
	AgentsInAfterCallWork int
}

// AgentView is an agent's state (GET agents/{u}).
type AgentView struct {
	UserID        string
	Presence      *Presence
	Conversation  *AgentConversation
	Offer         *AgentOffer
	Rona          *AgentRona
	AfterCallWork *time.Time // until
	IdleSince     time.Time
	Services      []AgentService
}

// AgentConversation is the conversation an agent handles.
type AgentConversation struct {
	ConversationID, ServiceID string
	Since                     time.Time
}

// AgentOffer is an agent's ringing offer.
type AgentOffer struct {
	ConversationID, ServiceID string
	OfferedAt, ExpiresAt      time.Time
}

// AgentRona is an agent's RONA.
type AgentRona struct {
	Since, Until              time.Time
	ServiceID, ConversationID string
}

// AgentService is a service the agent is a member of.
type AgentService struct {
	ServiceID string
	Active    bool
}

// ServiceSummary is one service of the tenant's list.
type ServiceSummary struct {
	ID, Name          string
	MemberCount       int
	ActiveMemberCount int
	Waiting, Offered  int
}

// EnqueueInput is a conversation as a caller puts it into a queue.
type EnqueueInput struct {
	ConversationID string
	Priority       *int
	RequiredSkills []Skill
	PreferredUsers []string
	Customer       Customer
	Context        map[string]string
}

package switchboard

import (
	"context"
	"slices"
	"time"
)

// Reason codes for a member who cannot be offered a conversation. Stable:
// Power Automate flows and dashboards branch on them.
const (
	ReasonNotMember        = "NotMember"
	ReasonNotActive        = "NotActive"
	ReasonInConversation   = "InConversation"
	ReasonPresenceStale    = "PresenceStale"
	ReasonPresenceUnknown  = "PresenceUnknown"
	ReasonOffline          = "Offline"
	ReasonDoNotDisturb     = "DoNotDisturb"
	ReasonInACall          = "InACall"
	ReasonBusyNotDelivered = "BusyNotDelivered"
	ReasonAwayNotDelivered = "AwayNotDelivered"
	// Distribution (SPEC section 10), checked after InConversation in this
	// order, before freshness and presence.
	ReasonOfferPending  = "OfferPending"  // a ringing offer: one offer at a time
	ReasonRona          = "Rona"          // ring, no answer: held out for rona.resetSeconds
	ReasonAfterCallWork = "AfterCallWork" // after-call work since the last release
	ReasonSkillMismatch = "SkillMismatch" // a required skill missing or below its level
)

// Kinds of an agent's hold. An agent holds at most one thing at a time, so
// one ETag-guarded row per agent keeps "one offer or conversation per
// agent" exact across instances; RONA and after-call work are holds too,
// and so keep the agent out of every service until they expire.
const (
	HoldConversation  = ""      // a reservation or a conversation (InConversation)
	HoldOffer         = "offer" // a ringing offer (OfferPending)
	HoldRona          = "rona"  // ring, no answer (Rona)
	HoldAfterCallWork = "acw"   // after-call work (AfterCallWork)
)

// Skill is a skill a conversation requires: the member's level of Name
// must be at least MinLevel.
type Skill struct {
	Name     string
	MinLevel int
}

// RouteRequest asks for an agent for one conversation of a service.
type RouteRequest struct {
	ConversationID string
	// Reserve holds the chosen agent(s) atomically for Hold.
	Reserve bool
	// Preview decides without changing anything: nothing is reserved and
	// the round-robin position stays (the web page's "who can take a
	// conversation now", polled every few seconds). Not with Reserve.
	Preview bool
	// Hold is how long a reservation lasts; 0 takes the service default.
	Hold time.Duration
	// UntilReleased makes the reservation last until Release (outbound
	// tasks in progress); housekeeping releases what is leaked.
	UntilReleased bool
	// PreferredUsers are tried first, in order, when eligible.
	PreferredUsers []string
	// MaxAgents caps how many agents are chosen, below what the service's
	// order would offer (a Broadcast service offers several); 0 means no
	// cap. An outbound task needs exactly one agent.
	MaxAgents int
	// Offer makes the reservation a ringing offer (held for Hold, reason
	// OfferPending for other routes) instead of a conversation; no
	// conversation index is written for it (distribution keeps its own).
	Offer bool
	// Rona, for an Offer, is the RONA its ring-out puts the agent into (0:
	// none). It is stored in the offer's hold, so that from the end of the
	// ring every instance sees the agent in RONA, before the lapse is
	// handled.
	Rona time.Duration
	// RequiredSkills exclude members below a level (SkillMismatch).
	RequiredSkills []Skill
	// Skip lists eligible users not to choose (they declined this
	// conversation): they stay ranked candidates.
	Skip []string
	// Only, when not empty, lists the users that may be chosen: the other
	// eligible users stay ranked candidates, as skipped ones do (a
	// distribution pass gives each item only agents its reading saw free).
	Only []string
}

// PreferFirst returns a route's preferred users when the agents of first
// (those a distribution pass matched an item with) are to be tried before
// the item's own preferred users: without repeats, and no more than
// MaxPreferredUsers, which a route accepts. Without first it is preferred.
func PreferFirst(first, preferred []string) []string {
	if len(first) == 0 {
		return preferred
	}
	var out []string
	for _, u := range append(slices.Clone(first), preferred...) {
		if !slices.Contains(out, u) && len(out) < MaxPreferredUsers {
			out = append(out, u)
		}
	}
	return out
}

// Assignment is an agent chosen for a conversation.
type Assignment struct {
	UserID        string
	HoldExpiresAt time.Time // zero when not reserved or held until released
}

// Candidate is an eligible member, in ranking order.
type Candidate struct {
	UserID   string
	Presence Presence
}

// Exclusion is a member who cannot be offered the conversation, and why.
type Exclusion struct {
	UserID   string
	Reason   string // one of the Reason* codes
	Message  string // a sentence for people
	Presence *Presence
}

// RouteDecision is the answer to a RouteRequest.
type RouteDecision struct {
	ConversationID string
	Agents         []Assignment
	Candidates     []Candidate
	Excluded       []Exclusion
}

// Router chooses agents. Outbound tasks use it as the route API does.
type Router interface {
	// Route decides who can take the conversation and, with Reserve, holds
	// them. The same ConversationID asked again returns the same hold.
	// Returns ENOTFOUND for an unknown service.
	Route(ctx context.Context, tenantID, serviceID string, req RouteRequest) (RouteDecision, error)
	// Release ends the conversation: its agents are free again and their
	// idle time starts now. Releasing an unknown conversation is not an
	// error.
	Release(ctx context.Context, tenantID, conversationID string) error
}

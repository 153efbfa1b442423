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

	"switchboard/handler/switchboard"
)

// The conversation and what the HTTP layer shows of the lines are domain
// values (package switchboard).
type (
	Conversation      = switchboard.Conversation
	Offer             = switchboard.Offer
	Event             = switchboard.ConversationEvent
	Customer          = switchboard.Customer
	EnqueueInput      = switchboard.EnqueueInput
	Positioned        = switchboard.Positioned
	QueueView         = switchboard.QueueView
	AgentView         = switchboard.AgentView
	AgentRona         = switchboard.AgentRona
	AgentOffer        = switchboard.AgentOffer
	AgentService      = switchboard.AgentService
	AgentConversation = switchboard.AgentConversation
	ServiceSummary    = switchboard.ServiceSummary
	Callback          = switchboard.Callback
	WaitingTask       = switchboard.WaitingTask
)

// Conversation states, offer states, history events and limits.
const (
	StateQueued            = switchboard.StateQueued
	StateOffered           = switchboard.StateOffered
	StateConnected         = switchboard.StateConnected
	StateEnded             = switchboard.StateEnded
	StateAbandoned         = switchboard.StateAbandoned
	StateTimedOut          = switchboard.StateTimedOut
	StateRejected          = switchboard.StateRejected
	StateCallbackScheduled = switchboard.StateCallbackScheduled

	OfferRinging   = switchboard.OfferRinging
	OfferAccepted  = switchboard.OfferAccepted
	OfferDeclined  = switchboard.OfferDeclined
	OfferLapsed    = switchboard.OfferLapsed
	OfferRescinded = switchboard.OfferRescinded

	EventQueued            = switchboard.EventQueued
	EventOffered           = switchboard.EventOffered
	EventOfferDeclined     = switchboard.EventOfferDeclined
	EventOfferLapsed       = switchboard.EventOfferLapsed
	EventOfferRescinded    = switchboard.EventOfferRescinded
	EventConnected         = switchboard.EventConnected
	EventEnded             = switchboard.EventEnded
	EventAbandoned         = switchboard.EventAbandoned
	EventTimedOut          = switchboard.EventTimedOut
	EventRejected          = switchboard.EventRejected
	EventForwarded         = switchboard.EventForwarded
	EventCallbackScheduled = switchboard.EventCallbackScheduled

	MinPriority     = switchboard.MinConversationPriority
	MaxPriority     = switchboard.MaxConversationPriority
	DefaultPriority = switchboard.DefaultConversationPriority
	MaxPreferred    = switchboard.MaxPreferredUsers
	MaxForwards     = switchboard.MaxForwards
	MaxContext      = switchboard.MaxContext
	MaxContextKey   = switchboard.MaxContextKey
	MaxContextValue = switchboard.MaxContextValue
	MaxDisplayName  = switchboard.MaxDisplayName
	Retention       = switchboard.ConversationRetention
)

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// before is switchboard.Before.
var before = switchboard.Before

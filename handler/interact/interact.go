// Package interact runs the Interact widget's sessions and hands out the
// Assistant's ACS tokens (SPEC section 12).
//
// A session is a customer on a public web page reaching an agent in Teams:
// an ACS identity and token for the widget, a Teams meeting organised on
// behalf of the tenant's O365 user, and a conversation interact:<id> that
// goes through a service's waiting line (or is offered to one agent,
// direct). Whichever party leaves, the session is Suspended for the
// tenant's recovery time; the same party back within it continues the same
// session, agent and meeting. When the time runs out the customer gone ends
// the session; the agent gone ends a direct session and puts a service
// session's conversation back in its queue at its original place.
//
// Sessions are rows of one partition per tenant, changed by writes
// conditional on their ETag; the open-session count and the per-address
// rate rows share that partition, so a new session, its count and its rate
// are one batch. The recovery timer is a scheduled message (Timers);
// housekeeping catches what a lost message left.
package interact

import (
	"context"
	"time"

	"switchboard/handler/switchboard"
)

// Session states (the public ones; Suspended is a Waiting or Connected
// session with a party away).
const (
	StateWaiting   = "Waiting"
	StateConnected = "Connected"
	StateSuspended = "Suspended"
	StateEnded     = "Ended"
)

// Parties that can be away.
const (
	PartyCustomer = "customer"
	PartyAgent    = "agent"
	PartyBoth     = "both"
)

// Limits of SPEC section 12.
const (
	MaxOpenSessions = 200 // sessions not Ended per tenant
	MaxNewPerMinute = 20  // new sessions per minute per client address
	// EndedRetention is how long an ended session still answers GET.
	EndedRetention = 24 * time.Hour
	// MaxCustomerField bounds customer.displayName and customer.email.
	MaxCustomerField = 200
	// MaxContext leaves room for the keys sessions add to the
	// conversation's context (distribution takes 32).
	MaxContext      = 29
	MaxContextKey   = 64
	MaxContextValue = 1024
	// MeetingLength is how long the Teams meetings are scheduled for; a
	// meeting stays joinable past its end time.
	MeetingLength = time.Hour
)

// Problem types, stable.
const (
	TypeDisabled           = switchboard.InteractTypeDisabled
	TypeInvalidWidgetKey   = switchboard.InteractTypeInvalidWidgetKey
	TypeInvalidToken       = switchboard.InteractTypeInvalidToken
	TypeTenantMismatch     = switchboard.InteractTypeTenantMismatch
	TypeNotConfigured      = switchboard.InteractTypeNotConfigured
	TypeInvalidResume      = switchboard.InteractTypeInvalidResume
	TypeSessionEnded       = switchboard.InteractTypeSessionEnded
	TypeTooManySessions    = switchboard.InteractTypeTooManySessions
	TypeNoAgent            = switchboard.InteractTypeNoAgent
	TypeAssistantNotConfig = switchboard.AssistantTypeNotConfigured
)

// The API's types, domain vocabulary.
type (
	View        = switchboard.InteractSessionView
	ACSView     = switchboard.ACSIdentityView
	AgentView   = switchboard.InteractAgentView
	Meeting     = switchboard.InteractMeeting
	Customer    = switchboard.InteractCustomer
	CreateInput = switchboard.InteractCreateRequest
	AgentCall   = switchboard.InteractAgentCall
	RateLimited = switchboard.InteractRateLimited
	Gate        = switchboard.InteractGate
	AccessToken = switchboard.ACSAccessToken
)

// SessionScopes are the scopes of the widget's and the Assistant's ACS
// tokens: chat and VoIP calls.
var SessionScopes = []string{"chat", "voip"}

// TenantConfig is what sessions and the Assistant read of a tenant's
// settings (interact.*, assistant.*); connection strings as stored (secret).
type TenantConfig struct {
	Enabled                      bool
	ACSConnectionString          string
	O365UserID                   string
	WidgetKey                    string
	RecoverySeconds              int
	Authorization                string
	AssistantOwnACS              bool
	AssistantACSConnectionString string
}

// Settings is what sessions need of the tenant settings (main adapts the
// settings service). A tenant without settings has the defaults.
type Settings interface {
	Config(ctx context.Context, tenant string) (TenantConfig, error)
}

// ACS issues identities and tokens; *acs.Client is one. Errors carry
// switchboard codes (ENOTFOUND for an identity that no longer exists).
type ACS interface {
	CreateIdentity(ctx context.Context, cs switchboard.ACSConnectionString, scopes []string) (string, AccessToken, error)
	IssueToken(ctx context.Context, cs switchboard.ACSConnectionString, identity string, scopes []string) (AccessToken, error)
}

// Meetings creates Teams meetings on behalf of a user (Graph, through the
// presence app). Errors carry switchboard codes and a problem type a tenant
// admin can act on.
type Meetings interface {
	CreateMeeting(ctx context.Context, tenant, organizer, subject string, start time.Time, d time.Duration) (Meeting, error)
}

// Keys a session adds to its conversation's context, so that whoever the
// conversation is offered to (an agent's client, a flow) knows what to join.
const (
	ContextSessionID   = "interact.sessionId"
	ContextMeetingJoin = "interact.meetingJoinUrl"
	ContextACSUser     = "interact.acsUserId"
)

// NewConversation is a session's conversation as it enters distribution.
type NewConversation struct {
	ID       string
	Customer Customer
	Context  map[string]string
}

// ConversationState is what a session reads of its conversation.
type ConversationState struct {
	State    string // distribution's: Queued, Offered, Connected, Ended, Abandoned, TimedOut, Rejected, ...
	Agent    string // the connected agent, when Connected
	Position int    // 1-based place in the queue while waiting, 0 otherwise
}

// Conversation states sessions tell apart.
const (
	ConvQueued    = "Queued"
	ConvOffered   = "Offered"
	ConvConnected = "Connected"
)

// Waiting reports whether the conversation waits for an agent.
func (c ConversationState) Waiting() bool { return c.State == ConvQueued || c.State == ConvOffered }

// Final reports whether the conversation has ended one way or another.
func (c ConversationState) Final() bool { return !c.Waiting() && c.State != ConvConnected }

// Conversations is what sessions need of distribution (SPEC section 10).
// The adapter to handler/distribution is DistributionAdapter (wire).
type Conversations interface {
	// Enqueue puts a new conversation into a service's queue. Returns
	// ENOTFOUND for an unknown service.
	Enqueue(ctx context.Context, tenant, service string, c NewConversation) (ConversationState, error)
	// CheckDirect says whether a direct conversation could ever be offered
	// to the agent, before a session makes an identity and a meeting for
	// it. Returns EINVALID (field userId) for a user who cannot be offered
	// anything.
	CheckDirect(ctx context.Context, tenant, agent string) error
	// OfferDirect offers a new conversation to one agent only (RONA rules
	// apply; the service defaults of section 10 for times). Returns
	// EINVALID for a user who cannot be offered anything.
	OfferDirect(ctx context.Context, tenant, agent string, c NewConversation) (ConversationState, error)
	// State returns the conversation's state. Returns ENOTFOUND.
	State(ctx context.Context, tenant, id string) (ConversationState, error)
	// End ends the conversation: a connected one releases its agent
	// (after-call work), a waiting one is abandoned. One already ended is
	// not an error.
	End(ctx context.Context, tenant, id string) error
	// Requeue puts a connected conversation back into its queue at its
	// original place (priority and queuedAt kept), releases its agent
	// without after-call work and does not offer it to that agent again.
	// One already waiting is returned as it is.
	Requeue(ctx context.Context, tenant, id string) (ConversationState, error)
}

// Timers schedules the recovery timer's messages: body is to be given to
// Service.HandleTimer at (or shortly after) at. A message may come more
// than once or late; HandleTimer copes.
type Timers interface {
	Schedule(ctx context.Context, at time.Time, body []byte) error
}

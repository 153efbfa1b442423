package switchboard

import (
	"context"
	"time"
)

// Interact authorization modes (interact.authorization).
const (
	InteractAuthorizationNone                 = "None"
	InteractAuthorizationVerifyToken          = "VerifyToken"
	InteractAuthorizationVerifyTokenAndTenant = "VerifyTokenAndTenant"
)

// Problem types of the Interact and Assistant routes, stable.
const (
	InteractTypeDisabled         = "interact-disabled"
	InteractTypeInvalidWidgetKey = "invalid-widget-key"
	InteractTypeInvalidToken     = "invalid-token"
	InteractTypeTenantMismatch   = "token-tenant-mismatch"
	InteractTypeNotConfigured    = "interact-not-configured"
	InteractTypeInvalidResume    = "invalid-resume-token"
	InteractTypeSessionEnded     = "session-ended"
	InteractTypeTooManySessions  = "too-many-sessions"
	InteractTypeNoAgent          = "no-agent"
	AssistantTypeNotConfigured   = "assistant-not-configured"
)

// ACSAccessToken is an ACS user access token. Token is a secret: it is
// returned to the one client it was issued for and never logged.
type ACSAccessToken struct {
	Token     string    `json:"token"`
	ExpiresOn time.Time `json:"expiresOn"`
}

// String keeps a token printed by mistake from showing.
func (t ACSAccessToken) String() string {
	return "<acs token until " + t.ExpiresOn.UTC().Format(time.RFC3339) + ">"
}

// GoString keeps %#v from printing the token too.
func (t ACSAccessToken) GoString() string { return t.String() }

// InteractGate is what the widget's checks need of a tenant's settings.
type InteractGate struct {
	Enabled       bool
	WidgetKey     string
	Authorization string
}

// InteractCustomer is who uses the widget.
type InteractCustomer struct {
	DisplayName string `json:"displayName,omitempty"`
	Email       string `json:"email,omitempty"`
}

// InteractCreateRequest is a new session as the widget asks for it.
type InteractCreateRequest struct {
	ServiceID string            `json:"serviceId"`
	UserID    string            `json:"userId"`
	Customer  InteractCustomer  `json:"customer"`
	Context   map[string]string `json:"context"`
	// ClientAddress is the caller's address (X-Forwarded-For's first, else
	// the peer), for the per-address rate.
	ClientAddress string `json:"-"`
}

// ACSIdentityView is an ACS identity with a token, for the widget or the
// Assistant.
type ACSIdentityView struct {
	Endpoint  string    `json:"endpoint"`
	UserID    string    `json:"userId"`
	Token     string    `json:"token"`
	ExpiresOn time.Time `json:"expiresOn"`
}

// InteractMeeting is a session's Teams meeting.
type InteractMeeting struct {
	ID      string `json:"id"`
	JoinURL string `json:"joinUrl"`
}

// InteractAgentView names a session's agent.
type InteractAgentView struct {
	UserID string `json:"userId"`
}

// InteractSessionView is a session as the widget sees it.
type InteractSessionView struct {
	SessionID              string             `json:"sessionId"`
	State                  string             `json:"state"`
	ResumeToken            string             `json:"resumeToken,omitempty"` // only when created
	ConversationID         string             `json:"conversationId"`
	RecoveryTimeoutSeconds int                `json:"recoveryTimeoutSeconds"`
	Position               *int               `json:"position"`
	Agent                  *InteractAgentView `json:"agent"`
	SuspendedParty         *string            `json:"suspendedParty"`
	SuspendedUntil         *time.Time         `json:"suspendedUntil"`
	Outcome                string             `json:"outcome,omitempty"`
	ACS                    *ACSIdentityView   `json:"acs,omitempty"` // on create and rejoin
	Meeting                *InteractMeeting   `json:"meeting,omitempty"`
}

// InteractAgentCall is an agent-side call: AsAgent, when set, is the
// caller, who must be the session's agent (role Agent, own); empty for a
// flow.
type InteractAgentCall struct {
	Tenant, Session, AsAgent string
}

// InteractRateLimited is a refused new session: too many open in the
// tenant, or too many new from one address. The HTTP layer answers 429
// with Retry-After.
type InteractRateLimited struct {
	RetryAfter time.Duration
	Message    string
}

func (e *InteractRateLimited) Error() string { return e.Message }

// InteractSessions is the Interact capability as the HTTP API uses it.
// Errors carry codes and problem types: EUNAUTHORIZED
// (InteractTypeInvalidResume) for an unknown session or a wrong resume
// token alike, EGONE (InteractTypeSessionEnded), ECONFLICT
// (InteractTypeNotConfigured, InteractTypeNoAgent), *InteractRateLimited.
type InteractSessions interface {
	Gate(ctx context.Context, tenant string) (InteractGate, error)
	Create(ctx context.Context, tenant string, in InteractCreateRequest) (InteractSessionView, error)
	Get(ctx context.Context, tenant, id, resumeToken string) (InteractSessionView, error)
	Leave(ctx context.Context, tenant, id, resumeToken string) (InteractSessionView, error)
	Rejoin(ctx context.Context, tenant, id, resumeToken string) (InteractSessionView, error)
	AgentLeft(ctx context.Context, c InteractAgentCall) (InteractSessionView, error)
	AgentRejoined(ctx context.Context, c InteractAgentCall) (InteractSessionView, error)
	End(ctx context.Context, c InteractAgentCall) (InteractSessionView, error)
	// AssistantToken returns an ACS token for user. ECONFLICT
	// (AssistantTypeNotConfigured) when the chosen ACS is not configured.
	AssistantToken(ctx context.Context, tenant, user string) (ACSIdentityView, error)
}

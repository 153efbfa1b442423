package httpapi

import (
	"context"
	"net/http"
	"time"

	"switchboard/handler/switchboard"
)

// DistributionService is what the waiting-line routes need
// (*switchboard.Service is one).
type DistributionService interface {
	Enqueue(ctx context.Context, tenant, service string, in switchboard.EnqueueInput) (switchboard.Conversation, bool, error)
	Queue(ctx context.Context, tenant, service string) (switchboard.QueueView, error)
	Get(ctx context.Context, tenant, id string) (switchboard.Positioned, error)
	Accept(ctx context.Context, tenant, conv, user string) (switchboard.Conversation, error)
	Decline(ctx context.Context, tenant, conv, user string) (switchboard.Conversation, error)
	Agent(ctx context.Context, tenant, user string) (switchboard.AgentView, error)
	ResetRona(ctx context.Context, tenant, user string) error
	EndAfterCallWork(ctx context.Context, tenant, user string) error
	Services(ctx context.Context, tenant string) ([]switchboard.ServiceSummary, error)
}

// DistributionAPI serves the waiting lines (SPEC section 10).
type DistributionAPI struct {
	Service DistributionService
	Now     func() time.Time
}

// Register adds the waiting-line routes to r; their roles are rows of
// routeAccess (access.go). DELETE /api/tenants/{t}/conversations/{c} is
// registered by RoutingAPI, which hands distribution's conversations to
// it.
func (a *DistributionAPI) Register(r *Router) {
	r.Tenant("POST /api/tenants/{t}/services/{s}/queue", a.enqueue)
	r.Tenant("GET /api/tenants/{t}/services/{s}/queue", a.queue)
	r.Tenant("GET /api/tenants/{t}/conversations/{c}", a.get)
	r.Tenant("POST /api/tenants/{t}/conversations/{c}/accept", a.accept)
	r.Tenant("POST /api/tenants/{t}/conversations/{c}/decline", a.decline)
	r.Tenant("GET /api/tenants/{t}/agents/{u}", a.agent)
	r.Tenant("POST /api/tenants/{t}/agents/{u}/rona/reset", a.ronaReset)
	r.Tenant("POST /api/tenants/{t}/agents/{u}/after-call-work/end", a.afterCallWorkEnd)
	r.Tenant("GET /api/tenants/{t}/services", a.services)
}

type customerJSON struct {
	DisplayName *string `json:"displayName"`
	Phone       *string `json:"phone"`
}

type enqueueBody struct {
	ConversationID string            `json:"conversationId"`
	Priority       *int              `json:"priority"`
	RequiredSkills []skillJSON       `json:"requiredSkills"`
	PreferredUsers []string          `json:"preferredUsers"`
	Customer       *customerJSON     `json:"customer"`
	Context        map[string]string `json:"context"`
}

type offerJSON struct {
	UserID    string    `json:"userId"`
	OfferedAt time.Time `json:"offeredAt"`
	ExpiresAt time.Time `json:"expiresAt"`
	State     string    `json:"state"`
}

type eventJSON struct {
	At        time.Time `json:"at"`
	Event     string    `json:"event"`
	UserID    *string   `json:"userId,omitempty"`
	ServiceID string    `json:"serviceId,omitempty"`
	Detail    string    `json:"detail,omitempty"`
}

type userRefJSON struct {
	UserID string `json:"userId"`
}

type conversationJSON struct {
	ConversationID string            `json:"conversationId"`
	ServiceID      string            `json:"serviceId"`
	DirectUserID   string            `json:"directUserId,omitempty"`
	State          string            `json:"state"`
	Priority       int               `json:"priority"`
	RequiredSkills []skillJSON       `json:"requiredSkills"`
	PreferredUsers []string          `json:"preferredUsers"`
	Customer       customerOutJSON   `json:"customer"`
	Context        map[string]string `json:"context"`
	QueuedAt       time.Time         `json:"queuedAt"`
	Position       *int              `json:"position"`
	WaitSeconds    int               `json:"waitSeconds"`
	Offers         []offerJSON       `json:"offers"`
	Agent          *userRefJSON      `json:"agent"`
	ConnectedAt    *time.Time        `json:"connectedAt"`
	EndedAt        *time.Time        `json:"endedAt"`
	Outcome        *string           `json:"outcome"`
	OutcomeReason  *string           `json:"outcomeReason"`
	ForwardedFrom  []string          `json:"forwardedFrom"`
	CallbackTaskID *string           `json:"callbackTaskId"`
	History        []eventJSON       `json:"history"`
}

type customerOutJSON struct {
	DisplayName string `json:"displayName,omitempty"`
	Phone       string `json:"phone,omitempty"`
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func renderConversation(p switchboard.Positioned) conversationJSON {
	c := p.Conversation
	out := conversationJSON{
		ConversationID: c.ID, ServiceID: c.ServiceID, DirectUserID: c.DirectUserID, State: c.State, Priority: c.Priority,
		RequiredSkills: skillsToJSON(c.RequiredSkills), PreferredUsers: c.PreferredUsers,
		Customer: customerOutJSON{DisplayName: c.Customer.DisplayName, Phone: c.Customer.Phone},
		Context:  c.Context, QueuedAt: c.QueuedAt.UTC(), WaitSeconds: p.WaitSeconds,
		Offers: make([]offerJSON, len(c.Offers)), ConnectedAt: optTime(c.ConnectedAt), EndedAt: optTime(c.EndedAt),
		Outcome: optString(c.Outcome), OutcomeReason: optString(c.OutcomeDetail), ForwardedFrom: c.ForwardedFrom,
		CallbackTaskID: optString(c.CallbackTaskID), History: make([]eventJSON, len(c.History)),
	}
	if p.Position > 0 {
		out.Position = &p.Position
	}
	if c.Agent != "" {
		out.Agent = &userRefJSON{UserID: c.Agent}
	}
	for i, o := range c.Offers {
		out.Offers[i] = offerJSON{UserID: o.UserID, OfferedAt: o.OfferedAt.UTC(), ExpiresAt: o.ExpiresAt.UTC(), State: o.State}
	}
	for i, e := range c.History {
		out.History[i] = eventJSON{At: e.At.UTC(), Event: e.Event, UserID: optString(e.UserID), ServiceID: e.ServiceID, Detail: e.Detail}
	}
	if out.RequiredSkills == nil {
		out.RequiredSkills = []skillJSON{}
	}
	if out.PreferredUsers == nil {
		out.PreferredUsers = []string{}
	}
	if out.Context == nil {
		out.Context = map[string]string{}
	}
	if out.ForwardedFrom == nil {
		out.ForwardedFrom = []string{}
	}
	return out
}

func (a *DistributionAPI) enqueue(w http.ResponseWriter, r *http.Request) error {
	t, s, err := tenantAndService(r)
	if err != nil {
		return err
	}
	var body enqueueBody
	if err := DecodeJSON(r, &body); err != nil {
		return err
	}
	in := switchboard.EnqueueInput{
		ConversationID: body.ConversationID,
		Priority:       body.Priority,
		RequiredSkills: skillsFromJSON(body.RequiredSkills),
		PreferredUsers: body.PreferredUsers,
		Context:        body.Context,
	}
	if c := body.Customer; c != nil {
		if c.DisplayName != nil {
			in.Customer.DisplayName = *c.DisplayName
		}
		if c.Phone != nil {
			in.Customer.Phone = *c.Phone
		}
	}
	c, created, err := a.Service.Enqueue(r.Context(), t, s, in)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusAccepted
	}
	return WriteJSON(w, status, renderConversation(switchboard.Positioned{Conversation: c}))
}

type queueReplyJSON struct {
	ServiceID             string             `json:"serviceId"`
	Conversations         []conversationJSON `json:"conversations"`
	Waiting               int                `json:"waiting"`
	Offered               int                `json:"offered"`
	LongestWaitSeconds    int                `json:"longestWaitSeconds"`
	AgentsEligible        int                `json:"agentsEligible"`
	AgentsInRona          int                `json:"agentsInRona"`
	AgentsInAfterCallWork int                `json:"agentsInAfterCallWork"`
}

func (a *DistributionAPI) queue(w http.ResponseWriter, r *http.Request) error {
	t, s, err := tenantAndService(r)
	if err != nil {
		return err
	}
	v, err := a.Service.Queue(r.Context(), t, s)
	if err != nil {
		return err
	}
	out := queueReplyJSON{ServiceID: s, Conversations: make([]conversationJSON, len(v.Conversations)), Waiting: v.Waiting, Offered: v.Offered,
		LongestWaitSeconds: v.LongestWaitSeconds, AgentsEligible: v.AgentsEligible, AgentsInRona: v.AgentsInRona, AgentsInAfterCallWork: v.AgentsInAfterCallWork}
	for i, c := range v.Conversations {
		out.Conversations[i] = renderConversation(c)
	}
	return WriteJSON(w, http.StatusOK, out)
}

func (a *DistributionAPI) get(w http.ResponseWriter, r *http.Request) error {
	t, c, err := tenantAndConversation(r)
	if err != nil {
		return err
	}
	p, err := a.Service.Get(r.Context(), t, c)
	if err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, renderConversation(p))
}

type offerActionBody struct {
	UserID string `json:"userId"`
}

// actingUser is the agent an accept or decline is for: userId in the body,
// else the caller (its oid; with API_AUTH=none, ?asUser=).
func actingUser(r *http.Request, body offerActionBody) (string, error) {
	if body.UserID != "" {
		return body.UserID, nil
	}
	if p, ok := PrincipalFrom(r.Context()); ok && p.ObjectID != "" {
		return p.ObjectID, nil
	}
	if u := r.URL.Query().Get("asUser"); u != "" {
		return u, nil
	}
	return "", switchboard.FieldError("http.Offer", "userId", "userId is required: the agent whose offer this is")
}

func (a *DistributionAPI) offerAction(
	w http.ResponseWriter,
	r *http.Request,
	do func(ctx context.Context, tenant, conv, user string) (switchboard.Conversation, error),
) error {
	t, c, err := tenantAndConversation(r)
	if err != nil {
		return err
	}
	var body offerActionBody
	if r.ContentLength != 0 {
		if err := DecodeJSON(r, &body); err != nil {
			return err
		}
	}
	u, err := actingUser(r, body)
	if err != nil {
		return err
	}
	if AgentOnly(r.Context()) {
		// An Agent accepts or declines only its own offers.
		p, _ := PrincipalFrom(r.Context())
		if id, ok := switchboard.NormalizeGUID(u); !ok || id != p.ObjectID {
			return &switchboard.Error{Code: switchboard.EFORBIDDEN, Op: "auth", Message: "an Agent may accept or decline only its own offers"}
		}
	}
	conv, err := do(r.Context(), t, c, u)
	if err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, renderConversation(switchboard.Positioned{Conversation: conv}))
}

func (a *DistributionAPI) accept(w http.ResponseWriter, r *http.Request) error {
	return a.offerAction(w, r, a.Service.Accept)
}

func (a *DistributionAPI) decline(w http.ResponseWriter, r *http.Request) error {
	return a.offerAction(w, r, a.Service.Decline)
}

type agentConversationJSON struct {
	ConversationID string    `json:"conversationId"`
	ServiceID      string    `json:"serviceId"`
	Since          time.Time `json:"since"`
}

type agentOfferJSON struct {
	ConversationID string    `json:"conversationId"`
	ServiceID      string    `json:"serviceId"`
	OfferedAt      time.Time `json:"offeredAt"`
	ExpiresAt      time.Time `json:"expiresAt"`
}

type agentRonaJSON struct {
	Since          time.Time `json:"since"`
	Until          time.Time `json:"until"`
	ServiceID      string    `json:"serviceId"`
	ConversationID string    `json:"conversationId"`
}

type agentACWJSON struct {
	Until time.Time `json:"until"`
}

type agentServiceJSON struct {
	ServiceID string `json:"serviceId"`
	Active    bool   `json:"active"`
}

type agentJSONView struct {
	UserID        string                 `json:"userId"`
	Presence      presenceJSON           `json:"presence"`
	Conversation  *agentConversationJSON `json:"conversation"`
	Offer         *agentOfferJSON        `json:"offer"`
	Rona          *agentRonaJSON         `json:"rona"`
	AfterCallWork *agentACWJSON          `json:"afterCallWork"`
	IdleSince     *time.Time             `json:"idleSince"`
	Services      []agentServiceJSON     `json:"services"`
}

func (a *DistributionAPI) agent(w http.ResponseWriter, r *http.Request) error {
	t, err := TenantID(r)
	if err != nil {
		return err
	}
	v, err := a.Service.Agent(r.Context(), t, r.PathValue("u"))
	if err != nil {
		return err
	}
	out := agentJSONView{
		UserID:    v.UserID,
		Presence:  renderPresence(v.Presence, a.Now()),
		IdleSince: optTime(v.IdleSince),
		Services:  make([]agentServiceJSON, len(v.Services)),
	}
	if c := v.Conversation; c != nil {
		out.Conversation = &agentConversationJSON{ConversationID: c.ConversationID, ServiceID: c.ServiceID, Since: c.Since.UTC()}
	}
	if o := v.Offer; o != nil {
		out.Offer = &agentOfferJSON{ConversationID: o.ConversationID, ServiceID: o.ServiceID, OfferedAt: o.OfferedAt.UTC(), ExpiresAt: o.ExpiresAt.UTC()}
	}
	if ro := v.Rona; ro != nil {
		out.Rona = &agentRonaJSON{Since: ro.Since.UTC(), Until: ro.Until.UTC(), ServiceID: ro.ServiceID, ConversationID: ro.ConversationID}
	}
	if v.AfterCallWork != nil {
		out.AfterCallWork = &agentACWJSON{Until: v.AfterCallWork.UTC()}
	}
	for i, s := range v.Services {
		out.Services[i] = agentServiceJSON{ServiceID: s.ServiceID, Active: s.Active}
	}
	return WriteJSON(w, http.StatusOK, out)
}

func (a *DistributionAPI) agentAction(w http.ResponseWriter, r *http.Request, do func(ctx context.Context, tenant, user string) error) error {
	t, err := TenantID(r)
	if err != nil {
		return err
	}
	if err := do(r.Context(), t, r.PathValue("u")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *DistributionAPI) ronaReset(w http.ResponseWriter, r *http.Request) error {
	return a.agentAction(w, r, a.Service.ResetRona)
}

func (a *DistributionAPI) afterCallWorkEnd(w http.ResponseWriter, r *http.Request) error {
	return a.agentAction(w, r, a.Service.EndAfterCallWork)
}

type serviceSummaryJSON struct {
	ID                string `json:"id"`
	Name              string `json:"name"`
	MemberCount       int    `json:"memberCount"`
	ActiveMemberCount int    `json:"activeMemberCount"`
	Waiting           int    `json:"waiting"`
	Offered           int    `json:"offered"`
}

func (a *DistributionAPI) services(w http.ResponseWriter, r *http.Request) error {
	t, err := TenantID(r)
	if err != nil {
		return err
	}
	list, err := a.Service.Services(r.Context(), t)
	if err != nil {
		return err
	}
	out := struct {
		Value []serviceSummaryJSON `json:"value"`
	}{Value: make([]serviceSummaryJSON, len(list))}
	for i, s := range list {
		out.Value[i] = serviceSummaryJSON{
			ID:                s.ID,
			Name:              s.Name,
			MemberCount:       s.MemberCount,
			ActiveMemberCount: s.ActiveMemberCount,
			Waiting:           s.Waiting,
			Offered:           s.Offered,
		}
	}
	return WriteJSON(w, http.StatusOK, out)
}

// tenantAndConversation returns the route's tenant and conversation ids.
func tenantAndConversation(r *http.Request) (string, string, error) {
	t, err := TenantID(r)
	if err != nil {
		return "", "", err
	}
	c, err := PathID(r, "c")
	return t, c, err
}

package httpapi

import (
	"context"
	"net/http"
	"strings"
	"time"

	"switchboard/handler/switchboard"
)

// RoutingService is what the routing routes need (package routing's
// Engine).
type RoutingService interface {
	switchboard.Router
	// GetService returns a service. Returns ENOTFOUND when there is none.
	GetService(ctx context.Context, tenant, id string) (switchboard.Service, error)
	// PutService creates or replaces a service; created says which.
	// Returns EINVALID naming the field, EPRECONDITION when ifMatch is
	// stale, EUNAVAILABLE when the team cannot be read now.
	PutService(ctx context.Context, tenant, id string, in switchboard.ServiceInput, ifMatch string) (switchboard.Service, bool, error)
	// DeleteService deletes a service. Returns ENOTFOUND, EPRECONDITION.
	DeleteService(ctx context.Context, tenant, id, ifMatch string) error
	// SyncTeam re-reads the members of the service's team now. Returns
	// ENOTFOUND, EINVALID for a service without a team, and the team's
	// read error.
	SyncTeam(ctx context.Context, tenant, id string) (switchboard.Service, error)
}

// RoutingAPI serves services, route decisions and conversation ends
// (SPEC section 6).
type RoutingAPI struct {
	Engine RoutingService
	// Now is the clock presence ages are reported against.
	Now func() time.Time
	// Conversations, when set, is the waiting line (SPEC section 10): a
	// DELETE of one of its conversations ends it there, and a route for a
	// queued conversation's id uses its required skills.
	Conversations QueuedConversations
}

// QueuedConversations is what the routing routes need of distribution.
type QueuedConversations interface {
	// End ends a conversation distribution knows and reports whether it
	// knew it.
	End(ctx context.Context, tenant, conversationID string) (bool, error)
	// RequiredSkills returns a queued conversation's required skills;
	// false when distribution does not know it.
	RequiredSkills(ctx context.Context, tenant, conversationID string) ([]switchboard.Skill, bool, error)
	// ServiceChanged distributes a service whose definition or members
	// changed (an agent may have opted in).
	ServiceChanged(tenant, serviceID string)
}

// Register adds the routing routes to r. Roles (SPEC section 9), for the
// roles table: GET services/{s} any role (Agent: its own services); PUT,
// DELETE services/{s} and sync Admin; route Flow; DELETE conversations/{c}
// Supervisor, Flow.
func (a *RoutingAPI) Register(r *Router) {
	r.Tenant("GET /api/tenants/{t}/services/{s}", a.getService)
	r.Tenant("PUT /api/tenants/{t}/services/{s}", a.putService)
	r.Tenant("DELETE /api/tenants/{t}/services/{s}", a.deleteService)
	r.Tenant("POST /api/tenants/{t}/services/{s}/sync", a.syncService)
	r.Tenant("POST /api/tenants/{t}/services/{s}/route", a.route)
	r.Tenant("DELETE /api/tenants/{t}/conversations/{c}", a.deleteConversation)
}

type memberJSON struct {
	UserID string         `json:"userId"`
	Active *bool          `json:"active,omitempty"`
	Skills map[string]int `json:"skills,omitempty"`
}

type distributionJSON struct {
	DeliverWhileBusy     *bool      `json:"deliverWhileBusy"`
	DeliverWhileAway     *bool      `json:"deliverWhileAway"`
	Order                *string    `json:"order"`
	BroadcastSize        *int       `json:"broadcastSize"`
	HoldSeconds          *int       `json:"holdSeconds"`
	RingSeconds          *int       `json:"ringSeconds"`
	Rona                 *ronaJSON  `json:"rona"`
	AfterCallWorkSeconds *int       `json:"afterCallWorkSeconds"`
	Queue                *queueJSON `json:"queue"`
}

type ronaJSON struct {
	Enabled      *bool `json:"enabled"`
	ResetSeconds *int  `json:"resetSeconds"`
	OnDecline    *bool `json:"onDecline"`
}

type queueJSON struct {
	MaxWaitSeconds *int          `json:"maxWaitSeconds"`
	MaxLength      *int          `json:"maxLength"`
	OnTimeout      *overflowJSON `json:"onTimeout"`
	OnFull         *overflowJSON `json:"onFull"`
	OnNoAgents     *overflowJSON `json:"onNoAgents"`
}

type overflowJSON struct {
	Action    *string `json:"action"`
	ServiceID *string `json:"serviceId"`
}

func (o *overflowJSON) input() *switchboard.OverflowInput {
	if o == nil {
		return nil
	}
	return &switchboard.OverflowInput{Action: o.Action, ServiceID: o.ServiceID}
}

func renderOverflow(o switchboard.Overflow) *overflowJSON {
	out := &overflowJSON{Action: &o.Action, ServiceID: nil}
	if o.ServiceID != "" {
		out.ServiceID = &o.ServiceID
	}
	return out
}

// serviceBody is the PUT body. The read-only fields GET adds are accepted
// and ignored, so that what GET returns can be edited and PUT back.
type serviceBody struct {
	Name         *string           `json:"name"`
	Members      []memberJSON      `json:"members"`
	TeamID       *string           `json:"teamId"`
	Distribution *distributionJSON `json:"distribution"`

	ID                any `json:"id"`
	MemberCount       any `json:"memberCount"`
	ActiveMemberCount any `json:"activeMemberCount"`
	CreatedAt         any `json:"createdAt"`
	UpdatedAt         any `json:"updatedAt"`
	LastTeamSync      any `json:"lastTeamSync"`
	LastTeamSyncError any `json:"lastTeamSyncError"`
}

type serviceJSON struct {
	ID           string           `json:"id"`
	Name         string           `json:"name"`
	Members      []memberJSON     `json:"members"`
	TeamID       *string          `json:"teamId"`
	Distribution distributionJSON `json:"distribution"`

	MemberCount       int        `json:"memberCount"`
	ActiveMemberCount int        `json:"activeMemberCount"`
	CreatedAt         time.Time  `json:"createdAt"`
	UpdatedAt         time.Time  `json:"updatedAt"`
	LastTeamSync      *time.Time `json:"lastTeamSync"`
	LastTeamSyncError *string    `json:"lastTeamSyncError"`
}

func renderService(s switchboard.Service) serviceJSON {
	d := s.Distribution
	out := serviceJSON{
		ID:      s.ID,
		Name:    s.Name,
		Members: make([]memberJSON, len(s.Members)),
		Distribution: distributionJSON{
			DeliverWhileBusy:     &d.DeliverWhileBusy,
			DeliverWhileAway:     &d.DeliverWhileAway,
			Order:                &d.Order,
			BroadcastSize:        &d.BroadcastSize,
			HoldSeconds:          &d.HoldSeconds,
			RingSeconds:          &d.RingSeconds,
			Rona:                 &ronaJSON{Enabled: &d.Rona.Enabled, ResetSeconds: &d.Rona.ResetSeconds, OnDecline: &d.Rona.OnDecline},
			AfterCallWorkSeconds: &d.AfterCallWorkSeconds,
			Queue: &queueJSON{MaxWaitSeconds: &d.Queue.MaxWaitSeconds, MaxLength: &d.Queue.MaxLength,
				OnTimeout: renderOverflow(d.Queue.OnTimeout), OnFull: renderOverflow(d.Queue.OnFull), OnNoAgents: renderOverflow(d.Queue.OnNoAgents)},
		},
		MemberCount:       len(s.Members),
		ActiveMemberCount: s.ActiveCount(),
		CreatedAt:         s.CreatedAt,
		UpdatedAt:         s.UpdatedAt,
	}
	for i, m := range s.Members {
		out.Members[i] = memberJSON{UserID: m.UserID, Active: &m.Active, Skills: m.Skills}
	}
	if s.TeamID != "" {
		out.TeamID = &s.TeamID
	}
	if !s.LastTeamSync.IsZero() {
		out.LastTeamSync = &s.LastTeamSync
	}
	if s.LastTeamSyncError != "" {
		out.LastTeamSyncError = &s.LastTeamSyncError
	}
	return out
}

func writeService(w http.ResponseWriter, status int, s switchboard.Service) error {
	if s.ETag != "" {
		w.Header().Set("ETag", s.ETag)
	}
	return WriteJSON(w, status, renderService(s))
}

// tenantAndService returns the route's tenant and service ids.
func tenantAndService(r *http.Request) (string, string, error) {
	t, err := TenantID(r)
	if err != nil {
		return "", "", err
	}
	s, err := PathID(r, "s")
	return t, s, err
}

func (a *RoutingAPI) getService(w http.ResponseWriter, r *http.Request) error {
	t, s, err := tenantAndService(r)
	if err != nil {
		return err
	}
	svc, err := a.Engine.GetService(r.Context(), t, s)
	if err != nil {
		return err
	}
	if AgentOnly(r.Context()) && !isMember(svc, r) {
		return notMember()
	}
	return writeService(w, http.StatusOK, svc)
}

// isMember reports whether the caller is a member of svc.
func isMember(svc switchboard.Service, r *http.Request) bool {
	caller, err := Caller(r)
	if err != nil {
		return false
	}
	for _, m := range svc.Members {
		if m.UserID == caller {
			return true
		}
	}
	return false
}

func (a *RoutingAPI) putService(w http.ResponseWriter, r *http.Request) error {
	t, s, err := tenantAndService(r)
	if err != nil {
		return err
	}
	var body serviceBody
	if err := DecodeJSON(r, &body); err != nil {
		return err
	}
	in := switchboard.ServiceInput{Name: body.Name, TeamID: body.TeamID}
	for _, m := range body.Members {
		in.Members = append(in.Members, switchboard.MemberInput{UserID: m.UserID, Active: m.Active, Skills: m.Skills})
	}
	if d := body.Distribution; d != nil {
		in.Distribution = switchboard.DistributionInput{DeliverWhileBusy: d.DeliverWhileBusy, DeliverWhileAway: d.DeliverWhileAway,
			Order: d.Order, BroadcastSize: d.BroadcastSize, HoldSeconds: d.HoldSeconds,
			RingSeconds: d.RingSeconds, AfterCallWorkSeconds: d.AfterCallWorkSeconds}
		if r := d.Rona; r != nil {
			in.Distribution.Rona = &switchboard.RonaInput{Enabled: r.Enabled, ResetSeconds: r.ResetSeconds, OnDecline: r.OnDecline}
		}
		if q := d.Queue; q != nil {
			in.Distribution.Queue = &switchboard.QueueInput{
				MaxWaitSeconds: q.MaxWaitSeconds,
				MaxLength:      q.MaxLength,
				OnTimeout:      q.OnTimeout.input(),
				OnFull:         q.OnFull.input(),
				OnNoAgents:     q.OnNoAgents.input(),
			}
		}
	}
	svc, created, err := a.Engine.PutService(r.Context(), t, s, in, ifMatch(r))
	if err != nil {
		return err
	}
	if a.Conversations != nil {
		a.Conversations.ServiceChanged(t, s)
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return writeService(w, status, svc)
}

func (a *RoutingAPI) deleteService(w http.ResponseWriter, r *http.Request) error {
	t, s, err := tenantAndService(r)
	if err != nil {
		return err
	}
	if err := a.Engine.DeleteService(r.Context(), t, s, ifMatch(r)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *RoutingAPI) syncService(w http.ResponseWriter, r *http.Request) error {
	t, s, err := tenantAndService(r)
	if err != nil {
		return err
	}
	svc, err := a.Engine.SyncTeam(r.Context(), t, s)
	if err != nil {
		return err
	}
	if a.Conversations != nil {
		a.Conversations.ServiceChanged(t, s)
	}
	return writeService(w, http.StatusOK, svc)
}

// ifMatch returns the request's If-Match ETag ("" when absent).
func ifMatch(r *http.Request) string { return strings.TrimSpace(r.Header.Get("If-Match")) }

type routeBody struct {
	ConversationID string      `json:"conversationId"`
	Reserve        bool        `json:"reserve"`
	Preview        bool        `json:"preview"`
	HoldSeconds    *int        `json:"holdSeconds"`
	PreferredUsers []string    `json:"preferredUsers"`
	RequiredSkills []skillJSON `json:"requiredSkills"`
}

// skillJSON is a required skill: {"name": "german", "minLevel": 2}.
type skillJSON struct {
	Name     string `json:"name"`
	MinLevel int    `json:"minLevel"`
}

func skillsFromJSON(in []skillJSON) []switchboard.Skill {
	out := make([]switchboard.Skill, len(in))
	for i, s := range in {
		out[i] = switchboard.Skill{Name: s.Name, MinLevel: s.MinLevel}
	}
	return out
}

func skillsToJSON(in []switchboard.Skill) []skillJSON {
	out := make([]skillJSON, len(in))
	for i, s := range in {
		out[i] = skillJSON{Name: s.Name, MinLevel: s.MinLevel}
	}
	return out
}

type presenceJSON struct {
	Availability string `json:"availability,omitempty"`
	Activity     string `json:"activity,omitempty"`
	Source       string `json:"source,omitempty"`
	AgeSeconds   *int   `json:"ageSeconds,omitempty"`
}

type agentJSON struct {
	UserID        string     `json:"userId"`
	HoldExpiresAt *time.Time `json:"holdExpiresAt"`
}

type candidateJSON struct {
	UserID   string       `json:"userId"`
	Presence presenceJSON `json:"presence"`
}

type exclusionJSON struct {
	UserID   string       `json:"userId"`
	Reason   string       `json:"reason"`
	Message  string       `json:"message"`
	Presence presenceJSON `json:"presence"`
}

type routeJSON struct {
	ConversationID string          `json:"conversationId"`
	Agents         []agentJSON     `json:"agents"`
	Candidates     []candidateJSON `json:"candidates"`
	Excluded       []exclusionJSON `json:"excluded"`
}

func renderPresence(p *switchboard.Presence, now time.Time) presenceJSON {
	if p == nil || p.Availability == "" {
		return presenceJSON{}
	}
	age := 0
	if !p.ConfirmedAt.IsZero() {
		age = max(int(p.Age(now)/time.Second), 0)
	}
	return presenceJSON{Availability: p.Availability, Activity: p.Activity, Source: p.Source, AgeSeconds: &age}
}

func (a *RoutingAPI) route(w http.ResponseWriter, r *http.Request) error {
	const op = "http.Route"
	t, s, err := tenantAndService(r)
	if err != nil {
		return err
	}
	var body routeBody
	if err := DecodeJSON(r, &body); err != nil {
		return err
	}
	if err := notTaskConversation(op, "conversationId", body.ConversationID); err != nil {
		return err
	}
	req := switchboard.RouteRequest{
		ConversationID: body.ConversationID,
		Reserve:        body.Reserve,
		Preview:        body.Preview,
		PreferredUsers: body.PreferredUsers,
		RequiredSkills: skillsFromJSON(body.RequiredSkills),
	}
	if a.Conversations != nil && body.ConversationID != "" && len(body.RequiredSkills) == 0 {
		skills, ok, err := a.Conversations.RequiredSkills(r.Context(), t, body.ConversationID)
		if err != nil {
			return err
		}
		if ok {
			req.RequiredSkills = skills
		}
	}
	if body.HoldSeconds != nil {
		if err := switchboard.CheckHoldSeconds(op, "holdSeconds", *body.HoldSeconds); err != nil {
			return err
		}
		req.Hold = time.Duration(*body.HoldSeconds) * time.Second
	}
	d, err := a.Engine.Route(r.Context(), t, s, req)
	if err != nil {
		return err
	}
	now := a.Now()
	out := routeJSON{
		ConversationID: d.ConversationID,
		Agents:         make([]agentJSON, len(d.Agents)),
		Candidates:     make([]candidateJSON, len(d.Candidates)),
		Excluded:       make([]exclusionJSON, len(d.Excluded)),
	}
	for i, ag := range d.Agents {
		out.Agents[i] = agentJSON{UserID: ag.UserID}
		if !ag.HoldExpiresAt.IsZero() {
			exp := ag.HoldExpiresAt.UTC()
			out.Agents[i].HoldExpiresAt = &exp
		}
	}
	for i, c := range d.Candidates {
		out.Candidates[i] = candidateJSON{UserID: c.UserID, Presence: renderPresence(&c.Presence, now)}
	}
	for i, x := range d.Excluded {
		out.Excluded[i] = exclusionJSON{UserID: x.UserID, Reason: x.Reason, Message: x.Message, Presence: renderPresence(x.Presence, now)}
	}
	return WriteJSON(w, http.StatusOK, out)
}

func (a *RoutingAPI) deleteConversation(w http.ResponseWriter, r *http.Request) error {
	t, c, err := tenantAndConversation(r)
	if err != nil {
		return err
	}
	if err := notTaskConversation("http.ReleaseConversation", "c", c); err != nil {
		return err
	}
	if a.Conversations != nil {
		known, err := a.Conversations.End(r.Context(), t, c)
		if err != nil {
			return err
		}
		if known {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
	}
	if err := a.Engine.Release(r.Context(), t, c); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// notTaskConversation refuses the conversation ids of outbound task
// attempts: their agents are held and released by the outbound worker and
// the task's complete or cancel, never directly.
func notTaskConversation(op, field, id string) error {
	if switchboard.IsTaskConversation(id) {
		return switchboard.FieldError(op, field, "conversation ids starting with %q belong to outbound tasks: complete or cancel the task "+
			"instead", switchboard.TaskConversationPrefix)
	}
	return nil
}

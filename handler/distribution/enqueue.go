package distribution

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"switchboard/handler/switchboard"
)

func validateEnqueue(in *EnqueueInput) error {
	const op = "distribution.Enqueue"
	if in.ConversationID == "" {
		return switchboard.FieldError(op, "conversationId", "conversationId is required")
	}
	if !switchboard.ValidID(in.ConversationID) {
		return switchboard.FieldError(op, "conversationId", "conversationId %q is not a valid id: 1-128 letters, digits and . _ : @ -, starting "+
			"with a letter or digit", in.ConversationID)
	}
	if strings.HasPrefix(strings.ToLower(in.ConversationID), "task:") {
		return switchboard.FieldError(op, "conversationId", "conversation ids starting with \"task:\" belong to outbound tasks")
	}
	if in.Priority != nil && (*in.Priority < MinPriority || *in.Priority > MaxPriority) {
		return switchboard.FieldError(op, "priority", "priority must be between %d and %d, not %d", MinPriority, MaxPriority, *in.Priority)
	}
	if err := switchboard.CheckRequiredSkills(op, "requiredSkills", in.RequiredSkills); err != nil {
		return err
	}
	if len(in.PreferredUsers) > MaxPreferred {
		return switchboard.FieldError(op, "preferredUsers", "at most %d preferred users, not %d", MaxPreferred, len(in.PreferredUsers))
	}
	for i, u := range in.PreferredUsers {
		id, ok := switchboard.NormalizeGUID(u)
		if !ok {
			return switchboard.FieldError(op, fmt.Sprintf("preferredUsers[%d]", i), "%q is not an Entra object id (a GUID)", u)
		}
		in.PreferredUsers[i] = id
	}
	if utf8.RuneCountInString(in.Customer.DisplayName) > MaxDisplayName {
		return switchboard.FieldError(op, "customer.displayName", "displayName is longer than %d characters", MaxDisplayName)
	}
	if p := in.Customer.Phone; p != "" {
		p = strings.NewReplacer(" ", "", "-", "", ".", "", "(", "", ")", "").Replace(p)
		if !e164.MatchString(p) {
			return switchboard.FieldError(op, "customer.phone", "phone %q is not a phone number in E.164 form (+ and 7-15 digits)", in.Customer.Phone)
		}
		in.Customer.Phone = p
	}
	if len(in.Context) > MaxContext {
		return switchboard.FieldError(op, "context", "at most %d context entries, not %d", MaxContext, len(in.Context))
	}
	for k, v := range in.Context {
		if k == "" || len(k) > MaxContextKey {
			return switchboard.FieldError(op, "context", "context keys are 1-%d characters", MaxContextKey)
		}
		if len(v) > MaxContextValue {
			return switchboard.FieldError(op, "context."+k, "context values are at most %d characters", MaxContextValue)
		}
	}
	return nil
}

// Enqueue puts a conversation into a service's queue and applies the
// queue's arrival rules: onNoAgents when no active member is signed in,
// onFull when the line is full, otherwise Queued and offered at once when
// an agent is free and nothing eligible waits ahead. It returns the
// conversation in the state it reached and whether it was created; the
// same conversationId again returns it as it is. Returns EINVALID naming
// the field, ENOTFOUND for an unknown service, ECONFLICT when the
// conversation is known in another service.
func (s *Service) Enqueue(ctx context.Context, tenant, service string, in EnqueueInput) (Conversation, bool, error) {
	const op = "distribution.Enqueue"
	if err := validateEnqueue(&in); err != nil {
		return Conversation{}, false, err
	}
	svc, err := s.o.Agents.RoutedService(ctx, tenant, service)
	if err != nil {
		return Conversation{}, false, err
	}
	// No read first: a conversation that exists loses on the insert below
	// (an offer taken for it meanwhile goes back), which saves a round trip
	// on every new conversation.
	now := s.now()
	c := Conversation{
		TenantID: tenant, ID: in.ConversationID, ServiceID: service, State: StateQueued, Priority: DefaultPriority,
		RequiredSkills: in.RequiredSkills, PreferredUsers: in.PreferredUsers, Customer: in.Customer, Context: in.Context,
		QueuedAt: now, Deadline: now.Add(time.Duration(svc.Distribution.Queue.MaxWaitSeconds) * time.Second),
		Offers: []Offer{}, ForwardedFrom: []string{},
	}
	if in.Priority != nil {
		c.Priority = *in.Priority
	}
	if c.RequiredSkills == nil {
		c.RequiredSkills = []switchboard.Skill{}
	}
	if c.PreferredUsers == nil {
		c.PreferredUsers = []string{}
	}
	if c.Context == nil {
		c.Context = map[string]string{}
	}
	c.Record(now, EventQueued, "", "")
	fx := newEffects()
	if c, err = s.arrive(ctx, c, svc, fx); err != nil {
		fx.undo(ctx, s, tenant, c.ID)
		return Conversation{}, false, err
	}
	saved, err := s.convs.save(ctx, nil, c)
	if switchboard.IsCode(err, switchboard.ECONFLICT) {
		fx.undo(ctx, s, tenant, c.ID)
		cur, gerr := s.convs.get(ctx, tenant, in.ConversationID)
		if gerr != nil {
			return Conversation{}, false, gerr
		}
		return existing(op, cur, service)
	}
	if err != nil {
		fx.undoUnlessUnsure(ctx, s, tenant, c.ID, err)
		return Conversation{}, false, err
	}
	s.after(ctx, tenant, saved, fx)
	return saved, true, nil
}

// existing answers an enqueue of a conversation that exists: as it is
// when it is (or was, before a forward) this service's.
func existing(op string, c Conversation, service string) (Conversation, bool, error) {
	if c.ServiceID == service || slices.Contains(c.ForwardedFrom, service) {
		return c, false, nil
	}
	return Conversation{}, false, &switchboard.Error{Code: switchboard.ECONFLICT, Op: op, Field: "conversationId", Type: "conversation-in-another-service",
		Message: fmt.Sprintf("conversation %s is known in service %s", c.ID, c.ServiceID)}
}

// signedOut are the reasons of a member who is not signed in (onNoAgents).
var signedOut = map[string]bool{
	switchboard.ReasonNotMember: true, switchboard.ReasonNotActive: true, switchboard.ReasonOffline: true,
	switchboard.ReasonPresenceUnknown: true, switchboard.ReasonPresenceStale: true,
}

// dryRoute asks who could take the conversation now, reserving nothing.
func (s *Service) dryRoute(
	ctx context.Context,
	tenant string,
	svc switchboard.Service,
	skills []switchboard.Skill,
	preferred,
	skip []string,
) (switchboard.RouteDecision, error) {
	return s.o.Agents.Route(ctx, tenant, svc.ID, switchboard.RouteRequest{
		RequiredSkills: skills, PreferredUsers: preferred, Skip: skip, MaxAgents: svc.Distribution.Want(),
	})
}

// arrive applies a service's arrival rules to a conversation that arrives
// in its queue (enqueued, or forwarded to it).
func (s *Service) arrive(ctx context.Context, c Conversation, svc switchboard.Service, fx *effects) (Conversation, error) {
	q := svc.Distribution.Queue
	// The line is read while the conversation is offered, optimistically:
	// when an agent is free nothing eligible waits ahead (it would have
	// been offered), so the offer usually stands and the caller waits for
	// one round trip less. When something does come first, or the queue is
	// full, the offer goes back. A reading that is lineFresh old once the
	// offer is made (a slow route under load) is taken again: an agent the
	// offer took may have been freed after it, with something ahead.
	var line []entry
	var lerr error
	readAt := time.Now()
	read := make(chan struct{})
	go func() {
		defer close(read)
		line, lerr = s.convs.line(ctx, c.TenantID, svc.ID)
	}()
	try := clone(c)
	tfx := newEffects()
	offered, d, oerr := s.offerTo(ctx, &try, svc, nil, nil, tfx)
	<-read
	if offered && lerr == nil && oerr == nil && time.Since(readAt) > lineFresh {
		line, lerr = s.convs.line(ctx, c.TenantID, svc.ID)
	}
	if lerr != nil || oerr != nil {
		tfx.undo(ctx, s, c.TenantID, c.ID)
		return c, errors.Join(lerr, oerr)
	}
	waiting, ahead := 0, false
	for _, e := range line {
		if e.ID == c.ID {
			continue
		}
		waiting++
		if !e.Ringing && before(e.Priority, e.QueuedAt, e.ID, c.Priority, c.QueuedAt, c.ID) {
			ahead = true
		}
	}
	full := waiting >= q.MaxLength
	if offered && !ahead && !full {
		fx.offered = append(fx.offered, tfx.offered...)
		fx.sends = append(fx.sends, tfx.sends...)
		fx.send(timeoutMessage(try))
		return try, nil
	}
	tfx.undo(ctx, s, c.TenantID, c.ID)
	// d is who could take it (an offer's route decides as a dry one does).
	if !signedIn(d) && q.OnNoAgents.Action != switchboard.ActionQueue {
		return s.overflow(ctx, c, svc, q.OnNoAgents, "onNoAgents", false, fx)
	}
	if full {
		return s.overflow(ctx, c, svc, q.OnFull, "onFull", false, fx)
	}
	c.State = StateQueued
	fx.send(timeoutMessage(c))
	if offered {
		// Those ahead come first: a pass serves the line in order, and
		// gives them the agent this offer let go.
		fx.distribute(svc.ID)
	}
	return c, nil
}

// signedIn reports whether a decision saw an active member signed in: one
// chosen or eligible, or excluded for anything but being signed out
// (Offline, PresenceUnknown, stale, inactive).
func signedIn(d switchboard.RouteDecision) bool {
	if len(d.Agents) > 0 || len(d.Candidates) > 0 {
		return true
	}
	for _, x := range d.Excluded {
		if !signedOut[x.Reason] {
			return true
		}
	}
	return false
}

// overflow applies an overflow rule (onNoAgents and onFull at arrival,
// onTimeout after maxWaitSeconds) to a waiting conversation.
func (s *Service) overflow(
	ctx context.Context,
	c Conversation,
	svc switchboard.Service,
	rule switchboard.Overflow,
	which string,
	timeout bool,
	fx *effects,
) (Conversation, error) {
	now := s.now()
	final, event := StateRejected, EventRejected
	if timeout {
		final, event = StateTimedOut, EventTimedOut
	}
	endRinging(&c, now, which, fx)
	switch rule.Action {
	case switchboard.ActionForward:
		if len(c.ForwardedFrom) >= MaxForwards {
			c.EndAs(now, StateTimedOut, EventTimedOut, fmt.Sprintf("%s: Forward to %s refused: forwarded %d times already (at most "+
				"%d)", which, rule.ServiceID, len(c.ForwardedFrom), MaxForwards))
			return c, nil
		}
		target, err := s.o.Agents.RoutedService(ctx, c.TenantID, rule.ServiceID)
		if switchboard.IsCode(err, switchboard.ENOTFOUND) {
			c.EndAs(now, final, event, fmt.Sprintf("%s: Forward to service %s, which does not exist", which, rule.ServiceID))
			return c, nil
		}
		if err != nil {
			return c, err
		}
		c.Record(now, EventForwarded, "", fmt.Sprintf("%s: to %s", which, target.ID))
		c.ForwardedFrom = append(c.ForwardedFrom, c.ServiceID)
		c.ServiceID, c.QueuedAt, c.State, c.Declined = target.ID, now, StateQueued, nil
		c.Deadline = now.Add(time.Duration(target.Distribution.Queue.MaxWaitSeconds) * time.Second)
		c.Record(now, EventQueued, "", "forwarded from "+c.ForwardedFrom[len(c.ForwardedFrom)-1])
		return s.arrive(ctx, c, target, fx)
	case switchboard.ActionCallback:
		target := rule.ServiceID
		if target == "" {
			target = svc.ID
		}
		if c.Customer.Phone == "" {
			c.EndAs(now, final, event, which+": Callback needs the customer's phone; there is none, so the conversation is disconnected")
			return c, nil
		}
		if s.o.Outbound == nil {
			c.EndAs(now, final, event, which+": Callback is not available (no outbound tasks in this deployment)")
			return c, nil
		}
		id, err := s.o.Outbound.ScheduleCallback(
			ctx,
			c.TenantID,
			target,
			Callback{ReferenceID: "callback:" + c.ID, Destination: c.Customer.Phone, Priority: c.Priority, Context: c.Context},
		)
		switch {
		case switchboard.IsCode(err, switchboard.ELIMIT):
			c.EndAs(now, StateTimedOut, EventTimedOut, fmt.Sprintf("%s: Callback refused: service %s has reached its outbound task limit "+
				"(%s)", which, target, switchboard.ErrorMessage(err)))
			return c, nil
		case switchboard.IsCode(err, switchboard.EINVALID) || switchboard.IsCode(err, switchboard.ENOTFOUND):
			c.EndAs(now, final, event, fmt.Sprintf("%s: Callback refused: %s", which, switchboard.ErrorMessage(err)))
			return c, nil
		case err != nil:
			return c, err
		}
		c.CallbackTaskID = id
		c.EndAs(now, StateCallbackScheduled, EventCallbackScheduled, fmt.Sprintf("%s: outbound task %s in service %s", which, id, target))
		return c, nil
	}
	c.EndAs(now, final, event, which+": Disconnect")
	return c, nil
}

// offerTo offers a waiting conversation to the next agent(s) of its
// service: one for LongestIdle and RoundRobin, up to broadcastSize for
// Broadcast, the agents of prefer first (those a pass matched it with),
// only agents of only when it is not empty (those the pass saw free and
// gave no item ahead). Each offer is the agent's hold for the ring time. A
// Broadcast that rings
// already takes agents up to broadcastSize, ringing until its round does
// (the first accept still wins; the lapses put nobody into RONA).
func (s *Service) offerTo(
	ctx context.Context,
	c *Conversation,
	svc switchboard.Service,
	prefer,
	only []string,
	fx *effects,
) (bool, switchboard.RouteDecision, error) {
	ring, want := ringFor(svc), svc.Distribution.Want()
	skip := slices.Clone(c.Declined)
	if ringing := c.Ringing(); len(ringing) > 0 {
		want = broadcastRoom(svc, len(ringing), earliestExpiry(*c), s.now())
		if want == 0 {
			return false, switchboard.RouteDecision{}, nil
		}
		ring = earliestExpiry(*c).Sub(s.now()).Truncate(time.Millisecond)
		for _, o := range ringing {
			skip = append(skip, o.UserID)
		}
	}
	preferred := switchboard.PreferFirst(prefer, c.PreferredUsers)
	d, err := s.o.Agents.Route(ctx, c.TenantID, svc.ID, switchboard.RouteRequest{
		ConversationID: c.ID, Reserve: true, Offer: true, Hold: ring, Rona: ronaFor(svc, false),
		PreferredUsers: preferred, RequiredSkills: c.RequiredSkills, Skip: skip, Only: only,
		MaxAgents: want,
	})
	if err != nil {
		return false, d, err
	}
	if len(d.Agents) == 0 {
		return false, d, nil
	}
	now := s.now()
	expires := d.Agents[0].HoldExpiresAt.UTC()
	for _, a := range d.Agents {
		c.Offers = append(c.Offers, Offer{UserID: a.UserID, OfferedAt: now, ExpiresAt: expires, State: OfferRinging})
		c.Record(now, EventOffered, a.UserID, "")
		fx.offered = append(fx.offered, a.UserID)
	}
	c.State = StateOffered
	fx.send(lapseMessage(*c, now, expires))
	return true, d, nil
}

package distribution

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// Direct conversations (SPEC section 12: an Interact session created with
// userId) are offered to one agent only, outside any service. They go
// through the same machinery as a service's: the agent's offer is its
// ETag-guarded hold (so one offer or conversation per agent holds across
// both), the ring time and the wait limit are due-time messages, accept,
// decline, release and the conversation routes are the same. The times are
// a service's defaults (ring 20 s, RONA 600 s, no RONA on a decline, no
// after-call work, a wait of at most 1,200 s).
//
// What the one agent does decides the conversation, so that the customer
// always learns where it stands and never waits for nothing:
//   - free: the conversation is offered at once;
//   - busy (a conversation, another offer, RONA, after-call work, in a call,
//     Do not disturb): it waits in the agent's own line (w|@<user>|<id>, in
//     queue order) and is offered as soon as the agent is free; at its wait
//     limit it times out (TimedOut);
//   - not signed in (Offline, no or a stale presence reading): Rejected at
//     once, or, while waiting, when it is next tried: at once when the
//     poll reads it Offline, also while an offer rings out, in RONA or in
//     after-call work (not while it is in a conversation);
//   - declines: Rejected (it cannot go to another agent, nor to this one
//     again);
//   - lets it ring out: the agent goes into RONA and the conversation ends
//     TimedOut.

// directLinePrefix starts a direct line's name: no service id starts with
// "@", so an agent's line never mixes with a service's.
const directLinePrefix = "@"

// lineOf names the line a waiting conversation is in: its service's, or
// its agent's for a direct one.
func lineOf(c Conversation) string {
	if c.Direct() {
		return directLinePrefix + c.DirectUserID
	}
	return c.ServiceID
}

// directService is whose rules a direct conversation follows: the service
// defaults of section 10.
func directService() switchboard.Service {
	return switchboard.Service{Distribution: switchboard.DefaultDistribution()}
}

// serviceFor returns the service whose rules apply to c: its own (errors
// as RoutedService's, ENOTFOUND for one that was deleted), or the defaults
// for a direct conversation.
func (s *Service) serviceFor(ctx context.Context, c *Conversation) (switchboard.Service, error) {
	if c.Direct() {
		return directService(), nil
	}
	return s.o.Agents.RoutedService(ctx, c.TenantID, c.ServiceID)
}

// offerEnded goes on after an offer of c lapsed or was declined (the
// agent's hold is already in fx): a service's conversation waits for its
// next agent; a direct one has no other agent and ends.
func (s *Service) offerEnded(c *Conversation, now time.Time, user string, declined bool, fx *effects) {
	if !c.Direct() {
		if len(c.Ringing()) == 0 {
			c.State = StateQueued
		}
		fx.distribute(c.ServiceID)
		return
	}
	if declined {
		c.EndAs(now, StateRejected, EventRejected, "declined by "+user+", the one agent of this direct conversation")
		return
	}
	c.EndAs(now, StateTimedOut, EventTimedOut, fmt.Sprintf("%s, the one agent of this direct conversation, did not answer within %d s",
		user, directService().Distribution.RingSeconds))
}

// OfferDirect starts a conversation for one agent only: offered at once
// when the agent is free, waiting for the agent when it is busy, Rejected
// when it is not signed in (the conversation's history and outcome say
// why). It returns the conversation in the state it reached and whether
// it was created; the same conversationId again returns it as it is.
// Returns EINVALID naming the field, ECONFLICT when the conversation is
// known in a service or for another agent.
func (s *Service) OfferDirect(ctx context.Context, tenant, user string, in EnqueueInput) (Conversation, bool, error) {
	const op = "distribution.OfferDirect"
	user, err := checkUser(op, user)
	if err != nil {
		return Conversation{}, false, err
	}
	if err := validateEnqueue(&in); err != nil {
		return Conversation{}, false, err
	}
	if len(in.PreferredUsers) > 0 {
		return Conversation{}, false, switchboard.FieldError(op, "preferredUsers", "a direct conversation has one agent: no preferred users")
	}
	if len(in.RequiredSkills) > 0 {
		return Conversation{}, false, switchboard.FieldError(op, "requiredSkills", "a direct conversation has one agent: no required skills")
	}
	if err := s.checkTracked(ctx, tenant, user); err != nil {
		return Conversation{}, false, err
	}
	d := directService().Distribution
	now := s.now()
	c := Conversation{
		TenantID: tenant, ID: in.ConversationID, DirectUserID: user, State: StateQueued, Priority: DefaultPriority,
		RequiredSkills: []switchboard.Skill{}, PreferredUsers: []string{}, Customer: in.Customer, Context: in.Context,
		QueuedAt: now, Deadline: now.Add(time.Duration(d.Queue.MaxWaitSeconds) * time.Second), Offers: []Offer{}, ForwardedFrom: []string{},
	}
	if in.Priority != nil {
		c.Priority = *in.Priority
	}
	if c.Context == nil {
		c.Context = map[string]string{}
	}
	c.Record(now, EventQueued, user, "direct: for this agent only")
	fx := newEffects()
	// Those already waiting for the agent come first.
	ahead, err := s.convs.line(ctx, tenant, lineOf(c))
	if err != nil {
		return Conversation{}, false, err
	}
	if len(ahead) == 0 {
		if err := s.tryDirect(ctx, &c, fx); err != nil {
			fx.undo(ctx, s, tenant, c.ID)
			return Conversation{}, false, err
		}
	}
	if c.Waiting() {
		fx.send(timeoutMessage(c))
	}
	saved, err := s.convs.save(ctx, nil, c)
	if switchboard.IsCode(err, switchboard.ECONFLICT) {
		fx.undo(ctx, s, tenant, c.ID)
		cur, gerr := s.convs.get(ctx, tenant, in.ConversationID)
		if gerr != nil {
			return Conversation{}, false, gerr
		}
		if cur.DirectUserID != user {
			return Conversation{}, false, &switchboard.Error{Code: switchboard.ECONFLICT, Op: op, Field: "conversationId",
				Type: "conversation-in-another-service", Message: fmt.Sprintf("conversation %s is known for another service or agent", cur.ID)}
		}
		return cur, false, nil
	}
	if err != nil {
		fx.undoUnlessUnsure(ctx, s, tenant, c.ID, err)
		return Conversation{}, false, err
	}
	s.after(ctx, tenant, saved, fx)
	if len(ahead) > 0 {
		// Waiting behind others: should the agent be free already (an
		// event missed), the first of them goes now.
		s.kick(tenant, nil, []string{user})
	}
	return saved, true, nil
}

// CheckDirect says whether a direct conversation could ever be offered to
// user. Returns EINVALID (field userId) for a malformed id or a member of
// none of the tenant's services.
func (s *Service) CheckDirect(ctx context.Context, tenant, user string) error {
	user, err := checkUser("distribution.OfferDirect", user)
	if err != nil {
		return err
	}
	return s.checkTracked(ctx, tenant, user)
}

// checkTracked refuses an agent who is a member of none of the tenant's
// services: Switchboard reads presence only for services' members, so it
// could never tell whether that agent is signed in.
func (s *Service) checkTracked(ctx context.Context, tenant, user string) error {
	svcs, err := s.o.Agents.Services(ctx, tenant)
	if err != nil {
		return switchboard.Wrap(switchboard.EUNAVAILABLE, "distribution.OfferDirect", err)
	}
	for _, svc := range svcs {
		if slices.ContainsFunc(svc.Members, func(m switchboard.Member) bool { return m.UserID == user }) {
			return nil
		}
	}
	return switchboard.FieldError("distribution.OfferDirect", "userId", "%s is a member of none of this tenant's services, so Switchboard does "+
		"not follow its presence and cannot offer it anything: add it to a service (as an inactive member, if it should take only direct "+
		"conversations)", user)
}

// tryDirect offers a waiting direct conversation to its agent when the
// agent is free, ends it Rejected when the agent is not signed in, and
// leaves it waiting otherwise.
func (s *Service) tryDirect(ctx context.Context, c *Conversation, fx *effects) error {
	ring := ringFor(directService())
	d, err := s.o.Agents.OfferDirect(ctx, c.TenantID, c.DirectUserID, c.ID, ring, ronaFor(directService(), false))
	if err != nil {
		return err
	}
	now := s.now()
	if len(d.Agents) == 0 {
		for _, x := range d.Excluded {
			switch {
			case signedOut[x.Reason]:
				c.EndAs(now, StateRejected, EventRejected, "the agent is not signed in, or its presence is not known: "+x.Message)
			case notWorking[x.Reason] && x.Presence != nil && x.Presence.Availability == switchboard.Offline && !x.Presence.Stale(now, s.o.StaleAfter):
				// Signed out with an offer ringing out, in RONA or in
				// after-call work: it will not take this one soon, so the
				// customer learns it now rather than at the wait limit. (An
				// agent in a conversation stays busy: it may well be
				// working outside Teams.)
				c.EndAs(now, StateRejected, EventRejected, "the agent is not signed in: its presence reads Offline ("+x.Message+")")
			}
		}
		return nil
	}
	a := d.Agents[0]
	expires := a.HoldExpiresAt.UTC()
	c.Offers = append(c.Offers, Offer{UserID: a.UserID, OfferedAt: now, ExpiresAt: expires, State: OfferRinging})
	c.Record(now, EventOffered, a.UserID, "")
	fx.offered = append(fx.offered, a.UserID)
	c.State = StateOffered
	fx.send(lapseMessage(*c, now, expires))
	return nil
}

// notWorking are the reasons of an agent held without a conversation.
var notWorking = map[string]bool{switchboard.ReasonOfferPending: true, switchboard.ReasonRona: true, switchboard.ReasonAfterCallWork: true}

// distributeDirect offers each of agents the first direct conversation
// waiting for it, if any (the agents were freed, or their presence
// changed). One query reads the tenant's direct lines, which are usually
// empty.
func (s *Service) distributeDirect(ctx context.Context, tenant string, agents []string) error {
	if len(agents) == 0 {
		return nil
	}
	lines, err := s.directLines(ctx, tenant)
	if err != nil || len(lines) == 0 {
		return err
	}
	var errs []error
	for _, u := range agents {
		if es, ok := lines[u]; ok {
			errs = append(errs, s.serveDirect(ctx, tenant, es))
		}
	}
	return errors.Join(errs...)
}

// kickDirect runs distributeDirect for agents in the background.
func (s *Service) kickDirect(tenant string, agents []string) {
	s.background(func(ctx context.Context) {
		if err := s.distributeDirect(ctx, tenant, agents); err != nil {
			s.o.Log.Warn("distribution: direct conversations not served; the next event or housekeeping serves them", "tenant", tenant, "err", err)
		}
	})
}

// directLines returns the tenant's waiting direct conversations by agent,
// each agent's in queue order.
func (s *Service) directLines(ctx context.Context, tenant string) (map[string][]entry, error) {
	var all []entry
	err := store.QueryAll(ctx, s.convs.t, store.Query{PartitionKey: tenant, Prefix: linePrefix + directLinePrefix}, func(e store.Entity) error {
		all = append(all, decodeEntry(e))
		return nil
	})
	if err != nil {
		return nil, switchboard.Wrap(switchboard.EUNAVAILABLE, "distribution.directLines", err)
	}
	return byDirectAgent(all), nil
}

// byDirectAgent groups the direct conversations among line entries by
// their agent, each agent's in queue order; other entries are left out.
func byDirectAgent(entries []entry) map[string][]entry {
	out := map[string][]entry{}
	for _, e := range entries {
		if u, ok := strings.CutPrefix(e.ServiceID, directLinePrefix); ok {
			out[u] = append(out[u], e)
		}
	}
	for _, es := range out {
		sortEntries(es)
	}
	return out
}

// serveDirect offers an agent's line its first waiting conversation not
// ringing yet (while one rings for the agent, the next waits: the agent's
// one hold row refuses a second offer). A conversation that ends (its
// agent not signed in) lets the next one be tried.
func (s *Service) serveDirect(ctx context.Context, tenant string, line []entry) error {
	for _, e := range line {
		if e.Ringing {
			continue
		}
		c, err := s.mutate(ctx, tenant, e.ID, func(c *Conversation, fx *effects) (bool, error) {
			if !c.Direct() || !c.Waiting() || len(c.Ringing()) > 0 {
				return false, nil
			}
			before := c.State
			if err := s.tryDirect(ctx, c, fx); err != nil {
				return false, err
			}
			return c.State != before, nil
		})
		switch {
		case switchboard.IsCode(err, switchboard.ENOTFOUND):
			continue
		case err != nil:
			return err
		case c.Waiting():
			return nil // offered now, or the agent is still busy
		}
	}
	return nil
}

// housekeepDirect tries every agent's waiting direct conversations once
// (what an agent event missed: a presence change to Offline ends them,
// an agent freed on another instance is offered them); all are the
// tenant's line entries as housekeeping read them.
func (s *Service) housekeepDirect(ctx context.Context, tenant string, all []entry) error {
	var errs []error
	for _, es := range byDirectAgent(all) {
		if deadlineNear(ctx) {
			break
		}
		errs = append(errs, s.serveDirect(ctx, tenant, es))
	}
	return errors.Join(errs...)
}

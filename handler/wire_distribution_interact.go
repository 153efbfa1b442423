package main

import (
	"context"
	"maps"

	"switchboard/handler/distribution"
	"switchboard/handler/interact"
)

// newConversations returns what Interact sessions use of distribution
// (SPEC section 10): the service's waiting line, or the offer to one agent.
func newConversations(a *app) interact.Conversations { return distributionAdapter{a.distribution} }

// distributionAdapter is distribution's waiting line as sessions see it.
type distributionAdapter struct{ d *distribution.Service }

func (a distributionAdapter) Enqueue(ctx context.Context, tenant, service string, c interact.NewConversation) (interact.ConversationState, error) {
	conv, _, err := a.d.Enqueue(ctx, tenant, service, enqueueInput(c))
	if err != nil {
		return interact.ConversationState{}, err
	}
	return a.State(ctx, tenant, conv.ID)
}

func (a distributionAdapter) CheckDirect(ctx context.Context, tenant, agent string) error {
	return a.d.CheckDirect(ctx, tenant, agent)
}

// OfferDirect offers the conversation to the one agent (SPEC section 12):
// at once when free, when free again when busy; an agent not signed in
// gets none (the conversation is Rejected, and the session Ended).
func (a distributionAdapter) OfferDirect(ctx context.Context, tenant, agent string, c interact.NewConversation) (interact.ConversationState, error) {
	conv, _, err := a.d.OfferDirect(ctx, tenant, agent, enqueueInput(c))
	if err != nil {
		return interact.ConversationState{}, err
	}
	return a.State(ctx, tenant, conv.ID)
}

// enqueueInput is a session's conversation as distribution takes it: the
// customer's e-mail goes into the context (distribution's customer has
// none).
func enqueueInput(c interact.NewConversation) distribution.EnqueueInput {
	ctxt := maps.Clone(c.Context)
	if c.Customer.Email != "" {
		if ctxt == nil {
			ctxt = map[string]string{}
		}
		if _, set := ctxt["customerEmail"]; !set {
			ctxt["customerEmail"] = c.Customer.Email
		}
	}
	return distribution.EnqueueInput{ConversationID: c.ID, Customer: distribution.Customer{DisplayName: c.Customer.DisplayName}, Context: ctxt}
}

func (a distributionAdapter) State(ctx context.Context, tenant, id string) (interact.ConversationState, error) {
	p, err := a.d.Get(ctx, tenant, id)
	if err != nil {
		return interact.ConversationState{}, err
	}
	return interact.ConversationState{State: p.State, Agent: p.Agent, Position: p.Position}, nil
}

func (a distributionAdapter) End(ctx context.Context, tenant, id string) error {
	_, err := a.d.End(ctx, tenant, id)
	return err
}

func (a distributionAdapter) Requeue(ctx context.Context, tenant, id string) (interact.ConversationState, error) {
	if _, err := a.d.Requeue(ctx, tenant, id); err != nil {
		return interact.ConversationState{}, err
	}
	return a.State(ctx, tenant, id)
}

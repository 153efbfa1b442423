package main

import (
	"context"
	"maps"

	"switchboard/handler/distribution"
	"switchboard/handler/interact"
	"switchboard/handler/switchboard"
)

// newConversations returns what Interact sessions use of distribution
// (SPEC section 10): the service's waiting line.
func newConversations(a *app) interact.Conversations { return distributionAdapter{a.distribution} }

// distributionAdapter is distribution's waiting line as sessions see it.
type distributionAdapter struct{ d *distribution.Service }

func (a distributionAdapter) Enqueue(ctx context.Context, tenant, service string, c interact.NewConversation) (interact.ConversationState, error) {
	ctxt := maps.Clone(c.Context)
	if c.Customer.Email != "" {
		if ctxt == nil {
			ctxt = map[string]string{}
		}
		if _, set := ctxt["customerEmail"]; !set {
			ctxt["customerEmail"] = c.Customer.Email
		}
	}
	conv, _, err := a.d.Enqueue(ctx, tenant, service, distribution.EnqueueInput{
		ConversationID: c.ID, Customer: distribution.Customer{DisplayName: c.Customer.DisplayName}, Context: ctxt,
	})
	if err != nil {
		return interact.ConversationState{}, err
	}
	return a.State(ctx, tenant, conv.ID)
}

// OfferDirect: distribution offers conversations to the members of a
// service's line; an offer to one agent outside any line is not there yet.
func (a distributionAdapter) OfferDirect(ctx context.Context, tenant, agent string, c interact.NewConversation) (interact.ConversationState, error) {
	return interact.ConversationState{}, switchboard.Errorf(switchboard.EUNAVAILABLE, "interact", "direct sessions (userId) need offers to one "+
		"agent outside a service's queue, which distribution does not make yet: use serviceId")
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

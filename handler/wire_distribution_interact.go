package main

import (
	"context"

	"switchboard/handler/interact"
	"switchboard/handler/switchboard"
)

// newConversations returns what Interact sessions use of distribution
// (SPEC section 10).
//
// DistributionAdapter is to be written once handler/distribution is on
// this branch: until then no waiting line exists, and a session answers
// 503 saying so instead of pretending to queue.
func newConversations(a *app) interact.Conversations { return noDistribution{} }

type noDistribution struct{}

func (noDistribution) unavailable() error {
	return switchboard.Errorf(
		switchboard.EUNAVAILABLE,
		"interact",
		"this build has no waiting lines (distribution, SPEC section 10): Interact sessions cannot reach an agent",
	)
}

// Available tells sessions before they create anything.
func (d noDistribution) Available() error { return d.unavailable() }

func (d noDistribution) Enqueue(context.Context, string, string, interact.NewConversation) (interact.ConversationState, error) {
	return interact.ConversationState{}, d.unavailable()
}

func (d noDistribution) OfferDirect(context.Context, string, string, interact.NewConversation) (interact.ConversationState, error) {
	return interact.ConversationState{}, d.unavailable()
}

func (d noDistribution) State(context.Context, string, string) (interact.ConversationState, error) {
	return interact.ConversationState{}, d.unavailable()
}

func (d noDistribution) End(context.Context, string, string) error { return d.unavailable() }

func (d noDistribution) Requeue(context.Context, string, string) (interact.ConversationState, error) {
	return interact.ConversationState{}, d.unavailable()
}

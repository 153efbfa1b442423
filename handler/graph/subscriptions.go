package graph

import (
	"context"
	"fmt"
	"switchboard/handler/switchboard"
	"time"

	core "github.com/microsoftgraph/msgraph-sdk-go-core"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/subscriptions"
)

// delegated refuses the application source: Graph accepts presence
// subscriptions with delegated permission only.
func delegated(src switchboard.PresenceSource) error {
	if src.Account() == 0 {
		return &switchboard.SourceError{Source: src, Reason: switchboard.SourceNotConfigured, Message: "presence subscriptions need a presence " +
			"account (delegated permission); application permission cannot subscribe"}
	}
	return nil
}

// subscriptionAdapter returns the request adapter of a presence account
// and a context bounded by the request timeout. Errors are SourceErrors.
func (c *Client) subscriptionAdapter(ctx context.Context, tenant string, src switchboard.PresenceSource) (
	*core.GraphRequestAdapterBase,
	context.Context,
	context.CancelFunc,
	error,
) {
	if err := delegated(src); err != nil {
		return nil, ctx, func() {}, err
	}
	a, err := c.adapter(tenant, src)
	if err != nil {
		return nil, ctx, func() {}, classify(src, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	return a, ctx, cancel, nil
}

// CreateSubscription implements presence.Subscriptions: POST /subscriptions.
func (c *Client) CreateSubscription(
	ctx context.Context,
	tenant string,
	src switchboard.PresenceSource,
	req switchboard.PresenceSubscriptionRequest,
) (switchboard.PresenceSubscription, error) {
	a, ctx, cancel, err := c.subscriptionAdapter(ctx, tenant, src)
	if err != nil {
		return switchboard.PresenceSubscription{}, err
	}
	defer cancel()
	body := models.NewSubscription()
	changeType, include := "updated", true
	exp := req.ExpiresAt.UTC()
	body.SetChangeType(&changeType)
	body.SetResource(&req.Resource)
	body.SetNotificationUrl(&req.NotificationURL)
	body.SetLifecycleNotificationUrl(&req.NotificationURL)
	body.SetClientState(&req.ClientState)
	body.SetExpirationDateTime(&exp)
	body.SetIncludeResourceData(&include)
	body.SetEncryptionCertificate(&req.Certificate)
	body.SetEncryptionCertificateId(&req.CertificateID)
	rb := subscriptions.NewSubscriptionsRequestBuilder(c.base+"/subscriptions", a)
	got, err := rb.Post(ctx, body, nil)
	if err != nil {
		return switchboard.PresenceSubscription{}, classify(src, err)
	}
	if got == nil || got.GetId() == nil || got.GetExpirationDateTime() == nil {
		return switchboard.PresenceSubscription{}, &switchboard.SourceError{Source: src, Reason: switchboard.SourceGraphError,
			Message: "Graph created the subscription but answered without its id or expiry"}
	}
	return switchboard.PresenceSubscription{ID: *got.GetId(), ExpiresAt: *got.GetExpirationDateTime()}, nil
}

// RenewSubscription implements presence.Subscriptions: PATCH
// /subscriptions/{id} with a new expirationDateTime.
func (c *Client) RenewSubscription(ctx context.Context, tenant string, src switchboard.PresenceSource, id string, expiresAt time.Time) (time.Time, error) {
	a, ctx, cancel, err := c.subscriptionAdapter(ctx, tenant, src)
	if err != nil {
		return time.Time{}, err
	}
	defer cancel()
	body := models.NewSubscription()
	exp := expiresAt.UTC()
	body.SetExpirationDateTime(&exp)
	rb := subscriptions.NewSubscriptionItemRequestBuilder(c.base+"/subscriptions/"+id, a)
	got, err := rb.Patch(ctx, body, nil)
	if err != nil {
		return time.Time{}, classify(src, err)
	}
	if got == nil || got.GetExpirationDateTime() == nil {
		return time.Time{}, &switchboard.SourceError{Source: src, Reason: switchboard.SourceGraphError, Message: "Graph renewed the subscription " +
			"but answered without its expiry"}
	}
	return *got.GetExpirationDateTime(), nil
}

// ReauthorizeSubscription implements presence.Subscriptions: POST
// /subscriptions/{id}/reauthorize.
func (c *Client) ReauthorizeSubscription(ctx context.Context, tenant string, src switchboard.PresenceSource, id string) error {
	a, ctx, cancel, err := c.subscriptionAdapter(ctx, tenant, src)
	if err != nil {
		return err
	}
	defer cancel()
	rb := subscriptions.NewItemReauthorizeRequestBuilder(fmt.Sprintf("%s/subscriptions/%s/reauthorize", c.base, id), a)
	if err := rb.Post(ctx, nil); err != nil {
		return classify(src, err)
	}
	return nil
}

// DeleteSubscription implements presence.Subscriptions: DELETE
// /subscriptions/{id}.
func (c *Client) DeleteSubscription(ctx context.Context, tenant string, src switchboard.PresenceSource, id string) error {
	a, ctx, cancel, err := c.subscriptionAdapter(ctx, tenant, src)
	if err != nil {
		return err
	}
	defer cancel()
	rb := subscriptions.NewSubscriptionItemRequestBuilder(c.base+"/subscriptions/"+id, a)
	if err := rb.Delete(ctx, nil); err != nil {
		return classify(src, err)
	}
	return nil
}

// ListSubscriptions implements presence.Subscriptions: GET /subscriptions
// (with a delegated token, the subscriptions the user created with this
// application).
func (c *Client) ListSubscriptions(ctx context.Context, tenant string, src switchboard.PresenceSource) ([]switchboard.PresenceSubscription, error) {
	a, ctx, cancel, err := c.subscriptionAdapter(ctx, tenant, src)
	if err != nil {
		return nil, err
	}
	defer cancel()
	rb := subscriptions.NewSubscriptionsRequestBuilder(c.base+"/subscriptions", a)
	got, err := rb.Get(ctx, nil)
	if err != nil {
		return nil, classify(src, err)
	}
	var out []switchboard.PresenceSubscription
	if got == nil {
		return out, nil
	}
	for _, s := range got.GetValue() {
		if s == nil || s.GetId() == nil {
			continue
		}
		g := switchboard.PresenceSubscription{ID: *s.GetId(), Resource: deref(s.GetResource())}
		if e := s.GetExpirationDateTime(); e != nil {
			g.ExpiresAt = *e
		}
		out = append(out, g)
	}
	return out, nil
}

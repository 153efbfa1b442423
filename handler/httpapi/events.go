package httpapi

import (
	"net/http"

	"switchboard/handler/switchboard"
)

// EventsAPI serves the event subscriptions of SPEC section 11. Roles (SPEC
// section 9): Admin and Flow on every route.
type EventsAPI struct {
	Subscriptions switchboard.EventSubscriptions
}

// Register adds the subscription routes to r.
func (a *EventsAPI) Register(r *Router) {
	r.Tenant("POST /api/tenants/{t}/subscriptions", a.create)
	r.Tenant("GET /api/tenants/{t}/subscriptions", a.list)
	r.Tenant("GET /api/tenants/{t}/subscriptions/{id}", a.get)
	r.Tenant("DELETE /api/tenants/{t}/subscriptions/{id}", a.delete)
	r.Tenant("GET /api/tenants/{t}/subscriptions/{id}/deliveries", a.deliveries)
}

// EventSubscriptionList is the list reply.
type EventSubscriptionList struct {
	Value []switchboard.EventSubscription `json:"value"`
}

// EventDeliveryList is the deliveries reply.
type EventDeliveryList struct {
	Value []switchboard.EventDelivery `json:"value"`
}

func (a *EventsAPI) create(w http.ResponseWriter, r *http.Request) error {
	tenant, err := TenantID(r)
	if err != nil {
		return err
	}
	var req switchboard.EventSubscriptionRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	sub, err := a.Subscriptions.Create(r.Context(), tenant, req)
	if err != nil {
		return err
	}
	// Power Automate calls this URL with DELETE when the flow is turned
	// off: it must be absolute and name the host the caller used.
	w.Header().Set("Location", BaseURL(r)+"/api/tenants/"+tenant+"/subscriptions/"+sub.ID)
	return WriteJSON(w, http.StatusCreated, sub)
}

func (a *EventsAPI) list(w http.ResponseWriter, r *http.Request) error {
	tenant, err := TenantID(r)
	if err != nil {
		return err
	}
	subs, err := a.Subscriptions.List(r.Context(), tenant)
	if err != nil {
		return err
	}
	if subs == nil {
		subs = []switchboard.EventSubscription{}
	}
	return WriteJSON(w, http.StatusOK, EventSubscriptionList{Value: subs})
}

func (a *EventsAPI) get(w http.ResponseWriter, r *http.Request) error {
	tenant, id, err := a.ids(r)
	if err != nil {
		return err
	}
	sub, err := a.Subscriptions.Get(r.Context(), tenant, id)
	if err != nil {
		return err
	}
	return WriteJSON(w, http.StatusOK, sub)
}

func (a *EventsAPI) delete(w http.ResponseWriter, r *http.Request) error {
	tenant, id, err := a.ids(r)
	if err != nil {
		return err
	}
	if err := a.Subscriptions.Delete(r.Context(), tenant, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *EventsAPI) deliveries(w http.ResponseWriter, r *http.Request) error {
	tenant, id, err := a.ids(r)
	if err != nil {
		return err
	}
	ds, err := a.Subscriptions.Deliveries(r.Context(), tenant, id)
	if err != nil {
		return err
	}
	if ds == nil {
		ds = []switchboard.EventDelivery{}
	}
	return WriteJSON(w, http.StatusOK, EventDeliveryList{Value: ds})
}

func (a *EventsAPI) ids(r *http.Request) (string, string, error) {
	tenant, err := TenantID(r)
	if err != nil {
		return "", "", err
	}
	id, err := PathID(r, "id")
	return tenant, id, err
}

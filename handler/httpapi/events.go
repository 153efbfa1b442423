package httpapi

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"switchboard/handler/switchboard"
)

// EventsAPI serves the event subscriptions of SPEC section 11. Who may
// call each route is in routeAccess (access.go).
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
	// The Power Automate triggers: one subscribe operation per resource
	// (a connector has one operation per path and method), and the event
	// types for their pickers.
	r.Tenant("POST /api/tenants/{t}/subscriptions/triggers/{resource}", a.trigger)
	r.Tenant("GET /api/tenants/{t}/event-types", a.eventTypes)
}

// EventType is one entry of the event catalogue as the API lists it.
type EventType struct {
	Type     string `json:"type"`
	Resource string `json:"resource"`
	Title    string `json:"title"`
}

// EventTypeList is the event-types reply.
type EventTypeList struct {
	Value []EventType `json:"value"`
}

// eventTypes lists the catalogue, optionally of one resource (?resource=).
func (a *EventsAPI) eventTypes(w http.ResponseWriter, r *http.Request) error {
	if _, err := TenantID(r); err != nil {
		return err
	}
	resource := r.URL.Query().Get("resource")
	if resource != "" && !knownResource(resource) {
		return switchboard.FieldError(
			"http.eventTypes",
			"resource",
			"unknown resource %q: one of %s",
			truncateID(resource),
			strings.Join(eventResources(), ", "),
		)
	}
	out := EventTypeList{Value: []EventType{}}
	for _, t := range switchboard.EventTypes {
		if res := switchboard.EventResource(t); resource == "" || res == resource {
			out.Value = append(out.Value, EventType{Type: t, Resource: res, Title: eventTitle(t)})
		}
	}
	return WriteJSON(w, http.StatusOK, out)
}

// trigger subscribes a Power Automate trigger to the events of one
// resource: as POST .../subscriptions, with events limited to that
// resource (none named: all of them).
func (a *EventsAPI) trigger(w http.ResponseWriter, r *http.Request) error {
	resource := r.PathValue("resource")
	if !knownResource(resource) {
		return &switchboard.Error{
			Code:    switchboard.ENOTFOUND,
			Op:      "http.trigger",
			Field:   "resource",
			Message: "no trigger for " + strconv.Quote(truncateID(resource)) + ": one of " + strings.Join(eventResources(), ", "),
		}
	}
	var req switchboard.EventSubscriptionRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	if len(req.Events) == 0 {
		req.Events = []string{"switchboard." + resource + ".*"}
	}
	for i, t := range req.Events {
		if switchboard.EventResource(t) != resource {
			return switchboard.FieldError("http.trigger", fmt.Sprintf("events[%d]", i), "this trigger takes events of %s (switchboard.%s.*), not "+
				"%q", resource, resource, truncateID(t))
		}
	}
	return a.subscribe(w, r, req)
}

func knownResource(resource string) bool { return slices.Contains(eventResources(), resource) }

// eventResources lists the resources of the catalogue, in its order.
func eventResources() []string {
	var out []string
	for _, t := range switchboard.EventTypes {
		if res := switchboard.EventResource(t); !slices.Contains(out, res) {
			out = append(out, res)
		}
	}
	return out
}

// eventTitle names an event type for people: "Offer Declined" for
// switchboard.conversation.offerDeclined.
func eventTitle(eventType string) string {
	name := eventType[strings.LastIndex(eventType, ".")+1:]
	var b strings.Builder
	for i, c := range name {
		switch {
		case i == 0:
			b.WriteRune(unicode.ToUpper(c))
		case unicode.IsUpper(c):
			b.WriteByte(' ')
			b.WriteRune(c)
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
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
	var req switchboard.EventSubscriptionRequest
	if err := DecodeJSON(r, &req); err != nil {
		return err
	}
	return a.subscribe(w, r, req)
}

// subscribe creates the subscription and answers 201 with its Location.
func (a *EventsAPI) subscribe(w http.ResponseWriter, r *http.Request, req switchboard.EventSubscriptionRequest) error {
	tenant, err := TenantID(r)
	if err != nil {
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

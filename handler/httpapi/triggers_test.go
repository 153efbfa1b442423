package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"switchboard/handler/switchboard"
)

// recordingSubscriptions keeps what Create was asked.
type recordingSubscriptions struct {
	switchboard.EventSubscriptions
	got []switchboard.EventSubscriptionRequest
}

func (s *recordingSubscriptions) Create(ctx context.Context, tenantID string, req switchboard.EventSubscriptionRequest) (switchboard.EventSubscription, error) {
	s.got = append(s.got, req)
	return switchboard.EventSubscription{ID: "sub-1", TenantID: tenantID, URL: req.URL, Events: req.Events, Services: req.Services, State: "active", Secret: "whsec_x"}, nil
}

func triggerServer(t *testing.T) (*httptest.Server, *recordingSubscriptions) {
	t.Helper()
	subs := &recordingSubscriptions{}
	rt := NewRouter(slog.New(slog.DiscardHandler), nil)
	(&EventsAPI{Subscriptions: subs}).Register(rt)
	srv := httptest.NewServer(rt)
	t.Cleanup(srv.Close)
	return srv, subs
}

// A trigger subscribes to its resource's events (all of them unless some
// are named), answers 201 with the Location Power Automate deletes when the
// flow is turned off, and refuses events of another resource naming the
// entry.
func TestTriggerSubscribesToItsResource(t *testing.T) {
	srv, subs := triggerServer(t)
	base := srv.URL + "/api/tenants/" + outboundTenant + "/subscriptions/triggers/"
	for _, tc := range []struct {
		resource, body string
		status         int
		events         []string
		field          string
	}{
		{"outboundTask", `{"url": "https://flow.example/cb"}`, 201, []string{"switchboard.outboundTask.*"}, ""},
		{"conversation", `{"url": "https://flow.example/cb", "events": ["switchboard.conversation.offered", "switchboard.conversation.ended"], "services": ["support"]}`, 201,
			[]string{"switchboard.conversation.offered", "switchboard.conversation.ended"}, ""},
		{"conversation", `{"url": "https://flow.example/cb", "events": ["switchboard.conversation.offered", "switchboard.outboundTask.stateChanged"]}`, 400, nil, "events[1]"},
		{"gopher", `{"url": "https://flow.example/cb"}`, 404, nil, "resource"},
	} {
		resp, err := http.Post(base+tc.resource, "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		var p problem
		_ = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.resource, tc.body, resp.StatusCode, tc.status)
			continue
		}
		if tc.status != 201 {
			if p.Field != tc.field {
				t.Errorf("%s %s: field %q, want %q", tc.resource, tc.body, p.Field, tc.field)
			}
			continue
		}
		if loc := resp.Header.Get("Location"); loc != srv.URL+"/api/tenants/"+outboundTenant+"/subscriptions/sub-1" {
			t.Errorf("Location %q, want the subscription's absolute URL", loc)
		}
		if got := subs.got[len(subs.got)-1].Events; !slices.Equal(got, tc.events) {
			t.Errorf("%s: subscribed to %v, want %v", tc.resource, got, tc.events)
		}
	}
	if len(subs.got) != 2 {
		t.Errorf("Create called %d times, want 2 (refusals create nothing)", len(subs.got))
	}
}

func TestEventTypesList(t *testing.T) {
	srv, _ := triggerServer(t)
	get := func(q string) (int, EventTypeList) {
		resp, err := http.Get(srv.URL + "/api/tenants/" + outboundTenant + "/event-types" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var l EventTypeList
		_ = json.NewDecoder(resp.Body).Decode(&l)
		return resp.StatusCode, l
	}
	status, all := get("")
	if status != 200 || len(all.Value) != len(switchboard.EventTypes) {
		t.Fatalf("all: %d, %d types; want 200 and the %d of the catalogue", status, len(all.Value), len(switchboard.EventTypes))
	}
	status, conv := get("?resource=conversation")
	if status != 200 || len(conv.Value) != 12 || conv.Value[2] != (EventType{"switchboard.conversation.offerDeclined", "conversation", "Offer Declined"}) {
		t.Errorf("conversation: %d %+v; want the 12 conversation types, titled", status, conv.Value)
	}
	if status, _ := get("?resource=gopher"); status != 400 {
		t.Errorf("unknown resource: %d, want 400", status)
	}
}

package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"switchboard/handler/outbound"
)

// checkProblem fails unless rec is an error reply as SPEC section 6 wants
// it: application/problem+json with a type, a title and its status.
func checkProblem(t *testing.T, what string, rec *httptest.ResponseRecorder) problem {
	t.Helper()
	var p problem
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("%s: %d with Content-Type %q, want application/problem+json: %s", what, rec.Code, ct, rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Type == "" || p.Title == "" || p.Status != rec.Code {
		t.Fatalf("%s: problem %s (%v): want type, title and status %d", what, rec.Body, err, rec.Code)
	}
	if !utf8.ValidString(p.Title) {
		t.Fatalf("%s: title is not UTF-8: %q", what, p.Title)
	}
	return p
}

// FuzzRouteBody feeds arbitrary route bodies to the real router and
// routing engine (three members, two Available): every reply is 200 with
// a decision whose agents are members, or a 400 problem; never a 500 (a
// panic is one) and never a reservation of a non-member.
func FuzzRouteBody(f *testing.F) {
	for _, seed := range []string{
		`{"conversationId":"c-1"}`, `{"conversationId":"c-1","reserve":true,"holdSeconds":30}`,
		`{"conversationId":"c-2","reserve":true,"preferredUsers":["` + agentUser(2) + `","` + agentUser(9) + `"]}`,
		`{"reserve":true}`, `{"conversationId":"task:0190a1b2-0000-7000-8000-000000000000:1"}`,
		`{"holdSeconds":4}`, `{"holdSeconds":1e9}`, `{"holdSeconds":"30"}`, `{"preferredUsers":null}`,
		`{"conversationId":""}`, `{}`, `null`, `[]`, `{"conversationId":"c","extra":1}`, `{"a":`, "",
		`{"conversationId":"` + strings.Repeat("x", 300) + `"}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		e := newRoutingEnv(t)
		members := fmt.Sprintf(`{"name":"Support","members":[{"userId":%q},{"userId":%q},{"userId":%q}]}`, agentUser(1), agentUser(2), agentUser(3))
		if rec := e.call(http.MethodPut, servicePath, members, nil); rec.Code != http.StatusCreated {
			t.Fatalf("PUT service: %d %s", rec.Code, rec.Body)
		}
		e.presence.set(agentUser(1), "Available", "Available", true)
		e.presence.set(agentUser(2), "Available", "Available", true)
		e.presence.set(agentUser(3), "Busy", "InACall", true)
		rec := e.call(http.MethodPost, servicePath+"/route", body, nil)
		switch rec.Code {
		case http.StatusOK:
			var d routeJSON
			if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil {
				t.Fatalf("200 reply is not a decision: %v %s", err, rec.Body)
			}
			// Every member once; anyone else only as NotMember (a preferred
			// user who is not a member).
			seen := map[string]int{}
			for _, a := range d.Agents {
				seen[a.UserID]++
			}
			for _, c := range d.Candidates {
				seen[c.UserID]++
			}
			for _, x := range d.Excluded {
				seen[x.UserID]++
				if x.UserID != agentUser(1) && x.UserID != agentUser(2) && x.UserID != agentUser(3) && x.Reason != "NotMember" {
					t.Fatalf("non-member %s excluded as %s, want NotMember", x.UserID, x.Reason)
				}
			}
			for i := 1; i <= 3; i++ {
				if seen[agentUser(i)] != 1 {
					t.Fatalf("member %s appears %d times in the decision, want once: %s", agentUser(i), seen[agentUser(i)], rec.Body)
				}
			}
			for _, a := range d.Agents {
				if a.UserID != agentUser(1) && a.UserID != agentUser(2) {
					t.Fatalf("agent %s chosen: only the Available members may be", a.UserID)
				}
			}
		case http.StatusBadRequest:
			checkProblem(t, "route", rec)
		default:
			t.Fatalf("route %q: %d %s, want 200 or 400", body, rec.Code, rec.Body)
		}
	})
}

// FuzzOutboundBody feeds arbitrary bodies to schedule and to complete,
// through the real router and outbound service: schedule answers 202 with
// a task whose fields are within the documented bounds (and reads back the
// same), or a 400 problem; complete answers 200 or a 400/409 problem. Never
// a 500.
func FuzzOutboundBody(f *testing.F) {
	for _, seed := range []string{
		`{"destination":"+41440000000"}`,
		`{"destination":"alice@contoso.example","dueDateTimeUtc":"2026-11-22T13:00:00Z","referenceId":"r-1","priority":99,"maxAttempts":10,"maxQueueTimeSeconds":3600,"preferredUsers":["` + outboundAgent + `"],"context":{"k":"v"}}`,
		`{"destination":"+41 44 000 00 00","priority":0}`, `{"destination":"x"}`, `{"destination":""}`,
		`{"destination":"+41440000000","dueDateTimeUtc":"yesterday"}`, `{"destination":"+41440000000","context":{"k":1}}`,
		`{"destination":"+41440000000","maxAttempts":1.5}`, `{"outcome":"Failed","attempt":1}`, `{"outcome":"Done"}`,
		`{"attempt":0}`, `{"attempt":"1"}`, `{}`, `null`, `[]`, `{"a":`, "",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		e := newOutboundEnv(t, 50)
		// A task in progress, for complete.
		status, first, raw := e.post(`{"destination":"+41440000009"}`)
		if status != http.StatusAccepted {
			t.Fatalf("schedule the first task: %d %s", status, raw)
		}
		e.deliverAll()

		resp, b := e.do(http.MethodPost, e.path(""), body, nil)
		switch resp.StatusCode {
		case http.StatusAccepted:
			var task OutboundTask
			if err := json.Unmarshal(b, &task); err != nil {
				t.Fatalf("202 reply is not a task: %v %s", err, b)
			}
			if _, ok := outbound.NormalizeDestination(task.Destination); !ok ||
				task.Priority < outbound.MinPriority || task.Priority > outbound.MaxPriority ||
				task.MaxAttempts < outbound.MinMaxAttempts || task.MaxAttempts > outbound.MaxMaxAttempts ||
				task.MaxQueueTimeSeconds < outbound.MinMaxQueueTimeSeconds || task.MaxQueueTimeSeconds > outbound.MaxMaxQueueTimeSeconds ||
				len(task.PreferredUsers) > outbound.MaxPreferredUsers || len(task.Context) > outbound.MaxContextEntries {
				t.Fatalf("schedule %q accepted a task out of bounds: %s", body, b)
			}
			var again OutboundTask
			if r, gb := e.do(http.MethodGet, e.path("/"+task.ID), "", &again); r.StatusCode != http.StatusOK || mustJSON(t, again) != mustJSON(t, task) {
				t.Fatalf("GET of the accepted task = %d %s, want %s", r.StatusCode, gb, b)
			}
		case http.StatusBadRequest, http.StatusConflict:
			checkProblemBody(t, "schedule", resp, b)
		default:
			t.Fatalf("schedule %q: %d %s, want 202 or a 400/409 problem", body, resp.StatusCode, b)
		}

		resp, b = e.do(http.MethodPost, e.path("/"+first.ID+"/complete"), body, nil)
		switch resp.StatusCode {
		case http.StatusOK:
			var task OutboundTask
			if err := json.Unmarshal(b, &task); err != nil || task.ID != first.ID {
				t.Fatalf("complete 200 reply is not the task: %v %s", err, b)
			}
		case http.StatusBadRequest, http.StatusConflict:
			checkProblemBody(t, "complete", resp, b)
		default:
			t.Fatalf("complete %q: %d %s, want 200 or a 400/409 problem", body, resp.StatusCode, b)
		}
	})
}

func checkProblemBody(t *testing.T, what string, resp *http.Response, b []byte) {
	t.Helper()
	rec := httptest.NewRecorder()
	rec.Code = resp.StatusCode
	for k, v := range resp.Header {
		rec.Header()[k] = v
	}
	rec.Body.Write(b)
	checkProblem(t, what, rec)
}

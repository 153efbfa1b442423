package httpapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"switchboard/handler/internal/fakes"
	"switchboard/handler/outbound"
	"switchboard/handler/store"
)

const outboundTenant = "6a1d2c3b-4e5f-4a6b-8c7d-9e0f1a2b3c4d"

const outboundAgent = "00000000-0000-4000-8000-0000000000aa"

type outboundLimit int

func (l outboundLimit) MaxScheduledTasksPerService(ctx context.Context, tenantID string) (int, error) {
	return int(l), nil
}

type outboundEnv struct {
	t     *testing.T
	srv   *httptest.Server
	svc   *outbound.Service
	queue *fakes.Queue
	now   time.Time
}

func newOutboundEnv(t *testing.T, limit int) *outboundEnv {
	t.Helper()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	q := fakes.NewQueue(func() time.Time { return now })
	svc, err := outbound.New(context.Background(), outbound.Options{
		Tables: store.NewMemoryTables(), Queue: q, QueueName: "outbound-tasks", Router: fakes.NewRouter(outboundAgent),
		Limits: outboundLimit(limit), Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	rt := NewRouter(slog.New(slog.DiscardHandler), nil)
	(&OutboundAPI{Tasks: svc}).Register(rt)
	srv := httptest.NewServer(rt)
	t.Cleanup(srv.Close)
	return &outboundEnv{t: t, srv: srv, svc: svc, queue: q, now: now}
}

func (e *outboundEnv) path(suffix string) string {
	return "/api/tenants/" + outboundTenant + "/services/support/outbound-tasks" + suffix
}

// do sends a request and decodes a JSON reply into out (when not nil).
func (e *outboundEnv) do(method, path, body string, out any) (*http.Response, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: reply %s: %v", method, path, b, err)
		}
	}
	return resp, b
}

func (e *outboundEnv) post(body string) (int, OutboundTask, []byte) {
	e.t.Helper()
	var task OutboundTask
	resp, b := e.do(http.MethodPost, e.path(""), body, &task)
	return resp.StatusCode, task, b
}

// deliverAll hands every message sent so far to the worker.
func (e *outboundEnv) deliverAll() {
	e.t.Helper()
	for _, m := range e.queue.Messages() {
		if _, err := e.svc.Handle(context.Background(), m.Msg.Body); err != nil {
			e.t.Fatal(err)
		}
	}
}

func outboundProblem(t *testing.T, b []byte) problem {
	t.Helper()
	var p problem
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("problem %s: %v", b, err)
	}
	return p
}

func TestOutboundScheduleReply(t *testing.T) {
	e := newOutboundEnv(t, 20)
	resp, b := e.do(http.MethodPost, e.path(""), `{"destination": "+41 44 000 00 00", "dueDateTimeUtc": "2026-11-22T13:00:00Z", "referenceId": "run-1", "context": {"case": "42"}}`, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST = %d %s, want 202", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q", ct)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	want := []string{"agent", "attempts", "context", "createdAt", "destination", "dueDateTimeUtc", "id", "maxAttempts", "maxQueueTimeSeconds", "preferredUsers", "priority", "referenceId", "serviceId", "state", "updatedAt"}
	if !slices.Equal(keys, want) {
		t.Errorf("task fields = %v, want exactly %v (SPEC section 6)", keys, want)
	}
	var task OutboundTask
	_ = json.Unmarshal(b, &task)
	if task.State != "Scheduled" || task.ServiceID != "support" || task.Destination != "+41440000000" || task.Priority != 50 ||
		task.MaxAttempts != 1 || task.MaxQueueTimeSeconds != 300 || task.Agent != nil || task.Attempts != 0 ||
		task.ReferenceID == nil || *task.ReferenceID != "run-1" || task.Context["case"] != "42" || len(task.PreferredUsers) != 0 {
		t.Errorf("task = %s", b)
	}
	if !task.DueDateTimeUTC.Equal(e.now.Add(time.Hour)) {
		t.Errorf("due = %v, want %v", task.DueDateTimeUTC, e.now.Add(time.Hour))
	}
	status, again, _ := e.post(`{"destination": "+41440000001", "referenceId": "run-1"}`)
	if status != http.StatusOK || again.ID != task.ID {
		t.Errorf("same referenceId: %d id %s, want 200 and %s", status, again.ID, task.ID)
	}
	_, none, b := e.post(`{"destination": "agent@contoso.com", "referenceId": null, "priority": null}`)
	if none.ReferenceID != nil || !strings.Contains(string(b), `"referenceId":null`) || !strings.Contains(string(b), `"agent":null`) {
		t.Errorf("task without referenceId: %s, want referenceId and agent null", b)
	}
}

func TestOutboundScheduleValidation(t *testing.T) {
	e := newOutboundEnv(t, 20)
	for _, tc := range []struct {
		name, body, field string
	}{
		{"no destination", `{}`, "destination"},
		{"bad destination", `{"destination": "call me"}`, "destination"},
		{"bad due", `{"destination": "+41440000000", "dueDateTimeUtc": "soon"}`, "dueDateTimeUtc"},
		{"priority as text", `{"destination": "+41440000000", "priority": "high"}`, "priority"},
		{"priority out of range", `{"destination": "+41440000000", "priority": 100}`, "priority"},
		{"maxAttempts out of range", `{"destination": "+41440000000", "maxAttempts": 11}`, "maxAttempts"},
		{"queue time out of range", `{"destination": "+41440000000", "maxQueueTimeSeconds": 1}`, "maxQueueTimeSeconds"},
		{"preferred user", `{"destination": "+41440000000", "preferredUsers": ["x"]}`, "preferredUsers[0]"},
		{"context not strings", `{"destination": "+41440000000", "context": {"a": 1}}`, "context"},
		{"unknown field", `{"destination": "+41440000000", "queue": "x"}`, "queue"},
		{"not json", `destination=+41440000000`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, b := e.post(tc.body)
			if status != http.StatusBadRequest {
				t.Fatalf("POST = %d %s, want 400", status, b)
			}
			if p := outboundProblem(t, b); p.Field != tc.field || p.Type != "validation-error" {
				t.Errorf("problem = %+v, want field %q, type validation-error", p, tc.field)
			}
		})
	}
}

// 200 concurrent requests through HTTP against a cap of 20: exactly 20
// accepted, 180 refused with 409 outbound-task-limit-reached.
func TestOutboundCapOverHTTP(t *testing.T) {
	e := newOutboundEnv(t, 20)
	statuses := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, b := e.do(http.MethodPost, e.path(""), `{"destination": "+41440000000"}`, nil)
			mu.Lock()
			defer mu.Unlock()
			statuses[resp.StatusCode]++
			if resp.StatusCode == http.StatusConflict {
				if p := outboundProblem(t, b); p.Type != "outbound-task-limit-reached" || resp.Header.Get("Content-Type") != "application/problem+json" {
					t.Errorf("409 reply: %s %s", resp.Header.Get("Content-Type"), b)
				}
			}
		}()
	}
	wg.Wait()
	if statuses[http.StatusAccepted] != 20 || statuses[http.StatusConflict] != 180 || len(statuses) != 2 {
		t.Errorf("statuses = %v, want 20 × 202 and 180 × 409", statuses)
	}
}

func TestOutboundGetCancelComplete(t *testing.T) {
	e := newOutboundEnv(t, 20)
	_, first, _ := e.post(`{"destination": "+41440000000"}`)
	_, second, _ := e.post(`{"destination": "+41440000001", "dueDateTimeUtc": "2026-11-23T12:00:00Z"}`)
	e.deliverAll() // the first is due: assigned to the one agent

	var got OutboundTask
	if resp, b := e.do(http.MethodGet, e.path("/"+first.ID), "", &got); resp.StatusCode != http.StatusOK || got.State != "InProgress" || got.Agent == nil || got.Agent.UserID != outboundAgent || got.Attempts != 1 {
		t.Fatalf("GET first = %d %s, want InProgress with the agent", resp.StatusCode, b)
	}
	for _, p := range []string{"/00000000-0000-7000-8000-000000000000", "/not-an-id", "/" + strings.Repeat("x", 200)} {
		if resp, b := e.do(http.MethodGet, e.path(p), "", nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d %s, want 404", p, resp.StatusCode, b)
		}
	}
	resp, b := e.do(http.MethodDelete, e.path("/"+first.ID), "", nil)
	if resp.StatusCode != http.StatusConflict || outboundProblem(t, b).Type != "outbound-task-in-progress" {
		t.Errorf("DELETE in progress = %d %s, want 409 outbound-task-in-progress", resp.StatusCode, b)
	}
	if resp, b := e.do(http.MethodDelete, e.path("/"+second.ID), "", &got); resp.StatusCode != http.StatusOK || got.State != "Cancelled" {
		t.Errorf("DELETE scheduled = %d %s, want 200 Cancelled", resp.StatusCode, b)
	}
	if len(e.queue.Cancels()) != 1 {
		t.Errorf("cancelled messages %v, want the second task's", e.queue.Cancels())
	}
	if resp, b := e.do(http.MethodPost, e.path("/"+first.ID+"/complete"), `{"outcome": "Done"}`, nil); resp.StatusCode != http.StatusBadRequest || outboundProblem(t, b).Field != "outcome" {
		t.Errorf("complete with a bad outcome = %d %s, want 400 naming outcome", resp.StatusCode, b)
	}
	if resp, b := e.do(http.MethodPost, e.path("/"+first.ID+"/complete"), "", &got); resp.StatusCode != http.StatusOK || got.State != "Completed" || got.Agent == nil {
		t.Errorf("complete without a body = %d %s, want 200 Completed", resp.StatusCode, b)
	}
	if resp, b := e.do(http.MethodPost, e.path("/"+second.ID+"/complete"), `{"outcome": "Failed", "note": "x"}`, nil); resp.StatusCode != http.StatusConflict {
		t.Errorf("complete a cancelled task = %d %s, want 409", resp.StatusCode, b)
	}
}

func TestOutboundList(t *testing.T) {
	e := newOutboundEnv(t, 20)
	var ids []string
	for range 5 {
		_, task, _ := e.post(`{"destination": "+41440000000", "dueDateTimeUtc": "2026-11-23T12:00:00Z"}`)
		ids = append(ids, task.ID)
	}
	if resp, b := e.do(http.MethodDelete, e.path("/"+ids[2]), "", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE = %d %s", resp.StatusCode, b)
	}
	var seen []string
	next := e.path("?top=2")
	for pages := 0; next != "" && pages < 5; pages++ {
		var page OutboundTaskList
		resp, b := e.do(http.MethodGet, next, "", &page)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET list = %d %s", resp.StatusCode, b)
		}
		for _, task := range page.Value {
			seen = append(seen, task.ID)
		}
		next = ""
		if page.NextLink != nil {
			u, err := url.Parse(*page.NextLink)
			if err != nil || u.Query().Get("continuationToken") != *page.ContinuationToken || u.Query().Get("top") != "2" {
				t.Fatalf("nextLink %q does not carry the token and top", *page.NextLink)
			}
			next = u.RequestURI()
		} else if page.ContinuationToken != nil {
			t.Fatal("a continuation token without a nextLink")
		}
	}
	if !slices.Equal(seen, ids) {
		t.Errorf("paged through %v, want %v", seen, ids)
	}
	var page OutboundTaskList
	if resp, b := e.do(http.MethodGet, e.path("?state=Cancelled"), "", &page); resp.StatusCode != http.StatusOK || len(page.Value) != 1 || page.Value[0].ID != ids[2] || page.ContinuationToken != nil {
		t.Errorf("GET ?state=Cancelled = %d %s, want the one cancelled task", resp.StatusCode, b)
	}
	if _, b := e.do(http.MethodGet, e.path("?state=Cancelled"), "", nil); !strings.Contains(string(b), `"continuationToken":null`) {
		t.Errorf("last page %s, want continuationToken null", b)
	}
	for _, q := range []string{"?state=Running", "?top=0", "?top=x", "?top=101", "?continuationToken=%21"} {
		if resp, b := e.do(http.MethodGet, e.path(q), "", nil); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET %s = %d %s, want 400", q, resp.StatusCode, b)
		}
	}
}

// A retried complete(Failed) (Power Automate retries timed-out actions)
// must not fail the attempt after it: the body's attempt or If-Match names
// the attempt the caller saw.
func TestOutboundRetriedCompleteIsANoOp(t *testing.T) {
	e := newOutboundEnv(t, 20)
	_, task, _ := e.post(`{"destination": "+41440000000", "maxAttempts": 3}`)
	e.deliverAll()
	var first OutboundTask
	resp, b := e.do(http.MethodGet, e.path("/"+task.ID), "", &first)
	firstETag := resp.Header.Get("ETag")
	if resp.StatusCode != http.StatusOK || first.State != "InProgress" || first.Attempts != 1 || !strings.HasPrefix(firstETag, `"`) {
		t.Fatalf("GET = %d %s (ETag %q), want InProgress, 1 attempt, a strong ETag", resp.StatusCode, b, firstETag)
	}
	completePath := e.path("/" + task.ID + "/complete")
	var got OutboundTask
	if resp, b := e.do(http.MethodPost, completePath, `{"outcome": "Failed", "attempt": 1}`, &got); resp.StatusCode != http.StatusOK || got.State != "Queued" {
		t.Fatalf("complete Failed attempt 1 = %d %s, want 200 Queued", resp.StatusCode, b)
	}
	e.deliverAll() // attempt 2 gets the agent
	if resp, b := e.do(http.MethodGet, e.path("/"+task.ID), "", &got); resp.StatusCode != http.StatusOK || got.State != "InProgress" || got.Attempts != 2 {
		t.Fatalf("GET = %d %s, want the second attempt InProgress", resp.StatusCode, b)
	}
	retry := func(name, body string, header ...string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+completePath, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got OutboundTask
		rb, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || json.Unmarshal(rb, &got) != nil || got.State != "InProgress" || got.Attempts != 2 {
			t.Errorf("%s = %d %s, want 200 and the second attempt still InProgress", name, resp.StatusCode, rb)
		}
	}
	retry("retried complete for attempt 1", `{"outcome": "Failed", "attempt": 1}`)
	retry("retried complete with the first attempt's ETag", `{"outcome": "Failed"}`, "If-Match", firstETag)
	if resp, b := e.do(http.MethodPost, completePath, `{"outcome": "Failed", "attempt": 0}`, nil); resp.StatusCode != http.StatusBadRequest || outboundProblem(t, b).Field != "attempt" {
		t.Errorf("complete attempt 0 = %d %s, want 400 naming attempt", resp.StatusCode, b)
	}
	if resp, b := e.do(http.MethodPost, completePath, `{"outcome": "Completed", "attempt": 2}`, &got); resp.StatusCode != http.StatusOK || got.State != "Completed" || got.Attempts != 2 {
		t.Errorf("complete attempt 2 = %d %s, want 200 Completed", resp.StatusCode, b)
	}
}

// patch sends a merge patch with the given Content-Type and If-Match.
func (e *outboundEnv) patch(id, contentType, ifMatch, body string) (*http.Response, OutboundTask, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPatch, e.srv.URL+e.path("/"+id), strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var task OutboundTask
	if resp.StatusCode < 300 {
		if err := json.Unmarshal(b, &task); err != nil {
			e.t.Fatalf("PATCH reply %s: %v", b, err)
		}
	}
	return resp, task, b
}

// PATCH through the real router: a merge patch rescheduling a task, its
// ETag for If-Match (412 when stale), 400 naming the field, 409 once in
// progress, 404 for an unknown task, 400 for JSON Patch.
func TestOutboundPatch(t *testing.T) {
	e := newOutboundEnv(t, 20)
	_, task, _ := e.post(`{"destination": "+41440000000", "dueDateTimeUtc": "2026-11-22T13:00:00Z", "context": {"case": "1"}}`)
	getResp, _ := e.do(http.MethodGet, e.path("/"+task.ID), "", nil)
	etag := getResp.Header.Get("ETag")
	if etag == "" {
		t.Fatal("GET: no ETag")
	}
	resp, got, b := e.patch(task.ID, "application/merge-patch+json", etag, `{"dueDateTimeUtc": "2026-11-22T15:00:00Z", "priority": 90, "context": {"note": "call after 3"}}`)
	if resp.StatusCode != http.StatusOK || got.State != "Scheduled" || got.Priority != 90 || !got.DueDateTimeUTC.Equal(time.Date(2026, 11, 22, 15, 0, 0, 0, time.UTC)) ||
		got.Context["case"] != "1" || got.Context["note"] != "call after 3" {
		t.Fatalf("PATCH = %d %s; want 200, due 15:00, priority 90, both context entries", resp.StatusCode, b)
	}
	newTag := resp.Header.Get("ETag")
	if newTag == "" || newTag == etag {
		t.Errorf("PATCH ETag %q, want a new one (was %q)", newTag, etag)
	}
	if m := e.queue.Last(); !m.Msg.ScheduledAt.Equal(time.Date(2026, 11, 22, 15, 0, 0, 0, time.UTC)) || len(e.queue.Cancels()) != 1 {
		t.Errorf("message scheduled for %v, cancels %v; want the new due time and the old message cancelled", m.Msg.ScheduledAt, e.queue.Cancels())
	}
	if resp, _, b := e.patch(task.ID, "application/json", etag, `{"priority": 10}`); resp.StatusCode != http.StatusPreconditionFailed {
		t.Errorf("stale If-Match = %d %s, want 412", resp.StatusCode, b)
	}
	if resp, got, b := e.patch(task.ID, "", newTag, `{"priority": 10}`); resp.StatusCode != http.StatusOK || got.Priority != 10 {
		t.Errorf("current If-Match = %d %s, want 200 priority 10", resp.StatusCode, b)
	}
	for _, tc := range []struct{ body, field string }{
		{`{"priority": 0}`, "priority"},
		{`{"maxQueueTimeSeconds": 3601}`, "maxQueueTimeSeconds"},
		{`{"preferredUsers": ["bob"]}`, "preferredUsers[0]"},
		{`{"dueDateTimeUtc": "soon"}`, "dueDateTimeUtc"},
		{`{"destination": "+41440000009"}`, "destination"},
	} {
		resp, _, b := e.patch(task.ID, "application/merge-patch+json", "", tc.body)
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") != "application/problem+json" || outboundProblem(t, b).Field != tc.field {
			t.Errorf("PATCH %s = %d %s %s, want 400 problem+json naming %s", tc.body, resp.StatusCode, resp.Header.Get("Content-Type"), b, tc.field)
		}
	}
	if resp, _, b := e.patch(task.ID, "application/json-patch+json", "", `[{"op":"replace","path":"/priority","value":5}]`); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("JSON Patch = %d %s, want 400", resp.StatusCode, b)
	}
	if resp, _, b := e.patch("00000000-0000-7000-8000-000000000000", "", "", `{"priority": 5}`); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown task = %d %s, want 404", resp.StatusCode, b)
	}
	_, now, _ := e.post(`{"destination": "+41440000001"}`)
	e.deliverAll()
	resp, _, b = e.patch(now.ID, "", "", `{"priority": 5}`)
	if resp.StatusCode != http.StatusConflict || outboundProblem(t, b).Type != "outbound-task-in-progress" {
		t.Errorf("PATCH in progress = %d %s, want 409 outbound-task-in-progress", resp.StatusCode, b)
	}
}

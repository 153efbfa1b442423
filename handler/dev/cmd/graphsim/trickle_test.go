package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeQueueAPI answers the distribution routes the trickle calls, for the
// demo tenant: each service's queue holds a conversation ringing at agent
// u-1 and one waiting for ten minutes; it records every call.
type fakeQueueAPI struct {
	mu     sync.Mutex
	calls  []string
	bodies map[string][]map[string]any
}

func (f *fakeQueueAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	prefix := "/api/tenants/" + demoTenant
	path, ok := strings.CutPrefix(r.URL.Path, prefix)
	if !ok {
		http.Error(w, "wrong tenant", http.StatusNotFound)
		return
	}
	key := r.Method + " " + path
	var body map[string]any
	if r.Body != nil {
		raw, _ := io.ReadAll(r.Body)
		if len(raw) > 0 {
			if r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(raw, &body) != nil {
				http.Error(w, "want a JSON body", http.StatusBadRequest)
				return
			}
		}
	}
	f.mu.Lock()
	f.calls = append(f.calls, key)
	f.bodies[key] = append(f.bodies[key], body)
	f.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/queue"):
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]any{"conversationId": body["conversationId"], "state": "Queued"})
	case r.Method == http.MethodGet && strings.HasSuffix(path, "/queue"):
		svc := strings.TrimSuffix(strings.TrimPrefix(path, "/services/"), "/queue")
		_ = json.NewEncoder(w).Encode(map[string]any{"serviceId": svc, "conversations": []map[string]any{
			{"conversationId": "ring-" + svc, "state": "Offered", "queuedAt": time.Now().UTC(),
				"offers": []map[string]any{{"userId": "u-1", "state": "Ringing"}, {"userId": "u-0", "state": "Lapsed"}}},
			{"conversationId": "old-" + svc, "state": "Queued", "queuedAt": time.Now().Add(-10 * time.Minute).UTC(), "offers": []any{}},
		}})
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/accept"):
		_ = json.NewEncoder(w).Encode(map[string]any{"state": "Connected"})
	case r.Method == http.MethodDelete && strings.HasPrefix(path, "/conversations/"):
		w.WriteHeader(http.StatusNoContent)
	default:
		http.Error(w, "no such route", http.StatusNotFound)
	}
}

func (f *fakeQueueAPI) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c == key {
			n++
		}
	}
	return n
}

// The demo trickle enqueues conversations through the API, accepts a
// ringing offer once, releases what it accepted, hangs up a caller who
// waited too long, and stops when its context ends.
func TestDemoTrickleEnqueuesAnswersAndStops(t *testing.T) {
	api := &fakeQueueAPI{bodies: map[string][]map[string]any{}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	var log bytes.Buffer
	tr := newTrickle(srv.URL, demoTenant, demoServices, 10*time.Millisecond, &log)
	tr.accept, tr.decline, tr.talkMin, tr.talkSpread = 1, 0, 0, 0

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.run(ctx) }()
	deadline := time.After(20 * time.Second)
	for api.count("POST /services/support/queue")+api.count("POST /services/sales/queue") < 6 ||
		api.count("DELETE /conversations/ring-support") == 0 || api.count("DELETE /conversations/ring-sales") == 0 {
		select {
		case <-deadline:
			cancel()
			t.Fatalf("the trickle did not enqueue and answer: calls %v", api.calls)
		case err := <-done:
			t.Fatalf("the trickle stopped by itself: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("run returned %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the trickle did not stop when its context ended")
	}
	api.mu.Lock()
	n := len(api.calls)
	api.mu.Unlock()
	time.Sleep(100 * time.Millisecond) // ten steps' worth
	api.mu.Lock()
	defer api.mu.Unlock()
	if len(api.calls) != n {
		t.Errorf("%d calls after the trickle stopped", len(api.calls)-n)
	}

	ids := map[string]bool{}
	for _, key := range []string{"POST /services/support/queue", "POST /services/sales/queue"} {
		for _, b := range api.bodies[key] {
			id, _ := b["conversationId"].(string)
			p, _ := b["priority"].(float64)
			cust, _ := b["customer"].(map[string]any)
			if id == "" || ids[id] || p < 1 || p > 99 || cust["displayName"] == "" || cust["phone"] == nil {
				t.Errorf("enqueued %v: want a new conversationId, priority 1–99 and a customer", b)
			}
			ids[id] = true
		}
	}
	// Each ringing offer is answered once, for its agent, however often
	// the queue shows it ringing; a lapsed one is left alone.
	for _, svc := range demoServices {
		accepts := api.bodies["POST /conversations/ring-"+svc+"/accept"]
		if len(accepts) != 1 || accepts[0]["userId"] != "u-1" {
			t.Errorf("%s: accepts %v, want one for u-1", svc, accepts)
		}
		if len(api.bodies["DELETE /conversations/old-"+svc]) == 0 {
			t.Errorf("%s: the caller waiting ten minutes was not hung up", svc)
		}
	}
	if log.Len() > 0 {
		t.Errorf("the trickle logged failures: %s", log.String())
	}
}

// A failing app is logged, not fatal: the trickle goes on until stopped.
func TestDemoTrickleOutlivesAFailingApp(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		mu.Unlock()
		http.Error(w, `{"title":"storage unavailable"}`, http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	var log bytes.Buffer
	tr := newTrickle(srv.URL, demoTenant, demoServices, 5*time.Millisecond, &log)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := tr.run(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("run returned %v, want the context's end", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls < 6 {
		t.Errorf("%d calls: the trickle stopped after a failure", calls)
	}
	if !strings.Contains(log.String(), "graphsim: demo trickle: enqueue into") || !strings.Contains(log.String(), "503") {
		t.Errorf("log %q, want the failed enqueue with its status", log.String())
	}
}

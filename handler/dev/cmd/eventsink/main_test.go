package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"switchboard/handler/events"
)

// syncBuffer is a bytes.Buffer safe for the sink's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The sink subscribes itself, verifies what it receives with the secret it
// was given, prints it, and unsubscribes at the end.
func TestSinkSubscribesVerifiesAndUnsubscribes(t *testing.T) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	var mu sync.Mutex
	var subscribed map[string]any
	deleted := make(chan struct{})
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost:
			mu.Lock()
			_ = json.NewDecoder(r.Body).Decode(&subscribed)
			mu.Unlock()
			w.Header().Set("Location", "http://"+r.Host+r.URL.Path+"/s-1")
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"id":"s-1","secret":"` + secret + `"}`))
		case http.MethodDelete:
			if strings.HasSuffix(r.URL.Path, "/subscriptions/s-1") {
				close(deleted)
			}
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer api.Close()

	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-api", api.URL, "-tenant", "t-1", "-events", "switchboard.conversation.*"}, out)
	}()

	url := waitFor(t, out, regexp.MustCompile(`listening on (\S+)`))
	waitFor(t, out, regexp.MustCompile(`subscribed`))
	mu.Lock()
	if subscribed["url"] != url || subscribed["events"].([]any)[0] != "switchboard.conversation.*" {
		t.Errorf("subscribed %v, want url %s and the event types", subscribed, url)
	}
	mu.Unlock()

	body := []byte(`{"specversion":"1.0","id":"ev-1","type":"switchboard.conversation.queued"}`)
	post := func(sig string) {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("webhook-id", "ev-1")
		req.Header.Set("webhook-timestamp", strconv.FormatInt(time.Now().Unix(), 10))
		req.Header.Set("webhook-signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	good, _ := events.Sign(secret, "ev-1", time.Now().Unix(), body)
	post(good)
	waitFor(t, out, regexp.MustCompile(`webhook-id ev-1, signature ok`))
	post("v1,AAAA")
	waitFor(t, out, regexp.MustCompile(`SIGNATURE INVALID`))

	cancel()
	select {
	case <-deleted:
	case <-time.After(10 * time.Second):
		t.Fatal("the sink did not unsubscribe")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, out *syncBuffer, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			if len(m) > 1 {
				return m[1]
			}
			return m[0]
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("output never matched %s:\n%s", re, out.String())
	return ""
}

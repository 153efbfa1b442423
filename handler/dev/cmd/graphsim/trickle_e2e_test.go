package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"switchboard/handler/dev/graphsim"
	"switchboard/handler/internal/e2e"
	"switchboard/handler/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// Against the real handler (local runner, Azurite, presence from the
// simulator) the trickle's conversations are enqueued, offered to the
// demo agents, accepted, connected and released: what the live view of
// `make run` shows moving.
func TestDemoTrickleMovesTheRealApp(t *testing.T) {
	tn := e2e.NewTenant(t, e2e.TenantOptions{Sim: graphsim.Options{Seed: 11}, ID: demoTenant, App: demoApp, Secret: demoSecret,
		Users: 3, Domain: "contosodemo.onmicrosoft.com"}) // Available
	users := tn.Users
	env := tn.Start(t, e2e.Options{})
	var members []map[string]any
	for _, u := range users {
		members = append(members, map[string]any{"userId": u.ID, "active": true})
	}
	for _, svc := range demoServices {
		body, _ := json.Marshal(map[string]any{"name": svc, "members": members, "distribution": map[string]any{"order": "LongestIdle", "ringSeconds": 30}})
		if status, _, raw := env.Do(t, http.MethodPut, "/api/tenants/"+demoTenant+"/services/"+svc, body, "Content-Type", "application/json"); status >= 300 {
			t.Fatalf("PUT %s: %d %s", svc, status, raw)
		}
	}
	env.Invoke(t, "PresencePoll")

	var log syncBuffer
	tr := newTrickle(env.BaseURL, demoTenant, demoServices, 300*time.Millisecond, &log)
	tr.accept, tr.decline, tr.talkMin, tr.talkSpread = 1, 0, time.Second, 0
	tr.prefix = "trickle"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- tr.run(ctx) }()

	// A conversation the trickle enqueued is connected to an agent, then
	// released by it.
	ended := func() (string, bool) {
		for i := 1; ; i++ { // trickle-1, trickle-2, ... up to the first not enqueued yet
			id := fmt.Sprintf("trickle-%d", i)
			status, _, raw := env.Do(t, http.MethodGet, "/api/tenants/"+demoTenant+"/conversations/"+id, nil)
			if status == http.StatusNotFound {
				return "", false
			}
			var c struct {
				State   string
				Agent   *struct{ UserID string }
				History []struct{ Event string }
			}
			if err := json.Unmarshal(raw, &c); status != http.StatusOK || err != nil {
				t.Fatalf("GET %s: %d %v %s", id, status, err, raw)
			}
			if c.State == "Ended" && c.Agent != nil && c.Agent.UserID != "" &&
				hasEvents(c.History, "queued", "offered", "connected", "ended") {
				return id, true
			}
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if id, ok := ended(); ok {
			t.Logf("%s: queued, offered, connected and released", id)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no trickled conversation was connected and released; trickle log:\n%s", log.String())
		}
		time.Sleep(500 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("run returned %v, want context.Canceled", err)
	}
	if log.Len() > 0 {
		t.Errorf("the trickle logged failures against the real app:\n%s", log.String())
	}
}

func hasEvents(history []struct{ Event string }, want ...string) bool {
	seen := map[string]bool{}
	for _, h := range history {
		seen[h.Event] = true
	}
	for _, w := range want {
		if !seen[w] {
			return false
		}
	}
	return true
}

// syncBuffer is a log the trickle writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func (b *syncBuffer) Len() int { return len(b.String()) }

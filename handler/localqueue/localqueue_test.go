package localqueue_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"switchboard/handler/dev/localrunner"
	"switchboard/handler/internal/queuetest"
	"switchboard/handler/localqueue"
	"switchboard/handler/switchboard"
)

// runner starts a local runner without functions (its handler a stub) and
// returns its queues' base URL, as it passes it in LOCAL_QUEUE_URL.
func runner(t *testing.T) (string, *localrunner.Runner) {
	t.Helper()
	root := t.TempDir()
	host := `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler"},"enableForwardingHttpRequest":true}}`
	if err := os.WriteFile(filepath.Join(root, "host.json"), []byte(host), 0o644); err != nil {
		t.Fatal(err)
	}
	stub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(stub.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r, err := localrunner.New(localrunner.Options{
		ScriptRoot: root, Settings: localrunner.Settings{"FUNCTIONS_WORKER_RUNTIME": "Custom"},
		HandlerURL: stub.URL, Listener: ln, Log: io.Discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return "http://" + ln.Addr().String() + "/admin/queues", r
}

func TestSendAndCancel(t *testing.T) {
	url, r := runner(t)
	q, err := localqueue.New(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	seq, err := q.Send(ctx, "outbound-tasks", switchboard.Message{Body: []byte(`{"taskId":"a"}`), MessageID: "task-a"})
	if err != nil || seq != 0 {
		t.Fatalf("Send now = %d, %v; want 0 (not scheduled), nil", seq, err)
	}
	due := time.Now().Add(time.Hour)
	seq, err = q.Send(ctx, "outbound-tasks", switchboard.Message{Body: []byte(`{"taskId":"b"}`), ScheduledAt: due})
	if err != nil || seq <= 0 {
		t.Fatalf("Send scheduled = %d, %v; want a sequence number", seq, err)
	}
	if got := r.Broker().Stats("outbound-tasks"); got.Active != 1 || got.Scheduled != 1 {
		t.Errorf("stats = %+v, want 1 active, 1 scheduled", got)
	}
	m, err := r.Broker().Receive(ctx, "outbound-tasks")
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Body) != `{"taskId":"a"}` || m.MessageID != "task-a" || m.ContentType != "application/json" {
		t.Errorf("received %+v, want the first message with its id and content type", m)
	}
	if err := q.Cancel(ctx, "outbound-tasks", seq); err != nil {
		t.Errorf("Cancel = %v", err)
	}
	if got := r.Broker().Stats("outbound-tasks"); got.Scheduled != 0 {
		t.Errorf("after Cancel: %d scheduled, want 0", got.Scheduled)
	}
	if err := q.Cancel(ctx, "outbound-tasks", seq); err != nil {
		t.Errorf("Cancel of a cancelled message = %v, want nil", err)
	}
	if err := q.Cancel(ctx, "outbound-tasks", 0); switchboard.ErrorCode(err) != switchboard.EINVALID {
		t.Errorf("Cancel(0) = %v, want EINVALID", err)
	}
}

// The scheduled time and message id travel in BrokerProperties.
func TestScheduledTimeIsKept(t *testing.T) {
	url, r := runner(t)
	q, _ := localqueue.New(url, nil)
	due := time.Now().Add(300 * time.Millisecond).UTC()
	if _, err := q.Send(context.Background(), "presence-poll", switchboard.Message{Body: []byte(`{}`), ScheduledAt: due, ContentType: "text/plain"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := r.Broker().Receive(ctx, "presence-poll")
	if err != nil {
		t.Fatal(err)
	}
	if m.EnqueuedTime.Before(due.Truncate(time.Millisecond)) || m.ContentType != "text/plain" {
		t.Errorf("message enqueued at %s (content type %q), want not before %s, text/plain", m.EnqueuedTime, m.ContentType, due)
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("bad URL", func(t *testing.T) {
		if _, err := localqueue.New("127.0.0.1:7071", nil); switchboard.ErrorCode(err) != switchboard.EINVALID {
			t.Errorf("New = %v, want EINVALID", err)
		}
	})
	t.Run("runner down", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		q, _ := localqueue.New(url, nil)
		if _, err := q.Send(ctx, "x", switchboard.Message{Body: []byte("{}")}); switchboard.ErrorCode(err) != switchboard.EUNAVAILABLE {
			t.Errorf("Send = %v, want EUNAVAILABLE", err)
		}
		if err := q.Cancel(ctx, "x", 1); switchboard.ErrorCode(err) != switchboard.EUNAVAILABLE {
			t.Errorf("Cancel = %v, want EUNAVAILABLE", err)
		}
	})
	t.Run("message too large", func(t *testing.T) {
		url, _ := runner(t)
		q, _ := localqueue.New(url, nil)
		_, err := q.Send(ctx, "x", switchboard.Message{Body: []byte(strings.Repeat("a", localrunner.MaxMessageBytes+1))})
		if switchboard.ErrorCode(err) != switchboard.EINVALID || !strings.Contains(err.Error(), "413") {
			t.Errorf("Send = %v, want EINVALID naming the 413", err)
		}
	})
	t.Run("runner failing", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(500)
			_ = json.NewEncoder(w).Encode(map[string]any{"title": "broken", "detail": "disk"})
		}))
		defer srv.Close()
		q, _ := localqueue.New(srv.URL, nil)
		_, err := q.Send(ctx, "x", switchboard.Message{Body: []byte("{}")})
		if switchboard.ErrorCode(err) != switchboard.EUNAVAILABLE || !strings.Contains(err.Error(), "broken: disk") {
			t.Errorf("Send = %v, want EUNAVAILABLE with the runner's problem", err)
		}
	})
}

// The queue contract, through the local runner's in-process broker.
func TestQueueContract(t *testing.T) {
	queuetest.Run(t, func(t *testing.T) queuetest.Backend {
		url, r := runner(t)
		q, err := localqueue.New(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		return queuetest.Backend{Queue: q, Receive: func(t *testing.T, queue string, wait time.Duration) (queuetest.Received, bool) {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			m, err := r.Broker().Receive(ctx, queue)
			if err != nil {
				return queuetest.Received{}, false
			}
			if err := r.Broker().Complete(queue, m.LockToken); err != nil {
				t.Fatalf("complete: %v", err)
			}
			return queuetest.Received{Body: m.Body, MessageID: m.MessageID, ContentType: m.ContentType, SequenceNumber: m.SequenceNumber}, true
		}}
	})
}

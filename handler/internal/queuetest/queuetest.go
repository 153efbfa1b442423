// Package queuetest is the contract every switchboard.Queue keeps: the
// Service Bus adapter (against the Service Bus stand-in) and the local
// runner's queue client run the same cases.
package queuetest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"switchboard/handler/switchboard"
)

// Received is a delivered message as the broker shows it to a consumer.
type Received struct {
	Body        []byte
	MessageID   string
	ContentType string
	// SequenceNumber is the broker's number of the message.
	SequenceNumber int64
}

// Backend is one queue implementation under test.
type Backend struct {
	// Queue is the queue under test.
	Queue switchboard.Queue
	// Receive takes (and completes) the next message of queue, waiting up
	// to wait; false when none came.
	Receive func(t *testing.T, queue string, wait time.Duration) (Received, bool)
}

var unique atomic.Int64

// name returns a queue name of the test's own, so that cases sharing a
// broker do not see each other's messages.
func name(kind string) string {
	return fmt.Sprintf("contract-%s-%d-%d", kind, time.Now().UnixNano()%1e6, unique.Add(1))
}

// Run runs the contract against the backend newBackend returns.
func Run(t *testing.T, newBackend func(t *testing.T) Backend) {
	ctx := context.Background()
	t.Run("immediate message arrives with its id and JSON content type", func(t *testing.T) {
		b := newBackend(t)
		q := name("now")
		seq, err := b.Queue.Send(ctx, q, switchboard.Message{Body: []byte(`{"n":1}`), MessageID: "m-1"})
		if err != nil || seq != 0 {
			t.Fatalf("Send = %d, %v; want 0 (not scheduled), nil", seq, err)
		}
		m, ok := b.Receive(t, q, 10*time.Second)
		if !ok {
			t.Fatal("no message arrived")
		}
		if string(m.Body) != `{"n":1}` || m.MessageID != "m-1" || m.ContentType != "application/json" {
			t.Errorf("received %s id %q content type %q; want the message sent, application/json", m.Body, m.MessageID, m.ContentType)
		}
		if again, ok := b.Receive(t, q, time.Second); ok {
			t.Errorf("a received message came again: %s", again.Body)
		}
	})
	t.Run("content type is kept", func(t *testing.T) {
		b := newBackend(t)
		q := name("type")
		if _, err := b.Queue.Send(ctx, q, switchboard.Message{Body: []byte("x"), ContentType: "text/plain"}); err != nil {
			t.Fatal(err)
		}
		m, ok := b.Receive(t, q, 10*time.Second)
		if !ok || m.ContentType != "text/plain" {
			t.Errorf("received %+v (arrived %v), want content type text/plain", m, ok)
		}
	})
	t.Run("scheduled message waits for its time and keeps its number", func(t *testing.T) {
		b := newBackend(t)
		q := name("scheduled")
		at := time.Now().Add(1500 * time.Millisecond)
		seq, err := b.Queue.Send(ctx, q, switchboard.Message{Body: []byte(`{"n":2}`), ScheduledAt: at})
		if err != nil || seq <= 0 {
			t.Fatalf("Send scheduled = %d, %v; want a sequence number", seq, err)
		}
		m, ok := b.Receive(t, q, 15*time.Second)
		if !ok {
			t.Fatal("the scheduled message never came")
		}
		if now := time.Now(); now.Before(at.Truncate(time.Millisecond)) {
			t.Errorf("received at %v, before its scheduled time %v", now, at)
		}
		if m.SequenceNumber != seq || string(m.Body) != `{"n":2}` {
			t.Errorf("received %s with sequence number %d; want {\"n\":2}, %d", m.Body, m.SequenceNumber, seq)
		}
	})
	t.Run("cancelled message never arrives; cancelling again is no error", func(t *testing.T) {
		b := newBackend(t)
		q := name("cancel")
		seq, err := b.Queue.Send(ctx, q, switchboard.Message{Body: []byte(`{"n":3}`), ScheduledAt: time.Now().Add(time.Second)})
		if err != nil || seq <= 0 {
			t.Fatalf("Send scheduled = %d, %v; want a sequence number", seq, err)
		}
		if err := b.Queue.Cancel(ctx, q, seq); err != nil {
			t.Fatalf("Cancel = %v", err)
		}
		if err := b.Queue.Cancel(ctx, q, seq); err != nil {
			t.Errorf("Cancel of a cancelled message = %v, want nil", err)
		}
		if m, ok := b.Receive(t, q, 3*time.Second); ok {
			t.Errorf("a cancelled message arrived: %s", m.Body)
		}
	})
	t.Run("sequence number 0 is invalid", func(t *testing.T) {
		b := newBackend(t)
		if err := b.Queue.Cancel(ctx, name("zero"), 0); switchboard.ErrorCode(err) != switchboard.EINVALID {
			t.Errorf("Cancel(0) = %v, want EINVALID", err)
		}
	})
}

package main

import (
	"context"
	"log/slog"
	"testing"
	"time"
)

// Without a queue the recovery timer runs in process, at its time.
func TestProcessTimers(t *testing.T) {
	got := make(chan time.Time, 1)
	p := &processTimers{log: slog.New(slog.DiscardHandler), handle: func(ctx context.Context, body []byte) (string, error) {
		if string(body) != "due" {
			t.Errorf("body %q", body)
		}
		got <- time.Now()
		return "", nil
	}}
	at := time.Now().Add(50 * time.Millisecond)
	if err := p.Schedule(context.Background(), at, []byte("due")); err != nil {
		t.Fatal(err)
	}
	select {
	case fired := <-got:
		if fired.Before(at) {
			t.Errorf("fired at %v, before its time %v", fired, at)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the timer never fired")
	}
}

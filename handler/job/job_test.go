package job

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunDeadlineAndGrace(t *testing.T) {
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	now := start
	ctx, run := Start(context.Background(), Options{Name: "poll", Budget: 24 * time.Second, Grace: 24 * time.Second, Now: func() time.Time { return now }})
	defer run.Finish()
	if got, want := run.Deadline(), start.Add(24*time.Second); !got.Equal(want) {
		t.Errorf("Deadline() = %v, want %v", got, want)
	}
	end, ok := ctx.Deadline()
	if !ok {
		t.Fatal("the run's context has no deadline")
	}
	if got, want := end, start.Add(48*time.Second); !got.Equal(want) {
		t.Errorf("context deadline = %v, want the deadline plus the grace, %v", got, want)
	}
}

func TestNear(t *testing.T) {
	if Near(context.Background(), time.Hour) {
		t.Error("Near without a deadline = true, want false")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if Near(ctx, 5*time.Second) {
		t.Error("a minute left, Near(5 s) = true, want false")
	}
	if !Near(ctx, 2*time.Minute) {
		t.Error("a minute left, Near(2 min) = false, want true")
	}
	cancel()
	if !Near(ctx, 0) {
		t.Error("cancelled context, Near = false, want true")
	}
	ctx, run := Start(context.Background(), Options{Budget: 2 * time.Second})
	if !Near(ctx, 3*time.Second) {
		t.Error("a run with a 2 s budget, Near(3 s) = false, want true")
	}
	run.Finish()
	if !Near(ctx, 0) {
		t.Error("a finished run's context, Near = false, want true: Finish releases it")
	}
}

func TestRunJoinsPartsErrorsAndWaitsForAll(t *testing.T) {
	var buf bytes.Buffer
	ctx, run := Start(context.Background(), Options{Name: "Housekeeping", Budget: time.Minute, Log: slog.New(slog.NewTextHandler(&buf, nil))})
	var done atomic.Int32
	errRouting := errors.New("table unreachable")
	run.Go(ctx, "routing", func(ctx context.Context) error {
		time.Sleep(20 * time.Millisecond)
		done.Add(1)
		return errRouting
	})
	run.Go(ctx, "outbound", func(ctx context.Context) error {
		done.Add(1)
		return nil
	})
	run.Go(ctx, "presence", func(ctx context.Context) error {
		done.Add(1)
		return errors.New("graph down")
	})
	run.Figure("tenants", 3)
	err := run.Finish()
	if got := done.Load(); got != 3 {
		t.Fatalf("Finish returned with %d of 3 parts done", got)
	}
	if !errors.Is(err, errRouting) {
		t.Errorf("error %v does not wrap the routing part's", err)
	}
	if got, want := err.Error(), "routing: table unreachable\npresence: graph down"; got != want {
		t.Errorf("error = %q, want %q (parts in the order they started, named)", got, want)
	}
	log := buf.String()
	for _, want := range []string{"job=Housekeeping", "budget=1m0s", "tenants=3", "overran=false", "graph down"} {
		if !strings.Contains(log, want) {
			t.Errorf("log %q lacks %q", log, want)
		}
	}
}

func TestRunWithoutErrors(t *testing.T) {
	ctx, run := Start(context.Background(), Options{Budget: time.Minute})
	run.Go(ctx, "a", func(context.Context) error { return nil })
	run.Fail(nil)
	if err := run.Finish(); err != nil {
		t.Errorf("Finish() = %v, want nil", err)
	}
	_, run = Start(context.Background(), Options{Budget: time.Minute})
	run.Fail(errors.New("poll failed"))
	if err := run.Finish(); err == nil || err.Error() != "poll failed" {
		t.Errorf("Finish() = %v, want the recorded failure", err)
	}
}

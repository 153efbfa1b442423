package fakeclock

import (
	"context"
	"testing"
	"time"
)

func TestClockMovesOnlyWhenTold(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	c := New(t0)
	if got := c.Now(); !got.Equal(t0) {
		t.Fatalf("Now = %v, want %v", got, t0)
	}
	c.Advance(90 * time.Second)
	if got, want := c.Now(), t0.Add(90*time.Second); !got.Equal(want) {
		t.Errorf("after Advance: %v, want %v", got, want)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Sleep(ctx, time.Minute); err == nil {
		t.Error("Sleep on a cancelled context returned nil")
	}
	if got, want := c.Now(), t0.Add(150*time.Second); !got.Equal(want) {
		t.Errorf("after Sleep: %v, want %v", got, want)
	}
	c.Set(t0)
	if !c.Now().Equal(t0) {
		t.Errorf("Set did not move the clock back")
	}
}

package follow

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"switchboard/handler/internal/fakeclock"
)

// source is storage for the tests: a value per key, a count of reads, and
// an optional gate that holds each read until released.
type source struct {
	mu    sync.Mutex
	value map[string]int
	err   error
	reads atomic.Int32
	gate  chan struct{} // when set, a read waits for a send or close
	began chan struct{} // when set, a read signals that it began
}

func (s *source) load(ctx context.Context, key string, _ int) (int, error) {
	s.reads.Add(1)
	s.mu.Lock()
	v, err, gate, began := s.value[key], s.err, s.gate, s.began
	s.mu.Unlock()
	if began != nil {
		began <- struct{}{}
	}
	if gate != nil {
		<-gate
	}
	return v, err
}

func (s *source) set(key string, v int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.value[key] = v
}

func newCache(t *testing.T, src *source, o Options[string, int]) (*Cache[string, int], *fakeclock.Clock) {
	t.Helper()
	clock := fakeclock.New(time.Unix(1000, 0))
	o.Load, o.Clock = src.load, clock.Now
	if o.RefreshEvery == 0 {
		o.RefreshEvery = time.Second
	}
	if o.MaxLag == 0 {
		o.MaxLag = 10 * time.Second
	}
	return New(o), clock
}

func get(t *testing.T, c *Cache[string, int], key string) int {
	t.Helper()
	v, err := c.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	return v
}

// waitFor polls until cond holds (background refreshes finish on their own
// goroutine); it fails the test after a generous bound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 2000 {
		if cond() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// The copy is served within RefreshEvery, served and refreshed in the
// background past it, and waited for past MaxLag.
func TestGetFollowsStorage(t *testing.T) {
	src := &source{value: map[string]int{"a": 1}}
	c, clock := newCache(t, src, Options[string, int]{})
	if got := get(t, c, "a"); got != 1 {
		t.Fatalf("first Get = %d, want 1 (loaded)", got)
	}
	src.set("a", 2)
	clock.Advance(time.Second)
	if got := get(t, c, "a"); got != 1 || src.reads.Load() != 1 {
		t.Fatalf("within RefreshEvery: Get = %d after %d reads, want the copy (1) and no read", got, src.reads.Load())
	}
	clock.Advance(time.Millisecond)
	if got := get(t, c, "a"); got != 1 {
		t.Fatalf("past RefreshEvery: Get = %d, want the copy (1) while the refresh runs", got)
	}
	waitFor(t, "the background refresh", func() bool { v, _ := c.Get(context.Background(), "a"); return v == 2 })

	src.set("a", 3)
	src.mu.Lock()
	src.gate = make(chan struct{})
	src.mu.Unlock()
	clock.Advance(10*time.Second + time.Millisecond)
	done := make(chan int)
	go func() { done <- get(t, c, "a") }()
	select {
	case v := <-done:
		t.Fatalf("past MaxLag Get returned %d before storage answered, want it to wait", v)
	case <-time.After(20 * time.Millisecond):
	}
	src.mu.Lock()
	close(src.gate)
	src.mu.Unlock()
	if got := <-done; got != 3 {
		t.Errorf("past MaxLag: Get = %d, want storage's value 3", got)
	}
}

// Many reads past RefreshEvery start one background refresh, not one each.
func TestOneBackgroundRefreshAtATime(t *testing.T) {
	src := &source{value: map[string]int{"a": 1}}
	c, clock := newCache(t, src, Options[string, int]{})
	get(t, c, "a")
	gate := make(chan struct{})
	src.mu.Lock()
	src.gate = gate
	src.mu.Unlock()
	clock.Advance(2 * time.Second)
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got := get(t, c, "a"); got != 1 {
				t.Errorf("Get = %d, want the copy 1", got)
			}
		}()
	}
	wg.Wait()
	waitFor(t, "the refresh to start", func() bool { return src.reads.Load() == 2 })
	time.Sleep(10 * time.Millisecond)
	if n := src.reads.Load(); n != 2 {
		t.Errorf("storage reads = %d, want 2 (the first load and one refresh)", n)
	}
	close(gate)
}

// Writes of this process during a load are replayed over what it read;
// Wrote makes the copy current as of the write.
func TestWritesDuringALoadAreKept(t *testing.T) {
	src := &source{value: map[string]int{"a": 10}, gate: make(chan struct{}), began: make(chan struct{})}
	c, clock := newCache(t, src, Options[string, int]{})
	done := make(chan int)
	go func() { done <- get(t, c, "a") }()
	<-src.began
	c.Update("a", func(v int) int { return v + 1 })
	close(src.gate)
	if got := <-done; got != 11 {
		t.Fatalf("Get across an Update = %d, want 11 (storage's 10 plus the write)", got)
	}

	src.mu.Lock()
	src.gate, src.began = make(chan struct{}), make(chan struct{})
	src.mu.Unlock()
	clock.Advance(11 * time.Second)
	go func() { done <- get(t, c, "a") }()
	<-src.began
	clock.Advance(500 * time.Millisecond)
	c.Wrote("a", 42)
	close(src.gate)
	if got := <-done; got != 42 {
		t.Fatalf("Get across a Wrote = %d, want 42", got)
	}
	src.mu.Lock()
	src.gate, src.began = nil, nil
	src.mu.Unlock()
	reads := src.reads.Load()
	clock.Advance(time.Second) // 1 s after the write, 1.5 s after the load began
	if got := get(t, c, "a"); got != 42 || src.reads.Load() != reads {
		t.Errorf("1 s after Wrote: Get = %d with %d more reads, want 42 and none (the write is the copy's age)", got, src.reads.Load()-reads)
	}
}

// A load error that means "gone" drops the copy; another failed refresh
// keeps serving it and is reported.
func TestLoadErrors(t *testing.T) {
	errGone, errDown := errors.New("gone"), errors.New("down")
	var reported atomic.Value
	src := &source{value: map[string]int{"a": 1}}
	c, clock := newCache(t, src, Options[string, int]{
		Gone:          func(err error) bool { return errors.Is(err, errGone) },
		RefreshFailed: func(key string, err error) { reported.Store(key + ": " + err.Error()) },
	})
	get(t, c, "a")
	src.mu.Lock()
	src.err = errDown
	src.mu.Unlock()
	clock.Advance(2 * time.Second)
	if got := get(t, c, "a"); got != 1 {
		t.Fatalf("Get = %d, want the copy", got)
	}
	waitFor(t, "the failure report", func() bool { return reported.Load() == "a: down" })
	if got := get(t, c, "a"); got != 1 {
		t.Errorf("after a failed refresh Get = %d, want the copy still", got)
	}

	src.mu.Lock()
	src.err = errGone
	src.mu.Unlock()
	clock.Advance(11 * time.Second)
	if _, err := c.Get(context.Background(), "a"); !errors.Is(err, errGone) {
		t.Fatalf("Get of a gone key: %v, want the loader's error", err)
	}
	src.mu.Lock()
	src.err = nil
	src.mu.Unlock()
	reads := src.reads.Load()
	if got := get(t, c, "a"); got != 1 || src.reads.Load() != reads+1 {
		t.Errorf("after gone: Get = %d with %d reads, want a new load", got, src.reads.Load()-reads)
	}
}

// RefreshEvery < 0 reads storage on every Get; Forget drops a copy.
func TestNoCacheAndForget(t *testing.T) {
	src := &source{value: map[string]int{"a": 1}}
	c, _ := newCache(t, src, Options[string, int]{RefreshEvery: -1})
	get(t, c, "a")
	src.set("a", 2)
	if got := get(t, c, "a"); got != 2 || src.reads.Load() != 2 {
		t.Errorf("without cache: Get = %d after %d reads, want 2 after 2", got, src.reads.Load())
	}

	src = &source{value: map[string]int{"a": 1}}
	c, _ = newCache(t, src, Options[string, int]{})
	get(t, c, "a")
	src.set("a", 2)
	c.Forget("a")
	if got := get(t, c, "a"); got != 2 {
		t.Errorf("after Forget: Get = %d, want storage's 2", got)
	}
}

// A copy that does not cover what a read needs is loaded in line with the
// read's own loader, however young it is.
func TestGetCovering(t *testing.T) {
	src := &source{value: map[string]int{"a": 1}}
	c, _ := newCache(t, src, Options[string, int]{})
	get(t, c, "a")
	wide := func(ctx context.Context, key string, prev int) (int, error) { return prev + 100, nil }
	atLeast := func(n int) func(int) bool { return func(v int) bool { return v >= n } }
	v, err := c.GetCovering(context.Background(), "a", atLeast(1), wide)
	if err != nil || v != 1 {
		t.Fatalf("covered: GetCovering = %d, %v; want the copy 1", v, err)
	}
	v, err = c.GetCovering(context.Background(), "a", atLeast(50), wide)
	if err != nil || v != 101 {
		t.Fatalf("not covered: GetCovering = %d, %v; want 101 from the read's loader", v, err)
	}
	if got := get(t, c, "a"); got != 101 {
		t.Errorf("Get after = %d, want the new copy 101", got)
	}
}

// Package follow is an in-process cache of values kept in storage that
// follows what other instances write: each key's copy is served while it
// is younger than MaxLag, read again in the background (one refresh at a
// time per key) once it is older than RefreshEvery, and read in line when
// it is older than MaxLag or was never read. This process's own writes go
// through at once (Update, Wrote), also over a load under way, which may
// have read storage before them.
package follow

import (
	"context"
	"sync"
	"time"
)

// Cache holds one copy per key. The zero value is not usable: see New.
//
// RefreshEvery, MaxLag and Clock may be set before the cache is used (tests
// set them to drive its age).
type Cache[K comparable, V any] struct {
	// RefreshEvery is the age past which a read refreshes the copy in the
	// background; < 0 disables the cache (every read loads, in line).
	RefreshEvery time.Duration
	// MaxLag is the age past which a read waits for a load.
	MaxLag time.Duration
	// Clock is the process's monotonic time.
	Clock func() time.Time

	load    LoadFunc[K, V]
	timeout time.Duration
	gone    func(error) bool
	failed  func(K, error)

	mu      sync.Mutex
	entries map[K]*entry[V]
}

// LoadFunc reads key's value from storage; prev is the copy held (the zero
// V before the first load), for loaders that read only what changed.
type LoadFunc[K comparable, V any] func(ctx context.Context, key K, prev V) (V, error)

// Options configures a Cache.
type Options[K comparable, V any] struct {
	Load         LoadFunc[K, V]
	RefreshEvery time.Duration // 0: 1 s
	MaxLag       time.Duration // below RefreshEvery: RefreshEvery
	Clock        func() time.Time
	// RefreshTimeout bounds a background refresh (default 30 s).
	RefreshTimeout time.Duration
	// Gone reports a load error that means the key no longer exists in
	// storage: its copy is dropped.
	Gone func(error) bool
	// RefreshFailed hears of a background refresh that failed for another
	// reason (the copy held is served meanwhile).
	RefreshFailed func(key K, err error)
}

type entry[V any] struct {
	load sync.Mutex // one load at a time

	mu         sync.Mutex
	value      V
	loaded     bool
	loadedAt   time.Time // when the load that filled it started, or the last Wrote
	wroteAt    time.Time
	refreshing bool
	// journal collects this process's writes while a load is under way,
	// to replay them over what the load read.
	journaling bool
	journal    []func(V) V
}

// New returns an empty cache.
func New[K comparable, V any](o Options[K, V]) *Cache[K, V] {
	c := &Cache[K, V]{RefreshEvery: o.RefreshEvery, MaxLag: o.MaxLag, Clock: o.Clock, load: o.Load, timeout: o.RefreshTimeout,
		gone: o.Gone, failed: o.RefreshFailed, entries: map[K]*entry[V]{}}
	if c.RefreshEvery == 0 {
		c.RefreshEvery = time.Second
	}
	if c.MaxLag < c.RefreshEvery {
		c.MaxLag = c.RefreshEvery
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.timeout <= 0 {
		c.timeout = 30 * time.Second
	}
	return c
}

func (c *Cache[K, V]) entry(key K) *entry[V] {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		e = &entry[V]{}
		c.entries[key] = e
	}
	return e
}

// Get returns key's value, from the copy while it is recent enough (see
// the package comment). A load error is returned as the loader gave it.
func (c *Cache[K, V]) Get(ctx context.Context, key K) (V, error) {
	return c.GetCovering(ctx, key, nil, c.load)
}

// GetCovering is Get for a copy that may hold only part of the value: a
// copy for which covers is false is loaded in line, with load instead of
// the cache's loader (which the background refresh uses).
func (c *Cache[K, V]) GetCovering(ctx context.Context, key K, covers func(V) bool, load LoadFunc[K, V]) (V, error) {
	e := c.entry(key)
	e.mu.Lock()
	age := c.Clock().Sub(e.loadedAt)
	if !e.loaded || c.RefreshEvery < 0 || age > c.MaxLag || (covers != nil && !covers(e.value)) {
		e.mu.Unlock()
		return c.fill(ctx, key, e, covers, load)
	}
	if age > c.RefreshEvery && !e.refreshing {
		e.refreshing = true
		go c.refresh(context.WithoutCancel(ctx), key, e)
	}
	v := e.value
	e.mu.Unlock()
	return v, nil
}

func (c *Cache[K, V]) refresh(ctx context.Context, key K, e *entry[V]) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	_, err := c.fill(ctx, key, e, nil, c.load)
	e.mu.Lock()
	e.refreshing = false
	e.mu.Unlock()
	if err != nil && (c.gone == nil || !c.gone(err)) && c.failed != nil {
		c.failed(key, err)
	}
}

// fill loads key into e, unless another load finished meanwhile (while
// this one waited for e.load) and its copy serves.
func (c *Cache[K, V]) fill(ctx context.Context, key K, e *entry[V], covers func(V) bool, load LoadFunc[K, V]) (V, error) {
	e.load.Lock()
	defer e.load.Unlock()
	start := c.Clock()
	e.mu.Lock()
	if e.loaded && c.RefreshEvery >= 0 && start.Sub(e.loadedAt) <= c.RefreshEvery && (covers == nil || covers(e.value)) {
		v := e.value
		e.mu.Unlock()
		return v, nil
	}
	prev := e.value
	e.journaling, e.journal = true, nil
	e.mu.Unlock()

	v, err := load(ctx, key, prev)

	e.mu.Lock()
	defer e.mu.Unlock()
	journal := e.journal
	e.journaling, e.journal = false, nil
	if err != nil {
		if c.gone != nil && c.gone(err) {
			c.drop(key, e)
		}
		var zero V
		return zero, err
	}
	for _, apply := range journal {
		v = apply(v)
	}
	e.value, e.loaded = v, true
	// A write of this process during the load proves the value current
	// as of the write.
	e.loadedAt = start
	if e.wroteAt.After(start) {
		e.loadedAt = e.wroteAt
	}
	return v, nil
}

// drop removes e unless it was replaced already. Callers hold e.mu.
func (c *Cache[K, V]) drop(key K, e *entry[V]) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries[key] == e {
		delete(c.entries, key)
	}
}

// Update applies one of this process's writes to key's copy (and, when a
// load is under way, to what it read). apply must not modify its argument
// in place: readers may hold it.
func (c *Cache[K, V]) Update(key K, apply func(V) V) {
	e := c.entry(key)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.value = apply(e.value)
	if e.journaling {
		e.journal = append(e.journal, apply)
	}
}

// Wrote records that this process wrote v as key's whole value: the copy
// is v, as current as storage now.
func (c *Cache[K, V]) Wrote(key K, v V) {
	e := c.entry(key)
	e.mu.Lock()
	defer e.mu.Unlock()
	now := c.Clock()
	e.value, e.loaded, e.loadedAt, e.wroteAt = v, true, now, now
	if e.journaling {
		e.journal = append(e.journal, func(V) V { return v })
	}
}

// Forget drops key's copy (the key was deleted): the next read loads.
func (c *Cache[K, V]) Forget(key K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, key)
}

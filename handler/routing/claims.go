package routing

import (
	"sync"
	"time"
)

// claims remembers which agents this process is reserving or has just
// reserved, so that concurrent routes in one instance do not all race for
// the same first-ranked agent in storage (each lost race is a wasted round
// trip). Storage stays the only authority: a claim only makes a route skip
// an agent whose hold its own snapshot may not show yet. A route whose
// snapshot started after a claim's write completed trusts the snapshot.
type claims struct {
	mu sync.Mutex
	m  map[string]claim
}

type claim struct {
	pending bool
	doneAt  time.Time
}

// claimMemory is how long a completed claim is remembered: far longer than
// any snapshot read takes.
const claimMemory = time.Minute

func newClaims() *claims { return &claims{m: map[string]claim{}} }

// take claims key for a route whose snapshot started at snapshotAt (a
// reading of the process's monotonic clock). It reports false when another
// route of this process is reserving the agent, or reserved it after the
// snapshot started.
func (c *claims) take(key string, snapshotAt time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.m[key]; ok && (cl.pending || cl.doneAt.After(snapshotAt)) {
		return false
	}
	c.m[key] = claim{pending: true}
	return true
}

// done ends a claim taken with take: held says whether the reservation was
// made (only then is it remembered).
func (c *claims) done(key string, held bool) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !held {
		delete(c.m, key)
	} else {
		c.m[key] = claim{doneAt: now}
	}
	if len(c.m) > 1024 {
		for k, cl := range c.m {
			if !cl.pending && now.Sub(cl.doneAt) > claimMemory {
				delete(c.m, k)
			}
		}
	}
}

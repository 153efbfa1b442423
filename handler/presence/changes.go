package presence

import (
	"context"
	"time"

	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

// ChangeFunc is told of the readings a poll wrote that changed.
type ChangeFunc func(ctx context.Context, tenant string, changed []switchboard.Presence)

// OnChange sets who is told of changed readings once they are written
// (distribution: a newly available agent gets the next conversation at
// once, an Offline reading ends RONA). It runs in the background, so a
// slow listener does not hold up the poll.
func (s *Store) OnChange(fn ChangeFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onChange = fn
}

func (s *Store) notify(tenant string, changed []switchboard.Presence) {
	if len(changed) == 0 {
		return
	}
	s.mu.Lock()
	fn := s.onChange
	s.mu.Unlock()
	if fn == nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		fn(ctx, tenant, changed)
	}()
}

// changedReadings returns the readings the written operations changed
// (removed users are not a change of presence).
func changedReadings(ops [][]store.Op, failed []bool) []switchboard.Presence {
	var out []switchboard.Presence
	for w := range ops {
		if failed[w] {
			continue
		}
		for _, o := range ops[w] {
			if o.Kind != store.OpDelete {
				st := storedFromEntity(o.Entity)
				out = append(out, switchboard.Presence{UserID: o.Entity.RowKey, Availability: st.Availability, Activity: st.Activity})
			}
		}
	}
	return out
}

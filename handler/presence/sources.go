package presence

// Which source a poll reads through, and why. This file is the whole
// answer:
//
//   - candidates: the presence accounts when the tenant tracks over guest
//     accounts, then the application; each only when the deployment
//     configured it and it is not pausing after a failure of its own
//     (SourceCooldown, doubling up to 8x: see SourceStatus.failed).
//   - read: every call goes to the first candidate still in the running.
//     A failure of the source itself (SourceError.Disqualifies: not
//     invited, no consent, MFA, wrong password, ...) drops it for the rest
//     of the poll and pauses it; the next candidate takes the call over.
//     A Graph error moves the call on after two attempts of a source; a
//     throttled call waits as Graph asks and tries the same source again.
//   - Shard confirmations name the best source that read the shard
//     (sourceRank: the order of switchboard.PresenceSources).

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"switchboard/handler/switchboard"
)

// candidates returns the sources to try, in order: the presence accounts
// when the tenant tracks over guest accounts, then the application, each
// only when configured and not cooling down after a failure of its own.
// An unreadable setting counts as "not over guest accounts" and is
// returned as the error.
func (p *Poller) candidates(ctx context.Context, tenant string, statuses map[switchboard.PresenceSource]SourceStatus,
	now time.Time) ([]switchboard.PresenceSource, error) {
	var out []switchboard.PresenceSource
	var settingsErr error
	guest := false
	if p.o.Settings != nil {
		guest, settingsErr = p.o.Settings.TrackOverGuestAccounts(ctx, tenant)
		if settingsErr != nil {
			guest = false
		}
	}
	cool := func(src switchboard.PresenceSource) bool { return statuses[src].RetryAt.After(now) }
	if guest {
		if p.o.Account1UPN != "" && !cool(switchboard.SourceAccount1) {
			out = append(out, switchboard.SourceAccount1)
		}
		if p.o.Account2UPN != "" && !cool(switchboard.SourceAccount2) {
			out = append(out, switchboard.SourceAccount2)
		}
	}
	if p.o.ApplicationConfigured && !cool(switchboard.SourceApplication) {
		out = append(out, switchboard.SourceApplication)
	}
	return out, settingsErr
}

// read reads ids through the first source that works: a source failing
// for a reason of its own is dropped for the rest of the poll (and the
// next source takes the call over), a throttled call waits as Graph asks
// and tries again, a Graph error moves the call to the next source (each
// source gets two attempts).
func (t *tenantPoll) read(ctx context.Context, ids []string) ([]switchboard.PresenceReading, switchboard.PresenceSource, time.Time, error) {
	attempts := map[switchboard.PresenceSource]int{}
	waits := 0
	for {
		src := t.pick(attempts)
		if src == "" {
			return nil, "", time.Time{}, t.noSourceError()
		}
		if err := t.waitGate(ctx); err != nil {
			return nil, "", time.Time{}, err
		}
		if !t.spend() {
			return nil, "", time.Time{}, &notStartedError{"the tenant's call budget is spent"}
		}
		at := t.p.o.Now()
		readings, err := t.p.o.Graph.Presences(ctx, t.tenant, src, ids)
		if err == nil {
			t.succeeded(src, at)
			return readings, src, at, nil
		}
		se := switchboard.AsSourceError(src, err)
		if !se.ReachedGraph() {
			t.refund() // the sign-in failed: no Graph request was made
		}
		t.failed(src, se)
		switch {
		case se.Reason == switchboard.SourceThrottled:
			waits++
			if waits > t.p.o.MaxThrottleWaits {
				return nil, "", time.Time{}, se
			}
			t.throttle(se.RetryAfter)
		case se.Disqualifies():
		default:
			attempts[src]++
		}
		if ctx.Err() != nil {
			return nil, "", time.Time{}, ctx.Err()
		}
	}
}

// pick returns the first candidate neither dropped nor out of attempts.
func (t *tenantPoll) pick(attempts map[switchboard.PresenceSource]int) switchboard.PresenceSource {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.sources {
		if t.dead[s] == nil && attempts[s] < 2 {
			return s
		}
	}
	return ""
}

// firstSource is the source that confirms a shard without users: the
// first candidate not dropped.
func (t *tenantPoll) firstSource() switchboard.PresenceSource {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.sources {
		if t.dead[s] == nil {
			return s
		}
	}
	return ""
}

func sourceRank(s switchboard.PresenceSource) int {
	return slices.Index(switchboard.PresenceSources, s)
}

func (t *tenantPoll) succeeded(src switchboard.PresenceSource, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.used[src] = true
	t.touched[src] = true
	t.statuses[src] = t.statuses[src].succeeded(at)
}

// failed records a failure of src: one that disqualifies it drops it for
// the rest of the poll and pauses it for SourceCooldown; throttling is
// counted, not held against it; anything else is recorded as its last
// error without a pause.
func (t *tenantPoll) failed(src switchboard.PresenceSource, se *switchboard.SourceError) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.errors++
	t.touched[src] = true
	t.lastErr[src] = se
	if se.Disqualifies() {
		if t.dead[src] == nil {
			t.dead[src] = se
			t.statuses[src] = t.statuses[src].failed(t.p.o.Now(), se, t.p.o.SourceCooldown)
		}
		return
	}
	if se.Reason == switchboard.SourceThrottled {
		return // the figures count it; the source itself is fine
	}
	t.statuses[src] = t.statuses[src].failed(t.p.o.Now(), se, 0)
}

const noSourceMessage = "no source is configured and enabled for this tenant (or all are pausing after failures)"

func (t *tenantPoll) noSourceError() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.sources) == 0 {
		return &switchboard.SourceError{Reason: switchboard.SourceNotConfigured, Message: noSourceMessage}
	}
	return fmt.Errorf("every source failed: %s", t.failureSummaryLocked())
}

// failureSummary is the poll's error when users were tracked and no
// source read any of them.
func (t *tenantPoll) failureSummary() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.sources) == 0 {
		return noSourceMessage
	}
	return "every source failed: " + t.failureSummaryLocked()
}

func (t *tenantPoll) failureSummaryLocked() string {
	var parts []string
	for _, s := range t.sources {
		if e := t.lastErr[s]; e != nil {
			parts = append(parts, fmt.Sprintf("%s: %s", s, e.Reason))
		}
	}
	return strings.Join(parts, "; ")
}

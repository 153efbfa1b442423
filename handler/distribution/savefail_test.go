package distribution

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"switchboard/handler/routing"
	"switchboard/handler/store"
	sb "switchboard/handler/switchboard"
)

// landingTables is memory storage whose conversation writes can be made to
// land and still fail, as a batch that timed out does once the client's
// retry of it finds its own write there (ECONFLICT for the insert,
// EPRECONDITION for the update), or as a timeout reported after the write.
type landingTables struct {
	store.Tables
	mu    sync.Mutex
	fails []error // the next conversation writes' errors, after they land
	lost  []error // the next conversation writes' errors, not landing
}

func (l *landingTables) failNext(errs ...error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fails = append(l.fails, errs...)
}

func (l *landingTables) Table(ctx context.Context, name string) (store.Table, error) {
	t, err := l.Tables.Table(ctx, name)
	if err != nil || name != TableName {
		return t, err
	}
	return &landingTable{Table: t, l: l}, nil
}

type landingTable struct {
	store.Table
	l *landingTables
}

func (t *landingTable) Batch(ctx context.Context, ops []store.Op) error {
	t.l.mu.Lock()
	if len(t.l.lost) > 0 && strings.HasPrefix(ops[0].Entity.RowKey, convPrefix) {
		err := t.l.lost[0]
		t.l.lost = t.l.lost[1:]
		t.l.mu.Unlock()
		return err
	}
	t.l.mu.Unlock()
	if err := t.Table.Batch(ctx, ops); err != nil {
		return err
	}
	t.l.mu.Lock()
	defer t.l.mu.Unlock()
	if len(t.l.fails) == 0 || !strings.HasPrefix(ops[0].Entity.RowKey, convPrefix) {
		return nil
	}
	err := t.l.fails[0]
	t.l.fails = t.l.fails[1:]
	return err
}

var (
	errRetriedInsert = &sb.Error{Code: sb.ECONFLICT, Op: "fake.Batch", Message: "EntityAlreadyExists"}
	errRetriedUpdate = &sb.Error{Code: sb.EPRECONDITION, Op: "fake.Batch", Message: "UpdateConditionNotSatisfied"}
	errTimedOut      = &sb.Error{Code: sb.EUNAVAILABLE, Op: "fake.Batch", Message: "context deadline exceeded"}
)

// A conversation write that landed but reported a failure is a success: the
// offer it records keeps its agent's hold (no second offer for that agent),
// and its history ends every offer it records.
func TestWriteThatLandedButFailedKeepsItsOffers(t *testing.T) {
	for _, fail := range []error{errRetriedInsert, errTimedOut} {
		t.Run(sb.ErrorCode(fail), func(t *testing.T) {
			lt := &landingTables{Tables: store.NewMemoryTables()}
			f := newFixtureOn(t, lt)
			f.service("support", 2, routing.DistributionInput{}, nil)
			lt.failNext(fail)
			in := EnqueueInput{ConversationID: "c-1"}
			c, _, err := f.svc.Enqueue(ctx, tenant, "support", in)
			f.svc.Wait()
			if err != nil {
				t.Fatalf("enqueue whose write landed: %v", err)
			}
			first := ringing(c)
			if len(first) != 1 {
				t.Fatalf("c-1 ringing %v, want one agent", first)
			}
			if a := f.agent(first[0]); a.Offer == nil || a.Offer.ConversationID != "c-1" {
				t.Fatalf("%s's offer after the write landed: %+v, want c-1's", first[0], a.Offer)
			}
			c2 := f.enqueue("support", "c-2", EnqueueInput{})
			if got := ringing(c2); len(got) != 1 || got[0] == first[0] {
				t.Fatalf("c-2 offered to %v while %s's c-1 offer rings", got, first[0])
			}
			// The lapse is recorded: the history ends the offer it records.
			f.advance(21 * time.Second)
			c = f.get("c-1")
			if slices.Contains(ringing(c), first[0]) {
				t.Fatalf("c-1 still rings for %s after its ring time", first[0])
			}
			assertOffersEnded(t, c, ringing(c)...) // it may ring for the next agent

		})
	}
}

// A write that timed out and left the row as it was may still land: its
// offer's hold stays (nobody else is offered that agent) until its ring
// time, and the caller is told to retry.
func TestWriteWhoseOutcomeIsUnknownKeepsItsHolds(t *testing.T) {
	lt := &landingTables{Tables: store.NewMemoryTables()}
	f := newFixtureOn(t, lt)
	f.service("support", 2, routing.DistributionInput{}, nil)
	lt.mu.Lock()
	lt.lost = append(lt.lost, errTimedOut)
	lt.mu.Unlock()
	_, _, err := f.svc.Enqueue(ctx, tenant, "support", EnqueueInput{ConversationID: "c-1"})
	f.svc.Wait()
	if sb.ErrorCode(err) != sb.EUNAVAILABLE {
		t.Fatalf("enqueue whose write timed out: %v, want EUNAVAILABLE", err)
	}
	held := ""
	for _, u := range []string{user(1), user(2)} {
		if a := f.agent(u); a.Offer != nil && a.Offer.ConversationID == "c-1" {
			held = u
		}
	}
	if held == "" {
		t.Fatal("no agent holds c-1's offer: a write that may still land lost its hold")
	}
	c2 := f.enqueue("support", "c-2", EnqueueInput{})
	if got := ringing(c2); len(got) != 1 || got[0] == held {
		t.Fatalf("c-2 offered to %v while %s holds c-1's offer", got, held)
	}
	// The hold lapses at its ring time (the agent may be offered c-2 then);
	// the caller's retry creates the conversation.
	f.advance(21 * time.Second)
	if a := f.agent(held); a.Offer != nil && a.Offer.ConversationID == "c-1" {
		t.Fatalf("%s after the ring time: still holds c-1's offer", held)
	}
	if _, created, err := f.svc.Enqueue(ctx, tenant, "support", EnqueueInput{ConversationID: "c-1"}); err != nil || !created {
		t.Fatalf("c-1 enqueued again: created %v, %v", created, err)
	}
}

// A pass's offer and a decline whose writes landed but failed (the update
// retried on its own ETag) keep their effects: the offered agent is not
// offered anything else, and the declined conversation goes on to the next
// agent at once.
func TestUpdateThatLandedButFailedKeepsItsEffects(t *testing.T) {
	lt := &landingTables{Tables: store.NewMemoryTables()}
	f := newFixtureOn(t, lt)
	f.service("support", 3, routing.DistributionInput{}, nil)
	for i := 1; i <= 3; i++ {
		f.presence.set(user(i), sb.Busy)
	}
	f.enqueue("support", "c-1", EnqueueInput{})
	f.clock.Advance(time.Second)
	f.enqueue("support", "c-2", EnqueueInput{})
	// user(1) is free: a pass offers it c-1, and that write lands but fails.
	lt.failNext(errRetriedUpdate)
	f.presence.set(user(1), sb.Available)
	f.svc.PresenceChanged(ctx, tenant, []sb.Presence{{UserID: user(1), Availability: sb.Available}})
	f.svc.Wait()
	if got := ringing(f.get("c-1")); !slices.Equal(got, []string{user(1)}) {
		t.Fatalf("c-1 ringing %v, want %s", got, user(1))
	}
	if a := f.agent(user(1)); a.Offer == nil || a.Offer.ConversationID != "c-1" {
		t.Fatalf("user(1)'s offer: %+v, want c-1's (the write landed)", a.Offer)
	}
	// Another pass (an event) must not offer c-2 to user(1) as well.
	f.svc.Distribute(ctx, tenant, []string{"support"}, nil)
	f.svc.Wait()
	if got := ringing(f.get("c-2")); len(got) != 0 {
		t.Fatalf("c-2 offered to %v while user(1)'s c-1 offer rings", got)
	}
	// user(2) is free; user(1) declines c-1 and that write lands but fails:
	// c-1 goes to user(2) at once, and user(1) is free for c-2.
	f.presence.set(user(2), sb.Available)
	lt.failNext(errRetriedUpdate)
	if _, err := f.svc.Decline(ctx, tenant, "c-1", user(1)); err != nil {
		t.Fatalf("decline whose write landed: %v", err)
	}
	f.svc.Wait()
	if got := ringing(f.get("c-1")); !slices.Equal(got, []string{user(2)}) {
		t.Fatalf("c-1 after the decline: ringing %v, want %s: %+v; c-2 %+v", got, user(2), f.get("c-1"), f.get("c-2"))
	}
	if got := ringing(f.get("c-2")); !slices.Equal(got, []string{user(1)}) {
		t.Fatalf("c-2 after user(1) declined c-1: ringing %v, want %s", got, user(1))
	}
	assertOffersEnded(t, f.get("c-1"), user(2))
}

// assertOffersEnded fails unless every offer of c the history records has
// its end recorded, except the ringing offers of users still ringing.
func assertOffersEnded(t *testing.T, c Conversation, still ...string) {
	t.Helper()
	open := map[string]bool{}
	for _, e := range c.History {
		switch e.Event {
		case EventOffered:
			open[e.UserID] = true
		case EventOfferLapsed, EventOfferDeclined, EventOfferRescinded, EventConnected:
			if !open[e.UserID] {
				t.Errorf("%s: %s of %s, which has no offer", c.ID, e.Event, e.UserID)
			}
			delete(open, e.UserID)
		}
	}
	for _, u := range still {
		delete(open, u)
	}
	for u := range open {
		t.Errorf("%s: the offer to %s has no recorded end (history %+v)", c.ID, u, c.History)
	}
	for _, o := range c.Offers {
		if o.State == OfferRinging && !slices.Contains(still, o.UserID) {
			t.Errorf("%s: offer to %s still %s", c.ID, o.UserID, o.State)
		}
	}
}

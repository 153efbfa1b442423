package presence

// Tests of fan-out: shards the deadline leaves over go to PollShard
// through the queue, and come back to the timer.

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"switchboard/handler/internal/fakes"
	"switchboard/handler/internal/testenv"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
)

func TestPollFansOutWhatTheDeadlineLeaves(t *testing.T) {
	testenv.Backends(t, func(t *testing.T, tables store.Tables) {
		var q *fakes.Queue
		e := newEnv(t, tables, true, func(o *PollerOptions) {
			q = fakes.NewQueue(o.Now)
			o.Queue, o.QueueName, o.ParallelCalls, o.Margin = q, "presence-poll", 1, 3*time.Second
		})
		e.graph.latency = 10 * time.Second // a slow Graph: two calls fit before the deadline
		ids := userIDs(3000)
		e.tracked.set(tenantA, ids)
		for _, id := range ids {
			e.graph.set(id, switchboard.Available, switchboard.ActivityAvailable)
		}
		sum := e.poll(t)
		fig := sum.Tenants[tenantA]
		if fig.ShardsLeft == 0 || fig.ShardsFannedOut == 0 || len(q.Messages()) != fig.ShardsFannedOut {
			t.Fatalf("figures %+v, %d messages: want shards left and fanned out", fig, len(q.Messages()))
		}

		// The next timer poll leaves fanned-out shards alone.
		handed := map[string]bool{}
		for _, m := range q.Messages() {
			var sm ShardMessage
			if err := json.Unmarshal(m.Msg.Body, &sm); err != nil {
				t.Fatal(err)
			}
			for _, u := range sm.Users {
				handed[u] = true
			}
		}
		e.graph.resetCalls()
		e.graph.latency = 0
		e.clock.Advance(time.Second)
		e.poll(t)
		for _, c := range e.graph.callLog() {
			for _, id := range c.set {
				if handed[id] {
					t.Fatalf("the next poll read %s, whose shard was handed to a message", id)
				}
			}
		}

		// Each message polls its shard.
		for _, m := range q.Messages() {
			if err := e.poller.PollShard(context.Background(), m.Msg.Body, e.clock.Now().Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
		if got := len(e.readings(t, ids)); got != len(ids) {
			t.Errorf("%d readings after the messages, want %d", got, len(ids))
		}
	})
}

func TestPollShardDropsBadMessages(t *testing.T) {
	e := newEnv(t, store.NewMemoryTables(), true)
	ids := userIDs(10)
	e.tracked.set(tenantA, ids)
	e.poll(t)
	valid := ShardMessage{Tenant: tenantA, Gen: 1, Shard: 0, Users: ids[:2], NotAfter: e.clock.Now().Add(time.Minute)}
	mutate := func(f func(*ShardMessage)) []byte {
		m := valid
		f(&m)
		b, _ := json.Marshal(m)
		return b
	}
	cases := []struct {
		name string
		body []byte
	}{
		{"not JSON", []byte("{oops")},
		{"unknown field", []byte(`{"tenant":"` + tenantA + `","bogus":1}`)},
		{"tenant with a slash", mutate(func(m *ShardMessage) { m.Tenant = "a/b" })},
		{"no users", mutate(func(m *ShardMessage) { m.Users = nil })},
		{"shard out of range", mutate(func(m *ShardMessage) { m.Shard = -1 })},
		{"expired", mutate(func(m *ShardMessage) { m.NotAfter = e.clock.Now().Add(-time.Second) })},
		{"from an older layout", mutate(func(m *ShardMessage) { m.Gen = 9 })},
		{"a shard the layout does not have", mutate(func(m *ShardMessage) { m.Shard = 5 })},
		{"another layout's shard beyond this one's", mutate(func(m *ShardMessage) { m.Gen, m.Shard = 9, 3 })},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.graph.resetCalls()
			if err := e.poller.PollShard(context.Background(), tc.body, e.clock.Now().Add(time.Minute)); err != nil {
				t.Errorf("got %v, want the message dropped (nil)", err)
			}
			if n := len(e.graph.callLog()); n != 0 {
				t.Errorf("%d Graph calls for a dropped message", n)
			}
		})
	}
}

func TestPollShardRedeliveryOnlyForStorage(t *testing.T) {
	broken := false
	e := newEnv(t, brokenState{store.NewMemoryTables(), &broken}, true)
	ids := userIDs(10)
	e.tracked.set(tenantA, ids)
	for _, id := range ids {
		e.graph.set(id, switchboard.Available, switchboard.ActivityAvailable)
	}
	e.poll(t)
	body, _ := json.Marshal(ShardMessage{Tenant: tenantA, Gen: 1, Shard: 0, Users: ids, NotAfter: e.clock.Now().Add(time.Minute)})

	e.graph.fail = map[switchboard.PresenceSource]*switchboard.SourceError{switchboard.SourceAccount1: errMFA, switchboard.SourceAccount2: errNotInvited, switchboard.SourceApplication: errNoConsent}
	if err := e.poller.PollShard(context.Background(), body, e.clock.Now().Add(time.Minute)); err != nil {
		t.Errorf("every source failing: got %v, want nil (a redelivery would fail the same way)", err)
	}
	e.graph.fail = nil
	broken = true
	if err := e.poller.PollShard(context.Background(), body, e.clock.Now().Add(time.Minute)); !switchboard.IsCode(err, switchboard.EUNAVAILABLE) {
		t.Errorf("storage down: got %v, want EUNAVAILABLE (worth a redelivery)", err)
	}
}

// A fanned-out shard is the timer's again once its message ran: left out
// of timer polls for all of FanOutFor (2 minutes, more than the 120 s
// staleness limit), it went stale between messages.
func TestFannedOutShardReturnsToTheTimerOnceItsMessageRan(t *testing.T) {
	var q *fakes.Queue
	e := newEnv(t, store.NewMemoryTables(), true, func(o *PollerOptions) {
		q = fakes.NewQueue(o.Now)
		o.Queue, o.QueueName, o.ParallelCalls, o.Margin = q, "presence-poll", 1, 3*time.Second
	})
	e.graph.latency = 10 * time.Second // a slow Graph: two calls fit before the deadline
	ids := userIDs(3000)
	e.tracked.set(tenantA, ids)
	for _, id := range ids {
		e.graph.set(id, switchboard.Available, switchboard.ActivityAvailable)
	}
	e.poll(t)
	if len(q.Messages()) == 0 {
		t.Fatal("nothing fanned out")
	}
	e.graph.latency = 0
	handed := map[string]bool{}
	for _, m := range q.Messages() {
		var sm ShardMessage
		if err := json.Unmarshal(m.Msg.Body, &sm); err != nil {
			t.Fatal(err)
		}
		for _, u := range sm.Users {
			handed[u] = true
		}
		if err := e.poller.PollShard(context.Background(), m.Msg.Body, e.clock.Now().Add(25*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	e.graph.resetCalls()
	e.clock.Advance(30 * time.Second)
	e.poll(t)
	read := 0
	for _, c := range e.graph.callLog() {
		for _, id := range c.set {
			if handed[id] {
				read++
			}
		}
	}
	if got, want := read, len(handed); got != want {
		t.Errorf("the next timer poll read %d users of the shards whose messages ran, want %d", got, want)
	}
}

// brokenQueue fails every send.
type brokenQueue struct{}

func (brokenQueue) Send(context.Context, string, switchboard.Message) (int64, error) {
	return 0, switchboard.Errorf(switchboard.EUNAVAILABLE, "test", "service bus is down")
}

func (brokenQueue) Cancel(context.Context, string, int64) error { return nil }

func TestUnsentFanOutShardsStayWithTheTimer(t *testing.T) {
	e := newEnv(t, store.NewMemoryTables(), true, func(o *PollerOptions) {
		o.Queue, o.QueueName, o.ParallelCalls, o.Margin = brokenQueue{}, "presence-poll", 1, 3*time.Second
	})
	e.graph.latency = 10 * time.Second
	ids := userIDs(3000)
	e.tracked.set(tenantA, ids)
	for _, id := range ids {
		e.graph.set(id, switchboard.Available, switchboard.ActivityAvailable)
	}
	fig := e.poll(t).Tenants[tenantA]
	if got, want := fig.ShardsFannedOut, 0; got != want || fig.ShardsLeft == 0 {
		t.Fatalf("fanned out %d shards (left %d) through a broken queue, want %d and some left", got, fig.ShardsLeft, want)
	}
	e.graph.latency = 0
	e.clock.Advance(30 * time.Second)
	e.poll(t)
	if got, want := len(e.readings(t, ids)), len(ids); got != want {
		t.Errorf("%d readings after the next poll, want %d: shards whose message was never sent were left out", got, want)
	}
}

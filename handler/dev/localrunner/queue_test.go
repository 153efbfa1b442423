package localrunner

import (
	"context"
	"testing"
	"time"
)

func receive(t *testing.T, b *Broker, queue string) Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := b.Receive(ctx, queue)
	if err != nil {
		t.Fatalf("Receive(%s): %v", queue, err)
	}
	return m
}

func assertStats(t *testing.T, b *Broker, queue string, want QueueStats) {
	t.Helper()
	want.Name = queue
	if got := b.Stats(queue); got != want {
		t.Errorf("Stats(%s) = %+v, want %+v", queue, got, want)
	}
}

func TestBrokerPeekLockRedeliveryAndDeadLetter(t *testing.T) {
	b := NewBroker(nil)
	b.MaxDeliveryCount, b.RedeliveryDelay = 3, time.Millisecond
	seq, id := b.Send("q", Message{Body: []byte(`{"n":1}`), MessageID: "m-1"})
	if seq != 1 || id != "m-1" {
		t.Errorf("Send = %d, %q; want 1, m-1", seq, id)
	}
	for delivery := 1; delivery <= 3; delivery++ {
		m := receive(t, b, "q")
		if m.DeliveryCount != delivery || m.MessageID != "m-1" || m.SequenceNumber != 1 || string(m.Body) != `{"n":1}` {
			t.Fatalf("delivery %d: got %+v", delivery, m)
		}
		assertStats(t, b, "q", QueueStats{Locked: 1})
		dead, err := b.Abandon("q", m.LockToken, "boom")
		if err != nil {
			t.Fatal(err)
		}
		if dead != (delivery == 3) {
			t.Errorf("delivery %d: dead-lettered = %v", delivery, dead)
		}
		if _, err := b.Abandon("q", m.LockToken, "again"); err == nil {
			t.Errorf("abandoning a released lock succeeded")
		}
	}
	assertStats(t, b, "q", QueueStats{DeadLettered: 1})
	dl := b.DeadLetters("q")
	if len(dl) != 1 || dl[0].DeadLetterReason != "MaxDeliveryCountExceeded" || dl[0].DeliveryCount != 3 || dl[0].DeadLetterDescription == "" {
		t.Errorf("dead letters = %+v", dl)
	}
}

func TestBrokerCompleteAndOrder(t *testing.T) {
	b := NewBroker(nil)
	b.RedeliveryDelay = time.Millisecond
	b.Send("q", Message{Body: []byte("a")})
	b.Send("q", Message{Body: []byte("b")})
	b.Send("other", Message{Body: []byte("x")})
	first := receive(t, b, "q")
	second := receive(t, b, "q")
	if string(first.Body) != "a" || string(second.Body) != "b" || first.MessageID == "" || first.MessageID == second.MessageID {
		t.Errorf("received %q (%s) then %q (%s), want a then b with distinct generated ids", first.Body, first.MessageID, second.Body, second.MessageID)
	}
	if err := b.Complete("q", first.LockToken); err != nil {
		t.Fatal(err)
	}
	if err := b.Complete("q", first.LockToken); err == nil {
		t.Error("completing twice succeeded")
	}
	// An abandoned message goes back in sequence order, ahead of later ones.
	b.Send("q", Message{Body: []byte("c")})
	if _, err := b.Abandon("q", second.LockToken, "retry"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * b.RedeliveryDelay) // until it is available again
	again := receive(t, b, "q")
	if string(again.Body) != "b" || again.DeliveryCount != 2 {
		t.Errorf("after abandon: got %q delivery %d, want b delivery 2", again.Body, again.DeliveryCount)
	}
	assertStats(t, b, "q", QueueStats{Active: 1, Locked: 1, Completed: 1})
	assertStats(t, b, "other", QueueStats{Active: 1})
}

func TestBrokerScheduledMessages(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	b := NewBroker(func() time.Time { return clock() })
	later, _ := b.Send("q", Message{Body: []byte("later"), ScheduledEnqueueTime: now.Add(time.Hour)})
	cancelled, _ := b.Send("q", Message{Body: []byte("cancelled"), ScheduledEnqueueTime: now.Add(time.Hour)})
	past, _ := b.Send("q", Message{Body: []byte("past"), ScheduledEnqueueTime: now.Add(-time.Minute)})
	assertStats(t, b, "q", QueueStats{Active: 1, Scheduled: 2})
	if !b.Cancel("q", cancelled) {
		t.Error("Cancel of a scheduled message = false")
	}
	if b.Cancel("q", cancelled) || b.Cancel("q", past) || b.Cancel("q", 999) {
		t.Error("Cancel of a cancelled, already enqueued or unknown message = true")
	}
	if m := receive(t, b, "q"); string(m.Body) != "past" {
		t.Errorf("got %q, want the message scheduled in the past, delivered at once", m.Body)
	}
	// Nothing is due: Receive waits.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	if m, err := b.Receive(ctx, "q"); err == nil {
		t.Errorf("received %q before its scheduled time", m.Body)
	}
	cancel()
	now = now.Add(time.Hour)
	m := receive(t, b, "q")
	if string(m.Body) != "later" || m.SequenceNumber != later || !m.EnqueuedTime.Equal(now) {
		t.Errorf("got %q seq %d enqueued %s, want later seq %d enqueued at its scheduled time", m.Body, m.SequenceNumber, m.EnqueuedTime, later)
	}
	if b.Cancel("q", later) {
		t.Error("Cancel of a delivered message = true")
	}
}

func TestBrokerReceiveWakesOnSend(t *testing.T) {
	b := NewBroker(nil)
	got := make(chan Message, 1)
	go func() {
		m, err := b.Receive(context.Background(), "q")
		if err == nil {
			got <- m
		}
	}()
	time.Sleep(20 * time.Millisecond) // let the receiver wait first
	b.Send("q", Message{Body: []byte("hello")})
	select {
	case m := <-got:
		if string(m.Body) != "hello" {
			t.Errorf("got %q", m.Body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a waiting receiver was not woken by Send")
	}
}

package localrunner

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Broker is the runner's in-process stand-in for Service Bus queues, used
// when no Service Bus is configured. Queues exist on first use. Delivery is
// peek-lock: a received message is locked until it is completed or
// abandoned; an abandoned message comes back (after RedeliveryDelay) with
// DeliveryCount one higher, and once it has been delivered MaxDeliveryCount
// times it is dead-lettered, as Service Bus does. Messages live in memory
// only.
type Broker struct {
	// MaxDeliveryCount is the queues' MaxDeliveryCount (Service Bus default 10).
	MaxDeliveryCount int
	// RedeliveryDelay is how long an abandoned message waits before it is
	// delivered again (Service Bus redelivers at once; a short pause keeps
	// a failing function from spinning).
	RedeliveryDelay time.Duration

	now    func() time.Time
	mu     sync.Mutex
	queues map[string]*queue
}

// Message is a message on an in-process queue.
type Message struct {
	Body                  []byte
	MessageID             string
	ContentType           string
	CorrelationID         string
	Subject               string
	ApplicationProperties map[string]any
	SequenceNumber        int64
	EnqueuedTime          time.Time
	ScheduledEnqueueTime  time.Time // zero unless scheduled
	DeliveryCount         int
	LockToken             string
	DeadLetterReason      string
	DeadLetterDescription string

	availableAt time.Time
}

// QueueStats counts a queue's messages.
type QueueStats struct {
	Name         string `json:"name"`
	Active       int    `json:"active"`       // waiting for delivery, redeliveries included
	Scheduled    int    `json:"scheduled"`    // scheduled for later
	Locked       int    `json:"locked"`       // being processed
	DeadLettered int    `json:"deadLettered"` // in the dead-letter queue
	Completed    int64  `json:"completed"`    // completed since the runner started
}

type queue struct {
	name       string
	nextSeq    int64
	active     []*Message // in sequence order
	scheduled  map[int64]*Message
	locked     map[string]*Message // by lock token
	deadLetter []*Message
	completed  int64
	wake       chan struct{} // closed and replaced when something changes
}

// NewBroker returns an empty Broker with Service Bus defaults. now is the
// clock for scheduled messages.
func NewBroker(now func() time.Time) *Broker {
	if now == nil {
		now = time.Now
	}
	return &Broker{MaxDeliveryCount: 10, RedeliveryDelay: time.Second, now: now, queues: map[string]*queue{}}
}

// queue returns the named queue, creating it. Callers hold b.mu.
func (b *Broker) queue(name string) *queue {
	q, ok := b.queues[name]
	if !ok {
		q = &queue{name: name, scheduled: map[int64]*Message{}, locked: map[string]*Message{}, wake: make(chan struct{})}
		b.queues[name] = q
	}
	return q
}

func (q *queue) notify() {
	close(q.wake)
	q.wake = make(chan struct{})
}

// Send puts a copy of m on the queue and returns its sequence number and
// message id. A
// ScheduledEnqueueTime in the future holds the message back until then; an
// empty MessageID gets a random one.
func (b *Broker) Send(queueName string, m Message) (sequenceNumber int64, messageID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queue(queueName)
	q.nextSeq++
	msg := &Message{
		Body:                  append([]byte(nil), m.Body...),
		MessageID:             m.MessageID,
		ContentType:           m.ContentType,
		CorrelationID:         m.CorrelationID,
		Subject:               m.Subject,
		ApplicationProperties: m.ApplicationProperties,
		SequenceNumber:        q.nextSeq,
		EnqueuedTime:          b.now().UTC(),
	}
	if msg.MessageID == "" {
		msg.MessageID = uuid.NewString()
	}
	if !m.ScheduledEnqueueTime.IsZero() && m.ScheduledEnqueueTime.After(msg.EnqueuedTime) {
		msg.ScheduledEnqueueTime = m.ScheduledEnqueueTime.UTC()
		q.scheduled[msg.SequenceNumber] = msg
	} else {
		q.active = append(q.active, msg)
	}
	q.notify()
	return msg.SequenceNumber, msg.MessageID
}

// Cancel removes a scheduled message that is not yet enqueued. It reports
// whether there was one.
func (b *Broker) Cancel(queueName string, sequenceNumber int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queue(queueName)
	b.promote(q)
	if _, ok := q.scheduled[sequenceNumber]; !ok {
		return false
	}
	delete(q.scheduled, sequenceNumber)
	q.notify()
	return true
}

// promote enqueues the scheduled messages that are due. Callers hold b.mu.
func (b *Broker) promote(q *queue) {
	now := b.now()
	var due []*Message
	for seq, m := range q.scheduled {
		if !m.ScheduledEnqueueTime.After(now) {
			due = append(due, m)
			delete(q.scheduled, seq)
		}
	}
	if len(due) == 0 {
		return
	}
	sort.Slice(due, func(i, j int) bool { return due[i].SequenceNumber < due[j].SequenceNumber })
	for _, m := range due {
		m.EnqueuedTime = m.ScheduledEnqueueTime
	}
	q.active = append(q.active, due...)
	sort.SliceStable(q.active, func(i, j int) bool { return q.active[i].SequenceNumber < q.active[j].SequenceNumber })
}

// Receive waits for the next available message of the queue, locks it and
// returns a copy with DeliveryCount counting this delivery. It returns
// ctx's error when ctx ends first.
func (b *Broker) Receive(ctx context.Context, queueName string) (Message, error) {
	for {
		b.mu.Lock()
		q := b.queue(queueName)
		b.promote(q)
		now := b.now()
		var wakeAt time.Time
		for i, m := range q.active {
			if m.availableAt.After(now) {
				if wakeAt.IsZero() || m.availableAt.Before(wakeAt) {
					wakeAt = m.availableAt
				}
				continue
			}
			q.active = append(q.active[:i:i], q.active[i+1:]...)
			m.DeliveryCount++
			m.LockToken = uuid.NewString()
			q.locked[m.LockToken] = m
			got := *m
			b.mu.Unlock()
			return got, nil
		}
		for _, m := range q.scheduled {
			if wakeAt.IsZero() || m.ScheduledEnqueueTime.Before(wakeAt) {
				wakeAt = m.ScheduledEnqueueTime
			}
		}
		wake := q.wake
		b.mu.Unlock()

		var timer *time.Timer
		var fire <-chan time.Time
		if !wakeAt.IsZero() {
			timer = time.NewTimer(max(wakeAt.Sub(now), time.Millisecond))
			fire = timer.C
		}
		select {
		case <-ctx.Done():
		case <-wake:
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
		if err := ctx.Err(); err != nil {
			return Message{}, err
		}
	}
}

// Complete removes a locked message: it was processed.
func (b *Broker) Complete(queueName, lockToken string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queue(queueName)
	if _, ok := q.locked[lockToken]; !ok {
		return fmt.Errorf("queue %s: lock %s is not held", queueName, lockToken)
	}
	delete(q.locked, lockToken)
	q.completed++
	q.notify()
	return nil
}

// Abandon releases a locked message for redelivery, or dead-letters it when
// it has been delivered MaxDeliveryCount times. reason says why the
// delivery failed; it becomes the dead-letter error description.
func (b *Broker) Abandon(queueName, lockToken, reason string) (deadLettered bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queue(queueName)
	m, ok := q.locked[lockToken]
	if !ok {
		return false, fmt.Errorf("queue %s: lock %s is not held", queueName, lockToken)
	}
	delete(q.locked, lockToken)
	m.LockToken = ""
	defer q.notify()
	if m.DeliveryCount >= b.MaxDeliveryCount {
		m.DeadLetterReason = "MaxDeliveryCountExceeded"
		m.DeadLetterDescription = fmt.Sprintf("delivered %d times; last failure: %s", m.DeliveryCount, reason)
		q.deadLetter = append(q.deadLetter, m)
		return true, nil
	}
	m.availableAt = b.now().Add(b.RedeliveryDelay)
	q.active = append(q.active, m)
	sort.SliceStable(q.active, func(i, j int) bool { return q.active[i].SequenceNumber < q.active[j].SequenceNumber })
	return false, nil
}

// Stats counts the queue's messages.
func (b *Broker) Stats(queueName string) QueueStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queue(queueName)
	b.promote(q)
	return QueueStats{
		Name: q.name, Active: len(q.active), Scheduled: len(q.scheduled), Locked: len(q.locked),
		DeadLettered: len(q.deadLetter), Completed: q.completed,
	}
}

// DeadLetters returns copies of the queue's dead-lettered messages, oldest
// first.
func (b *Broker) DeadLetters(queueName string) []Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queue(queueName)
	out := make([]Message, len(q.deadLetter))
	for i, m := range q.deadLetter {
		out[i] = *m
	}
	return out
}

// Queues returns the names of the queues used so far, sorted.
func (b *Broker) Queues() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	names := make([]string, 0, len(b.queues))
	for n := range b.queues {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

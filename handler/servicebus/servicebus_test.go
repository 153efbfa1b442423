package servicebus

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"switchboard/handler/internal/queuetest"
	"switchboard/handler/internal/testenv"
	"switchboard/handler/switchboard"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func open(t *testing.T, conn string) *Queue {
	t.Helper()
	q, err := Open(Options{ConnectionString: conn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close(context.Background()) })
	return q
}

// receiver reads a queue (or its dead-letter queue) with a client of its
// own, as the Functions host would.
func receiver(t *testing.T, conn, queue string, deadLetters bool) *azservicebus.Receiver {
	t.Helper()
	c, err := azservicebus.NewClientFromConnectionString(conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	opts := &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModePeekLock}
	if deadLetters {
		opts.SubQueue = azservicebus.SubQueueDeadLetter
	}
	r, err := c.NewReceiverForQueue(queue, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()); _ = c.Close(context.Background()) })
	return r
}

// receive waits up to wait for one message; nil when none came.
func receive(t *testing.T, r *azservicebus.Receiver, wait time.Duration) *azservicebus.ReceivedMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	msgs, err := r.ReceiveMessages(ctx, 1, nil)
	if err != nil && ctx.Err() == nil {
		t.Fatalf("receive: %v", err)
	}
	if len(msgs) == 0 {
		return nil
	}
	return msgs[0]
}

func TestSendReceiveComplete(t *testing.T) {
	conn := testenv.ServiceBus(t)
	q := open(t, conn)
	ctx := context.Background()
	seq, err := q.Send(ctx, "send-now", switchboard.Message{Body: []byte(`{"n":1}`), MessageID: "m-1"})
	if err != nil || seq != 0 {
		t.Fatalf("Send = %d, %v; want 0, nil for an immediate message", seq, err)
	}
	r := receiver(t, conn, "send-now", false)
	m := receive(t, r, 10*time.Second)
	if m == nil {
		t.Fatal("no message received")
	}
	if !bytes.Equal(m.Body, []byte(`{"n":1}`)) || m.MessageID != "m-1" || m.ContentType == nil || *m.ContentType != "application/json" || m.DeliveryCount != 1 {
		t.Errorf("received body %s id %q content type %v delivery count %d; want the message sent, first delivery", m.Body, m.MessageID, m.ContentType, m.DeliveryCount)
	}
	if err := r.CompleteMessage(ctx, m, nil); err != nil {
		t.Fatalf("complete: %v", err)
	}
	if again := receive(t, r, 1500*time.Millisecond); again != nil {
		t.Errorf("a completed message came again: %s", again.Body)
	}
}

func TestScheduledMessageNotDeliveredBeforeItsTime(t *testing.T) {
	conn := testenv.ServiceBus(t)
	q := open(t, conn)
	at := time.Now().Add(2 * time.Second)
	seq, err := q.Send(context.Background(), "scheduled", switchboard.Message{Body: []byte(`{"n":2}`), ScheduledAt: at})
	if err != nil || seq <= 0 {
		t.Fatalf("Send scheduled = %d, %v; want a sequence number", seq, err)
	}
	r := receiver(t, conn, "scheduled", false)
	m := receive(t, r, 15*time.Second)
	if m == nil {
		t.Fatal("the scheduled message never came")
	}
	if got := time.Now(); got.Before(at) {
		t.Errorf("received at %v, before its scheduled time %v", got, at)
	}
	if m.SequenceNumber == nil || *m.SequenceNumber != seq || m.ScheduledEnqueueTime == nil || !m.ScheduledEnqueueTime.Equal(at.UTC().Truncate(time.Millisecond)) {
		t.Errorf("sequence number %v scheduled time %v; want %d and %v", m.SequenceNumber, m.ScheduledEnqueueTime, seq, at)
	}
	_ = r.CompleteMessage(context.Background(), m, nil)
}

func TestCancelledMessageNeverDelivered(t *testing.T) {
	conn := testenv.ServiceBus(t)
	q := open(t, conn)
	ctx := context.Background()
	seq, err := q.Send(ctx, "cancelled", switchboard.Message{Body: []byte(`{"n":3}`), ScheduledAt: time.Now().Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Cancel(ctx, "cancelled", seq); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	if err := q.Cancel(ctx, "cancelled", seq); err != nil {
		t.Errorf("Cancel again: %v, want nil (already cancelled is not an error)", err)
	}
	r := receiver(t, conn, "cancelled", false)
	if m := receive(t, r, 3*time.Second); m != nil {
		t.Errorf("a cancelled message was delivered: %s", m.Body)
	}
	if err := q.Cancel(ctx, "cancelled", 0); !switchboard.IsCode(err, switchboard.EINVALID) {
		t.Errorf("Cancel(0) = %v, want EINVALID", err)
	}
}

func TestAbandonedMessageDeadLettered(t *testing.T) {
	conn := testenv.NewServiceBus(t, testenv.ServiceBusOptions{MaxDeliveryCount: 2})
	q := open(t, conn)
	ctx := context.Background()
	if _, err := q.Send(ctx, "poison", switchboard.Message{Body: []byte(`{"n":4}`)}); err != nil {
		t.Fatal(err)
	}
	r := receiver(t, conn, "poison", false)
	for want := uint32(1); want <= 2; want++ {
		m := receive(t, r, 10*time.Second)
		if m == nil || m.DeliveryCount != want {
			t.Fatalf("delivery %d: %+v", want, m)
		}
		if err := r.AbandonMessage(ctx, m, nil); err != nil {
			t.Fatalf("abandon: %v", err)
		}
	}
	if m := receive(t, r, 1500*time.Millisecond); m != nil {
		t.Errorf("delivered a third time past the max delivery count: %+v", m)
	}
	dlq := receiver(t, conn, "poison", true)
	m := receive(t, dlq, 10*time.Second)
	if m == nil || string(m.Body) != `{"n":4}` || m.DeadLetterReason == nil || *m.DeadLetterReason != "MaxDeliveryCountExceeded" {
		t.Fatalf("dead letter: %+v, want the message with reason MaxDeliveryCountExceeded", m)
	}
	if err := dlq.CompleteMessage(ctx, m, nil); err != nil {
		t.Errorf("complete the dead letter: %v", err)
	}
}

func TestErrors(t *testing.T) {
	conn := testenv.ServiceBus(t)
	q := open(t, conn)
	ctx := context.Background()
	_, err := q.Send(ctx, "big", switchboard.Message{Body: bytes.Repeat([]byte("x"), 2<<20)})
	if !switchboard.IsCode(err, switchboard.EINVALID) {
		t.Errorf("Send of 2 MiB: %v, want EINVALID", err)
	}

	down := open(t, testenv.ServiceBusConnectionString(testenv.FreePort(t)))
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := down.Send(ctx, "q", switchboard.Message{Body: []byte("{}")}); !switchboard.IsCode(err, switchboard.EUNAVAILABLE) {
		t.Errorf("Send with the broker down: %v, want EUNAVAILABLE", err)
	}

	const secret = "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=s3cr3t-value;UseDevelopmentEmulator=maybe"
	_, err = Open(Options{ConnectionString: secret})
	if !switchboard.IsCode(err, switchboard.EINVALID) || strings.Contains(err.Error(), "s3cr3t-value") {
		t.Errorf("Open with a bad connection string: %v, want EINVALID without the secret", err)
	}
	if _, err := Open(Options{}); !switchboard.IsCode(err, switchboard.EINVALID) {
		t.Errorf("Open without a connection: %v, want EINVALID", err)
	}
}

// The queue contract, against the Service Bus stand-in with the real
// azservicebus client.
func TestQueueContract(t *testing.T) {
	queuetest.Run(t, func(t *testing.T) queuetest.Backend {
		conn := testenv.ServiceBus(t)
		return queuetest.Backend{Queue: open(t, conn), Receive: func(t *testing.T, queue string, wait time.Duration) (queuetest.Received, bool) {
			m := receive(t, receiver(t, conn, queue, false), wait)
			if m == nil {
				return queuetest.Received{}, false
			}
			out := queuetest.Received{Body: m.Body, MessageID: m.MessageID}
			if m.ContentType != nil {
				out.ContentType = *m.ContentType
			}
			if m.SequenceNumber != nil {
				out.SequenceNumber = *m.SequenceNumber
			}
			return out, true
		}}
	})
}

package localrunner

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"switchboard/handler/internal/testenv"
)

// With ServiceBusConnection set, the runner receives from Service Bus (here
// the AMQP stand-in, through the real azservicebus client): a message whose
// invocation succeeds is completed, one that fails is abandoned until
// Service Bus dead-letters it.
func TestServiceBusQueue(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the Service Bus stand-in (Node.js)")
	}
	conn := testenv.NewServiceBus(t, testenv.ServiceBusOptions{MaxDeliveryCount: 3})
	root := writeApp(t, testHost, map[string]string{"Worker": queueFunction("%WORK_QUEUE%")})
	settings := baseSettings()
	settings["ServiceBusConnection"] = conn
	settings["WORK_QUEUE"] = "sb-work"
	h := newFakeHandler(t, func(c call) int {
		if strings.Contains(string(c.Message.Body), "fail") {
			return 500
		}
		return 200
	})
	base, _ := startRunner(t, Options{ScriptRoot: root, Settings: settings, HandlerURL: h.srv.URL})

	client, err := azservicebus.NewClientFromConnectionString(conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sender, err := client.NewSender("sb-work", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close(ctx)
	for id, body := range map[string]string{"m-ok": `{"kind":"ok"}`, "m-fail": `{"kind":"fail"}`} {
		if err := sender.SendMessage(ctx, &azservicebus.Message{MessageID: &id, Body: []byte(body)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "three deliveries of the failing message", func() bool {
		n := 0
		for _, c := range h.callsOf("Worker") {
			if c.Message.MessageID == "m-fail" {
				n++
			}
		}
		return n == 3
	})

	var okCalls, failCounts []int64
	for _, c := range h.callsOf("Worker") {
		switch c.Message.MessageID {
		case "m-ok":
			okCalls = append(okCalls, c.Message.DeliveryCount)
		case "m-fail":
			failCounts = append(failCounts, c.Message.DeliveryCount)
		}
		if c.Message.SequenceNumber <= 0 || c.Message.EnqueuedTime.IsZero() {
			t.Errorf("message %s: sequence %d, enqueued %s: want both from Service Bus", c.Message.MessageID, c.Message.SequenceNumber, c.Message.EnqueuedTime)
		}
	}
	if len(okCalls) != 1 {
		t.Errorf("the succeeding message was delivered %d times, want once (completed)", len(okCalls))
	}
	if len(failCounts) != 3 || failCounts[0] != 1 || failCounts[2] != 3 {
		t.Errorf("delivery counts of the failing message = %v, want 1, 2, 3", failCounts)
	}

	dlq, err := client.NewReceiverForQueue("sb-work", &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	if err != nil {
		t.Fatal(err)
	}
	defer dlq.Close(ctx)
	msgs, err := dlq.ReceiveMessages(ctx, 1, nil)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("dead-letter queue: %d messages, %v", len(msgs), err)
	}
	if msgs[0].MessageID != "m-fail" || msgs[0].DeadLetterReason == nil || *msgs[0].DeadLetterReason != "MaxDeliveryCountExceeded" {
		t.Errorf("dead letter = %s (reason %v), want m-fail, MaxDeliveryCountExceeded", msgs[0].MessageID, msgs[0].DeadLetterReason)
	}

	// The in-process queues are not in use: their admin endpoints say so.
	if status, body := get(t, base+"/admin/queues/sb-work"); status != 409 || !strings.Contains(string(body), "Service Bus") {
		t.Errorf("GET /admin/queues/sb-work = %d %s, want 409", status, body)
	}
}

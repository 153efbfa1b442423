package localrunner

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/google/uuid"
)

// serviceBusConfigured reports whether the connection setting conn names a
// Service Bus: a connection string, or the identity-based
// conn__fullyQualifiedNamespace.
func serviceBusConfigured(s Settings, conn string) bool {
	return s.Get(conn) != "" || s.Get(conn+"__fullyQualifiedNamespace") != ""
}

// serviceBusClient opens the Service Bus that the connection setting conn
// names, as the trigger binding reads it.
func serviceBusClient(s Settings, conn string) (*azservicebus.Client, error) {
	if cs := s.Get(conn); cs != "" {
		return azservicebus.NewClientFromConnectionString(cs, nil)
	}
	ns := s.Get(conn + "__fullyQualifiedNamespace")
	var cred azcore.TokenCredential
	var err error
	if strings.EqualFold(s.Get(conn+"__credential"), "managedidentity") {
		opts := &azidentity.ManagedIdentityCredentialOptions{}
		if id := s.Get(conn + "__clientId"); id != "" {
			opts.ID = azidentity.ClientID(id)
		}
		cred, err = azidentity.NewManagedIdentityCredential(opts)
	} else {
		cred, err = azidentity.NewDefaultAzureCredential(nil)
	}
	if err != nil {
		return nil, err
	}
	return azservicebus.NewClient(ns, cred, nil)
}

// consumeServiceBus receives fn's queue from Service Bus in peek-lock mode,
// up to MaxConcurrentCalls messages at a time, and completes each message
// whose invocation succeeded and abandons the others (Service Bus then
// redelivers or dead-letters them).
func (r *Runner) consumeServiceBus(ctx context.Context, fn *Function, client *azservicebus.Client, wg *sync.WaitGroup) {
	recv, err := client.NewReceiverForQueue(fn.Queue, &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModePeekLock})
	if err != nil {
		r.log.printf(fn.Name, "Service Bus receiver for queue %s: %v", fn.Queue, err)
		return
	}
	defer recv.Close(context.Background())
	slots := make(chan struct{}, r.app.Host.MaxConcurrentCalls)
	for {
		// Take one free slot (waiting), then every other free one.
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		n := 1
	more:
		for n < cap(slots) {
			select {
			case slots <- struct{}{}:
				n++
			default:
				break more
			}
		}
		msgs, err := recv.ReceiveMessages(ctx, n, nil)
		for i := len(msgs); i < n; i++ {
			<-slots
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.printf(fn.Name, "receiving from queue %s: %v (retrying in 5 s)", fn.Queue, err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Second):
			}
			continue
		}
		for _, m := range msgs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				r.deliverServiceBus(ctx, fn, recv, m)
			}()
		}
	}
}

func (r *Runner) deliverServiceBus(ctx context.Context, fn *Function, recv *azservicebus.Receiver, m *azservicebus.ReceivedMessage) {
	d := deliveredMessage{
		Body: m.Body, MessageID: m.MessageID, DeliveryCount: int(m.DeliveryCount),
		LockToken: uuid.UUID(m.LockToken).String(), ApplicationProperties: m.ApplicationProperties,
	}
	if m.SequenceNumber != nil {
		d.SequenceNumber = *m.SequenceNumber
	}
	if m.EnqueuedTime != nil {
		d.EnqueuedTime = *m.EnqueuedTime
	}
	if m.ExpiresAt != nil {
		d.ExpiresAt = *m.ExpiresAt
	}
	for dst, src := range map[*string]*string{&d.ContentType: m.ContentType, &d.CorrelationID: m.CorrelationID, &d.Subject: m.Subject} {
		if src != nil {
			*dst = *src
		}
	}
	out := r.inv.invoke(ctx, fn, map[string]any{fn.Binding: messageBody(d.Body)}, messageMetadata(d))
	// Settle even while shutting down: an unsettled message stays locked
	// for the queue's lock duration.
	settleCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	if out.Succeeded {
		err = recv.CompleteMessage(settleCtx, m, nil)
	} else {
		err = recv.AbandonMessage(settleCtx, m, nil)
	}
	if err != nil {
		var sbErr *azservicebus.Error
		if errors.As(err, &sbErr) && sbErr.Code == azservicebus.CodeLockLost {
			err = fmt.Errorf("the message lock was lost before the invocation finished: %w", err)
		}
		r.log.printf(fn.Name, "settling message %s (sequence %d): %v", d.MessageID, d.SequenceNumber, err)
	}
}

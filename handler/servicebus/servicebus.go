// Package servicebus implements switchboard.Queue on Azure Service Bus
// (azservicebus): messages for now are sent, messages for later are
// scheduled (ScheduleMessages) and can be cancelled by their sequence
// number. It connects the way the Functions trigger binding does: with the
// ServiceBusConnection connection string, or with the namespace of
// ServiceBusConnection__fullyQualifiedNamespace and a managed identity.
package servicebus

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/go-amqp"

	"switchboard/handler/switchboard"
)

// Options say how to reach the namespace: ConnectionString, or Namespace
// with Credential (nil: a managed identity, the user-assigned one of
// ClientID when set, else DefaultAzureCredential).
type Options struct {
	ConnectionString string
	Namespace        string // <name>.servicebus.windows.net
	ClientID         string
	Credential       azcore.TokenCredential
	// ClientOptions tune the SDK (retries); nil takes its defaults.
	ClientOptions *azservicebus.ClientOptions
}

// Queue sends to Service Bus queues through one client and one sender per
// queue, reused across calls.
type Queue struct {
	client  *azservicebus.Client
	mu      sync.Mutex
	senders map[string]*azservicebus.Sender
}

var _ switchboard.Queue = (*Queue)(nil)

// Open returns a Queue. It does not connect: the first Send does.
func Open(o Options) (*Queue, error) {
	const op = "servicebus.Open"
	var client *azservicebus.Client
	var err error
	switch {
	case o.ConnectionString != "":
		client, err = azservicebus.NewClientFromConnectionString(o.ConnectionString, o.ClientOptions)
	case o.Namespace != "":
		cred := o.Credential
		if cred == nil {
			if o.ClientID != "" {
				cred, err = azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{ID: azidentity.ClientID(o.ClientID)})
			} else {
				cred, err = azidentity.NewDefaultAzureCredential(nil)
			}
			if err != nil {
				return nil, switchboard.Wrap(switchboard.EINVALID, op, err)
			}
		}
		client, err = azservicebus.NewClient(strings.TrimSuffix(strings.TrimPrefix(o.Namespace, "sb://"), "/"), cred, o.ClientOptions)
	default:
		return nil, switchboard.Errorf(switchboard.EINVALID, op, "a connection string or a namespace is required")
	}
	if err != nil {
		// The connection string is a secret: say what is wrong, not what it is.
		return nil, switchboard.Errorf(
			switchboard.EINVALID,
			op,
			"the Service Bus connection setting is not usable: %s",
			redact(err.Error(), o.ConnectionString),
		)
	}
	return &Queue{client: client, senders: map[string]*azservicebus.Sender{}}, nil
}

func redact(msg, secret string) string {
	if secret == "" {
		return msg
	}
	return strings.ReplaceAll(msg, secret, "<connection string>")
}

// sender returns the queue's sender, creating it on first use.
func (q *Queue) sender(name string) (*azservicebus.Sender, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if s, ok := q.senders[name]; ok {
		return s, nil
	}
	s, err := q.client.NewSender(name, nil)
	if err != nil {
		return nil, err
	}
	q.senders[name] = s
	return s, nil
}

// forget drops a sender that was closed under us, so the next call makes a
// new one.
func (q *Queue) forget(name string, s *azservicebus.Sender) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.senders[name] == s {
		delete(q.senders, name)
	}
}

// Send puts msg on the queue: at once when msg.ScheduledAt is zero (the
// sequence number returned is then 0), else scheduled for that time.
// Returns EINVALID for a message larger than the queue accepts and
// EUNAVAILABLE when Service Bus cannot be reached or refuses the
// credentials, or the queue does not exist.
func (q *Queue) Send(ctx context.Context, queue string, msg switchboard.Message) (int64, error) {
	const op = "servicebus.Send"
	s, err := q.sender(queue)
	if err != nil {
		return 0, translate(op, queue, err)
	}
	m := &azservicebus.Message{Body: msg.Body}
	if msg.MessageID != "" {
		m.MessageID = &msg.MessageID
	}
	ct := msg.ContentType
	if ct == "" {
		ct = "application/json"
	}
	m.ContentType = &ct
	if msg.ScheduledAt.IsZero() {
		err = s.SendMessage(ctx, m, nil)
		if err != nil {
			q.forgetIfClosed(queue, s, err)
			return 0, translate(op, queue, err)
		}
		return 0, nil
	}
	seqs, err := s.ScheduleMessages(ctx, []*azservicebus.Message{m}, msg.ScheduledAt.UTC(), nil)
	if err != nil {
		q.forgetIfClosed(queue, s, err)
		return 0, translate(op, queue, err)
	}
	if len(seqs) != 1 {
		return 0, switchboard.Errorf(switchboard.EUNAVAILABLE, op, "queue %s: scheduling one message returned %d sequence numbers", queue, len(seqs))
	}
	return seqs[0], nil
}

// Cancel cancels a scheduled message. One that was enqueued already, or
// cancelled, is not an error (Service Bus answers not found). Returns
// EUNAVAILABLE when Service Bus cannot be reached.
func (q *Queue) Cancel(ctx context.Context, queue string, sequenceNumber int64) error {
	const op = "servicebus.Cancel"
	if sequenceNumber <= 0 {
		return switchboard.Errorf(switchboard.EINVALID, op, "sequence number %d is not positive", sequenceNumber)
	}
	s, err := q.sender(queue)
	if err != nil {
		return translate(op, queue, err)
	}
	err = s.CancelScheduledMessages(ctx, []int64{sequenceNumber}, nil)
	var sbErr *azservicebus.Error
	if errors.As(err, &sbErr) && sbErr.Code == azservicebus.CodeNotFound {
		return nil
	}
	if err != nil {
		q.forgetIfClosed(queue, s, err)
		return translate(op, queue, err)
	}
	return nil
}

func (q *Queue) forgetIfClosed(queue string, s *azservicebus.Sender, err error) {
	var sbErr *azservicebus.Error
	if errors.As(err, &sbErr) && sbErr.Code == azservicebus.CodeClosed {
		q.forget(queue, s)
	}
}

// Close closes the senders and the client.
func (q *Queue) Close(ctx context.Context) error {
	q.mu.Lock()
	senders := q.senders
	q.senders = map[string]*azservicebus.Sender{}
	q.mu.Unlock()
	var errs []error
	for _, s := range senders {
		errs = append(errs, s.Close(ctx))
	}
	errs = append(errs, q.client.Close(ctx))
	return errors.Join(errs...)
}

// translate turns an SDK error into a switchboard error: a message too
// large is the caller's (EINVALID); everything else is worth retrying later
// or needs an operator (EUNAVAILABLE), and says which queue.
func translate(op, queue string, err error) error {
	var amqpErr *amqp.Error
	if errors.Is(err, azservicebus.ErrMessageTooLarge) || (errors.As(err, &amqpErr) && amqpErr.Condition == amqp.ErrCondMessageSizeExceeded) {
		return &switchboard.Error{Code: switchboard.EINVALID, Op: op, Message: "the message is larger than queue " + queue + " accepts", Err: err}
	}
	var sbErr *azservicebus.Error
	if errors.As(err, &sbErr) {
		switch sbErr.Code {
		case azservicebus.CodeNotFound:
			return &switchboard.Error{Code: switchboard.EUNAVAILABLE, Op: op, Message: "Service Bus queue " + queue + " does not exist", Err: err}
		case azservicebus.CodeUnauthorizedAccess:
			return &switchboard.Error{Code: switchboard.EUNAVAILABLE, Op: op, Message: "Service Bus refused the credentials for queue " + queue, Err: err}
		}
	}
	return &switchboard.Error{
		Code:    switchboard.EUNAVAILABLE,
		Op:      op,
		Message: "Service Bus queue " + queue + ": " + switchboard.RedactURLs(err.Error()),
		Err:     switchboard.Redact(err),
	}
}

package functions

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"time"

	"switchboard/handler/switchboard"
)

// Timer is the payload of a timerTrigger (Data.<binding>).
type Timer struct {
	IsPastDue      bool
	ScheduleStatus *struct {
		Last        time.Time
		Next        time.Time
		LastUpdated time.Time
	}
}

// TimerFunc adapts fn to a Func for a timerTrigger whose binding is named
// binding. A missing or malformed timer payload is tolerated (the work of a
// timer does not depend on it) and logged.
func TimerFunc(binding string, fn func(ctx context.Context, inv *Invocation, t Timer) error) Func {
	return func(ctx context.Context, inv *Invocation) (Result, error) {
		var t Timer
		if raw, ok := lookup(inv.Data, binding); ok && len(raw) > 0 && string(raw) != "null" {
			if err := json.Unmarshal(raw, &t); err != nil {
				inv.Logf("timer payload ignored: %v", err)
				t = Timer{}
			}
		}
		return Result{}, fn(ctx, inv, t)
	}
}

// Message is a Service Bus message as the trigger delivers it.
type Message struct {
	Body           []byte
	MessageID      string
	DeliveryCount  int64
	SequenceNumber int64
	EnqueuedTime   time.Time
	ContentType    string
	CorrelationID  string
	Subject        string
}

// ServiceBusFunc adapts fn to a Func for a serviceBusTrigger whose binding
// is named binding. An invocation without a message body fails with
// EINVALID; what the body means is fn's business.
func ServiceBusFunc(binding string, fn func(ctx context.Context, inv *Invocation, m Message) error) Func {
	return func(ctx context.Context, inv *Invocation) (Result, error) {
		raw, ok := lookup(inv.Data, binding)
		if !ok {
			return Result{}, switchboard.Errorf(switchboard.EINVALID, "functions.ServiceBus", "invocation has no %q message", binding)
		}
		m := Message{
			Body:          DecodeMessageBody(raw),
			MessageID:     inv.MetadataString("MessageId"),
			ContentType:   inv.MetadataString("ContentType"),
			CorrelationID: inv.MetadataString("CorrelationId"),
			Subject:       inv.MetadataString("Subject"),
		}
		if m.Subject == "" {
			m.Subject = inv.MetadataString("Label")
		}
		m.DeliveryCount, _ = inv.MetadataInt("DeliveryCount")
		m.SequenceNumber, _ = inv.MetadataInt("SequenceNumber")
		if t, err := time.Parse(time.RFC3339Nano, inv.MetadataString("EnqueuedTimeUtc")); err == nil {
			m.EnqueuedTime = t
		}
		return Result{}, fn(ctx, inv, m)
	}
}

// DecodeMessageBody turns the trigger's rendering of a message body back
// into the bytes that were sent. The host passes a JSON body as an object,
// as a JSON string holding the JSON text, or as base64 of the JSON; all
// three come back as the JSON text. Any other string comes back as its
// UTF-8 bytes: text and base64 of non-JSON bytes cannot be told apart, and
// every Switchboard message is JSON, so such a body is malformed either way.
func DecodeMessageBody(raw json.RawMessage) []byte {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || trimmed[0] != '"' {
		return trimmed // an object, array, number, bool or null: the JSON itself
	}
	var s string
	if err := json.Unmarshal(trimmed, &s); err != nil {
		return trimmed
	}
	t := bytes.TrimSpace([]byte(s))
	if len(t) > 0 && (t[0] == '{' || t[0] == '[') && json.Valid(t) {
		return []byte(s)
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil && len(s) > 0 && json.Valid(b) {
		return b
	}
	return []byte(s)
}

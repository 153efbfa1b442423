package localrunner

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// HostVersion is the host version the runner announces to the handler.
const HostVersion = "4.0.0-switchboard-localrunner"

// Outcome is the result of one invocation of a function through the
// custom-handler protocol (POST /{FunctionName}).
type Outcome struct {
	Function     string          `json:"function"`
	InvocationID string          `json:"invocationId"`
	Succeeded    bool            `json:"succeeded"`
	Status       int             `json:"status"`          // the handler's HTTP status; 0 when it did not answer
	Error        string          `json:"error,omitempty"` // why it failed, when it did
	DurationMS   int64           `json:"durationMs"`
	Reply        json.RawMessage `json:"reply,omitempty"` // the handler's reply: {Outputs, Logs, ReturnValue}
}

// reply is the custom-handler reply.
type reply struct {
	Outputs     map[string]json.RawMessage `json:"Outputs"`
	Logs        []string                   `json:"Logs"`
	ReturnValue json.RawMessage            `json:"ReturnValue"`
}

// invoker posts invocations to the handler.
type invoker struct {
	baseURL string // the handler, http://127.0.0.1:port
	client  *http.Client
	timeout time.Duration // host.json functionTimeout
	log     *logger
	now     func() time.Time
}

// invoke runs fn with the given Data and Metadata (sys is added) and
// reports the outcome. Only a 2xx reply carrying the protocol's JSON object
// succeeds; a timeout (functionTimeout) fails the invocation as the host
// does.
func (iv *invoker) invoke(ctx context.Context, fn *Function, data, metadata map[string]any) Outcome {
	id := uuid.NewString()
	start := time.Now()
	out := Outcome{Function: fn.Name, InvocationID: id}
	defer func() {
		out.DurationMS = time.Since(start).Milliseconds()
		if !out.Succeeded {
			iv.log.printf(fn.Name, "invocation %s failed after %d ms: %s", id, out.DurationMS, out.Error)
		}
	}()
	if metadata == nil {
		metadata = map[string]any{}
	}
	metadata["sys"] = map[string]any{"MethodName": fn.Name, "UtcNow": iv.now().UTC().Format(time.RFC3339Nano), "RandGuid": uuid.NewString()}
	body, err := json.Marshal(map[string]any{"Data": data, "Metadata": metadata})
	if err != nil {
		out.Error = "payload: " + err.Error()
		return out
	}
	ctx, cancel := context.WithTimeout(ctx, iv.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, iv.baseURL+"/"+fn.Name, bytes.NewReader(body))
	if err != nil {
		out.Error = err.Error()
		return out
	}
	setHostHeaders(req.Header, id)
	req.Header.Set("Content-Type", "application/json")
	resp, err := iv.client.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			out.Error = fmt.Sprintf("timed out after functionTimeout %s", iv.timeout)
		} else {
			out.Error = "handler unreachable: " + err.Error()
		}
		return out
	}
	defer resp.Body.Close()
	out.Status = resp.StatusCode
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		out.Error = "reading the reply: " + err.Error()
		return out
	}
	var rep reply
	if err := json.Unmarshal(raw, &rep); err != nil || !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) {
		out.Error = fmt.Sprintf("status %d with a reply that is not the custom-handler JSON object: %.200q", resp.StatusCode, raw)
		return out
	}
	out.Reply = json.RawMessage(raw)
	for _, line := range rep.Logs {
		iv.log.printf(fn.Name, "%s", line)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		out.Error = fmt.Sprintf("handler replied %d", resp.StatusCode)
		return out
	}
	out.Succeeded = true
	return out
}

// setHostHeaders adds the headers the host sends with every invocation.
func setHostHeaders(h http.Header, invocationID string) {
	h.Set("X-Azure-Functions-InvocationId", invocationID)
	h.Set("X-Azure-Functions-HostVersion", HostVersion)
	h.Set("User-Agent", "Azure-Functions-Host/"+HostVersion)
}

// ScheduleStatus is the timer's schedule monitor record.
type ScheduleStatus struct {
	Last        time.Time `json:"Last"`
	Next        time.Time `json:"Next"`
	LastUpdated time.Time `json:"LastUpdated"`
}

// timerData is Data.<binding> of a timer invocation. status is the
// monitor's record as the previous run left it (Last: that run's scheduled
// time, Next: this run's), nil before the first run.
func timerData(status *ScheduleStatus, pastDue bool) map[string]any {
	var st any
	if status != nil {
		st = map[string]any{
			"Last":        status.Last.UTC().Format(time.RFC3339Nano),
			"Next":        status.Next.UTC().Format(time.RFC3339Nano),
			"LastUpdated": status.LastUpdated.UTC().Format(time.RFC3339Nano),
		}
	}
	return map[string]any{"Schedule": map[string]any{"AdjustForDST": true}, "ScheduleStatus": st, "IsPastDue": pastDue}
}

// messageBody renders a message body as Data.<binding>: a JSON object or
// array as itself, other UTF-8 text as a JSON string, other bytes as a
// base64 JSON string.
func messageBody(body []byte) json.RawMessage {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') && json.Valid(trimmed) {
		return json.RawMessage(trimmed)
	}
	var s []byte
	if utf8.Valid(body) {
		s, _ = json.Marshal(string(body))
	} else {
		s, _ = json.Marshal(base64.StdEncoding.EncodeToString(body))
	}
	return json.RawMessage(s)
}

// noExpiry is ExpiresAtUtc of a message without a time to live.
var noExpiry = time.Date(9999, 12, 31, 23, 59, 59, 999999900, time.UTC)

// deliveredMessage is what the trigger passes about a received message,
// from the in-process queue or from Service Bus.
type deliveredMessage struct {
	Body                  []byte
	MessageID             string
	DeliveryCount         int
	SequenceNumber        int64
	EnqueuedTime          time.Time
	ExpiresAt             time.Time
	LockToken             string
	ContentType           string
	CorrelationID         string
	Subject               string
	ApplicationProperties map[string]any
}

// messageMetadata is the Metadata of a Service Bus invocation in the form
// the host's source produces: every value JSON-encoded once more, so a
// string arrives as "\"abc\"" and a number as "1" (PROTOCOL.md).
func messageMetadata(m deliveredMessage) map[string]any {
	enc := func(v any) string {
		if n, ok := v.(int64); ok {
			return strconv.FormatInt(n, 10)
		}
		b, _ := json.Marshal(v)
		return string(b)
	}
	expires := m.ExpiresAt
	if expires.IsZero() {
		expires = noExpiry
	}
	props := m.ApplicationProperties
	if props == nil {
		props = map[string]any{}
	}
	md := map[string]any{
		"MessageId":             enc(m.MessageID),
		"DeliveryCount":         enc(int64(m.DeliveryCount)),
		"SequenceNumber":        enc(m.SequenceNumber),
		"EnqueuedTimeUtc":       enc(m.EnqueuedTime.UTC().Format(time.RFC3339Nano)),
		"ExpiresAtUtc":          enc(expires.UTC().Format(time.RFC3339Nano)),
		"LockToken":             enc(m.LockToken),
		"ApplicationProperties": enc(props),
		"UserProperties":        enc(props),
	}
	if m.ContentType != "" {
		md["ContentType"] = enc(m.ContentType)
	}
	if m.CorrelationID != "" {
		md["CorrelationId"] = enc(m.CorrelationID)
	}
	if m.Subject != "" {
		md["Subject"] = enc(m.Subject)
		md["Label"] = enc(m.Subject)
	}
	return md
}

// logger writes the runner's log lines: "[component] message".
type logger struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *logger) printf(component, format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, part := range strings.Split(strings.TrimRight(line, "\n"), "\n") {
		fmt.Fprintf(l.w, "%s [%s] %s\n", time.Now().Format("15:04:05.000"), component, part)
	}
}

// prefixLines copies r to the log line by line under component (the
// handler's stdout and stderr).
func (l *logger) prefixLines(component string, r io.Reader) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line = strings.TrimRight(line, "\r\n"); line != "" {
			l.printf(component, "%s", line)
		}
		if err != nil {
			return
		}
	}
}

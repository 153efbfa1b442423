// Package localqueue implements switchboard.Queue on the local runner's
// in-process queues (handler/dev/localrunner), for local development without a
// Service Bus. The runner passes their base URL to the handler in
// LOCAL_QUEUE_URL (http://127.0.0.1:<port>/admin/queues); messages travel
// as in the Service Bus REST API: the body as is, the properties in the
// BrokerProperties header.
package localqueue

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"switchboard/handler/switchboard"
)

// Queue sends to the local runner's queues.
type Queue struct {
	base   string
	client *http.Client
}

// New returns a Queue for the runner's queues at baseURL. A nil client
// uses one with a 30-second timeout.
func New(baseURL string, client *http.Client) (*Queue, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, switchboard.Errorf(switchboard.EINVALID, "localqueue.New", "LOCAL_QUEUE_URL %q is not an absolute http URL", baseURL)
	}
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	return &Queue{base: strings.TrimRight(baseURL, "/"), client: client}, nil
}

var _ switchboard.Queue = (*Queue)(nil)

// Send puts msg on the queue. It returns the sequence number of a
// scheduled message, 0 for one sent for now (as Service Bus does).
// Returns EUNAVAILABLE when the runner cannot be reached or fails, EINVALID
// when it refuses the message (too large, malformed properties).
func (q *Queue) Send(ctx context.Context, queue string, msg switchboard.Message) (int64, error) {
	const op = "localqueue.Send"
	props := map[string]string{}
	if msg.MessageID != "" {
		props["MessageId"] = msg.MessageID
	}
	if !msg.ScheduledAt.IsZero() {
		props["ScheduledEnqueueTimeUtc"] = msg.ScheduledAt.UTC().Format(time.RFC3339Nano)
	}
	bp, _ := json.Marshal(props)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, q.base+"/"+url.PathEscape(queue)+"/messages", bytes.NewReader(msg.Body))
	if err != nil {
		return 0, switchboard.Wrap(switchboard.EINVALID, op, err)
	}
	contentType := msg.ContentType
	if contentType == "" {
		contentType = "application/json"
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("BrokerProperties", string(bp))
	body, status, err := q.do(req)
	if err != nil {
		return 0, switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	}
	if status != http.StatusCreated {
		return 0, statusError(op, queue, status, body)
	}
	var reply struct {
		SequenceNumber int64 `json:"sequenceNumber"`
	}
	if err := json.Unmarshal(body, &reply); err != nil || reply.SequenceNumber <= 0 {
		return 0, switchboard.Errorf(switchboard.EUNAVAILABLE, op, "queue %s: unexpected reply %.200q", queue, body)
	}
	if msg.ScheduledAt.IsZero() {
		return 0, nil
	}
	return reply.SequenceNumber, nil
}

// Cancel cancels a scheduled message. One already delivered or cancelled
// (the runner answers 404) is not an error. Returns EUNAVAILABLE when the
// runner cannot be reached or fails.
func (q *Queue) Cancel(ctx context.Context, queue string, sequenceNumber int64) error {
	const op = "localqueue.Cancel"
	if sequenceNumber <= 0 {
		return switchboard.Errorf(switchboard.EINVALID, op, "sequence number %d is not positive", sequenceNumber)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, q.base+"/"+url.PathEscape(queue)+"/messages/"+strconv.FormatInt(sequenceNumber, 10), nil)
	if err != nil {
		return switchboard.Wrap(switchboard.EINVALID, op, err)
	}
	body, status, err := q.do(req)
	if err != nil {
		return switchboard.Wrap(switchboard.EUNAVAILABLE, op, err)
	}
	if status == http.StatusNoContent || status == http.StatusNotFound {
		return nil
	}
	return statusError(op, queue, status, body)
}

func (q *Queue) do(req *http.Request) ([]byte, int, error) {
	resp, err := q.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, 0, err
	}
	return body, resp.StatusCode, nil
}

func statusError(op, queue string, status int, body []byte) error {
	code := switchboard.EUNAVAILABLE
	if status >= 400 && status < 500 {
		code = switchboard.EINVALID
	}
	var p struct {
		Title  string `json:"title"`
		Detail string `json:"detail"`
	}
	_ = json.Unmarshal(body, &p)
	msg := strings.TrimSpace(p.Title + ": " + p.Detail)
	if p.Title == "" {
		msg = fmt.Sprintf("%.200q", body)
	}
	return switchboard.Errorf(code, op, "queue %s: runner answered %d: %s", queue, status, msg)
}

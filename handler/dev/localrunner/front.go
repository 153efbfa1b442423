package localrunner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// MaxMessageBytes is the largest message the in-process queue accepts:
// Service Bus Standard's limit.
const MaxMessageBytes = 256 << 10

// front is the runner's HTTP server, like `func start` on :7071: the HTTP
// functions under /{routePrefix}/ and the admin endpoints under /admin/.
func (r *Runner) front() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/host/status", r.serveStatus)
	mux.HandleFunc("GET /admin/functions", r.serveFunctionList)
	mux.HandleFunc("POST /admin/functions/{name}", r.serveInvoke)
	mux.HandleFunc("GET /admin/queues", r.serveQueueList)
	mux.HandleFunc("GET /admin/queues/{queue}", r.serveQueue)
	mux.HandleFunc("GET /admin/queues/{queue}/deadletter", r.serveDeadLetters)
	mux.HandleFunc("POST /admin/queues/{queue}/messages", r.serveSend)
	mux.HandleFunc("DELETE /admin/queues/{queue}/messages/{seq}", r.serveCancel)
	mux.HandleFunc("/admin/", func(w http.ResponseWriter, req *http.Request) {
		writeProblem(w, req, http.StatusNotFound, "not-found", "no such admin endpoint", "")
	})
	mux.HandleFunc("GET /{$}", r.serveRoot)
	mux.HandleFunc("/", r.serveHTTPFunction)
	return mux
}

// problem is an RFC 9457 problem detail, as the handler renders its errors.
type problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
}

func writeProblem(w http.ResponseWriter, req *http.Request, status int, typ, title, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(problem{Type: typ, Title: title, Status: status, Detail: detail, Instance: req.URL.Path})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// serveHTTPFunction routes a request to the HTTP function whose route and
// methods match it. Function keys are not checked (as with `func start`).
// No match, including a route that matches with another method, is 404, as
// in Azure.
func (r *Runner) serveHTTPFunction(w http.ResponseWriter, req *http.Request) {
	fn, params, allowed := r.matchHTTP(req.Method, req.URL.EscapedPath())
	if fn == nil {
		detail := fmt.Sprintf("no HTTP function has a route matching %s %s", req.Method, req.URL.Path)
		if len(allowed) > 0 {
			detail = fmt.Sprintf("%s %s: the function with this route accepts only %s", req.Method, req.URL.Path, strings.Join(allowed, ", "))
		}
		writeProblem(w, req, http.StatusNotFound, "not-found", "no such route", detail)
		return
	}
	if r.state.Load() != stateRunning {
		writeProblem(w, req, http.StatusServiceUnavailable, "service-unavailable", "the handler is not running", "state: "+r.stateName())
		return
	}
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	ctx, cancel := context.WithTimeout(req.Context(), r.app.Host.FunctionTimeout)
	defer cancel()
	req = req.WithContext(ctx)
	if fn.Forward {
		r.forward(rec, req)
	} else {
		r.invokeHTTP(rec, req, fn, params)
	}
	r.log.printf(fn.Name, "%s %s -> %d (%d ms)", req.Method, req.URL.RequestURI(), rec.status(), time.Since(start).Milliseconds())
}

// matchHTTP finds the function for a request: the most specific route that
// matches the path and accepts the method. allowed lists the methods of the
// routes that matched the path only.
func (r *Runner) matchHTTP(method, escapedPath string) (*Function, map[string]string, []string) {
	rel := strings.TrimPrefix(escapedPath, "/")
	if p := r.app.Host.RoutePrefix; p != "" {
		head, rest, _ := strings.Cut(rel, "/")
		if !strings.EqualFold(head, p) {
			return nil, nil, nil
		}
		rel = rest
	}
	var allowed []string
	for _, fn := range r.httpFunctions {
		params, ok := fn.Route.Match(rel)
		if !ok {
			continue
		}
		if fn.AllowsMethod(method) {
			return fn, params, nil
		}
		allowed = append(allowed, fn.Methods...)
	}
	return nil, nil, allowed
}

// forward passes the request unchanged (path, query, headers, body) to the
// handler, as the host does with enableForwardingHttpRequest.
//
// The body is read whole first, as the host buffers it. Streamed instead,
// it would race the reply: an HTTP/1 server (the front) consumes and closes
// whatever is left of a request body once the reply's header is flushed,
// so a handler answering before the client finished sending (an early 4xx,
// a decoder that stops at the end of the JSON value) would see the proxy's
// body copy fail, the handler connection closed and the reply cut after
// its 200 ("use of closed network connection").
func (r *Runner) forward(w http.ResponseWriter, req *http.Request) {
	if req.Body != nil && req.Body != http.NoBody {
		body, err := io.ReadAll(io.LimitReader(req.Body, maxForwardedBody+1))
		if err != nil {
			writeProblem(w, req, http.StatusBadRequest, "bad-request", "could not read the request body", err.Error())
			return
		}
		if len(body) > maxForwardedBody {
			writeProblem(w, req, http.StatusRequestEntityTooLarge, "request-too-large", "the request body is larger than the host "+
				"accepts", fmt.Sprintf("at most %d bytes", maxForwardedBody))
			return
		}
		req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		req.Header.Del("Expect")
	}
	r.proxy.ServeHTTP(w, req)
}

// maxForwardedBody is the Functions host's limit on an HTTP request body
// (FUNCTIONS_REQUEST_BODY_SIZE_LIMIT's default, 100 MB).
const maxForwardedBody = 100 << 20

// newProxy returns the reverse proxy of forward, with a transport of its
// own that keeps enough idle connections for concurrent clients.
func (r *Runner) newProxy() *httputil.ReverseProxy {
	target, _ := url.Parse(r.handlerURL)
	return &httputil.ReverseProxy{
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
		},
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// As the Functions host: the caller's Host stays, and the
			// caller's host, scheme and address are in X-Forwarded-*, so
			// the handler builds links the caller can follow.
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
			setHostHeaders(pr.Out.Header, uuid.NewString())
			pr.Out.Header.Set("User-Agent", pr.In.Header.Get("User-Agent"))
		},
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			if errors.Is(req.Context().Err(), context.DeadlineExceeded) {
				writeProblem(w, req, http.StatusGatewayTimeout, "function-timeout", "the function did not answer within "+
					"functionTimeout", r.app.Host.FunctionTimeout.String())
				return
			}
			writeProblem(w, req, http.StatusBadGateway, "handler-unreachable", "the handler did not answer", err.Error())
		},
	}
}

// invokeHTTP calls an HTTP function through the invocation payload (an
// HTTP function with other bindings, or forwarding off): Data.<trigger> is
// the request, the reply's http output is the response.
func (r *Runner) invokeHTTP(w http.ResponseWriter, req *http.Request, fn *Function, params map[string]string) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 100<<20))
	if err != nil {
		writeProblem(w, req, http.StatusBadRequest, "bad-request", "could not read the request body", err.Error())
		return
	}
	query := map[string]string{}
	for k, v := range req.URL.Query() {
		query[k] = v[0]
	}
	queryJSON, _ := json.Marshal(query)
	scheme := "http"
	data := map[string]any{fn.Binding: map[string]any{
		"Url":        scheme + "://" + req.Host + req.URL.RequestURI(),
		"Method":     req.Method,
		"Query":      string(queryJSON),
		"Headers":    req.Header,
		"Params":     params,
		"Body":       string(body),
		"Identities": []any{},
	}}
	metadata := map[string]any{}
	for k, v := range params {
		metadata[k] = v
	}
	out := r.inv.invoke(req.Context(), fn, data, metadata)
	if !out.Succeeded {
		writeProblem(w, req, http.StatusInternalServerError, "function-failed", "the function failed", out.Error)
		return
	}
	var rep reply
	_ = json.Unmarshal(out.Reply, &rep)
	raw := rep.Outputs[fn.HTTPOut]
	if fn.HTTPOut == "$return" {
		raw = rep.ReturnValue
	}
	var res struct {
		StatusCode json.RawMessage   `json:"statusCode"`
		Body       json.RawMessage   `json:"body"`
		Headers    map[string]string `json:"headers"`
	}
	if len(raw) == 0 || json.Unmarshal(raw, &res) != nil {
		writeProblem(w, req, http.StatusInternalServerError, "function-failed", "the function returned no HTTP "+
			"response", fmt.Sprintf("Outputs.%s is missing or not an object", fn.HTTPOut))
		return
	}
	status := http.StatusOK
	if s := strings.Trim(string(res.StatusCode), `"`); s != "" {
		if status, err = strconv.Atoi(s); err != nil || status < 100 || status > 999 {
			writeProblem(w, req, http.StatusInternalServerError, "function-failed", "the function returned an invalid status code", s)
			return
		}
	}
	for k, v := range res.Headers {
		w.Header().Set(k, v)
	}
	var text string
	if json.Unmarshal(res.Body, &text) != nil {
		text = string(res.Body) // any other JSON value is sent as JSON text
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, text)
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) status() int {
	if s.code == 0 {
		return http.StatusOK
	}
	return s.code
}

// serveRoot lists the functions, like the landing page of `func start`.
func (r *Runner) serveRoot(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "Switchboard local runner (%s), handler %s\n\n%s", r.stateName(), r.handlerURL, r.describe("http://"+req.Host))
}

// describe lists the functions with their URLs, schedules and queues.
func (r *Runner) describe(base string) string {
	var b strings.Builder
	for _, fn := range r.app.Functions {
		switch fn.Trigger {
		case HTTPTrigger:
			methods := "ALL"
			if len(fn.Methods) > 0 {
				methods = strings.Join(fn.Methods, ",")
			}
			fmt.Fprintf(&b, "  %s: [%s] %s\n", fn.Name, methods, r.functionURL(base, fn))
		case TimerTrigger:
			fmt.Fprintf(&b, "  %s: timerTrigger %q (POST %s/admin/functions/%s fires it now)\n", fn.Name, fn.ScheduleText, base, fn.Name)
		case ServiceBusTrigger:
			fmt.Fprintf(&b, "  %s: serviceBusTrigger queue %q (%s)\n", fn.Name, fn.Queue, r.queueSource(fn))
		}
	}
	return b.String()
}

func (r *Runner) functionURL(base string, fn *Function) string {
	u := base + "/"
	if r.app.Host.RoutePrefix != "" {
		u += r.app.Host.RoutePrefix + "/"
	}
	return u + fn.Route.Template
}

func (r *Runner) queueSource(fn *Function) string {
	if r.serviceBus {
		return "Service Bus, connection " + fn.Connection
	}
	return "in-process queue"
}

func (r *Runner) serveStatus(w http.ResponseWriter, req *http.Request) {
	names := make([]string, 0, len(r.app.Functions))
	for _, fn := range r.app.Functions {
		names = append(names, fn.Name)
	}
	writeJSON(
		w,
		http.StatusOK,
		map[string]any{"state": r.stateName(), "version": HostVersion, "functions": names, "handler": r.handlerURL, "handlerPid": r.handlerPID.Load()},
	)
}

// functionInfo is a function as GET /admin/functions lists it.
type functionInfo struct {
	Name      string   `json:"name"`
	Trigger   string   `json:"trigger"`
	Binding   string   `json:"binding"`
	Route     string   `json:"route,omitempty"`
	URL       string   `json:"url,omitempty"`
	Methods   []string `json:"methods,omitempty"`
	AuthLevel string   `json:"authLevel,omitempty"`
	Forwarded bool     `json:"forwarded,omitempty"`
	Schedule  string   `json:"schedule,omitempty"`
	Queue     string   `json:"queue,omitempty"`
	Source    string   `json:"source,omitempty"`
}

func (r *Runner) serveFunctionList(w http.ResponseWriter, req *http.Request) {
	list := []functionInfo{}
	for _, fn := range r.app.Functions {
		info := functionInfo{Name: fn.Name, Trigger: fn.Trigger, Binding: fn.Binding, Schedule: fn.ScheduleText, Queue: fn.Queue}
		if fn.Trigger == HTTPTrigger {
			info.Route, info.URL, info.Methods, info.AuthLevel, info.Forwarded = fn.Route.Template, r.functionURL(
				"http://"+req.Host,
				fn,
			), fn.Methods, fn.AuthLevel, fn.Forward
		}
		if fn.Trigger == ServiceBusTrigger {
			info.Source = r.queueSource(fn)
		}
		list = append(list, info)
	}
	writeJSON(w, http.StatusOK, list)
}

// serveInvoke fires a non-HTTP function now, as the host's admin API does:
// body {"input": "..."} (for a Service Bus function, the message body).
// The host answers 202 at once; with ?wait=true the runner waits and
// answers 200 with the Outcome, whether the function succeeded or not.
func (r *Runner) serveInvoke(w http.ResponseWriter, req *http.Request) {
	fn := r.app.Function(req.PathValue("name"))
	if fn == nil {
		writeProblem(w, req, http.StatusNotFound, "not-found", "no such function", req.PathValue("name"))
		return
	}
	if fn.Trigger == HTTPTrigger {
		writeProblem(w, req, http.StatusBadRequest, "bad-request", "an HTTP function is called on its route", r.functionURL("http://"+req.Host, fn))
		return
	}
	var in struct {
		Input string `json:"input"`
	}
	raw, err := io.ReadAll(io.LimitReader(req.Body, MaxMessageBytes+1))
	if err == nil && len(bytes.TrimSpace(raw)) > 0 {
		err = json.Unmarshal(raw, &in)
	}
	if err != nil {
		writeProblem(w, req, http.StatusBadRequest, "bad-request", `the body must be {"input": "<string>"}`, err.Error())
		return
	}
	if r.state.Load() != stateRunning {
		writeProblem(w, req, http.StatusServiceUnavailable, "service-unavailable", "the handler is not running", "state: "+r.stateName())
		return
	}
	run := func(ctx context.Context) Outcome {
		if fn.Trigger == TimerTrigger {
			return r.fireTimer(ctx, fn)
		}
		m := deliveredMessage{Body: []byte(in.Input), MessageID: uuid.NewString(), DeliveryCount: 1, EnqueuedTime: r.now(), LockToken: uuid.NewString()}
		return r.inv.invoke(ctx, fn, map[string]any{fn.Binding: messageBody(m.Body)}, messageMetadata(m))
	}
	if wait, _ := strconv.ParseBool(req.URL.Query().Get("wait")); wait {
		writeJSON(w, http.StatusOK, run(req.Context()))
		return
	}
	r.background.Add(1)
	go func() {
		defer r.background.Done()
		run(r.workCtx)
	}()
	w.WriteHeader(http.StatusAccepted)
}

// queueAdmin returns false (having answered) when the queues are on
// Service Bus: the in-process queue is not used then.
func (r *Runner) queueAdmin(w http.ResponseWriter, req *http.Request) bool {
	if r.serviceBus {
		writeProblem(w, req, http.StatusConflict, "queues-on-service-bus", "the queues are on Service Bus", "ServiceBusConnection is configured: "+
			"send to and inspect the queues there")
		return false
	}
	return true
}

func (r *Runner) serveQueueList(w http.ResponseWriter, req *http.Request) {
	if !r.queueAdmin(w, req) {
		return
	}
	names := map[string]bool{}
	for _, n := range r.broker.Queues() {
		names[n] = true
	}
	for _, fn := range r.app.Functions {
		if fn.Trigger == ServiceBusTrigger {
			names[fn.Queue] = true
		}
	}
	list := []QueueStats{}
	for n := range names {
		list = append(list, r.broker.Stats(n))
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	writeJSON(w, http.StatusOK, list)
}

func (r *Runner) serveQueue(w http.ResponseWriter, req *http.Request) {
	if r.queueAdmin(w, req) {
		writeJSON(w, http.StatusOK, r.broker.Stats(req.PathValue("queue")))
	}
}

// DeadLetter is a dead-lettered message as GET /admin/queues/{queue}/deadletter
// lists it. Body is rendered as the trigger would pass it.
type DeadLetter struct {
	SequenceNumber             int64           `json:"sequenceNumber"`
	MessageID                  string          `json:"messageId"`
	DeliveryCount              int             `json:"deliveryCount"`
	EnqueuedTimeUTC            time.Time       `json:"enqueuedTimeUtc"`
	ContentType                string          `json:"contentType,omitempty"`
	DeadLetterReason           string          `json:"deadLetterReason"`
	DeadLetterErrorDescription string          `json:"deadLetterErrorDescription"`
	Body                       json.RawMessage `json:"body"`
}

func (r *Runner) serveDeadLetters(w http.ResponseWriter, req *http.Request) {
	if !r.queueAdmin(w, req) {
		return
	}
	list := []DeadLetter{}
	for _, m := range r.broker.DeadLetters(req.PathValue("queue")) {
		list = append(list, DeadLetter{
			SequenceNumber: m.SequenceNumber, MessageID: m.MessageID, DeliveryCount: m.DeliveryCount,
			EnqueuedTimeUTC: m.EnqueuedTime, ContentType: m.ContentType, DeadLetterReason: m.DeadLetterReason,
			DeadLetterErrorDescription: m.DeadLetterDescription, Body: messageBody(m.Body),
		})
	}
	writeJSON(w, http.StatusOK, list)
}

// SendReply answers POST /admin/queues/{queue}/messages.
type SendReply struct {
	SequenceNumber int64  `json:"sequenceNumber"`
	MessageID      string `json:"messageId"`
}

// serveSend puts the request body on the queue. Message properties travel
// as in the Service Bus REST API: the BrokerProperties header, a JSON
// object with MessageId, ScheduledEnqueueTimeUtc (RFC 1123 or RFC 3339),
// CorrelationId and Label; Content-Type becomes the message's ContentType.
func (r *Runner) serveSend(w http.ResponseWriter, req *http.Request) {
	if !r.queueAdmin(w, req) {
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, MaxMessageBytes+1))
	if err != nil {
		writeProblem(w, req, http.StatusBadRequest, "bad-request", "could not read the message body", err.Error())
		return
	}
	if len(body) > MaxMessageBytes {
		writeProblem(w, req, http.StatusRequestEntityTooLarge, "message-size-exceeded", "the message is larger than Service Bus "+
			"allows", fmt.Sprintf("at most %d bytes", MaxMessageBytes))
		return
	}
	m := Message{Body: body, ContentType: req.Header.Get("Content-Type")}
	if bp := req.Header.Get("BrokerProperties"); bp != "" {
		var props struct {
			MessageID               string `json:"MessageId"`
			ScheduledEnqueueTimeUtc string `json:"ScheduledEnqueueTimeUtc"`
			CorrelationID           string `json:"CorrelationId"`
			Label                   string `json:"Label"`
		}
		if err := json.Unmarshal([]byte(bp), &props); err != nil {
			writeProblem(w, req, http.StatusBadRequest, "bad-request", "BrokerProperties is not a JSON object", err.Error())
			return
		}
		if len(props.MessageID) > 128 {
			writeProblem(w, req, http.StatusBadRequest, "bad-request", "MessageId is longer than 128 characters", "")
			return
		}
		m.MessageID, m.CorrelationID, m.Subject = props.MessageID, props.CorrelationID, props.Label
		if s := props.ScheduledEnqueueTimeUtc; s != "" {
			at, err := time.Parse(time.RFC1123, s)
			if err != nil {
				at, err = time.Parse(time.RFC3339Nano, s)
			}
			if err != nil {
				writeProblem(w, req, http.StatusBadRequest, "bad-request", "ScheduledEnqueueTimeUtc is not an RFC 1123 or RFC 3339 time", s)
				return
			}
			m.ScheduledEnqueueTime = at
		}
	}
	seq, id := r.broker.Send(req.PathValue("queue"), m)
	writeJSON(w, http.StatusCreated, SendReply{SequenceNumber: seq, MessageID: id})
}

// serveCancel cancels a scheduled message: 204, or 404 when no scheduled
// message has that sequence number (delivered, cancelled or never sent).
func (r *Runner) serveCancel(w http.ResponseWriter, req *http.Request) {
	if !r.queueAdmin(w, req) {
		return
	}
	seq, err := strconv.ParseInt(req.PathValue("seq"), 10, 64)
	if err != nil || seq <= 0 {
		writeProblem(w, req, http.StatusBadRequest, "bad-request", "the sequence number must be a positive integer", req.PathValue("seq"))
		return
	}
	if !r.broker.Cancel(req.PathValue("queue"), seq) {
		writeProblem(w, req, http.StatusNotFound, "not-found", "no scheduled message with this sequence number", req.PathValue("seq"))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

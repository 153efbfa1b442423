// Package functions speaks the Azure Functions custom-handler protocol for
// non-HTTP triggers: the host POSTs {"Data":…, "Metadata":…} to
// /{FunctionName} and expects {"Outputs":…, "Logs":…, "ReturnValue":…}. A
// non-2xx reply fails the invocation (a Service Bus message is then
// abandoned and redelivered). This is the one dispatch layer between the
// host and the domain operations: entry points register a Func by function
// name and never touch the wire format.
package functions

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"switchboard/handler/switchboard"
)

// MaxInvocationBytes bounds an invocation body. Service Bus messages are at
// most 256 KiB (1 MiB premium), base64 grows them by a third.
const MaxInvocationBytes = 4 << 20

// Invocation is one decoded call from the host.
type Invocation struct {
	Function     string
	InvocationID string
	Data         map[string]json.RawMessage
	Metadata     map[string]json.RawMessage
	logs         []string
}

// Logf adds a line to the invocation's log, which the host writes to its
// own log (Application Insights in Azure).
func (inv *Invocation) Logf(format string, args ...any) {
	inv.logs = append(inv.logs, fmt.Sprintf(format, args...))
}

// AppendLogs adds other's log lines to inv's, in order: work done for an
// invocation on several goroutines logs to one Invocation each.
func (inv *Invocation) AppendLogs(other *Invocation) {
	inv.logs = append(inv.logs, other.logs...)
}

// Result is what a Func returns besides an error.
type Result struct {
	Outputs     map[string]any
	ReturnValue any
}

// Func handles one invocation. A returned error fails the invocation.
type Func func(ctx context.Context, inv *Invocation) (Result, error)

// reply is the wire form of a response.
type reply struct {
	Outputs     map[string]any `json:"Outputs"`
	Logs        []string       `json:"Logs"`
	ReturnValue any            `json:"ReturnValue"`
}

// Decode reads an invocation body. It returns EINVALID for anything that is
// not a JSON object with object-valued Data and Metadata (either may be
// missing or null).
func Decode(r io.Reader) (*Invocation, error) {
	const op = "functions.Decode"
	body, err := io.ReadAll(io.LimitReader(r, MaxInvocationBytes+1))
	if err != nil {
		return nil, switchboard.Wrap(switchboard.EINVALID, op, err)
	}
	if len(body) > MaxInvocationBytes {
		return nil, switchboard.Errorf(switchboard.EINVALID, op, "invocation larger than %d bytes", MaxInvocationBytes)
	}
	var raw struct {
		Data     json.RawMessage `json:"Data"`
		Metadata json.RawMessage `json:"Metadata"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil {
		return nil, switchboard.Errorf(switchboard.EINVALID, op, "invocation is not a JSON object: %v", err)
	}
	if dec.More() {
		return nil, switchboard.Errorf(switchboard.EINVALID, op, "trailing data after the invocation object")
	}
	inv := &Invocation{Data: map[string]json.RawMessage{}, Metadata: map[string]json.RawMessage{}}
	for name, part := range map[string]struct {
		raw json.RawMessage
		dst *map[string]json.RawMessage
	}{"Data": {raw.Data, &inv.Data}, "Metadata": {raw.Metadata, &inv.Metadata}} {
		if len(part.raw) == 0 || string(part.raw) == "null" {
			continue
		}
		if err := json.Unmarshal(part.raw, part.dst); err != nil {
			return nil, switchboard.Errorf(switchboard.EINVALID, op, "%s is not a JSON object", name)
		}
		if *part.dst == nil {
			*part.dst = map[string]json.RawMessage{}
		}
	}
	return inv, nil
}

// Dispatcher routes POST /{FunctionName} to the registered Func.
type Dispatcher struct {
	mu    sync.RWMutex
	funcs map[string]Func
	log   *slog.Logger
}

// NewDispatcher returns a Dispatcher that logs failures to log.
func NewDispatcher(log *slog.Logger) *Dispatcher {
	return &Dispatcher{funcs: map[string]Func{}, log: log}
}

// Handle registers fn under the function name (the folder name under the
// script root, matched case-insensitively as the host does).
func (d *Dispatcher) Handle(name string, fn Func) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.funcs[strings.ToLower(name)] = fn
}

// Names returns the registered function names (lower case).
func (d *Dispatcher) Names() []string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	names := make([]string, 0, len(d.funcs))
	for n := range d.funcs {
		names = append(names, n)
	}
	return names
}

// ServeHTTP serves POST /{name}.
func (d *Dispatcher) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if name == "" {
		name = strings.Trim(r.URL.Path, "/")
	}
	d.mu.RLock()
	fn, ok := d.funcs[strings.ToLower(name)]
	d.mu.RUnlock()
	if !ok {
		writeReply(w, http.StatusNotFound, reply{Logs: []string{fmt.Sprintf("no function %q in this handler", name)}})
		return
	}
	inv, err := Decode(r.Body)
	if err != nil {
		d.log.Error("malformed invocation", "function", name, "err", err)
		writeReply(w, http.StatusBadRequest, reply{Logs: []string{err.Error()}})
		return
	}
	inv.Function = name
	inv.InvocationID = r.Header.Get("X-Azure-Functions-InvocationId")
	status, rep := d.invoke(r.Context(), fn, inv)
	writeReply(w, status, rep)
}

func (d *Dispatcher) invoke(ctx context.Context, fn Func, inv *Invocation) (status int, rep reply) {
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			d.log.Error("function panicked", "function", inv.Function, "invocation", inv.InvocationID, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			status = http.StatusInternalServerError
			rep = reply{Logs: append(inv.logs, "internal error: the function panicked; see the handler log")}
		}
	}()
	res, err := fn(ctx, inv)
	if err != nil {
		d.log.Error(
			"function failed",
			"function",
			inv.Function,
			"invocation",
			inv.InvocationID,
			"code",
			switchboard.ErrorCode(err),
			"err",
			err,
			"elapsed",
			time.Since(start),
		)
		inv.Logf("failed: %v", err)
		return http.StatusInternalServerError, reply{Outputs: map[string]any{}, Logs: inv.logs}
	}
	if res.Outputs == nil {
		res.Outputs = map[string]any{}
	}
	return http.StatusOK, reply{Outputs: res.Outputs, Logs: inv.logs, ReturnValue: res.ReturnValue}
}

func writeReply(w http.ResponseWriter, status int, rep reply) {
	if rep.Outputs == nil {
		rep.Outputs = map[string]any{}
	}
	if rep.Logs == nil {
		rep.Logs = []string{}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(rep)
}

// MetadataString returns a Metadata value as a string. The host may encode a
// string value twice ("\"abc\"") and a number as a string ("1"): both read.
func (inv *Invocation) MetadataString(key string) string {
	raw, ok := lookup(inv.Metadata, key)
	if !ok {
		return ""
	}
	return unwrapString(raw)
}

// MetadataInt returns a Metadata value as an integer (number or string), and
// whether it was present and numeric.
func (inv *Invocation) MetadataInt(key string) (int64, bool) {
	s := inv.MetadataString(key)
	if s == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil {
			return 0, false
		}
		n = int64(f)
	}
	return n, true
}

func lookup(m map[string]json.RawMessage, key string) (json.RawMessage, bool) {
	if v, ok := m[key]; ok {
		return v, true
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

// unwrapString peels JSON string encodings off raw until it is no longer a
// JSON string, and renders a bare number, bool or null as text.
func unwrapString(raw json.RawMessage) string {
	s := strings.TrimSpace(string(raw))
	for i := 0; i < 4 && strings.HasPrefix(s, `"`); i++ {
		var inner string
		if err := json.Unmarshal([]byte(s), &inner); err != nil {
			break
		}
		s = inner
	}
	if s == "null" {
		return ""
	}
	return s
}

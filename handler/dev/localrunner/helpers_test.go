package localrunner

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"switchboard/handler/functions"
)

const testHost = `{"version": "2.0",
 "customHandler": {"description": {"defaultExecutablePath": "handler", "workingDirectory": "", "arguments": []}, "enableForwardingHttpRequest": true},
 "extensions": {"http": {"routePrefix": "api"}, "serviceBus": {"maxConcurrentCalls": 4}}}`

// writeApp writes a script root with host.json and functions/<Name>/function.json.
func writeApp(t *testing.T, host string, fns map[string]string) string {
	t.Helper()
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "host.json"), []byte(host), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, fj := range fns {
		dir := filepath.Join(root, "functions", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "function.json"), []byte(fj), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if len(fns) == 0 {
		if err := os.MkdirAll(filepath.Join(root, "functions"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func httpFunction(route string, methods ...string) string {
	m, _ := json.Marshal(methods)
	return `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","authLevel":"function","methods":` + string(m) + `,"route":"` + route + `"},{"type":"http","direction":"out","name":"res"}]}`
}

func timerFunction(schedule string) string {
	return `{"bindings":[{"type":"timerTrigger","direction":"in","name":"timer","schedule":"` + schedule + `"}]}`
}

func queueFunction(queue string) string {
	return `{"bindings":[{"type":"serviceBusTrigger","direction":"in","name":"message","queueName":"` + queue + `","connection":"ServiceBusConnection"}]}`
}

func baseSettings() Settings {
	return Settings{"FUNCTIONS_WORKER_RUNTIME": "Custom"}
}

// call is one invocation the fake handler received.
type call struct {
	Function string
	Header   http.Header
	Inv      *functions.Invocation
	Message  functions.Message // for Service Bus functions, decoded as the handler decodes it
}

// fakeHandler is a custom handler: it records invocations (decoded with the
// handler's own functions package) and answers with behave's status.
type fakeHandler struct {
	mu     sync.Mutex
	calls  []call
	behave func(c call) int
	srv    *httptest.Server
}

func newFakeHandler(t *testing.T, behave func(c call) int) *fakeHandler {
	t.Helper()
	f := &fakeHandler{behave: behave}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/" {
			io.WriteString(w, "ready")
			return
		}
		name := strings.Trim(r.URL.Path, "/")
		inv, err := functions.Decode(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c := call{Function: name, Header: r.Header.Clone(), Inv: inv}
		if _, ok := inv.Data["message"]; ok {
			_, _ = functions.ServiceBusFunc("message", func(ctx context.Context, inv *functions.Invocation, m functions.Message) error {
				c.Message = m
				return nil
			})(r.Context(), inv)
		}
		f.mu.Lock()
		f.calls = append(f.calls, c)
		f.mu.Unlock()
		status := http.StatusOK
		if f.behave != nil {
			status = f.behave(c)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, `{"Outputs":{},"Logs":["handled `+name+`"],"ReturnValue":null}`)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeHandler) callsOf(name string) []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []call
	for _, c := range f.calls {
		if c.Function == name {
			out = append(out, c)
		}
	}
	return out
}

// startRunner runs a Runner on a free port against handlerURL and returns
// its base URL once it is running. It stops at the end of the test.
func startRunner(t *testing.T, opts Options) (string, *Runner) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts.Listener = ln
	if opts.Log == nil {
		opts.Log = testWriter{t}
	}
	r, err := New(opts)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	base := "http://" + ln.Addr().String()
	waitFor(t, "runner running", func() bool {
		var st struct{ State string }
		status, body := get(t, base+"/admin/host/status")
		return status == 200 && json.Unmarshal(body, &st) == nil && st.State == "Running"
	})
	return base, r
}

// waitFor polls cond until it holds, failing the test after 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	return do(t, http.MethodGet, url, "", nil)
}

func do(t *testing.T, method, url, body string, hdr map[string]string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// testWriter sends the runner's log to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

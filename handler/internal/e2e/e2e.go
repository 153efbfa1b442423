// Package e2e runs the real handler behind the local runner, on Azurite,
// for end-to-end tests: requests go through the runner's HTTP front
// exactly as `func start` would route them, timers and Service Bus
// functions are fired through the runner's admin API.
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		env := e2e.Start(t, e2e.Options{})
//		status, _, body := env.Do(t, "GET", "/api/health", nil)
//		out := env.Invoke(t, "PresencePoll") // fails the test if the function fails
//	}
//
// The handler and the runner are built once per test binary. Each Start
// gets its own runner (on a free port) with a copy of the repository's
// host.json and functions/ as script root, its own Azurite unless
// Options.Tables names one, and the app settings of
// local.settings.json.example with TABLES_CONNECTION_STRING pointing at
// that Azurite, API_AUTH=none and Options.Env laid over them. Timer
// schedules do not run unless Options.Timers is set: tests fire timers with
// Invoke and know when they have finished.
//
// NewTenant starts the Graph simulator with one tenant and Tenant.Start a
// handler on it; NewReceiver is a webhook for the handler's events.
package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"switchboard/handler/dev/localrunner"
	"switchboard/handler/internal/testenv"
)

// Options configure an Env.
type Options struct {
	// Env are app settings laid over the defaults (SSL_CERT_FILE,
	// GRAPH_BASE_URL, API_AUTH, ...).
	Env map[string]string
	// Tables is the connection string of an Azurite to use; empty starts a
	// fresh one for this Env.
	Tables string
	// Functions adds function folders to the script root: name →
	// function.json text (a function the handler does not implement fails
	// every invocation, which exercises redelivery).
	Functions map[string]string
	// Timers runs the timer schedules (and runOnStartup) as the host would.
	Timers bool
	// MaxDeliveryCount of the in-process queues (default 10).
	MaxDeliveryCount int
}

// RunnerURL in an Options.Env value stands for the runner's base URL
// (e.g. PRESENCE_NOTIFICATIONS_URL: the runner's own route).
const RunnerURL = "{{runner-url}}"

// Env is a running handler behind a local runner.
type Env struct {
	// BaseURL is the runner's HTTP front (like func start's
	// http://localhost:7071): the API is under BaseURL + "/api/".
	BaseURL string
	// Tables is the Azurite connection string the handler uses.
	Tables string
	// Settings are the app settings the runner was given.
	Settings map[string]string

	proc *process
}

// Start builds (once) and starts the handler behind a local runner and
// returns when the handler is ready. Everything stops when the test ends;
// if the test failed, the runner's and the handler's output is logged.
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	testenv.SkipShort(t, "the handler behind the local runner")
	bins := buildOnce(t)
	root := testenv.RepoRoot(t)
	tables := opts.Tables
	if tables == "" {
		tables = testenv.NewAzurite(t)
	}
	scriptRoot := t.TempDir()
	if err := copyApp(root, scriptRoot, opts.Functions); err != nil {
		t.Fatalf("e2e: script root: %v", err)
	}
	settings, err := localrunner.ReadSettingsFile(filepath.Join(root, "local.settings.json.example"))
	if err != nil {
		t.Fatalf("e2e: %v", err)
	}
	settings["TABLES_CONNECTION_STRING"] = tables
	settings["AzureWebJobsStorage"] = tables
	settings["API_AUTH"] = "none"
	for k, v := range opts.Env {
		settings[k] = v
	}
	settingsFile := filepath.Join(scriptRoot, "local.settings.json")
	// A setting may name the runner's own URL (RunnerURL), known once its
	// port is chosen: the file is written for each attempt.
	writeSettings := func(port int) {
		values := make(map[string]string, len(settings))
		for k, v := range settings {
			values[k] = strings.ReplaceAll(v, RunnerURL, "http://127.0.0.1:"+strconv.Itoa(port))
		}
		raw, _ := json.MarshalIndent(map[string]any{"IsEncrypted": false, "Values": values}, "", "  ")
		if err := os.WriteFile(settingsFile, raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"-root", scriptRoot, "-settings", settingsFile, "-handler", bins.handler, "-redelivery-delay", "50ms"}
	if !opts.Timers {
		args = append(args, "-no-timers")
	}
	if opts.MaxDeliveryCount > 0 {
		args = append(args, "-max-delivery-count", strconv.Itoa(opts.MaxDeliveryCount))
	}
	// The settings file wins over the environment for the names it sets:
	// the developer's own settings must not leak into the test.
	var environ []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if _, set := settings[name]; !set && name != "LOCAL_QUEUE_URL" {
			environ = append(environ, kv)
		}
	}
	var p *process
	var lastErr error
	for attempt := 0; attempt < 3 && p == nil; attempt++ {
		port := testenv.FreePort(t)
		writeSettings(port)
		p, lastErr = startRunner(bins.runner, append(args, "-port", strconv.Itoa(port)), environ, port)
	}
	if p == nil {
		t.Fatalf("e2e: the local runner did not start: %v", lastErr)
	}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			logOutput(t, p.out.String())
		}
	})
	return &Env{BaseURL: p.baseURL, Tables: tables, Settings: settings, proc: p}
}

// logOutput shows a failed test the output of its runner and handler: in
// full with -v, otherwise written to a file in the system's temporary
// directory (kept after the test) with its last lines in the log, so that
// the test's own errors stay near the end of what CI prints.
func logOutput(t testing.TB, out string) {
	if testing.Verbose() || os.Getenv("E2E_FULL_LOG") != "" {
		t.Logf("e2e: output of the local runner and the handler:\n%s", out)
		return
	}
	f, err := os.CreateTemp("", "e2e-"+strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())+"-*.log")
	if err == nil {
		_, err = f.WriteString(out)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	tail := strings.Join(lines[max(len(lines)-8, 0):], "\n")
	if err != nil {
		t.Logf("e2e: output of the local runner and the handler not written (%v); its last lines:\n%s", err, tail)
		return
	}
	t.Logf("e2e: output of the local runner and the handler in %s (go test -v or E2E_FULL_LOG=1 shows it here); its last lines:\n%s", f.Name(), tail)
}

// HandlerPID returns the process id of the handler the runner runs now.
func (e *Env) HandlerPID(t testing.TB) int {
	t.Helper()
	var st struct {
		State      string `json:"state"`
		HandlerPID int    `json:"handlerPid"`
	}
	status, _, raw := e.Do(t, http.MethodGet, "/admin/host/status", nil)
	if status != http.StatusOK || json.Unmarshal(raw, &st) != nil || st.HandlerPID <= 0 {
		t.Fatalf("e2e: host status: %d %s", status, raw)
	}
	return st.HandlerPID
}

// KillHandler kills the handler process (SIGKILL: no shutdown, work in
// flight is cut off) and returns once the runner has started a new one and
// it is ready, as the Functions host restarts a worker that died.
func (e *Env) KillHandler(t testing.TB) {
	t.Helper()
	old := e.HandlerPID(t)
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatalf("e2e: kill handler %d: %v", old, err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var st struct {
			State      string `json:"state"`
			HandlerPID int    `json:"handlerPid"`
		}
		status, _, raw := e.Do(t, http.MethodGet, "/admin/host/status", nil)
		if status == http.StatusOK && json.Unmarshal(raw, &st) == nil && st.State == "Running" && st.HandlerPID != old && st.HandlerPID > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("e2e: no new handler 60 s after killing %d; status %s", old, raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the runner and the handler now, as a crash or a redeploy
// would (SIGTERM, then SIGKILL after 10 s); what they stored stays in the
// tables and on an external queue. Stopping twice is harmless.
func (e *Env) Stop() { e.proc.stop() }

// Output returns what the runner and the handler have printed so far.
func (e *Env) Output() string { return e.proc.out.String() }

// Do sends a request to the runner's front. body is sent as JSON unless
// it is a string or []byte (sent as is); hdr are header name/value pairs.
// The test fails at once when the request cannot be sent or its reply
// read; Do is for the test's own goroutine (others use Request).
func (e *Env) Do(t testing.TB, method, path string, body any, hdr ...string) (status int, header http.Header, respBody []byte) {
	t.Helper()
	status, header, respBody, err := e.Request(method, path, body, hdr...)
	if err != nil {
		t.Fatalf("e2e: %v", err)
	}
	return status, header, respBody
}

// Request is Do returning the failure to send the request or read its
// reply, for goroutines other than the test's (which must not call
// t.Fatal).
func (e *Env) Request(method, path string, body any, hdr ...string) (status int, header http.Header, respBody []byte, err error) {
	var r io.Reader
	contentType := ""
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			return 0, nil, nil, fmt.Errorf("body: %w", err)
		}
		r, contentType = bytes.NewReader(raw), "application/json"
	}
	req, err := http.NewRequest(method, e.BaseURL+path, r)
	if err != nil {
		return 0, nil, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if len(hdr)%2 != 0 {
		return 0, nil, nil, fmt.Errorf("header name without a value: %v", hdr)
	}
	for i := 0; i < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	respBody, err = io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s %s: reading the reply: %w", method, path, err)
	}
	return resp.StatusCode, resp.Header, respBody, nil
}

// Invoke fires a timer or Service Bus function now through the runner's
// admin endpoint and waits for it to finish; the test fails if the
// function fails.
func (e *Env) Invoke(t testing.TB, name string) localrunner.Outcome {
	t.Helper()
	out := e.InvokeWith(t, name, "")
	if !out.Succeeded {
		t.Fatalf("e2e: %s failed: %s; reply %s", name, out.Error, out.Reply)
	}
	return out
}

// InvokeWith fires a function with an input (a Service Bus function's
// message body) and returns the outcome, successful or not.
func (e *Env) InvokeWith(t testing.TB, name, input string) localrunner.Outcome {
	t.Helper()
	status, _, body := e.Do(t, http.MethodPost, "/admin/functions/"+name+"?wait=true", map[string]string{"input": input})
	var out localrunner.Outcome
	if status != http.StatusOK || json.Unmarshal(body, &out) != nil {
		t.Fatalf("e2e: invoking %s: %d %s", name, status, body)
	}
	return out
}

// Send puts a message (JSON of body, or body itself when it is a string or
// []byte) on an in-process queue and returns its sequence number.
func (e *Env) Send(t testing.TB, queue string, body any) int64 {
	t.Helper()
	status, _, raw := e.Do(t, http.MethodPost, "/admin/queues/"+queue+"/messages", body)
	var reply localrunner.SendReply
	if status != http.StatusCreated || json.Unmarshal(raw, &reply) != nil {
		t.Fatalf("e2e: sending to %s: %d %s", queue, status, raw)
	}
	return reply.SequenceNumber
}

// QueueState is an in-process queue's counts and dead letters.
type QueueState struct {
	localrunner.QueueStats
	DeadLetters []localrunner.DeadLetter
}

// Queue returns an in-process queue's state.
func (e *Env) Queue(t testing.TB, name string) QueueState {
	t.Helper()
	var st QueueState
	status, _, raw := e.Do(t, http.MethodGet, "/admin/queues/"+name, nil)
	if status != http.StatusOK || json.Unmarshal(raw, &st.QueueStats) != nil {
		t.Fatalf("e2e: queue %s: %d %s", name, status, raw)
	}
	status, _, raw = e.Do(t, http.MethodGet, "/admin/queues/"+name+"/deadletter", nil)
	if status != http.StatusOK || json.Unmarshal(raw, &st.DeadLetters) != nil {
		t.Fatalf("e2e: dead letters of %s: %d %s", name, status, raw)
	}
	return st
}

// WaitQueue polls a queue until cond holds (at most 60 s) and returns its
// state then.
func (e *Env) WaitQueue(t testing.TB, name, what string, cond func(QueueState) bool) QueueState {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := e.Queue(t, name)
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("e2e: queue %s: timed out waiting for %s; last state %+v", name, what, st.QueueStats)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// binaries are the handler and runner executables of this test binary.
type binaries struct{ handler, runner string }

var (
	buildMu   sync.Mutex
	built     *binaries
	buildFail error
)

// buildOnce builds the handler and the runner into a folder of this
// process, removing the folders of test processes that have ended.
func buildOnce(t testing.TB) binaries {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if built != nil {
		return *built
	}
	if buildFail != nil {
		t.Fatalf("e2e: %v", buildFail)
	}
	root := testenv.RepoRoot(t)
	parent := filepath.Join(os.TempDir(), "switchboard-e2e")
	removeStale(parent)
	dir := filepath.Join(parent, strconv.Itoa(os.Getpid()))
	b := binaries{handler: filepath.Join(dir, "handler"), runner: filepath.Join(dir, "localrunner")}
	for out, pkg := range map[string]string{b.handler: "./handler", b.runner: "./handler/dev/cmd/localrunner"} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = root
		if raw, err := cmd.CombinedOutput(); err != nil {
			buildFail = fmt.Errorf("go build %s: %v\n%s", pkg, err, raw)
			t.Fatalf("e2e: %v", buildFail)
		}
	}
	built = &b
	return b
}

// removeStale removes the build folders of processes that no longer run.
func removeStale(parent string) {
	entries, _ := os.ReadDir(parent)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(filepath.Join(parent, e.Name()))
		}
	}
}

// copyApp copies host.json and every functions/<Name>/function.json of the
// repository into dst, plus the extra functions.
func copyApp(repo, dst string, extra map[string]string) error {
	raw, err := os.ReadFile(filepath.Join(repo, "host.json"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dst, "host.json"), raw, 0o644); err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(repo, "functions", "*", "function.json"))
	if err != nil {
		return err
	}
	write := func(name string, content []byte) error {
		dir := filepath.Join(dst, "functions", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, "function.json"), content, 0o644)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := write(filepath.Base(filepath.Dir(f)), raw); err != nil {
			return err
		}
	}
	for name, content := range extra {
		if err := write(name, []byte(content)); err != nil {
			return err
		}
	}
	return nil
}

// process is a running local runner (and, in its process group, the
// handler it started).
type process struct {
	cmd     *exec.Cmd
	out     *testenv.OutputBuffer
	done    chan struct{}
	baseURL string
}

// startRunner starts the runner and waits until it reports Running. An
// error means it did not get there (the port may have been taken: retry).
func startRunner(bin string, args, environ []string, port int) (*process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = environ
	out := &testenv.OutputBuffer{Max: 4 << 20}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, out: out, done: make(chan struct{}), baseURL: "http://127.0.0.1:" + strconv.Itoa(port)}
	go func() { _ = cmd.Wait(); close(p.done) }()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(120 * time.Second)
	for {
		if resp, err := client.Get(p.baseURL + "/admin/host/status"); err == nil {
			var st struct{ State string }
			_ = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if st.State == "Running" {
				return p, nil
			}
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("the runner exited (%v):\n%s", cmd.ProcessState, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("not running after 120 s:\n%s", out.String())
		}
	}
}

// stop asks the runner to stop (it stops the handler), and kills the whole
// process group if it takes more than 10 s.
func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

package localrunner

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"switchboard/handler/internal/testenv"
)

// The test binary doubles as a custom handler process when
// SWITCHBOARD_FAKE_HANDLER is set in its environment (which only the
// runner's app settings can give it).
func TestMain(m *testing.M) {
	if os.Getenv("SWITCHBOARD_FAKE_HANDLER") == "1" {
		fakeHandlerProcess()
		return
	}
	code := m.Run()
	testenv.StopAll()
	os.Exit(code)
}

// fakeHandlerProcess serves GET / (ready), GET /api/env (a few environment
// variables) and POST /Exit (exits with status 3), and stops cleanly on
// SIGTERM.
func fakeHandlerProcess() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ready")) })
	mux.HandleFunc("GET /api/env", func(w http.ResponseWriter, r *http.Request) {
		env := map[string]string{}
		for _, k := range []string{"FUNCTIONS_CUSTOMHANDLER_PORT", "FUNCTIONS_HTTPWORKER_PORT", "LOCAL_QUEUE_URL", "FOO", "AzureWebJobsScriptRoot", "SWITCHBOARD_NOT_A_SETTING", "SECRETS_KEY"} {
			env[k] = os.Getenv(k)
		}
		wd, _ := os.Getwd()
		env["cwd"] = wd
		env["args"] = strings.Join(os.Args[1:], " ")
		_ = json.NewEncoder(w).Encode(env)
	})
	mux.HandleFunc("POST /Exit", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"Outputs":{},"Logs":["exiting"],"ReturnValue":null}`))
		w.(http.Flusher).Flush()
		go func() { time.Sleep(50 * time.Millisecond); os.Exit(3) }()
	})
	ln, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("FUNCTIONS_CUSTOMHANDLER_PORT"))
	if err != nil {
		os.Exit(2)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	go func() { <-term; os.Exit(0) }()
	_ = http.Serve(ln, mux)
}

func processApp(t *testing.T, exe string) string {
	t.Helper()
	host := `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"` + exe + `","workingDirectory":"work","arguments":["--flag","%FOO%"]},"enableForwardingHttpRequest":true}}`
	root := writeApp(t, host, map[string]string{"Env": httpFunction("env", "get"), "Exit": timerFunction("0 0 0 1 1 *")})
	if err := os.Mkdir(filepath.Join(root, "work"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

// The handler is started as the host starts it: the app settings (and
// nothing else) as environment, the port, the in-process queue's URL, the
// working directory and arguments of host.json. When it exits on its own,
// Run reports it.
func TestHandlerProcess(t *testing.T) {
	t.Setenv("SWITCHBOARD_NOT_A_SETTING", "leak")
	root := processApp(t, os.Args[0])
	settings := baseSettings()
	settings["SWITCHBOARD_FAKE_HANDLER"] = "1"
	settings["FOO"] = "bar"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Options{ScriptRoot: root, Settings: settings, Listener: ln, Log: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	base := "http://" + ln.Addr().String()
	waitFor(t, "runner running", func() bool {
		status, body := get(t, base+"/admin/host/status")
		return status == 200 && strings.Contains(string(body), `"Running"`)
	})

	status, body := get(t, base+"/api/env")
	var env map[string]string
	if status != 200 || json.Unmarshal(body, &env) != nil {
		t.Fatalf("GET /api/env = %d %s", status, body)
	}
	want := map[string]string{
		"FOO": "bar", "LOCAL_QUEUE_URL": base + "/admin/queues", "SWITCHBOARD_NOT_A_SETTING": "",
		"args": "--flag bar", "cwd": filepath.Join(r.App().Root, "work"), "AzureWebJobsScriptRoot": r.App().Root,
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("handler's %s = %q, want %q", k, env[k], v)
		}
	}
	if env["FUNCTIONS_CUSTOMHANDLER_PORT"] == "" || env["FUNCTIONS_HTTPWORKER_PORT"] != env["FUNCTIONS_CUSTOMHANDLER_PORT"] {
		t.Errorf("ports = %q, %q", env["FUNCTIONS_CUSTOMHANDLER_PORT"], env["FUNCTIONS_HTTPWORKER_PORT"])
	}

	// A handler that dies is started again, as the host does, with the same
	// settings (the one SECRETS_KEY of the run among them)...
	pid := handlerPID(t, base)
	do(t, "POST", base+"/admin/functions/Exit?wait=true", "", nil)
	waitFor(t, "a new handler", func() bool {
		status, body := get(t, base+"/admin/host/status")
		return status == 200 && strings.Contains(string(body), `"Running"`) && handlerPID(t, base) != pid
	})
	var again map[string]string
	if status, body := get(t, base+"/api/env"); status != 200 || json.Unmarshal(body, &again) != nil {
		t.Fatalf("GET /api/env after the restart = %d %s", status, body)
	}
	if again["SECRETS_KEY"] == "" || again["SECRETS_KEY"] != env["SECRETS_KEY"] || again["FOO"] != "bar" {
		t.Errorf("restarted handler's SECRETS_KEY %q, FOO %q; want the first one's %q and bar", again["SECRETS_KEY"], again["FOO"], env["SECRETS_KEY"])
	}
	// ...until it keeps dying: then Run reports it.
	for i := 0; i < maxHandlerRestarts+1; i++ {
		waitFor(t, "handler running", func() bool {
			status, body := get(t, base+"/admin/host/status")
			return status == 200 && strings.Contains(string(body), `"Running"`)
		})
		do(t, "POST", base+"/admin/functions/Exit?wait=true", "", nil)
		select {
		case err := <-done:
			if i < maxHandlerRestarts-1 || err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "times within a minute") {
				t.Fatalf("Run = %v after %d exits, want the handler's repeated exits reported after %d", err, i+2, maxHandlerRestarts+1)
			}
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "exit status 3") {
			t.Errorf("Run = %v, want the handler's exits reported", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after the handler kept exiting")
	}
}

func handlerPID(t *testing.T, base string) int64 {
	t.Helper()
	_, body := get(t, base+"/admin/host/status")
	var st struct {
		HandlerPID int64 `json:"handlerPid"`
	}
	_ = json.Unmarshal(body, &st)
	return st.HandlerPID
}

// Cancelling Run stops the handler (SIGTERM) and returns nil.
func TestHandlerProcessStopsWithTheRunner(t *testing.T) {
	root := processApp(t, os.Args[0])
	settings := baseSettings()
	settings["SWITCHBOARD_FAKE_HANDLER"] = "1"
	settings["FOO"] = "bar"
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	r, err := New(Options{ScriptRoot: root, Settings: settings, Listener: ln, Log: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	base := "http://" + ln.Addr().String()
	waitFor(t, "runner running", func() bool {
		status, body := get(t, base+"/admin/host/status")
		return status == 200 && strings.Contains(string(body), `"Running"`)
	})
	_, body := get(t, base+"/admin/host/status")
	var st struct{ Handler string }
	_ = json.Unmarshal(body, &st)
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
	if resp, err := http.Get(st.Handler + "/"); err == nil {
		resp.Body.Close()
		t.Errorf("the handler at %s still answers after Run returned", st.Handler)
	}
}

func TestHandlerThatNeverGetsReady(t *testing.T) {
	cases := []struct {
		name, exe, wantErr string
	}{
		{"exits at once", "/bin/false", "exit status 1 before answering"},
		{"no such executable", "/nonexistent/handler", "not found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := processApp(t, c.exe)
			settings := baseSettings()
			settings["FOO"] = "x"
			ln, _ := net.Listen("tcp", "127.0.0.1:0")
			r, err := New(Options{ScriptRoot: root, Settings: settings, Listener: ln, Log: testWriter{t}})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Run(context.Background()); err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("Run = %v, want an error containing %q", err, c.wantErr)
			}
		})
	}
}

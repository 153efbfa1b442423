package localrunner

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var configGet = regexp.MustCompile(`get\("([^"]+)"`)

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// The repository's own app (host.json, functions/, the example settings)
// loads: a function.json the host would refuse fails this test.
func TestRepositoryAppLoads(t *testing.T) {
	root := repoRoot(t)
	settings, err := ReadSettingsFile(filepath.Join(root, "local.settings.json.example"))
	if err != nil {
		t.Fatal(err)
	}
	app, err := LoadApp(root, filepath.Join(root, "functions"), settings)
	if err != nil {
		t.Fatalf("the repository's functions do not load:\n%v", err)
	}
	if fn := app.Function("Health"); fn == nil || fn.Trigger != HTTPTrigger || fn.AuthLevel != "anonymous" || !fn.Forward {
		t.Errorf("Health = %+v, want a forwarded anonymous HTTP function", fn)
	}
	if app.Host.RoutePrefix != "api" || !app.Host.ForwardHTTP || app.Host.ExecutablePath != "handler" {
		t.Errorf("host = %+v, want routePrefix api, forwarding, executable handler", app.Host)
	}
}

func TestLoadAppReadsHostAndBindings(t *testing.T) {
	host := `{"version": "2.0", "functionTimeout": "00:02:30",
	 "customHandler": {"description": {"defaultExecutablePath": "%EXE%", "arguments": ["-v", "%ARG%"]}},
	 "extensions": {"http": {"routePrefix": ""}, "serviceBus": {"messageHandlerOptions": {"maxConcurrentCalls": 3}}}}`
	root := writeApp(t, host, map[string]string{
		"Poll":         timerFunction("%SCHEDULE%"),
		"Worker":       queueFunction("%QUEUE%"),
		"Settings":     httpFunction("tenants/{t}/settings", "get", "PATCH"),
		"Off":          `{"disabled": true, "bindings": [{"type":"timerTrigger","direction":"in","name":"timer","schedule":"0 0 * * * *"}]}`,
		"OffBySetting": timerFunction("0 0 * * * *"),
		"NotAFunction": "", // no function.json: overwritten below
	})
	os.Remove(filepath.Join(root, "functions", "NotAFunction", "function.json"))
	settings := baseSettings()
	for k, v := range map[string]string{"EXE": "bin/h", "ARG": "x", "SCHEDULE": "*/5 * * * * *", "QUEUE": "work", "AzureWebJobs.OffBySetting.Disabled": "true"} {
		settings[k] = v
	}
	app, err := LoadApp(root, filepath.Join(root, "functions"), settings)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range app.Functions {
		names = append(names, f.Name)
	}
	if got, want := strings.Join(names, ","), "Poll,Settings,Worker"; got != want {
		t.Errorf("functions = %s, want %s (disabled ones and folders without function.json left out)", got, want)
	}
	h := app.Host
	if h.ExecutablePath != "bin/h" || strings.Join(h.Arguments, " ") != "-v x" || h.RoutePrefix != "" || h.MaxConcurrentCalls != 3 || h.FunctionTimeout != 150*time.Second || h.ForwardHTTP {
		t.Errorf("host = %+v", h)
	}
	if h.WorkingDirectory != app.Root {
		t.Errorf("working directory = %s, want the script root %s", h.WorkingDirectory, app.Root)
	}
	poll := app.Function("poll")
	if poll.ScheduleText != "*/5 * * * * *" || poll.Binding != "timer" {
		t.Errorf("Poll = %+v", poll)
	}
	at := time.Date(2026, 11, 22, 12, 0, 1, 0, time.UTC)
	if got := poll.Schedule.Next(at); !got.Equal(at.Add(4 * time.Second)) {
		t.Errorf("next occurrence after %s = %s, want 12:00:05", at, got)
	}
	if w := app.Function("Worker"); w.Queue != "work" || w.Connection != "ServiceBusConnection" {
		t.Errorf("Worker = %+v", w)
	}
	s := app.Function("Settings")
	if strings.Join(s.Methods, ",") != "GET,PATCH" || s.AuthLevel != "function" || s.Forward {
		t.Errorf("Settings = %+v (forwarding is off in this host.json)", s)
	}
}

func TestLoadAppRefusesWhatTheHostRefuses(t *testing.T) {
	cases := []struct {
		name    string
		fns     map[string]string
		host    string
		setting map[string]string
		wantErr []string // substrings, the function's name first
	}{
		{"unknown trigger type", map[string]string{"Q": `{"bindings":[{"type":"queueTrigger","direction":"in","name":"m","queueName":"q"}]}`}, "", nil,
			[]string{"function Q", `trigger type "queueTrigger" is not supported`}},
		{"trigger type is case-sensitive", map[string]string{"T": `{"bindings":[{"type":"TimerTrigger","direction":"in","name":"timer","schedule":"* * * * * *"}]}`}, "", nil,
			[]string{"function T", `"TimerTrigger"`}},
		{"unknown binding type", map[string]string{"B": `{"bindings":[{"type":"timerTrigger","direction":"in","name":"timer","schedule":"* * * * * *"},{"type":"table","direction":"out","name":"t"}]}`}, "", nil,
			[]string{"function B", `binding type "table"`}},
		{"binding without a name", map[string]string{"N": `{"bindings":[{"type":"timerTrigger","direction":"in","schedule":"* * * * * *"}]}`}, "", nil,
			[]string{"function N", `"name" is missing`}},
		{"binding without a direction", map[string]string{"D": `{"bindings":[{"type":"timerTrigger","name":"timer","schedule":"* * * * * *"}]}`}, "", nil,
			[]string{"function D", `"direction" is missing`}},
		{"invalid binding name", map[string]string{"D": `{"bindings":[{"type":"timerTrigger","direction":"in","name":"my timer","schedule":"* * * * * *"}]}`}, "", nil,
			[]string{"function D", "not a valid identifier"}},
		{"no trigger", map[string]string{"H": `{"bindings":[{"type":"http","direction":"out","name":"res"}]}`}, "", nil,
			[]string{"function H", "no trigger binding"}},
		{"two triggers", map[string]string{"H": `{"bindings":[{"type":"timerTrigger","direction":"in","name":"a","schedule":"* * * * * *"},{"type":"timerTrigger","direction":"in","name":"b","schedule":"* * * * * *"}]}`}, "", nil,
			[]string{"function H", "2 trigger bindings"}},
		{"duplicate binding names", map[string]string{"H": `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req"},{"type":"http","direction":"out","name":"REQ"}]}`}, "", nil,
			[]string{"function H", "used twice"}},
		{"no bindings", map[string]string{"E": `{"bindings":[]}`}, "", nil, []string{"function E", "no bindings"}},
		{"not JSON", map[string]string{"J": `{"bindings":`}, "", nil, []string{"function J", "not valid JSON"}},
		{"unsupported route constraint", map[string]string{"R": httpFunction("items/{id:min(1)}", "get")}, "", nil,
			[]string{"function R", `constraint "min(1)"`}},
		{"bad method", map[string]string{"M": httpFunction("x", "fetch")}, "", nil, []string{"function M", "fetch is not an HTTP method"}},
		{"bad auth level", map[string]string{"A": `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req","authLevel":"user"},{"type":"http","direction":"out","name":"res"}]}`}, "", nil,
			[]string{"function A", `authLevel "user"`}},
		{"HTTP trigger without http output", map[string]string{"O": `{"bindings":[{"type":"httpTrigger","direction":"in","name":"req"}]}`}, "", nil,
			[]string{"function O", "needs an http output"}},
		{"http output on a timer", map[string]string{"O": `{"bindings":[{"type":"timerTrigger","direction":"in","name":"timer","schedule":"* * * * * *"},{"type":"http","direction":"out","name":"res"}]}`}, "", nil,
			[]string{"function O", "needs an httpTrigger"}},
		{"undefined setting in a schedule", map[string]string{"P": timerFunction("%PRESENCE_POLL_SCHEDULE%")}, "", nil,
			[]string{"function P", "%PRESENCE_POLL_SCHEDULE% does not resolve"}},
		{"undefined setting in a queue name", map[string]string{"W": queueFunction("%OUTBOUND_QUEUE%")}, "", nil,
			[]string{"function W", "%OUTBOUND_QUEUE% does not resolve"}},
		{"setting resolving to a bad schedule", map[string]string{"P": timerFunction("%S%")}, "", map[string]string{"S": "every minute"},
			[]string{"function P", `schedule "every minute" is not an NCRONTAB`}},
		{"TimeSpan schedule", map[string]string{"P": timerFunction("00:05:00")}, "", nil, []string{"function P", "TimeSpan"}},
		{"seven fields", map[string]string{"P": timerFunction("0 0 0 * * * *")}, "", nil, []string{"function P", "not an NCRONTAB"}},
		{"descriptor", map[string]string{"P": timerFunction("@hourly")}, "", nil, []string{"function P", "descriptors"}},
		{"missing schedule", map[string]string{"P": `{"bindings":[{"type":"timerTrigger","direction":"in","name":"timer"}]}`}, "", nil,
			[]string{"function P", "schedule is missing"}},
		{"topic subscription", map[string]string{"S": `{"bindings":[{"type":"serviceBusTrigger","direction":"in","name":"m","topicName":"t","subscriptionName":"s"}]}`}, "", nil,
			[]string{"function S", "topic"}},
		{"missing queue name", map[string]string{"S": `{"bindings":[{"type":"serviceBusTrigger","direction":"in","name":"m"}]}`}, "", nil,
			[]string{"function S", "queueName is missing"}},
		{"sessions", map[string]string{"S": `{"bindings":[{"type":"serviceBusTrigger","direction":"in","name":"m","queueName":"q","isSessionsEnabled":true}]}`}, "", nil,
			[]string{"function S", "sessions"}},
		{"invalid function name", map[string]string{"1st": timerFunction("* * * * * *")}, "", nil, []string{"function 1st", "not a valid function name"}},
		{"ambiguous routes", map[string]string{"A": httpFunction("tenants/{t}", "get"), "B": httpFunction("Tenants/{x}", "post", "get")}, "", nil,
			[]string{"functions A and B", "both match GET"}},
		{"reserved route without prefix", map[string]string{"A": httpFunction("admin/x", "get")}, `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"h"}},"extensions":{"http":{"routePrefix":""}}}`, nil,
			[]string{"function A", "reserved"}},
		{"host.json version 1", nil, `{"version":"1.0","customHandler":{"description":{"defaultExecutablePath":"h"}}}`, nil, []string{`version is "1.0"`}},
		{"host.json without customHandler", nil, `{"version":"2.0"}`, nil, []string{"defaultExecutablePath is missing"}},
		{"host.json bad functionTimeout", nil, `{"version":"2.0","functionTimeout":"5m","customHandler":{"description":{"defaultExecutablePath":"h"}}}`, nil, []string{"functionTimeout"}},
		{"worker runtime not custom", nil, "", map[string]string{"FUNCTIONS_WORKER_RUNTIME": "node"}, []string{"FUNCTIONS_WORKER_RUNTIME", `"Custom"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			host := c.host
			if host == "" {
				host = testHost
			}
			root := writeApp(t, host, c.fns)
			settings := baseSettings()
			for k, v := range c.setting {
				settings[k] = v
			}
			_, err := LoadApp(root, filepath.Join(root, "functions"), settings)
			if err == nil {
				t.Fatalf("LoadApp succeeded, want an error containing %q", c.wantErr)
			}
			for _, want := range c.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestLoadAppReportsEveryBrokenFunction(t *testing.T) {
	root := writeApp(t, testHost, map[string]string{
		"A":  timerFunction("%MISSING_A%"),
		"B":  queueFunction("%MISSING_B%"),
		"OK": httpFunction("ok", "get"),
	})
	_, err := LoadApp(root, filepath.Join(root, "functions"), baseSettings())
	if err == nil {
		t.Fatal("LoadApp succeeded")
	}
	for _, want := range []string{"function A", "%MISSING_A%", "function B", "%MISSING_B%"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestServiceBusConnectionMustBeSetForEveryTriggerOnceOneIs(t *testing.T) {
	root := writeApp(t, testHost, map[string]string{
		"A": queueFunction("a"),
		"B": `{"bindings":[{"type":"serviceBusTrigger","direction":"in","name":"message","queueName":"b","connection":"OtherBus"}]}`,
	})
	settings := baseSettings()
	settings["ServiceBusConnection"] = "Endpoint=sb://localhost/;SharedAccessKeyName=k;SharedAccessKey=v"
	_, err := New(Options{ScriptRoot: root, Settings: settings})
	if err == nil || !strings.Contains(err.Error(), "function B") || !strings.Contains(err.Error(), "OtherBus") {
		t.Errorf("New = %v, want an error naming function B and its connection OtherBus", err)
	}
	// Without any Service Bus configured, both use the in-process queue.
	if _, err := New(Options{ScriptRoot: root, Settings: baseSettings()}); err != nil {
		t.Errorf("New without a Service Bus = %v, want nil", err)
	}
}

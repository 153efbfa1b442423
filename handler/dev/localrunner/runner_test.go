package localrunner

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"switchboard/handler/functions"
)

// echoHandler answers every forwarded request with what it received.
func echoHandler(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"method": r.Method, "uri": r.URL.RequestURI(), "body": string(body),
			"invocationId": r.Header.Get("X-Azure-Functions-InvocationId"), "custom": r.Header.Get("X-Custom"),
			"hostVersion": r.Header.Get("X-Azure-Functions-HostVersion"),
		})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestHTTPFront(t *testing.T) {
	root := writeApp(t, testHost, map[string]string{
		"Settings": httpFunction("tenants/{t}/settings", "get", "patch"),
		"Catch":    httpFunction("tenants/{t}/{*rest}", "get"),
		"Item":     httpFunction("items/{id:int}", "get"),
		"Poll":     timerFunction("0 0 0 1 1 *"),
	})
	echo := echoHandler(t)
	base, _ := startRunner(t, Options{ScriptRoot: root, Settings: baseSettings(), HandlerURL: echo.URL, NoTimers: true})

	type echoed struct{ Method, URI, Body, InvocationID, Custom, HostVersion string }
	cases := []struct {
		name, method, path, body string
		wantStatus               int
		wantURI                  string // forwarded as is
		wantProblem              string // detail substring of a runner problem
	}{
		{"forwarded with path, query and body", "PATCH", "/api/tenants/t1/settings?x=1&y=%20", `{"a":1}`, 200, "/api/tenants/t1/settings?x=1&y=%20", ""},
		{"route prefix and literals are case-insensitive", "GET", "/API/Tenants/t1/SETTINGS", "", 200, "/API/Tenants/t1/SETTINGS", ""},
		{"literal route beats catch-all", "GET", "/api/tenants/t1/settings", "", 200, "/api/tenants/t1/settings", ""},
		{"catch-all", "GET", "/api/tenants/t1/a/b", "", 200, "/api/tenants/t1/a/b", ""},
		{"constraint holds", "GET", "/api/items/42", "", 200, "/api/items/42", ""},
		{"constraint fails: no route", "GET", "/api/items/x", "", 404, "", "no HTTP function has a route matching"},
		{"unknown route", "GET", "/api/nope", "", 404, "", "no HTTP function"},
		{"outside the route prefix", "GET", "/tenants/t1/settings", "", 404, "", "no HTTP function"},
		{"method not accepted is 404, as in Azure", "DELETE", "/api/tenants/t1/settings", "", 404, "", "accepts only GET, PATCH"},
		{"unknown admin endpoint", "GET", "/admin/nope", "", 404, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, base+c.path, strings.NewReader(c.body))
			req.Header.Set("X-Custom", "kept")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.wantStatus {
				t.Fatalf("status = %d, want %d: %s", resp.StatusCode, c.wantStatus, raw)
			}
			if c.wantStatus != 200 {
				var p problem
				if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" || json.Unmarshal(raw, &p) != nil || p.Status != c.wantStatus {
					t.Fatalf("reply %s %s is not a problem", ct, raw)
				}
				if !strings.Contains(p.Detail, c.wantProblem) {
					t.Errorf("detail = %q, want it to contain %q", p.Detail, c.wantProblem)
				}
				return
			}
			var got echoed
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatal(err)
			}
			if got.Method != c.method || got.URI != c.wantURI || got.Body != c.body || got.Custom != "kept" {
				t.Errorf("handler got %+v, want %s %s body %q with X-Custom", got, c.method, c.wantURI, c.body)
			}
			if got.InvocationID == "" || got.HostVersion != HostVersion {
				t.Errorf("host headers missing: %+v", got)
			}
		})
	}

	t.Run("functions list", func(t *testing.T) {
		status, raw := get(t, base+"/admin/functions")
		var list []functionInfo
		if status != 200 || json.Unmarshal(raw, &list) != nil || len(list) != 4 {
			t.Fatalf("GET /admin/functions = %d %s", status, raw)
		}
		if list[3].Name != "Settings" || list[3].URL != base+"/api/tenants/{t}/settings" || !list[3].Forwarded {
			t.Errorf("Settings = %+v", list[3])
		}
	})
	t.Run("an HTTP function cannot be fired through admin", func(t *testing.T) {
		if status, raw := do(t, "POST", base+"/admin/functions/Settings", "", nil); status != 400 {
			t.Errorf("status = %d %s, want 400", status, raw)
		}
	})
	t.Run("unknown function", func(t *testing.T) {
		if status, _ := do(t, "POST", base+"/admin/functions/Nope?wait=true", "", nil); status != 404 {
			t.Errorf("status = %d, want 404", status)
		}
	})
}

// A function that has more than the HTTP bindings gets the invocation
// payload, and its http output becomes the response.
func TestHTTPInvocationPayload(t *testing.T) {
	root := writeApp(t, `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"h"},"enableForwardingHttpRequest":false}}`,
		map[string]string{"Hello": httpFunction("hello/{name}", "post")})
	var got *functions.Invocation
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/Hello" {
			http.NotFound(w, r)
			return
		}
		got, _ = functions.Decode(r.Body)
		io.WriteString(w, `{"Outputs":{"res":{"statusCode":201,"body":"hi there","headers":{"X-Out":"1"}}},"Logs":[],"ReturnValue":null}`)
	}))
	defer srv.Close()
	base, _ := startRunner(t, Options{ScriptRoot: root, Settings: baseSettings(), HandlerURL: srv.URL})
	req, _ := http.NewRequest("POST", base+"/api/hello/ann?x=1", strings.NewReader("body!"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 201 || string(raw) != "hi there" || resp.Header.Get("X-Out") != "1" {
		t.Errorf("response = %d %q X-Out %q, want 201 \"hi there\" 1", resp.StatusCode, raw, resp.Header.Get("X-Out"))
	}
	var reqData struct {
		Method, Body, Query string
		Params              map[string]string
	}
	if got == nil || json.Unmarshal(got.Data["req"], &reqData) != nil {
		t.Fatalf("invocation = %+v", got)
	}
	if reqData.Method != "POST" || reqData.Body != "body!" || reqData.Params["name"] != "ann" || reqData.Query != `{"x":"1"}` {
		t.Errorf("Data.req = %+v", reqData)
	}
}

func TestQueueRedeliveryAndDeadLetter(t *testing.T) {
	root := writeApp(t, testHost, map[string]string{"Worker": queueFunction("%WORK_QUEUE%")})
	settings := baseSettings()
	settings["WORK_QUEUE"] = "work"
	// Messages whose body says fail fail every time; "flaky" fails once.
	h := newFakeHandler(t, func(c call) int {
		body := string(c.Message.Body)
		if strings.Contains(body, "fail") || (strings.Contains(body, "flaky") && c.Message.DeliveryCount == 1) {
			return 500
		}
		return 200
	})
	base, _ := startRunner(t, Options{ScriptRoot: root, Settings: settings, HandlerURL: h.srv.URL, MaxDeliveryCount: 3, RedeliveryDelay: time.Millisecond})

	status, raw := do(t, "POST", base+"/admin/queues/work/messages", `{"kind":"fail"}`, map[string]string{"Content-Type": "application/json", "BrokerProperties": `{"MessageId":"m-fail"}`})
	var sent SendReply
	if status != 201 || json.Unmarshal(raw, &sent) != nil || sent.SequenceNumber != 1 || sent.MessageID != "m-fail" {
		t.Fatalf("send = %d %s", status, raw)
	}
	do(t, "POST", base+"/admin/queues/work/messages", `{"kind":"flaky"}`, nil)
	waitFor(t, "the failing message dead-lettered and the flaky one completed", func() bool {
		var st QueueStats
		_, raw := get(t, base+"/admin/queues/work")
		return json.Unmarshal(raw, &st) == nil && st.DeadLettered == 1 && st.Completed == 1
	})

	var failing []call
	for _, c := range h.callsOf("Worker") {
		if c.Message.MessageID == "m-fail" {
			failing = append(failing, c)
		}
	}
	if len(failing) != 3 {
		t.Fatalf("the failing message was delivered %d times, want MaxDeliveryCount 3", len(failing))
	}
	for i, c := range failing {
		m := c.Message
		if m.DeliveryCount != int64(i+1) || m.SequenceNumber != 1 || string(m.Body) != `{"kind":"fail"}` || m.ContentType != "application/json" || m.EnqueuedTime.IsZero() {
			t.Errorf("delivery %d: message %+v", i+1, m)
		}
		// Metadata travels in the host's form: strings encoded twice.
		if got := string(c.Inv.Metadata["MessageId"]); got != `"\"m-fail\""` {
			t.Errorf("Metadata.MessageId = %s, want the host's double encoding", got)
		}
		if got := string(c.Inv.Data["message"]); got != `{"kind":"fail"}` {
			t.Errorf("Data.message = %s, want the JSON object", got)
		}
		if c.Header.Get("X-Azure-Functions-InvocationId") == "" {
			t.Error("no invocation id header")
		}
	}
	status, raw = get(t, base+"/admin/queues/work/deadletter")
	var dl []DeadLetter
	if status != 200 || json.Unmarshal(raw, &dl) != nil || len(dl) != 1 {
		t.Fatalf("dead letters = %d %s", status, raw)
	}
	var body bytes.Buffer
	_ = json.Compact(&body, dl[0].Body)
	if dl[0].MessageID != "m-fail" || dl[0].DeliveryCount != 3 || dl[0].DeadLetterReason != "MaxDeliveryCountExceeded" || body.String() != `{"kind":"fail"}` ||
		!strings.Contains(dl[0].DeadLetterErrorDescription, "500") {
		t.Errorf("dead letter = %+v", dl[0])
	}
	if n := len(h.callsOf("Worker")); n != 5 {
		t.Errorf("%d invocations, want 3 (failing) + 2 (flaky)", n)
	}
}

func TestQueueSendScheduleCancelThroughAdmin(t *testing.T) {
	root := writeApp(t, testHost, nil)
	h := newFakeHandler(t, nil)
	base, _ := startRunner(t, Options{ScriptRoot: root, Settings: baseSettings(), HandlerURL: h.srv.URL})
	later := time.Now().Add(time.Hour).UTC()
	cases := []struct {
		name, body string
		hdr        map[string]string
		wantStatus int
	}{
		{"scheduled, RFC 1123", "a", map[string]string{"BrokerProperties": `{"ScheduledEnqueueTimeUtc":"` + later.Format(time.RFC1123) + `"}`}, 201},
		{"scheduled, RFC 3339", "b", map[string]string{"BrokerProperties": `{"ScheduledEnqueueTimeUtc":"` + later.Format(time.RFC3339) + `"}`}, 201},
		{"bad time", "c", map[string]string{"BrokerProperties": `{"ScheduledEnqueueTimeUtc":"tomorrow"}`}, 400},
		{"bad properties", "d", map[string]string{"BrokerProperties": `{`}, 400},
		{"too large", strings.Repeat("x", MaxMessageBytes+1), nil, 413},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if status, raw := do(t, "POST", base+"/admin/queues/idle/messages", c.body, c.hdr); status != c.wantStatus {
				t.Errorf("status = %d %s, want %d", status, raw, c.wantStatus)
			}
		})
	}
	var st QueueStats
	_, raw := get(t, base+"/admin/queues/idle")
	if json.Unmarshal(raw, &st) != nil || st.Scheduled != 2 || st.Active != 0 {
		t.Fatalf("stats = %s, want 2 scheduled", raw)
	}
	if status, _ := do(t, "DELETE", base+"/admin/queues/idle/messages/1", "", nil); status != 204 {
		t.Errorf("cancel = %d, want 204", status)
	}
	if status, _ := do(t, "DELETE", base+"/admin/queues/idle/messages/1", "", nil); status != 404 {
		t.Errorf("cancel again = %d, want 404", status)
	}
	if status, _ := do(t, "DELETE", base+"/admin/queues/idle/messages/x", "", nil); status != 400 {
		t.Errorf("cancel of a non-number = %d, want 400", status)
	}
	_, raw = get(t, base+"/admin/queues")
	var list []QueueStats
	if json.Unmarshal(raw, &list) != nil || len(list) != 1 || list[0].Name != "idle" || list[0].Scheduled != 1 {
		t.Errorf("queues = %s, want idle with 1 scheduled", raw)
	}
}

func TestMessageBodyRendering(t *testing.T) {
	cases := []struct {
		name, body, want string
	}{
		{"JSON object", ` {"a":1} `, `{"a":1}`},
		{"JSON array", `[1,2]`, `[1,2]`},
		{"text", `hello`, `"hello"`},
		{"JSON scalar travels as text", `42`, `"42"`},
		{"binary as base64", "\xff\x00\x01", `"/wAB"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := messageBody([]byte(c.body))
			if string(got) != c.want {
				t.Errorf("messageBody(%q) = %s, want %s", c.body, got, c.want)
			}
			// The handler's decoder gets the bytes back for JSON bodies.
			if strings.HasPrefix(c.want, "{") || strings.HasPrefix(c.want, "[") {
				if back := functions.DecodeMessageBody(got); string(back) != strings.TrimSpace(c.body) {
					t.Errorf("DecodeMessageBody = %s, want %s", back, c.body)
				}
			}
		})
	}
}

func TestTimerPayloadAndAdminInvoke(t *testing.T) {
	root := writeApp(t, testHost, map[string]string{"Poll": timerFunction("0 0 0 1 1 *"), "Worker": queueFunction("q")})
	h := newFakeHandler(t, nil)
	base, _ := startRunner(t, Options{ScriptRoot: root, Settings: baseSettings(), HandlerURL: h.srv.URL, NoTimers: true})

	status, raw := do(t, "POST", base+"/admin/functions/poll?wait=true", `{"input": ""}`, nil)
	var out Outcome
	if status != 200 || json.Unmarshal(raw, &out) != nil || !out.Succeeded || out.Status != 200 || out.Function != "Poll" || out.InvocationID == "" {
		t.Fatalf("invoke = %d %s", status, raw)
	}
	calls := h.callsOf("Poll")
	if len(calls) != 1 {
		t.Fatalf("%d calls, want 1", len(calls))
	}
	var timer struct {
		Schedule       struct{ AdjustForDST bool }
		ScheduleStatus *ScheduleStatus
		IsPastDue      bool
	}
	if err := json.Unmarshal(calls[0].Inv.Data["timer"], &timer); err != nil {
		t.Fatal(err)
	}
	if !timer.Schedule.AdjustForDST || timer.ScheduleStatus != nil || timer.IsPastDue {
		t.Errorf("Data.timer = %s, want AdjustForDST, no status before the first scheduled run, not past due", calls[0].Inv.Data["timer"])
	}
	var sys struct{ MethodName, UtcNow, RandGuid string }
	if json.Unmarshal(calls[0].Inv.Metadata["sys"], &sys) != nil || sys.MethodName != "Poll" || sys.UtcNow == "" || sys.RandGuid == "" {
		t.Errorf("Metadata.sys = %s", calls[0].Inv.Metadata["sys"])
	}

	// A Service Bus function fired through admin gets the input as its message.
	status, raw = do(t, "POST", base+"/admin/functions/Worker?wait=true", `{"input": "{\"x\":1}"}`, nil)
	if status != 200 || json.Unmarshal(raw, &out) != nil || !out.Succeeded {
		t.Fatalf("invoke Worker = %d %s", status, raw)
	}
	if w := h.callsOf("Worker"); len(w) != 1 || string(w[0].Message.Body) != `{"x":1}` || w[0].Message.DeliveryCount != 1 {
		t.Errorf("Worker calls = %+v", w)
	}
	// Without wait the host's answer: 202 at once.
	if status, _ := do(t, "POST", base+"/admin/functions/Poll", "", nil); status != 202 {
		t.Errorf("invoke without wait = %d, want 202", status)
	}
	waitFor(t, "the background invocation", func() bool { return len(h.callsOf("Poll")) == 2 })
	if status, _ := do(t, "POST", base+"/admin/functions/Poll", `{"input": 5}`, nil); status != 400 {
		t.Errorf("invoke with a non-string input = %d, want 400", status)
	}
}

func TestTimerScheduleStatusAndNoOverlap(t *testing.T) {
	root := writeApp(t, testHost, map[string]string{"Tick": timerFunction("* * * * * *")})
	var block atomic.Bool
	release := make(chan struct{})
	h := newFakeHandler(t, func(c call) int {
		if block.Load() {
			<-release
		}
		return 200
	})
	startRunner(t, Options{ScriptRoot: root, Settings: baseSettings(), HandlerURL: h.srv.URL})
	waitFor(t, "two scheduled runs", func() bool { return len(h.callsOf("Tick")) >= 2 })

	type status struct{ Last, Next, LastUpdated time.Time }
	var first, second struct {
		ScheduleStatus *status
		IsPastDue      bool
	}
	calls := h.callsOf("Tick")
	_ = json.Unmarshal(calls[0].Inv.Data["timer"], &first)
	_ = json.Unmarshal(calls[1].Inv.Data["timer"], &second)
	if first.ScheduleStatus != nil {
		t.Errorf("first run: ScheduleStatus = %+v, want null", first.ScheduleStatus)
	}
	s := second.ScheduleStatus
	if s == nil || s.Next.Sub(s.Last) != time.Second || s.Last.Nanosecond() != 0 || s.LastUpdated.Before(s.Last) {
		t.Errorf("second run: ScheduleStatus = %+v, want Last and Next one occurrence apart", s)
	}

	// While a run blocks, the following occurrences are skipped, not queued.
	block.Store(true)
	waitFor(t, "a blocked run", func() bool { return len(h.callsOf("Tick")) >= 3 })
	n := len(h.callsOf("Tick"))
	time.Sleep(2500 * time.Millisecond) // two or more occurrences pass
	if got := len(h.callsOf("Tick")); got != n {
		t.Errorf("%d runs started while one was still going, want none", got-n)
	}
	block.Store(false)
	close(release)
	waitFor(t, "runs resuming", func() bool { return len(h.callsOf("Tick")) > n })
}

// A reply that is not the protocol's JSON fails the invocation, as in the
// host; a slow handler fails it at functionTimeout.
func TestInvocationFailures(t *testing.T) {
	host := `{"version":"2.0","functionTimeout":"00:00:01","customHandler":{"description":{"defaultExecutablePath":"h"}}}`
	root := writeApp(t, host, map[string]string{"Garbage": timerFunction("0 0 0 1 1 *"), "Slow": timerFunction("0 0 0 1 1 *")})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then the server notices the client giving up
		switch r.URL.Path {
		case "/Garbage":
			io.WriteString(w, "ok")
		case "/Slow":
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		}
	}))
	defer srv.Close()
	base, _ := startRunner(t, Options{ScriptRoot: root, Settings: baseSettings(), HandlerURL: srv.URL, NoTimers: true})
	for name, want := range map[string]string{"Garbage": "not the custom-handler JSON", "Slow": "timed out"} {
		_, raw := do(t, "POST", base+"/admin/functions/"+name+"?wait=true", "", nil)
		var out Outcome
		if json.Unmarshal(raw, &out) != nil || out.Succeeded || !strings.Contains(out.Error, want) {
			t.Errorf("%s: outcome %s, want a failure containing %q", name, raw, want)
		}
	}
}

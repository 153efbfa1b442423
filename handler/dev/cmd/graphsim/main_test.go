package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"switchboard/handler/dev/graphsim"
)

func TestCommandGetsTheSettings(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-agents", "3", "--", "sh", "-c", `echo "$GRAPH_BASE_URL|$AZURE_AUTHORITY_HOST|$SSL_CERT_FILE|$PRESENCE_ACCOUNT1_UPN|$API_AUTH"`}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	parts := strings.Split(strings.TrimSpace(stdout.String()), "|")
	if len(parts) != 5 || !strings.HasPrefix(parts[0], "https://127.0.0.1:") || !strings.HasSuffix(parts[0], "/v1.0") ||
		!strings.HasPrefix(parts[1], "https://127.0.0.1:") || !strings.HasSuffix(parts[2], ".pem") || parts[3] != demoAccount1 || parts[4] != "none" {
		t.Errorf("the command saw %q", stdout.String())
	}
}

// make run prints the web page's URL, with the demo tenant chosen, before
// anything else.
func TestDemoPrintsThePageURLFirst(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"-agents", "2", "-demo", "--", "true", "-port", "7999"}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	first, _, _ := strings.Cut(stderr.String(), "\n")
	want := "http://127.0.0.1:7999/api/ui/?tenant=" + demoTenant + "#/"
	if !strings.HasPrefix(first, "Switchboard web page") || !strings.Contains(first, want) {
		t.Errorf("first line %q, want the page %s...", first, want)
	}
}

func TestDemoSetUp(t *testing.T) {
	var mu sync.Mutex
	var calls []string
	bodies := map[string]map[string]any{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, r.Method+" "+r.URL.Path)
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		bodies[r.Method+" "+r.URL.Path] = m
		if r.Method == http.MethodPut {
			w.WriteHeader(http.StatusCreated)
		}
	}))
	defer srv.Close()
	users := make([]graphsim.User, 9)
	for i := range users {
		users[i] = graphsim.User{ID: string(rune('a' + i))}
	}
	if err := setUpDemo(context.Background(), srv.URL, users); err != nil {
		t.Fatal(err)
	}
	prefix := "/api/tenants/" + demoTenant
	want := []string{"GET /api/health", "PUT " + prefix + "/services/support", "PUT " + prefix + "/services/sales", "PATCH " + prefix + "/settings", "POST /admin/functions/PresencePoll",
		"POST /admin/functions/Housekeeping"} // the housekeeping subscribes to presence changes at once
	if strings.Join(calls, ",") != strings.Join(want, ",") {
		t.Errorf("calls %v, want %v", calls, want)
	}
	support, _ := bodies["PUT "+prefix+"/services/support"]["members"].([]any)
	sales, _ := bodies["PUT "+prefix+"/services/sales"]["members"].([]any)
	if len(support) != 7 || len(sales) != 6 {
		t.Errorf("support has %d members, sales %d; want 7 and 6 (three shared)", len(support), len(sales))
	}
}

func TestPortArg(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"none", []string{"bin/localrunner", "-azurite"}, ""},
		{"separate value", []string{"bin/localrunner", "-azurite", "-port", "8080"}, "8080"},
		{"joined value", []string{"bin/localrunner", "--port=9090"}, "9090"},
		{"a value that only looks like the flag", []string{"echo", "port"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := portArg(tc.args); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

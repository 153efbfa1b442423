package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func TestLoadSettings(t *testing.T) {
	cases := []struct {
		name     string
		files    map[string]string // file name in root → Values JSON
		environ  []string
		wantA    string
		wantFrom string
	}{
		{"example when there is no local.settings.json", map[string]string{"local.settings.json.example": `{"A":"example"}`}, nil, "example", "local.settings.json.example"},
		{"local.settings.json first", map[string]string{"local.settings.json.example": `{"A":"example"}`, "local.settings.json": `{"A":"local"}`}, nil, "local", "local.settings.json"},
		{"the environment wins", map[string]string{"local.settings.json": `{"A":"local"}`}, []string{"A=env"}, "env", "skipping A"},
		{"no file: environment only", nil, []string{"A=env"}, "env", "environment only"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			for name, values := range c.files {
				write(t, filepath.Join(root, name), `{"IsEncrypted":false,"Values":`+values+`}`, 0o644)
			}
			var log strings.Builder
			got, err := loadSettings(root, "", c.environ, func(f string, a ...any) { fmt.Fprintf(&log, f+"\n", a...) })
			if err != nil {
				t.Fatal(err)
			}
			if got["A"] != c.wantA {
				t.Errorf("A = %q, want %q", got["A"], c.wantA)
			}
			if !strings.Contains(log.String(), c.wantFrom) {
				t.Errorf("log %q does not mention %q", log.String(), c.wantFrom)
			}
		})
	}
}

// A packaged app folder (make package) holds the handler executable: it is
// used as is, nothing is built.
func TestFindHandlerInAPackagedApp(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "host.json"), `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler"}}}`, 0o644)
	write(t, filepath.Join(root, "handler"), "#!/bin/sh\n", 0o755)
	got, err := findOrBuildHandler(context.Background(), root, "", nil, t.Logf)
	if err != nil || got != filepath.Join(root, "handler") {
		t.Errorf("findOrBuildHandler = %q, %v; want the packaged handler", got, err)
	}
	// Without an executable and without a repository there is nothing to run.
	os.Remove(filepath.Join(root, "handler"))
	if _, err := findOrBuildHandler(context.Background(), root, "", nil, t.Logf); err == nil || !strings.Contains(err.Error(), "-handler") {
		t.Errorf("findOrBuildHandler without a handler = %v, want an error suggesting -handler", err)
	}
}

// A function.json the host would refuse stops the runner before anything
// starts, naming the function.
func TestRunRefusesABrokenApp(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "host.json"), `{"version":"2.0","customHandler":{"description":{"defaultExecutablePath":"handler"}}}`, 0o644)
	write(t, filepath.Join(root, "local.settings.json"), `{"Values":{"FUNCTIONS_WORKER_RUNTIME":"Custom"}}`, 0o644)
	write(t, filepath.Join(root, "Poll", "function.json"), `{"bindings":[{"type":"timerTrigger","direction":"in","name":"timer","schedule":"%NOT_SET%"}]}`, 0o644)
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"-root", root, "-handler", "/bin/true", "-port", "0"}, nil, &stderr)
	if err == nil || !strings.Contains(err.Error(), "function Poll") || !strings.Contains(err.Error(), "%NOT_SET%") {
		t.Errorf("run = %v, want an error naming Poll and %%NOT_SET%%", err)
	}
	if err := run(context.Background(), []string{"-root", root, "extra"}, nil, &stderr); err == nil {
		t.Error("run with a stray argument succeeded")
	}
}

package localrunner

import (
	"bytes"
	"strings"
	"testing"

	"switchboard/handler/secrets"
)

// Without SECRETS_KEY the runner makes one key for the whole run, so that a
// handler it starts again opens what the one before sealed; a key given is
// kept.
func TestRunnerGeneratesOneSecretsKey(t *testing.T) {
	root := writeApp(t, testHost, map[string]string{"Ping": httpFunction("ping", "get")})
	var log bytes.Buffer
	r, err := New(Options{ScriptRoot: root, Settings: Settings{"FUNCTIONS_WORKER_RUNTIME": "Custom"}, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	key := r.settings["SECRETS_KEY"]
	if _, err := secrets.New(key, ""); err != nil {
		t.Fatalf("generated SECRETS_KEY %q: %v", key, err)
	}
	if !strings.Contains(log.String(), "SECRETS_KEY is not set") || strings.Contains(log.String(), key) {
		t.Errorf("log = %q: want the generated key announced, never printed", log.String())
	}
	given := secrets.GenerateKey()
	r, err = New(Options{ScriptRoot: root, Settings: Settings{"FUNCTIONS_WORKER_RUNTIME": "Custom", "SECRETS_KEY": given}, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if r.settings["SECRETS_KEY"] != given {
		t.Errorf("SECRETS_KEY = %q, want the one given", r.settings["SECRETS_KEY"])
	}
}

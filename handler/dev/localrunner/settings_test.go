package localrunner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSettingsExpand(t *testing.T) {
	s := Settings{"PRESENCE_POLL_SCHEDULE": "*/30 * * * * *", "OUTBOUND_QUEUE": "outbound-tasks", "EMPTY": ""}
	cases := []struct {
		name, in, want, wantErr string
	}{
		{"whole value", "%PRESENCE_POLL_SCHEDULE%", "*/30 * * * * *", ""},
		{"inside text", "q-%OUTBOUND_QUEUE%-x", "q-outbound-tasks-x", ""},
		{"case-insensitive name, as .NET configuration", "%outbound_queue%", "outbound-tasks", ""},
		{"no reference", "outbound-tasks", "outbound-tasks", ""},
		{"undefined", "%NOPE%", "", "%NOPE% does not resolve"},
		{"empty counts as undefined", "%EMPTY%", "", "%EMPTY%"},
		{"every missing one is named", "%A%/%B%", "", "%A%, %B%"},
		{"empty name", "100%%", "", "%%"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.Expand(c.in)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Errorf("Expand(%q) = %q, %v; want an error containing %q", c.in, got, err, c.wantErr)
				}
				return
			}
			if err != nil || got != c.want {
				t.Errorf("Expand(%q) = %q, %v; want %q", c.in, got, err, c.want)
			}
		})
	}
}

func TestReadSettingsFile(t *testing.T) {
	cases := []struct {
		name, content, wantErr string
		want                   Settings
	}{
		{"values", `{"IsEncrypted": false, "Values": {"A": "1", "FUNCTIONS_WORKER_RUNTIME": "Custom"}, "Host": {"LocalHttpPort": 7071}}`, "", Settings{"A": "1", "FUNCTIONS_WORKER_RUNTIME": "Custom"}},
		{"encrypted", `{"IsEncrypted": true, "Values": {}}`, "IsEncrypted", nil},
		{"non-string value", `{"Values": {"N": 5}}`, "Values.N must be a string", nil},
		{"not JSON", `{"Values": `, "not a local.settings.json", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "local.settings.json")
			if err := os.WriteFile(path, []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := ReadSettingsFile(path)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Errorf("err = %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
			for k, v := range c.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestMergeEnvironmentLetsTheEnvironmentWin(t *testing.T) {
	got := MergeEnvironment(Settings{"A": "file", "B": "file"}, []string{"A=env", "C=x=y", "malformed"})
	want := Settings{"A": "env", "B": "file", "C": "x=y"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

// The example settings of the repository are valid and hold every setting
// the handler's configuration reads, with local values.
func TestExampleSettingsFile(t *testing.T) {
	s, err := ReadSettingsFile(filepath.Join(repoRoot(t), "local.settings.json.example"))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"FUNCTIONS_WORKER_RUNTIME": "Custom", "API_AUTH": "none", "ServiceBusConnection": ""} {
		if got, ok := s[name]; !ok || got != want {
			t.Errorf("%s = %q (present %v), want %q", name, got, ok, want)
		}
	}
	if !strings.Contains(s["TABLES_CONNECTION_STRING"], "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1") {
		t.Errorf("TABLES_CONNECTION_STRING = %q, want Azurite's explicit connection string", s["TABLES_CONNECTION_STRING"])
	}
	config, err := os.ReadFile(filepath.Join(repoRoot(t), "handler", "config", "config.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range configGet.FindAllStringSubmatch(string(config), -1) {
		name := m[1]
		if name == "FUNCTIONS_CUSTOMHANDLER_PORT" || name == "FUNCTIONS_HTTPWORKER_PORT" || name == "LOCAL_QUEUE_URL" || name == "WEBSITE_INSTANCE_ID" {
			continue // set by the host (WEBSITE_INSTANCE_ID: by Azure only) or the runner
		}
		if _, ok := s[name]; !ok {
			t.Errorf("local.settings.json.example lacks %s, which handler/config reads", name)
		}
	}
}

func TestReadSettingsFileKeepsValuesOutOfErrors(t *testing.T) {
	cases := []struct {
		name, content, secret, wantErr string
	}{
		{"a password written as a number", `{"Values": {"PRESENCE_ACCOUNT1_PASSWORD": 918273645}}`, "918273645", "Values.PRESENCE_ACCOUNT1_PASSWORD must be a string, not a number"},
		{"a secret inside an object", `{"Values": {"PRESENCE_APP_CLIENT_SECRET": {"v": "s3cr3t-value"}}}`, "s3cr3t-value", "Values.PRESENCE_APP_CLIENT_SECRET must be a string, not an object"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "local.settings.json")
			if err := os.WriteFile(path, []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadSettingsFile(path)
			if err == nil {
				t.Fatal("got no error, want one")
			}
			if got := err.Error(); strings.Contains(got, c.secret) || !strings.Contains(got, c.wantErr) {
				t.Errorf("got %q, want one containing %q and not the value", got, c.wantErr)
			}
		})
	}
}

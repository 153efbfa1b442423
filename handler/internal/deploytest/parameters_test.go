package deploytest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"switchboard/handler/internal/testenv"
)

// Every parameter azd fills from its environment (main.parameters.json) is
// one main.bicep declares and passes on, so a setting such as UI_CLIENT_ID
// given with `azd env set` reaches the app and is not silently dropped.
func TestParametersReachMainBicep(t *testing.T) {
	root := testenv.RepoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, "infra", "main.parameters.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Parameters map[string]struct {
			Value any `json:"value"`
		} `json:"parameters"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	bicep, err := os.ReadFile(filepath.Join(root, "infra", "main.bicep"))
	if err != nil {
		t.Fatal(err)
	}
	for name := range file.Parameters {
		if !regexp.MustCompile(`(?m)^param ` + name + `\b`).Match(bicep) {
			t.Errorf("main.parameters.json sets %s, which main.bicep does not declare", name)
			continue
		}
		uses := regexp.MustCompile(`\b`+name+`\b`).FindAll(bicep, -1)
		if len(uses) < 2 {
			t.Errorf("main.bicep declares %s but never uses it", name)
		}
	}
	ui, ok := file.Parameters["uiClientId"]
	if !ok || ui.Value != "${UI_CLIENT_ID=}" {
		t.Errorf("uiClientId = %v, want ${UI_CLIENT_ID=} (optional, from the azd environment)", ui.Value)
	}
	if !regexp.MustCompile(`(?m)^\s*uiClientId: uiClientId$`).Match(bicep) {
		t.Error("main.bicep does not pass uiClientId to the function app module")
	}
}

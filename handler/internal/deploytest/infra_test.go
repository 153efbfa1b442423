package deploytest

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"switchboard/handler/internal/testenv"
)

// TestNoKeysOrConnectionStringsInBicep: the deployment reads no account key
// or SAS connection string, and every secret setting is a Key Vault
// reference.
func TestNoKeysOrConnectionStringsInBicep(t *testing.T) {
	root := testenv.RepoRoot(t)
	forbidden := []string{"listkeys(", "listconnectionstrings(", "listsecrets(", "accountkey=", "sharedaccesskey", ".primarykey", ".secondarykey"}
	err := filepath.WalkDir(filepath.Join(root, "infra"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".bicep") {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		text := strings.ToLower(string(raw))
		for _, f := range forbidden {
			if strings.Contains(text, f) {
				rel, _ := filepath.Rel(root, path)
				t.Errorf("%s uses %q: reach the resource with the managed identity instead", rel, f)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	r := infraReport(t)
	app := r.file(t, "infra/modules/functionapp.bicep").Variables["appSettings"].(map[string]any)
	for _, name := range sortedKeys(app) {
		upper := strings.ToUpper(name)
		if !strings.Contains(upper, "PASSWORD") && !strings.Contains(upper, "SECRET") {
			continue
		}
		expr, _ := app[name].(map[string]any)["$expr"].(string)
		if !strings.Contains(expr, "secretRef(") && !strings.Contains(expr, "@Microsoft.KeyVault(") {
			t.Errorf("app setting %s = %v: want a Key Vault reference", name, app[name])
		}
	}
}

// TestRoleAssignmentsForTheIdentity: the identity gets exactly the data-plane
// roles it needs, each used by a role assignment.
func TestRoleAssignmentsForTheIdentity(t *testing.T) {
	root := testenv.RepoRoot(t)
	roles, ok := infraReport(t).file(t, "infra/modules/roles.bicep").Variables["roleIds"].(map[string]any)
	if !ok {
		t.Fatal("infra/modules/roles.bicep has no object literal `var roleIds`")
	}
	raw, err := os.ReadFile(filepath.Join(root, "infra", "modules", "roles.bicep"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		role, id string
	}{
		{"Storage Blob Data Owner (host storage, deployment container)", "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"},
		{"Storage Table Data Contributor", "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"},
		{"Azure Service Bus Data Sender", "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39"},
		{"Azure Service Bus Data Receiver", "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0"},
		{"Key Vault Secrets User", "4633458b-17de-408a-b874-0445c86b69e6"},
		{"Monitoring Metrics Publisher", "3913510d-42f4-4e42-8a64-420c390055eb"},
	}
	if len(roles) != len(tests) {
		t.Errorf("roleIds has %d roles, want %d: %v", len(roles), len(tests), roles)
	}
	for _, tt := range tests {
		t.Run(tt.role, func(t *testing.T) {
			key := ""
			for k, v := range roles {
				if v == tt.id {
					key = k
				}
			}
			if key == "" {
				t.Fatalf("roleIds does not grant %s (%s)", tt.role, tt.id)
			}
			if n := strings.Count(string(raw), "roleIds."+key+")"); n < 2 {
				t.Errorf("roleIds.%s is used in %d places, want a role assignment (guid name and roleDefinitionId)", key, n)
			}
		})
	}
}

// TestFunctionAppIsFlexConsumptionCustomHandler pins the hosting shape that
// make package produces for.
func TestFunctionAppIsFlexConsumptionCustomHandler(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "infra", "modules", "functionapp.bicep"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	for _, want := range []string{
		"tier: 'FlexConsumption'",
		"kind: 'functionapp,linux'",
		"type: 'blobContainer'",
		"type: 'UserAssignedIdentity'",
		"keyVaultReferenceIdentity: identityId",
		"'azd-service-name': 'api'",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("infra/modules/functionapp.bicep lacks %q", want)
		}
	}
	runtime := strings.Index(text, "runtime: {")
	if runtime < 0 || !strings.Contains(text[runtime:], "name: 'custom'") || !strings.Contains(text[runtime:], "version: '1.0'") {
		t.Error("functionAppConfig.runtime is not {name: 'custom', version: '1.0'}")
	}
}

// TestMaximumInstanceCountFitsFlex: Flex Consumption takes 40 to 1000 as
// the instance bound; a smaller one fails the deployment, so the
// parameters refuse it before Azure does.
func TestMaximumInstanceCountFitsFlex(t *testing.T) {
	r := infraReport(t)
	for _, file := range []string{"infra/main.bicep", "infra/modules/functionapp.bicep"} {
		t.Run(file, func(t *testing.T) {
			p, ok := r.file(t, file).Params["maximumInstanceCount"]
			if !ok {
				t.Fatalf("%s has no param maximumInstanceCount", file)
			}
			if got := p.Decorators["minValue"]; len(got) != 1 || got[0] != float64(40) {
				t.Errorf("@minValue = %v, want [40]", got)
			}
			if got := p.Decorators["maxValue"]; len(got) != 1 || got[0] != float64(1000) {
				t.Errorf("@maxValue = %v, want [1000]", got)
			}
			if p.Default != nil {
				if n, ok := p.Default.(float64); !ok || n < 40 || n > 1000 {
					t.Errorf("default = %v, want a number from 40 to 1000", p.Default)
				}
			}
		})
	}
	// The value azd passes, when main.parameters.json pins one.
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "infra", "main.parameters.json"))
	if err != nil {
		t.Fatal(err)
	}
	var params struct {
		Parameters map[string]struct {
			Value any `json:"value"`
		} `json:"parameters"`
	}
	if err := json.Unmarshal(raw, &params); err != nil {
		t.Fatalf("infra/main.parameters.json: %v", err)
	}
	if p, ok := params.Parameters["maximumInstanceCount"]; ok {
		if n, ok := p.Value.(float64); ok && (n < 40 || n > 1000) {
			t.Errorf("main.parameters.json sets maximumInstanceCount = %v, want 40 to 1000", n)
		}
	}
}

// TestServiceBusNamespaceFromEndpoint: the triggers' and the sender's
// namespace is the host of the endpoint Azure reports for the namespace,
// never a name with the public cloud's suffix appended.
func TestServiceBusNamespaceFromEndpoint(t *testing.T) {
	r := infraReport(t)
	out := expr(r.file(t, "infra/modules/servicebus.bicep").Outputs["fullyQualifiedNamespace"])
	if !strings.Contains(out, "namespace.properties.serviceBusEndpoint") || strings.Contains(out, ".windows.net") {
		t.Errorf("servicebus.bicep output fullyQualifiedNamespace = %q, want the host of namespace.properties.serviceBusEndpoint", out)
	}
	app := r.file(t, "infra/modules/functionapp.bicep").Variables["appSettings"].(map[string]any)
	const setting = "ServiceBusConnection__fullyQualifiedNamespace"
	if got, want := expr(app[setting]), "serviceBusNamespaceHost"; got != want {
		t.Errorf("app setting %s = %v, want the param %s", setting, app[setting], want)
	}
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "infra", "main.bicep"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "serviceBusNamespaceHost: serviceBus.outputs.fullyQualifiedNamespace"; !strings.Contains(string(raw), want) {
		t.Errorf("infra/main.bicep does not pass %q to the function app", want)
	}
}

// TestNoPublicCloudHostNamesInBicep: every resource endpoint (storage,
// Service Bus, Key Vault) comes from the resource that serves it
// (primaryEndpoints, serviceBusEndpoint), so the deployment works in every
// Azure cloud. (Graph's base URL is a parameter with the public default,
// documented for sovereign clouds.)
func TestNoPublicCloudHostNamesInBicep(t *testing.T) {
	root := testenv.RepoRoot(t)
	suffixes := []string{".windows.net", ".azure.net"}
	err := filepath.WalkDir(filepath.Join(root, "infra"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".bicep") {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(raw), "\n") {
			code, _, _ := strings.Cut(line, "// ") // comments may name a host
			for _, s := range suffixes {
				if strings.Contains(strings.ToLower(code), s) {
					rel, _ := filepath.Rel(root, path)
					t.Errorf("%s:%d names a %s host: take it from the resource or environment()", rel, i+1, s)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

package connector

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"switchboard/handler/internal/testenv"
)

func deployment() Values {
	return FromEnv(func(k string) string {
		return map[string]string{
			"SWITCHBOARD_API_URL":          "https://func-switchboard-abc.azurewebsites.net/api",
			"PRESENCE_APP_CLIENT_ID":       "3f2b8c1e-7a4d-4e5f-9b6a-1c2d3e4f5a6b",
			"API_AUDIENCE":                 "api://switchboard.contoso.example",
			"CONNECTOR_PRIVACY_POLICY_URL": "https://contoso.example/privacy",
			"CONNECTOR_CONTACT_EMAIL":      "contact-centre@contoso.example",
		}[k]
	})
}

// The checked-in connector holds the placeholders the generator replaces
// (so the list stays true); the generated copy holds none of them and the
// deployment's values where the connector needs them.
func TestBuildFillsInTheDeployment(t *testing.T) {
	root := testenv.RepoRoot(t)
	src := filepath.Join(root, "connector")
	def, _ := os.ReadFile(filepath.Join(src, "apiDefinition.swagger.json"))
	props, _ := os.ReadFile(filepath.Join(src, "apiProperties.json"))
	for _, ph := range Placeholders {
		if !bytes.Contains(append(def, props...), []byte(ph)) {
			t.Errorf("the checked-in connector no longer holds %q: update Placeholders", ph)
		}
	}
	out := t.TempDir()
	if err := Write(src, out, deployment()); err != nil {
		t.Fatal(err)
	}
	gotDef, _ := os.ReadFile(filepath.Join(out, "apiDefinition.swagger.json"))
	gotProps, _ := os.ReadFile(filepath.Join(out, "apiProperties.json"))
	for _, ph := range append(Placeholders, "your-function-app", "api://0000") {
		if bytes.Contains(gotDef, []byte(ph)) || bytes.Contains(gotProps, []byte(ph)) {
			t.Errorf("the generated connector still holds %q", ph)
		}
	}
	var d struct {
		Host string `json:"host"`
		Info struct {
			Contact struct{ URL, Email string } `json:"contact"`
		} `json:"info"`
		Meta  []struct{ PropertyName, PropertyValue string } `json:"x-ms-connector-metadata"`
		Paths map[string]any                                 `json:"paths"`
	}
	if err := json.Unmarshal(gotDef, &d); err != nil {
		t.Fatal(err)
	}
	if d.Host != "func-switchboard-abc.azurewebsites.net" || d.Info.Contact.Email != "contact-centre@contoso.example" || d.Info.Contact.URL != "https://func-switchboard-abc.azurewebsites.net/" {
		t.Errorf("host %q contact %+v; want the deployment's", d.Host, d.Info.Contact)
	}
	meta := map[string]string{}
	for _, m := range d.Meta {
		meta[m.PropertyName] = m.PropertyValue
	}
	if meta["Privacy policy"] != "https://contoso.example/privacy" || meta["Website"] != "https://func-switchboard-abc.azurewebsites.net/" || meta["Categories"] == "" {
		t.Errorf("metadata %v; want the operator's privacy policy and website, the categories kept", meta)
	}
	var orig struct {
		Paths map[string]any `json:"paths"`
	}
	_ = json.Unmarshal(def, &orig)
	if len(d.Paths) != len(orig.Paths) || len(d.Paths) == 0 {
		t.Errorf("paths %d, want the %d of the checked-in definition", len(d.Paths), len(orig.Paths))
	}
	var p struct {
		Properties struct {
			ConnectionParameters struct {
				Token struct {
					OAuthSettings struct {
						ClientID         string `json:"clientId"`
						Properties       map[string]any
						CustomParameters map[string]struct{ Value string } `json:"customParameters"`
					} `json:"oAuthSettings"`
				} `json:"token"`
			} `json:"connectionParameters"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(gotProps, &p); err != nil {
		t.Fatal(err)
	}
	o := p.Properties.ConnectionParameters.Token.OAuthSettings
	if o.ClientID != "3f2b8c1e-7a4d-4e5f-9b6a-1c2d3e4f5a6b" || o.Properties["AzureActiveDirectoryResourceId"] != "api://switchboard.contoso.example" ||
		o.CustomParameters["resourceUri"].Value != "api://switchboard.contoso.example" {
		t.Errorf("oauth %+v; want the client id and the API audience as resource", o)
	}
}

// Without a deployment's values nothing is written, and the error names
// every setting that is missing.
func TestBuildRefusesMissingValues(t *testing.T) {
	out := filepath.Join(t.TempDir(), "connector")
	err := Write(filepath.Join(testenv.RepoRoot(t), "connector"), out, FromEnv(func(string) string { return "" }))
	if err == nil {
		t.Fatal("Write without values succeeded")
	}
	for _, name := range []string{"SWITCHBOARD_API_URL", "PRESENCE_APP_CLIENT_ID", "API_AUDIENCE", "CONNECTOR_PRIVACY_POLICY_URL", "CONNECTOR_CONTACT_EMAIL"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
	if _, serr := os.Stat(out); !os.IsNotExist(serr) {
		t.Errorf("something was written to %s", out)
	}
	v := deployment()
	v.ClientID = "00000000-0000-0000-0000-000000000000" // the placeholder given as a value
	v.ResourceURI = "api://00000000-0000-0000-0000-000000000000"
	def, _ := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "connector", "apiDefinition.swagger.json"))
	props, _ := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "connector", "apiProperties.json"))
	if _, _, err := Build(def, props, v); err == nil || !strings.Contains(err.Error(), "placeholder") {
		t.Errorf("Build with the placeholder client id: %v, want it refused", err)
	}
}

// Package connector writes a ready-to-import copy of the Power Automate
// connector in connector/ for one deployment: the checked-in definition
// keeps placeholders (no deployment's host or app registration belongs in
// the repository); Build fills in the deployment's and refuses to leave
// any placeholder behind, so that nothing placeholder is ever uploaded.
package connector

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"switchboard/handler/switchboard"
)

// Placeholders of the checked-in files: every one must be gone from what
// Build writes.
var Placeholders = []string{
	"your-function-app.azurewebsites.net",
	"00000000-0000-0000-0000-000000000000",
}

// Values are one deployment's.
type Values struct {
	// Host is the Function App's host name (from SWITCHBOARD_API_URL).
	Host string
	// ClientID is the app registration the connector signs in with.
	ClientID string
	// ResourceURI is the API's token audience (API_AUDIENCE).
	ResourceURI string
	// Website, PrivacyPolicy and ContactEmail are the operator's, shown
	// with the connector.
	Website       string
	PrivacyPolicy string
	ContactEmail  string
}

// FromEnv reads the values from azd's outputs and environment (as the
// postprovision hook sees them) or the shell: SWITCHBOARD_API_URL,
// CONNECTOR_CLIENT_ID (default PRESENCE_APP_CLIENT_ID), API_AUDIENCE
// (default api://<client id>), CONNECTOR_WEBSITE (default the app's URL),
// CONNECTOR_PRIVACY_POLICY_URL and CONNECTOR_CONTACT_EMAIL.
func FromEnv(getenv func(string) string) Values {
	v := Values{
		ClientID:      getenv("CONNECTOR_CLIENT_ID"),
		ResourceURI:   getenv("API_AUDIENCE"),
		Website:       getenv("CONNECTOR_WEBSITE"),
		PrivacyPolicy: getenv("CONNECTOR_PRIVACY_POLICY_URL"),
		ContactEmail:  getenv("CONNECTOR_CONTACT_EMAIL"),
	}
	if u, err := url.Parse(getenv("SWITCHBOARD_API_URL")); err == nil {
		v.Host = u.Host
	}
	if v.ClientID == "" {
		v.ClientID = getenv("PRESENCE_APP_CLIENT_ID")
	}
	if v.ResourceURI == "" && v.ClientID != "" {
		v.ResourceURI = "api://" + v.ClientID
	}
	if v.Website == "" && v.Host != "" {
		v.Website = "https://" + v.Host + "/"
	}
	return v
}

// check returns every missing or malformed value, named by its setting.
func (v Values) check() error {
	var errs []error
	if v.Host == "" || strings.ContainsAny(v.Host, "/ ") {
		errs = append(errs, errors.New("SWITCHBOARD_API_URL: the Function App's URL (azd env get-values after azd provision) is required"))
	}
	if _, ok := switchboard.NormalizeGUID(v.ClientID); !ok {
		errs = append(errs, fmt.Errorf("CONNECTOR_CLIENT_ID or PRESENCE_APP_CLIENT_ID: an app registration's client id (a GUID) is required, not %q", v.ClientID))
	}
	if v.ResourceURI == "" {
		errs = append(errs, errors.New("API_AUDIENCE: the API's token audience is required"))
	}
	for name, u := range map[string]string{"CONNECTOR_WEBSITE": v.Website, "CONNECTOR_PRIVACY_POLICY_URL": v.PrivacyPolicy} {
		if p, err := url.Parse(u); err != nil || p.Scheme != "https" || p.Host == "" {
			errs = append(errs, fmt.Errorf("%s: an https URL is required, not %q", name, u))
		}
	}
	if a, err := mail.ParseAddress(v.ContactEmail); err != nil || a.Address != v.ContactEmail {
		errs = append(errs, fmt.Errorf("CONNECTOR_CONTACT_EMAIL: the operator's support e-mail address is required, not %q", v.ContactEmail))
	}
	return errors.Join(errs...)
}

// Build returns the definition and properties with v filled in. Returns an
// error naming each missing value, or a placeholder left in the result.
func Build(definition, properties []byte, v Values) (def, props []byte, err error) {
	if err := v.check(); err != nil {
		return nil, nil, err
	}
	var d map[string]any
	if err := json.Unmarshal(definition, &d); err != nil {
		return nil, nil, fmt.Errorf("apiDefinition.swagger.json: %w", err)
	}
	d["host"] = v.Host
	info, _ := d["info"].(map[string]any)
	if contact, ok := info["contact"].(map[string]any); ok {
		contact["url"], contact["email"] = v.Website, v.ContactEmail
	}
	meta, _ := d["x-ms-connector-metadata"].([]any)
	for _, m := range meta {
		m, _ := m.(map[string]any)
		switch m["propertyName"] {
		case "Website":
			m["propertyValue"] = v.Website
		case "Privacy policy":
			m["propertyValue"] = v.PrivacyPolicy
		}
	}
	var p map[string]any
	if err := json.Unmarshal(properties, &p); err != nil {
		return nil, nil, fmt.Errorf("apiProperties.json: %w", err)
	}
	oauth, ok := dig(p, "properties", "connectionParameters", "token", "oAuthSettings")
	if !ok {
		return nil, nil, errors.New("apiProperties.json: no properties.connectionParameters.token.oAuthSettings")
	}
	oauth["clientId"] = v.ClientID
	if aad, ok := dig(oauth, "properties"); ok {
		aad["AzureActiveDirectoryResourceId"] = v.ResourceURI
	}
	if res, ok := dig(oauth, "customParameters", "resourceUri"); ok {
		res["value"] = v.ResourceURI
	}
	if def, err = marshal(d); err == nil {
		props, err = marshal(p)
	}
	if err != nil {
		return nil, nil, err
	}
	for _, ph := range Placeholders {
		for name, b := range map[string][]byte{"apiDefinition.swagger.json": def, "apiProperties.json": props} {
			if bytes.Contains(b, []byte(ph)) {
				return nil, nil, fmt.Errorf("%s still holds the placeholder %q: set the value it stands for", name, ph)
			}
		}
	}
	return def, props, nil
}

func dig(m map[string]any, keys ...string) (map[string]any, bool) {
	for _, k := range keys {
		next, ok := m[k].(map[string]any)
		if !ok {
			return nil, false
		}
		m = next
	}
	return m, true
}

func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	err := enc.Encode(v)
	return b.Bytes(), err
}

// Write builds the copy of the connector in dir (read from src) and
// writes it to out.
func Write(src, out string, v Values) error {
	def, err := os.ReadFile(filepath.Join(src, "apiDefinition.swagger.json"))
	if err != nil {
		return err
	}
	props, err := os.ReadFile(filepath.Join(src, "apiProperties.json"))
	if err != nil {
		return err
	}
	def, props, err = Build(def, props, v)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "apiDefinition.swagger.json"), def, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "apiProperties.json"), props, 0o644)
}

package localrunner

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
)

// Settings are the app settings: what the Functions host gives the handler
// as environment and resolves %NAME% references against.
type Settings map[string]string

// Lookup returns a setting's value. Names match exactly first, then
// case-insensitively: the host reads settings through .NET configuration,
// whose keys are case-insensitive.
func (s Settings) Lookup(name string) (string, bool) {
	if v, ok := s[name]; ok {
		return v, true
	}
	for k, v := range s {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

// Get returns a setting's value, "" when it is not set.
func (s Settings) Get(name string) string {
	v, _ := s.Lookup(name)
	return v
}

// Environ renders the settings as environment entries (NAME=value), sorted.
func (s Settings) Environ() []string {
	env := make([]string, 0, len(s))
	for k, v := range s {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env
}

var settingRef = regexp.MustCompile(`%([^%]*)%`)

// Expand replaces every %NAME% in text by the setting's value, as the host
// resolves binding properties. A reference to a setting that is missing or
// empty is an error naming it.
func (s Settings) Expand(text string) (string, error) {
	var missing []string
	out := settingRef.ReplaceAllStringFunc(text, func(ref string) string {
		name := ref[1 : len(ref)-1]
		if strings.TrimSpace(name) == "" {
			missing = append(missing, ref)
			return ref
		}
		v, ok := s.Lookup(name)
		if !ok || v == "" {
			missing = append(missing, ref)
			return ref
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("%s does not resolve to a value: no such app setting", strings.Join(missing, ", "))
	}
	return out, nil
}

// ReadSettingsFile reads the Values of a local.settings.json file (the
// format of Azure Functions Core Tools). Encrypted files and non-string
// values are refused, as Core Tools refuse them.
func ReadSettingsFile(path string) (Settings, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var file struct {
		IsEncrypted bool                       `json:"IsEncrypted"`
		Values      map[string]json.RawMessage `json:"Values"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&file); err != nil {
		return nil, fmt.Errorf("%s: not a local.settings.json file: %w", path, err)
	}
	if file.IsEncrypted {
		return nil, fmt.Errorf("%s: IsEncrypted is true: the local runner reads plain values only", path)
	}
	values := Settings{}
	for k, v := range file.Values {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			// The value itself may be a secret: name its JSON type only.
			return nil, fmt.Errorf("%s: Values.%s must be a string, not %s", path, k, jsonKind(v))
		}
		values[k] = s
	}
	return values, nil
}

// MergeEnvironment returns the app settings as Core Tools compute them: the
// file's values, each overridden by an environment variable of the same
// name, plus the rest of the environment.
func MergeEnvironment(file Settings, environ []string) Settings {
	merged := Settings{}
	for k, v := range file {
		merged[k] = v
	}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			continue
		}
		merged[k] = v
	}
	return merged
}

// jsonKind names the JSON type of raw ("a number", "an object", ...).
func jsonKind(raw json.RawMessage) string {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return "empty"
	}
	switch t[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case '"':
		return "a string"
	}
	return "a number"
}

package settings

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"sort"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"switchboard/handler/switchboard"
)

// kind is the JSON type and rule of one writable setting.
type kind int

const (
	kindBool kind = iota
	kindInt
	kindEnum
	kindGUID
	kindFilter
	kindSecret
)

type fieldSpec struct {
	kind   kind
	lo, hi int64    // kindInt
	values []string // kindEnum
}

// sectionOrder is the order of the top-level objects.
var sectionOrder = []string{"outbound", "interact", "assistant", "attendantConsole", "presenceTracking"}

// writable lists every setting a patch may change, by section.
var writable = map[string]map[string]fieldSpec{
	"outbound": {
		"maxScheduledTasksPerService": {kind: kindInt, lo: MinMaxScheduledTasksPerService, hi: MaxMaxScheduledTasksPerService},
	},
	"interact": {
		"enabled":                       {kind: kindBool},
		"acsConnectionString":           {kind: kindSecret},
		"o365UserId":                    {kind: kindGUID},
		"sessionRecoveryTimeoutSeconds": {kind: kindInt, lo: MinSessionRecoveryTimeoutSeconds, hi: MaxSessionRecoveryTimeoutSeconds},
		"authorization":                 {kind: kindEnum, values: Authorizations},
	},
	"assistant": {
		"useOwnAcsInstance":   {kind: kindBool},
		"acsConnectionString": {kind: kindSecret},
	},
	"attendantConsole": {
		"contactSearchFilter": {kind: kindFilter},
		"teamVisibility":      {kind: kindEnum, values: TeamVisibilities},
	},
	"presenceTracking": {
		"trackOverGuestAccounts": {kind: kindBool},
	},
}

// readOnly lists the fields a GET shows that no patch may set, with what to
// do instead.
var readOnly = map[string]string{
	"interact.widgetKey":               "it is generated; POST .../settings/widget-key/refresh replaces it",
	"interact.acsConnectionStringSet":  "it reports whether interact.acsConnectionString is stored; set or clear that instead",
	"interact.acsEndpoint":             "it is the endpoint of interact.acsConnectionString; set that instead",
	"assistant.acsConnectionStringSet": "it reports whether assistant.acsConnectionString is stored; set or clear that instead",
	"assistant.acsEndpoint":            "it is the endpoint of assistant.acsConnectionString; set that instead",
	"presenceTracking.account1Upn":     "the presence accounts are the deployment's configuration (PRESENCE_ACCOUNT1_UPN)",
	"presenceTracking.account2Upn":     "the presence accounts are the deployment's configuration (PRESENCE_ACCOUNT2_UPN)",
	"presenceTracking.account1Status":  "it is reported by the presence poll",
	"presenceTracking.account2Status":  "it is reported by the presence poll",
	"attendantConsole.contactSearchFilterCheck": "it is the outcome of checking attendantConsole.contactSearchFilter against Microsoft Graph when " +
		"it was saved; POST .../settings/attendant-filter-check checks a filter",
}

// Patch is a decoded JSON merge patch (RFC 7396) of settings: only known,
// writable fields, each of the right JSON type and within its range.
// Whether the patched settings as a whole are valid is Apply's to say.
type Patch struct {
	merge   []byte          // the normalized merge patch
	touched map[string]bool // dotted names the patch sets or clears
	values  map[string]any  // the decoded values, by dotted name (nil: reset)
}

// filter returns the contact search filter the patch sets ("" when it
// resets it) and whether it touches it at all.
func (p *Patch) filter() (string, bool) {
	if !p.touched[filterField] {
		return "", false
	}
	s, _ := p.values[filterField].(string)
	return s, true
}

// Touches reports whether the patch sets or clears the dotted field.
func (p *Patch) Touches(field string) bool { return p.touched[field] }

// DecodePatch reads a merge patch. A member set to null resets that setting
// to its default (a connection string: removes it). Returns EINVALID, with
// the dotted field where there is one, for anything but a JSON object of
// known sections holding known writable settings of the right type and
// range: unknown and read-only fields, 20.5 or "20" for an integer, an
// enum value in the wrong case, a malformed connection string, null for a
// whole section.
func DecodePatch(data []byte) (*Patch, error) {
	const op = "settings.DecodePatch"
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var root any
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, switchboard.Errorf(switchboard.EINVALID, op, "the patch is empty; send a JSON object such as {\"outbound\": "+
				"{\"maxScheduledTasksPerService\": 20}}")
		}
		return nil, switchboard.Errorf(switchboard.EINVALID, op, "the patch is not JSON: %s", jsonProblem(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, switchboard.Errorf(switchboard.EINVALID, op, "trailing data after the patch object")
	}
	obj, ok := root.(map[string]any)
	if !ok {
		return nil, switchboard.Errorf(switchboard.EINVALID, op, "the patch must be a JSON object (a JSON merge patch), not %s", jsonType(root))
	}
	p := &Patch{touched: map[string]bool{}, values: map[string]any{}}
	norm := map[string]any{}
	for _, sec := range sortedKeys(obj) {
		fields, known := writable[sec]
		if !known {
			return nil, switchboard.FieldError(op, sec, "unknown settings section %q; the sections are %s", clip(sec, 40), strings.Join(sectionOrder, ", "))
		}
		val := obj[sec]
		if val == nil {
			return nil, switchboard.FieldError(op, sec, "%s cannot be null: reset its settings one by one (a setting set to null returns to its default)", sec)
		}
		members, ok := val.(map[string]any)
		if !ok {
			return nil, switchboard.FieldError(op, sec, "%s must be an object, not %s", sec, jsonType(val))
		}
		out := map[string]any{}
		for _, name := range sortedKeys(members) {
			dotted := sec + "." + name
			if why, ro := readOnly[dotted]; ro {
				return nil, switchboard.FieldError(op, dotted, "%s is read-only: %s", dotted, why)
			}
			spec, known := fields[name]
			if !known {
				return nil, switchboard.FieldError(op, dotted, "unknown setting %s; the settings of %s are "+
					"%s", clip(dotted, 80), sec, strings.Join(sortedKeys(fields), ", "))
			}
			v, err := decodeValue(op, dotted, spec, members[name])
			if err != nil {
				return nil, err
			}
			out[name] = v
			p.touched[dotted] = true
			p.values[dotted] = v
		}
		norm[sec] = out
	}
	merge, err := json.Marshal(norm)
	if err != nil {
		return nil, switchboard.Wrap(switchboard.EINTERNAL, op, err)
	}
	p.merge = merge
	return p, nil
}

// decodeValue checks one member's JSON type and range and returns it in the
// form the merge needs (integers as int64); nil stays nil (reset).
func decodeValue(op, field string, spec fieldSpec, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch spec.kind {
	case kindBool:
		b, ok := v.(bool)
		if !ok {
			return nil, switchboard.FieldError(op, field, "%s must be true or false, not %s", field, jsonType(v))
		}
		return b, nil
	case kindInt:
		n, ok := v.(json.Number)
		if !ok {
			return nil, switchboard.FieldError(op, field, "%s must be an integer from %d to %d, not %s", field, spec.lo, spec.hi, jsonType(v))
		}
		i, ok := integer(n)
		if !ok {
			return nil, switchboard.FieldError(op, field, "%s must be an integer from %d to %d; got %s", field, spec.lo, spec.hi, clip(n.String(), 40))
		}
		if err := checkRange(op, field, i, spec.lo, spec.hi); err != nil {
			return nil, err
		}
		return i, nil
	}
	s, ok := v.(string)
	if !ok {
		return nil, switchboard.FieldError(op, field, "%s must be a string, not %s", field, jsonType(v))
	}
	switch spec.kind {
	case kindEnum:
		if err := checkEnum(op, field, s, spec.values); err != nil {
			return nil, err
		}
	case kindGUID:
		s = strings.ToLower(strings.TrimSpace(s))
		if err := checkGUID(op, field, s); err != nil {
			return nil, err
		}
	case kindFilter:
		s = strings.TrimSpace(s)
		if err := checkFilter(op, field, s); err != nil {
			return nil, err
		}
	case kindSecret:
		s = strings.TrimSpace(s)
		if err := checkSecret(op, field, s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// integer returns n as an int64 when it is a whole number in range: 20 and
// 20.0 and 2e1 are integers, 20.5 is not.
func integer(n json.Number) (int64, bool) {
	if i, err := n.Int64(); err == nil {
		return i, true
	}
	f, _, err := big.ParseFloat(n.String(), 10, 128, big.ToNearestEven)
	if err != nil || !f.IsInt() {
		return 0, false
	}
	i, acc := f.Int64()
	if acc != big.Exact || i == math.MinInt64 || i == math.MaxInt64 {
		return 0, false
	}
	return i, true
}

// Apply returns cur with the patch merged in (RFC 7396), after checking the
// result as a whole: nothing is half-applied. The widget key is kept.
// Returns EINVALID naming the field when the result breaks a rule.
func (p *Patch) Apply(cur Settings) (Settings, error) {
	const op = "settings.Apply"
	base, err := json.Marshal(toDoc(cur))
	if err != nil {
		return Settings{}, switchboard.Wrap(switchboard.EINTERNAL, op, err)
	}
	merged, err := jsonpatch.MergePatch(base, p.merge)
	if err != nil {
		return Settings{}, switchboard.Wrap(switchboard.EINTERNAL, op, errors.New("merging the patch failed"))
	}
	d := toDoc(Defaults())
	if err := json.Unmarshal(merged, &d); err != nil {
		return Settings{}, switchboard.Wrap(switchboard.EINTERNAL, op, errors.New("reading the merged settings failed"))
	}
	next := fromDoc(d)
	next.Interact.WidgetKey = cur.Interact.WidgetKey
	next.AttendantConsole.ContactSearchFilterCheck = cur.AttendantConsole.ContactSearchFilterCheck
	if err := Validate(next); err != nil {
		// The rule that ties a switch to its connection string is broken
		// by whichever of the two the patch touched: name that one.
		var e *switchboard.Error
		if errors.As(err, &e) {
			for sw, cs := range map[string]string{
				"interact.enabled":            "interact.acsConnectionString",
				"assistant.useOwnAcsInstance": "assistant.acsConnectionString",
			} {
				if e.Field == sw && !p.Touches(sw) && p.Touches(cs) {
					return Settings{}, switchboard.FieldError(op, cs, "%s cannot be removed while %s is true: set %s to false in the same patch", cs, sw, sw)
				}
			}
			c := *e
			c.Op = op
			return Settings{}, &c
		}
		return Settings{}, err
	}
	return next, nil
}

// doc is the merge-patch form of the writable settings. It holds the
// connection strings in clear and is never rendered: only Apply uses it.
type doc struct {
	Outbound struct {
		MaxScheduledTasksPerService int `json:"maxScheduledTasksPerService"`
	} `json:"outbound"`
	Interact struct {
		Enabled                       bool   `json:"enabled"`
		ACSConnectionString           string `json:"acsConnectionString,omitempty"`
		O365UserID                    string `json:"o365UserId"`
		SessionRecoveryTimeoutSeconds int    `json:"sessionRecoveryTimeoutSeconds"`
		Authorization                 string `json:"authorization"`
	} `json:"interact"`
	Assistant struct {
		UseOwnACSInstance   bool   `json:"useOwnAcsInstance"`
		ACSConnectionString string `json:"acsConnectionString,omitempty"`
	} `json:"assistant"`
	AttendantConsole struct {
		ContactSearchFilter string `json:"contactSearchFilter"`
		TeamVisibility      string `json:"teamVisibility"`
	} `json:"attendantConsole"`
	PresenceTracking struct {
		TrackOverGuestAccounts bool `json:"trackOverGuestAccounts"`
	} `json:"presenceTracking"`
}

func toDoc(s Settings) doc {
	var d doc
	d.Outbound.MaxScheduledTasksPerService = s.Outbound.MaxScheduledTasksPerService
	d.Interact.Enabled = s.Interact.Enabled
	d.Interact.ACSConnectionString = s.Interact.ACSConnectionString.Reveal()
	d.Interact.O365UserID = s.Interact.O365UserID
	d.Interact.SessionRecoveryTimeoutSeconds = s.Interact.SessionRecoveryTimeoutSeconds
	d.Interact.Authorization = s.Interact.Authorization
	d.Assistant.UseOwnACSInstance = s.Assistant.UseOwnACSInstance
	d.Assistant.ACSConnectionString = s.Assistant.ACSConnectionString.Reveal()
	d.AttendantConsole.ContactSearchFilter = s.AttendantConsole.ContactSearchFilter
	d.AttendantConsole.TeamVisibility = s.AttendantConsole.TeamVisibility
	d.PresenceTracking.TrackOverGuestAccounts = s.PresenceTracking.TrackOverGuestAccounts
	return d
}

func fromDoc(d doc) Settings {
	return Settings{
		Outbound: Outbound{MaxScheduledTasksPerService: d.Outbound.MaxScheduledTasksPerService},
		Interact: Interact{
			Enabled:                       d.Interact.Enabled,
			ACSConnectionString:           Secret(d.Interact.ACSConnectionString),
			O365UserID:                    d.Interact.O365UserID,
			SessionRecoveryTimeoutSeconds: d.Interact.SessionRecoveryTimeoutSeconds,
			Authorization:                 d.Interact.Authorization,
		},
		Assistant: Assistant{
			UseOwnACSInstance:   d.Assistant.UseOwnACSInstance,
			ACSConnectionString: Secret(d.Assistant.ACSConnectionString),
		},
		AttendantConsole: AttendantConsole{
			ContactSearchFilter: d.AttendantConsole.ContactSearchFilter,
			TeamVisibility:      d.AttendantConsole.TeamVisibility,
		},
		PresenceTracking: PresenceTracking{TrackOverGuestAccounts: d.PresenceTracking.TrackOverGuestAccounts},
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// jsonProblem describes a JSON syntax error without quoting the input.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("malformed JSON at byte %d", se.Offset)
	}
	var ute *json.UnmarshalTypeError
	if errors.As(err, &ute) {
		return fmt.Sprintf("unexpected %s at byte %d", ute.Value, ute.Offset)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "the JSON ends early"
	}
	return "malformed JSON"
}

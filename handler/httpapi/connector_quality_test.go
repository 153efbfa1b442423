package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode"

	"switchboard/handler/outbound"
	"switchboard/handler/switchboard"
)

// The connector keeps Microsoft's published rules for custom and certified
// connectors (the Power Platform Swagger Validator and the certification
// checklist): contact and connector metadata, one response schema per
// operation and only on its success response, every parameter and
// property titled in Title Case and described, unique PascalCase
// operationIds, path parameters encoded once, tags, summaries of at most
// 80 characters without a final period.

func loadRawSwagger(t *testing.T) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "connector", "apiDefinition.swagger.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// smallWords stay lower case inside a title (Chicago style, as Microsoft's
// string guidance has it).
var smallWords = map[string]bool{"a": true, "an": true, "and": true, "as": true, "at": true, "but": true, "by": true, "for": true,
	"in": true, "of": true, "on": true, "or": true, "per": true, "the": true, "to": true, "with": true}

// titleCase reports whether s is in Title Case: every word capitalized
// but small words after the first.
func titleCase(s string) bool {
	words := strings.Fields(s)
	if len(words) == 0 {
		return false
	}
	for i, w := range words {
		if i > 0 && smallWords[w] {
			continue
		}
		r := []rune(strings.TrimLeft(w, "(\"'"))
		if len(r) == 0 || (unicode.IsLetter(r[0]) && !unicode.IsUpper(r[0])) {
			return false
		}
	}
	return true
}

func TestTitleCase(t *testing.T) {
	for s, want := range map[string]bool{"Page Size": true, "Page size": false, "Max Queue Time (Seconds)": true, "Position in the Queue": true,
		"In the Queue": true, "Due Date Time (UTC)": true, "Task ID": true, "hold": false, "": false, "Max (seconds)": false} {
		if got := titleCase(s); got != want {
			t.Errorf("titleCase(%q) = %v, want %v", s, got, want)
		}
	}
}

var pascalCase = regexp.MustCompile(`^[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)*$`)

func TestConnectorQualityRules(t *testing.T) {
	doc := loadRawSwagger(t)
	info, _ := doc["info"].(map[string]any)
	if d, _ := info["description"].(string); len(d) < 30 || len(d) > 500 {
		t.Errorf("info.description has %d characters, want 30 to 500", len(d))
	}
	contact, _ := info["contact"].(map[string]any)
	for _, k := range []string{"name", "url", "email"} {
		if s, _ := contact[k].(string); s == "" {
			t.Errorf("info.contact.%s is required", k)
		}
	}
	meta := map[string]string{}
	list, _ := doc["x-ms-connector-metadata"].([]any)
	for _, m := range list {
		m, _ := m.(map[string]any)
		name, _ := m["propertyName"].(string)
		value, _ := m["propertyValue"].(string)
		meta[name] = value
	}
	for _, k := range []string{"Website", "Privacy policy", "Categories"} {
		if meta[k] == "" {
			t.Errorf("x-ms-connector-metadata: %s is required", k)
		}
	}
	tags := map[string]bool{}
	for _, tg := range doc["tags"].([]any) {
		tg := tg.(map[string]any)
		if d, _ := tg["description"].(string); d == "" {
			t.Errorf("tag %v has no description", tg["name"])
		}
		tags[tg["name"].(string)] = true
	}

	ids := map[string]string{}
	paths := doc["paths"].(map[string]any)
	for path, item := range paths {
		for method, o := range item.(map[string]any) {
			if strings.HasPrefix(method, "x-") {
				continue
			}
			op := o.(map[string]any)
			key := strings.ToUpper(method) + " " + path
			id, _ := op["operationId"].(string)
			if !pascalCase.MatchString(id) {
				t.Errorf("%s: operationId %q is not PascalCase", key, id)
			}
			if other, dup := ids[id]; dup {
				t.Errorf("%s: operationId %s also names %s", key, id, other)
			}
			ids[id] = key
			summary, _ := op["summary"].(string)
			desc, _ := op["description"].(string)
			if summary == "" || len(summary) > 80 || strings.HasSuffix(summary, ".") || desc == "" || desc == summary {
				t.Errorf("%s: summary %q (at most 80 characters, no final period) and a description that says more are required", key, summary)
			}
			opTags, _ := op["tags"].([]any)
			if len(opTags) == 0 {
				t.Errorf("%s: no tags", key)
			}
			for _, tg := range opTags {
				if !tags[tg.(string)] {
					t.Errorf("%s: tag %v is not declared in tags", key, tg)
				}
			}
			var schemas []string
			hasBody := false
			for code, r := range op["responses"].(map[string]any) {
				r := r.(map[string]any)
				if d, _ := r["description"].(string); d == "" {
					t.Errorf("%s %s: a response needs a description", key, code)
				}
				if _, ok := r["schema"]; ok {
					schemas = append(schemas, code)
				}
				hasBody = hasBody || code == "200" || code == "201" || code == "202"
			}
			switch {
			case len(schemas) > 1:
				t.Errorf("%s: schemas on %v: one operation, one schema", key, schemas)
			case len(schemas) == 1 && !strings.HasPrefix(schemas[0], "2"):
				t.Errorf("%s: the schema is on %s, not on the success response", key, schemas[0])
			case len(schemas) == 0 && hasBody:
				t.Errorf("%s: its success response has no schema", key)
			}
			for _, p := range op["parameters"].([]any) {
				p := p.(map[string]any)
				where := fmt.Sprintf("%s parameter %v", key, p["name"])
				checkTitled(t, where, p)
				if p["in"] == "path" && p["x-ms-url-encoding"] != "single" {
					t.Errorf("%s: path parameters need x-ms-url-encoding single", where)
				}
				if s, ok := p["schema"].(map[string]any); ok {
					checkSchema(t, doc, where, s)
				}
			}
		}
	}
	for name, def := range doc["definitions"].(map[string]any) {
		def := def.(map[string]any)
		if d, _ := def["description"].(string); d == "" {
			t.Errorf("definition %s: no description", name)
		}
		checkSchema(t, doc, "definition "+name, def)
	}
}

// checkTitled checks an x-ms-summary in Title Case and a description.
func checkTitled(t *testing.T, where string, v map[string]any) {
	t.Helper()
	if s, _ := v["x-ms-summary"].(string); !titleCase(s) {
		t.Errorf("%s: x-ms-summary %q is missing or not in Title Case", where, s)
	}
	if d, _ := v["description"].(string); strings.TrimSpace(d) == "" {
		t.Errorf("%s: description is required", where)
	}
}

// checkSchema checks every property (and array item of scalars) of s.
func checkSchema(t *testing.T, doc map[string]any, where string, s map[string]any) {
	t.Helper()
	props, _ := s["properties"].(map[string]any)
	for name, p := range props {
		p := p.(map[string]any)
		w := where + "." + name
		if _, ref := p["$ref"]; ref {
			continue // described by its definition
		}
		checkTitled(t, w, p)
		checkSchema(t, doc, w, p)
	}
	if it, ok := s["items"].(map[string]any); ok {
		if _, ref := it["$ref"]; !ref {
			if it["type"] != "object" {
				checkTitled(t, where+"[]", it)
			}
			checkSchema(t, doc, where+"[]", it)
		}
	}
}

// cloudEvent is the CloudEvents envelope as events.CloudEvent writes it.
type cloudEvent[T any] struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	Type            string    `json:"type"`
	Subject         string    `json:"subject"`
	Time            time.Time `json:"time"`
	Sequence        string    `json:"sequence"`
	DataContentType string    `json:"datacontenttype"`
	Data            T         `json:"data"`
}

// The two triggers subscribe as Power Automate expects of a webhook
// trigger: x-ms-trigger single, the callback URL property hidden and
// marked, 201 with Location, the event's schema as notification content,
// services and event types picked from list operations.
func TestConnectorTriggers(t *testing.T) {
	doc := loadRawSwagger(t)
	typed := loadSwagger(t)
	paths := doc["paths"].(map[string]any)
	defs := doc["definitions"].(map[string]any)
	ops := map[string]bool{}
	for _, item := range paths {
		for m, o := range item.(map[string]any) {
			if !strings.HasPrefix(m, "x-") {
				ops[o.(map[string]any)["operationId"].(string)] = true
			}
		}
	}
	for _, tc := range []struct {
		path, summary, resource, content string
		data                             any
	}{
		{"/tenants/{t}/subscriptions/triggers/conversation", "When a conversation changes state", "conversation", "ConversationCloudEvent", nil},
		{"/tenants/{t}/subscriptions/triggers/outboundTask", "When an outbound task changes state", "outboundTask", "OutboundTaskCloudEvent", cloudEvent[switchboard.OutboundTaskEventData]{}},
	} {
		item, ok := paths[tc.path].(map[string]any)
		if !ok {
			t.Errorf("no trigger path %s", tc.path)
			continue
		}
		post := item["post"].(map[string]any)
		if post["x-ms-trigger"] != "single" || post["summary"] != tc.summary {
			t.Errorf("%s: x-ms-trigger %v summary %v; want single, %q", tc.path, post["x-ms-trigger"], post["summary"], tc.summary)
		}
		created, _ := post["responses"].(map[string]any)["201"].(map[string]any)
		loc, _ := created["headers"].(map[string]any)["Location"].(map[string]any)
		if loc["type"] != "string" {
			t.Errorf("%s: 201 must document the Location header (Power Automate deletes it when the flow is turned off)", tc.path)
		}
		content, _ := item["x-ms-notification-content"].(map[string]any)
		schema, _ := content["schema"].(map[string]any)
		if schema["$ref"] != "#/definitions/"+tc.content {
			t.Errorf("%s: x-ms-notification-content schema %v, want %s", tc.path, schema, tc.content)
		}
		if tc.data != nil {
			compareSchema(t, typed, tc.content, reflect.TypeOf(tc.data), typed.Definitions[tc.content], true)
		}
		ce := defs[tc.content].(map[string]any)["properties"].(map[string]any)
		var envelope []string
		for k := range ce {
			envelope = append(envelope, k)
		}
		sort.Strings(envelope)
		if want := []string{"data", "datacontenttype", "id", "sequence", "source", "specversion", "subject", "time", "type"}; !slices.Equal(envelope, want) {
			t.Errorf("%s: envelope %v, want the CloudEvents fields %v", tc.content, envelope, want)
		}

		var body map[string]any
		for _, p := range post["parameters"].([]any) {
			if p := p.(map[string]any); p["in"] == "body" {
				ref := p["schema"].(map[string]any)["$ref"].(string)
				body = defs[strings.TrimPrefix(ref, "#/definitions/")].(map[string]any)
			}
		}
		props := body["properties"].(map[string]any)
		url := props["url"].(map[string]any)
		if url["x-ms-notification-url"] != true || url["x-ms-visibility"] != "internal" {
			t.Errorf("%s: url must be x-ms-notification-url true and x-ms-visibility internal: %v", tc.path, url)
		}
		for field, list := range map[string]string{"events": "ListEventTypes", "services": "ListServices"} {
			items := props[field].(map[string]any)["items"].(map[string]any)
			dv, _ := items["x-ms-dynamic-values"].(map[string]any)
			if dv["operationId"] != list || !ops[list] {
				t.Errorf("%s: %s picked from %v, want the list operation %s", tc.path, field, dv["operationId"], list)
			}
			if field == "events" {
				if r := dv["parameters"].(map[string]any)["resource"].(map[string]any)["value"]; r != tc.resource {
					t.Errorf("%s: event types of %v, want %s", tc.path, r, tc.resource)
				}
			}
		}
	}
	// The pickers' value paths are fields of the list replies.
	if _, ok := jsonFields(reflect.TypeOf(EventType{}))["title"]; !ok {
		t.Error("EventType has no title for the event picker")
	}
}

// The connector's enums of the events and the PATCH are the domain's.
func TestConnectorEventsEnumsMatchTheDomain(t *testing.T) {
	doc := loadSwagger(t)
	if got, want := prop(t, doc, "EventSubscription", "state").Enum, []string{switchboard.SubscriptionActive, switchboard.SubscriptionFailing, switchboard.SubscriptionDisabled}; !slices.Equal(got, want) {
		t.Errorf("subscription state enum %v, want %v", got, want)
	}
	if got, want := prop(t, doc, "EventDelivery", "state").Enum, []string{switchboard.DeliveryPending, switchboard.DeliveryDelivered, switchboard.DeliveryDeadLettered}; !slices.Equal(got, want) {
		t.Errorf("delivery state enum %v, want %v", got, want)
	}
	if got := prop(t, doc, "OutboundTaskEventData", "previousState").Enum; !slices.Equal(got, outbound.States) {
		t.Errorf("previousState enum %v, want %v", got, outbound.States)
	}
	if got := queryParam(t, doc, "ListEventTypes", "resource").Enum; !slices.Equal(got, eventResources()) {
		t.Errorf("resource enum %v, want %v", got, eventResources())
	}
	patch := doc.Definitions["OutboundTaskPatch"]
	var names []string
	for n := range patch.Properties {
		names = append(names, n)
	}
	if want := slices.Sorted(slices.Values(outbound.Patchable)); !slices.Equal(slices.Sorted(slices.Values(names)), want) {
		t.Errorf("PATCH properties %v, want the changeable fields %v", names, want)
	}
	for name, lohi := range map[string][2]int{"priority": {outbound.MinPriority, outbound.MaxPriority},
		"maxQueueTimeSeconds": {outbound.MinMaxQueueTimeSeconds, outbound.MaxMaxQueueTimeSeconds}} {
		p := prop(t, doc, "OutboundTaskPatch", name)
		if p.Minimum == nil || p.Maximum == nil || *p.Minimum != lohi[0] || *p.Maximum != lohi[1] {
			t.Errorf("PATCH %s bounds %v..%v, want %d..%d", name, p.Minimum, p.Maximum, lohi[0], lohi[1])
		}
	}
}

// The PATCH schema's bounds are what the handler enforces: each accepted,
// one past it refused naming the field.
func TestConnectorPatchBoundsAreTheValidators(t *testing.T) {
	doc := loadSwagger(t)
	e := newOutboundEnv(t, 50)
	_, task, _ := e.post(`{"destination": "+41440000000", "dueDateTimeUtc": "2026-11-23T12:00:00Z"}`)
	for name, p := range doc.Definitions["OutboundTaskPatch"].Properties {
		var cases []struct {
			v    any
			want int
		}
		switch {
		case p.Minimum != nil && p.Maximum != nil:
			cases = append(cases, struct {
				v    any
				want int
			}{*p.Minimum, 200}, struct {
				v    any
				want int
			}{*p.Maximum, 200}, struct {
				v    any
				want int
			}{*p.Minimum - 1, 400}, struct {
				v    any
				want int
			}{*p.Maximum + 1, 400})
		case p.MaxItems != nil:
			items := make([]string, *p.MaxItems+1)
			for i := range items {
				items[i] = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
			}
			cases = append(cases, struct {
				v    any
				want int
			}{items[:*p.MaxItems], 200}, struct {
				v    any
				want int
			}{items, 400})
		default:
			continue
		}
		for _, c := range cases {
			body, _ := json.Marshal(map[string]any{name: c.v})
			resp, _, b := e.patch(task.ID, "application/json", "", string(body))
			if resp.StatusCode != c.want || (c.want == http.StatusBadRequest && outboundProblem(t, b).Field != name) {
				t.Errorf("PATCH %s: %d %s, want %d", body, resp.StatusCode, b, c.want)
			}
		}
	}
}

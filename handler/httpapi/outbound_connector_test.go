package httpapi

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"switchboard/handler/outbound"
	"switchboard/handler/routing"
	"switchboard/handler/switchboard"
)

// The Power Automate connector in connector/ must describe the real API:
// its routes exist as function.json routes and Go routes, its schemas have
// the fields of the Go request and reply types, and its bounds are the
// validator's (checked by sending the bounds to the real handler).

type swaggerSchema struct {
	Ref                  string                    `json:"$ref"`
	Type                 string                    `json:"type"`
	Format               string                    `json:"format"`
	Required             []string                  `json:"required"`
	Properties           map[string]*swaggerSchema `json:"properties"`
	Items                *swaggerSchema            `json:"items"`
	AdditionalProperties *swaggerSchema            `json:"additionalProperties"`
	Enum                 []string                  `json:"enum"`
	Minimum              *int                      `json:"minimum"`
	Maximum              *int                      `json:"maximum"`
	MaxLength            *int                      `json:"maxLength"`
	MaxItems             *int                      `json:"maxItems"`
	MaxProperties        *int                      `json:"maxProperties"`
	Default              any                       `json:"default"`
	Nullable             bool                      `json:"x-nullable"`
}

type swaggerParameter struct {
	Name     string         `json:"name"`
	In       string         `json:"in"`
	Required bool           `json:"required"`
	Type     string         `json:"type"`
	Format   string         `json:"format"`
	Enum     []string       `json:"enum"`
	Minimum  *int           `json:"minimum"`
	Maximum  *int           `json:"maximum"`
	Default  any            `json:"default"`
	Schema   *swaggerSchema `json:"schema"`
}

type swaggerOperation struct {
	OperationID string                     `json:"operationId"`
	Summary     string                     `json:"summary"`
	Description string                     `json:"description"`
	Parameters  []swaggerParameter         `json:"parameters"`
	Responses   map[string]json.RawMessage `json:"responses"`
	Pageable    *struct {
		NextLinkName string `json:"nextLinkName"`
	} `json:"x-ms-pageable"`
}

type swaggerDoc struct {
	Swagger             string                                 `json:"swagger"`
	Host                string                                 `json:"host"`
	BasePath            string                                 `json:"basePath"`
	Schemes             []string                               `json:"schemes"`
	Paths               map[string]map[string]swaggerOperation `json:"paths"`
	Definitions         map[string]*swaggerSchema              `json:"definitions"`
	SecurityDefinitions map[string]map[string]any              `json:"securityDefinitions"`
	Security            []map[string][]string                  `json:"security"`
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		if parent := filepath.Dir(dir); parent != dir {
			dir = parent
			continue
		}
		t.Fatal("no go.mod above the working directory")
	}
}

func loadSwagger(t *testing.T) swaggerDoc {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "connector", "apiDefinition.swagger.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc swaggerDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("apiDefinition.swagger.json: %v", err)
	}
	return doc
}

// resolve follows a $ref to its definition.
func (d swaggerDoc) resolve(t *testing.T, s *swaggerSchema) *swaggerSchema {
	t.Helper()
	if s == nil || s.Ref == "" {
		return s
	}
	def, ok := d.Definitions[strings.TrimPrefix(s.Ref, "#/definitions/")]
	if !ok {
		t.Fatalf("dangling $ref %s", s.Ref)
	}
	return def
}

// httpBinding is a function's httpTrigger binding.
type httpBinding struct {
	function  string
	Type      string   `json:"type"`
	Route     string   `json:"route"`
	Methods   []string `json:"methods"`
	AuthLevel string   `json:"authLevel"`
}

// httpBindings returns every httpTrigger binding under functions/.
func httpBindings(t *testing.T) []httpBinding {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot(t), "functions", "*", "function.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no function.json files (%v)", err)
	}
	var out []httpBinding
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var fj struct {
			Bindings []httpBinding `json:"bindings"`
		}
		if err := json.Unmarshal(raw, &fj); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, b := range fj.Bindings {
			if b.Type == "httpTrigger" {
				b.function = filepath.Base(filepath.Dir(f))
				out = append(out, b)
			}
		}
	}
	return out
}

// functionRoutes returns "METHOD /api/route" for every httpTrigger binding
// under functions/, with the function's name.
func functionRoutes(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, b := range httpBindings(t) {
		for _, m := range b.Methods {
			out[strings.ToUpper(m)+" /api/"+b.Route] = b.function
		}
	}
	return out
}

var pathParam = regexp.MustCompile(`\{([^}]+)\}`)

// pendingRoutes are described in the connector ahead of their route: GET
// .../services (SPEC section 10) comes with the distribution work; the
// triggers' service pickers need it.
var pendingRoutes = map[string]bool{"GET /api/tenants/{t}/services": true}

// functionRoute finds the function.json route serving key: the same
// method and path, a route parameter matching any one segment (a trigger's
// .../triggers/conversation is served by .../triggers/{resource}).
func functionRoute(routes map[string]string, key string) (string, bool) {
	if _, ok := routes[key]; ok {
		return key, true
	}
	want := strings.Split(key, "/")
	for r := range routes {
		got := strings.Split(r, "/")
		if len(got) != len(want) {
			continue
		}
		match := true
		for i := range got {
			if got[i] != want[i] && !pathParam.MatchString(got[i]) {
				match = false
				break
			}
		}
		if match {
			return r, true
		}
	}
	return "", false
}

func TestConnectorRoutesMatchFunctions(t *testing.T) {
	doc := loadSwagger(t)
	if doc.Swagger != "2.0" || doc.BasePath != "/api" || doc.Host == "" || !slices.Equal(doc.Schemes, []string{"https"}) {
		t.Errorf("swagger %q basePath %q host %q schemes %v; want 2.0, /api, a host, https", doc.Swagger, doc.BasePath, doc.Host, doc.Schemes)
	}
	routes := functionRoutes(t)
	covered := map[string]bool{}
	ids := map[string]bool{}
	rt := NewRouter(slog.New(slog.DiscardHandler), nil)
	(&OutboundAPI{}).Register(rt)
	(&RoutingAPI{Now: time.Now}).Register(rt)
	(&DistributionAPI{Now: time.Now}).Register(rt)
	(&EventsAPI{}).Register(rt)
	for path, ops := range doc.Paths {
		for method, op := range ops {
			if strings.HasPrefix(method, "x-") {
				continue // x-ms-notification-content
			}
			key := strings.ToUpper(method) + " " + doc.BasePath + path
			route, ok := functionRoute(routes, key)
			covered[route] = true
			if !ok && !pendingRoutes[key] {
				t.Errorf("%s (%s) has no function.json route", key, op.OperationID)
			}
			if pendingRoutes[key] {
				continue // described ahead of its route (see pendingRoutes)
			}
			if op.OperationID == "" || ids[op.OperationID] || op.Summary == "" || op.Description == "" {
				t.Errorf("%s: operationId %q (unique?), summary and description are required", key, op.OperationID)
			}
			ids[op.OperationID] = true
			declared := map[string]bool{}
			for _, p := range op.Parameters {
				if p.In == "path" {
					declared[p.Name] = true
					if !p.Required || p.Type != "string" {
						t.Errorf("%s: path parameter %s must be a required string", key, p.Name)
					}
				}
			}
			for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
				if !declared[m[1]] {
					t.Errorf("%s: path parameter {%s} not declared", key, m[1])
				}
				delete(declared, m[1])
			}
			if len(declared) > 0 {
				t.Errorf("%s: path parameters %v are not in the path", key, declared)
			}
			ok2xx := false
			for code := range op.Responses {
				ok2xx = ok2xx || strings.HasPrefix(code, "2")
			}
			if !ok2xx {
				t.Errorf("%s: no success response", key)
			}
			// The Go router serves it.
			url := pathParam.ReplaceAllStringFunc(doc.BasePath+path, func(p string) string {
				if p == "{t}" {
					return "6a1d2c3b-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
				}
				return "x1"
			})
			rec := httptest.NewRecorder()
			rt.ServeHTTP(rec, httptest.NewRequest(strings.ToUpper(method), url, strings.NewReader("{")))
			if rec.Code == http.StatusMethodNotAllowed || strings.Contains(rec.Body.String(), "no such route") {
				t.Errorf("%s: the Go router does not serve it (%d %s)", key, rec.Code, rec.Body)
			}
		}
	}
	// Every outbound, events and waiting-line route is in the connector.
	for key, fn := range routes {
		if (strings.HasPrefix(fn, "Outbound") || strings.HasPrefix(fn, "Subscription") || fn == "EventTypes" || isDistributionRoute(key)) && !covered[key] {
			t.Errorf("%s (function %s) is missing from the connector", key, fn)
		}
	}
}

// jsonFields returns the JSON names of a struct's fields and whether each
// is omitted when empty.
func jsonFields(typ reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Anonymous && f.Tag.Get("json") == "" && f.Type.Kind() == reflect.Struct {
			for n, sf := range jsonFields(f.Type) { // encoding/json inlines it
				out[n] = sf
			}
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f
	}
	return out
}

// compareSchema checks that schema describes values of typ: the same
// properties, of matching types, recursively; with reply, every field
// that is always present is required, and one that may be null (a pointer
// not omitted when empty) is x-nullable.
func compareSchema(t *testing.T, doc swaggerDoc, where string, typ reflect.Type, s *swaggerSchema, reply bool) {
	compareField(t, doc, where, typ, s, reply, false)
}

func compareField(t *testing.T, doc swaggerDoc, where string, typ reflect.Type, s *swaggerSchema, reply, omitEmpty bool) {
	t.Helper()
	s = doc.resolve(t, s)
	if s == nil {
		t.Errorf("%s: no schema", where)
		return
	}
	nullable := false
	if typ.Kind() == reflect.Pointer {
		typ, nullable = typ.Elem(), true
	}
	if nullable && reply && !omitEmpty && !s.Nullable {
		t.Errorf("%s: a reply value that may be null should be x-nullable", where)
	}
	switch {
	case typ == reflect.TypeOf(time.Time{}):
		if s.Type != "string" || s.Format != "date-time" {
			t.Errorf("%s: type %s/%s, want string/date-time", where, s.Type, s.Format)
		}
	case typ.Kind() == reflect.Struct:
		if s.Type != "object" {
			t.Errorf("%s: type %q, want object", where, s.Type)
		}
		fields := jsonFields(typ)
		var goNames, schemaNames []string
		for n := range fields {
			goNames = append(goNames, n)
		}
		for n := range s.Properties {
			schemaNames = append(schemaNames, n)
		}
		sort.Strings(goNames)
		sort.Strings(schemaNames)
		if !slices.Equal(goNames, schemaNames) {
			t.Errorf("%s: properties %v, Go fields %v", where, schemaNames, goNames)
		}
		var always []string
		for n, f := range fields {
			if p, ok := s.Properties[n]; ok {
				compareField(t, doc, where+"."+n, f.Type, p, reply, strings.Contains(f.Tag.Get("json"), "omitempty"))
			}
			if !strings.Contains(f.Tag.Get("json"), "omitempty") {
				always = append(always, n)
			}
		}
		if reply {
			sort.Strings(always)
			req := slices.Sorted(slices.Values(s.Required))
			if !slices.Equal(req, always) {
				t.Errorf("%s: required %v, want the fields always present %v", where, req, always)
			}
		}
	case typ.Kind() == reflect.Slice:
		if s.Type != "array" {
			t.Errorf("%s: type %q, want array", where, s.Type)
			return
		}
		compareSchema(t, doc, where+"[]", typ.Elem(), s.Items, reply)
	case typ.Kind() == reflect.Map:
		if s.Type != "object" || s.AdditionalProperties == nil {
			t.Errorf("%s: want an object with additionalProperties", where)
			return
		}
		compareSchema(t, doc, where+"{}", typ.Elem(), s.AdditionalProperties, reply)
	case typ.Kind() == reflect.String:
		if s.Type != "string" {
			t.Errorf("%s: type %q, want string", where, s.Type)
		}
	case typ.Kind() == reflect.Int || typ.Kind() == reflect.Int64:
		if s.Type != "integer" {
			t.Errorf("%s: type %q, want integer", where, s.Type)
		}
	case typ.Kind() == reflect.Bool:
		if s.Type != "boolean" {
			t.Errorf("%s: type %q, want boolean", where, s.Type)
		}
	default:
		t.Errorf("%s: Go type %s not compared", where, typ)
	}
}

func bodySchema(t *testing.T, op swaggerOperation) *swaggerSchema {
	t.Helper()
	for _, p := range op.Parameters {
		if p.In == "body" {
			return p.Schema
		}
	}
	t.Fatalf("%s: no body parameter", op.OperationID)
	return nil
}

func replySchema(t *testing.T, op swaggerOperation, code string) *swaggerSchema {
	t.Helper()
	var r struct {
		Schema *swaggerSchema `json:"schema"`
	}
	raw, ok := op.Responses[code]
	if !ok || json.Unmarshal(raw, &r) != nil || r.Schema == nil {
		t.Fatalf("%s: no %s response schema", op.OperationID, code)
	}
	return r.Schema
}

func operation(t *testing.T, doc swaggerDoc, id string) swaggerOperation {
	t.Helper()
	for _, ops := range doc.Paths {
		for _, op := range ops {
			if op.OperationID == id && id != "" {
				return op
			}
		}
	}
	t.Fatalf("no operation %s", id)
	return swaggerOperation{}
}

func TestConnectorSchemasMatchGoTypes(t *testing.T) {
	doc := loadSwagger(t)
	for _, tc := range []struct {
		op    string
		code  string // "" for the request body
		typ   any
		reply bool
	}{
		{"ScheduleOutboundTask", "", OutboundTaskRequest{}, false},
		{"ScheduleOutboundTask", "202", OutboundTask{}, true},
		{"ListOutboundTasks", "200", OutboundTaskList{}, true},
		{"GetOutboundTask", "200", OutboundTask{}, true},
		{"CancelOutboundTask", "200", OutboundTask{}, true},
		{"CompleteOutboundTask", "", OutboundTaskCompletion{}, false},
		{"CompleteOutboundTask", "200", OutboundTask{}, true},
		{"UpdateOutboundTask", "", outbound.PatchDoc{}, false},
		{"UpdateOutboundTask", "200", OutboundTask{}, true},
		{"CreateSubscription", "", switchboard.EventSubscriptionRequest{}, false},
		{"CreateSubscription", "201", switchboard.EventSubscription{}, true},
		{"ListSubscriptions", "200", EventSubscriptionList{}, true},
		{"GetSubscription", "200", switchboard.EventSubscription{}, true},
		{"ListSubscriptionDeliveries", "200", EventDeliveryList{}, true},
		{"ListEventTypes", "200", EventTypeList{}, true},
		{"ConversationChangedTrigger", "", switchboard.EventSubscriptionRequest{}, false},
		{"ConversationChangedTrigger", "201", switchboard.EventSubscription{}, true},
		{"OutboundTaskChangedTrigger", "", switchboard.EventSubscriptionRequest{}, false},
		{"OutboundTaskChangedTrigger", "201", switchboard.EventSubscription{}, true},
		{"RouteConversation", "", routeBody{}, false},
		{"RouteConversation", "200", routeJSON{}, true},
		{"EnqueueConversation", "", enqueueBody{}, false},
		{"EnqueueConversation", "202", conversationJSON{}, true},
		{"GetQueue", "200", queueReplyJSON{}, true},
		{"GetConversation", "200", conversationJSON{}, true},
		{"AcceptOffer", "", offerActionBody{}, false},
		{"AcceptOffer", "200", conversationJSON{}, true},
		{"DeclineOffer", "", offerActionBody{}, false},
		{"DeclineOffer", "200", conversationJSON{}, true},
		{"GetAgentState", "200", agentJSONView{}, true},
	} {
		t.Run(tc.op+" "+tc.code, func(t *testing.T) {
			op := operation(t, doc, tc.op)
			s := bodySchema
			if tc.code != "" {
				s = func(t *testing.T, op swaggerOperation) *swaggerSchema { return replySchema(t, op, tc.code) }
			}
			compareSchema(t, doc, tc.op, reflect.TypeOf(tc.typ), s(t, op), tc.reply)
		})
	}
	if op := operation(t, doc, "ListOutboundTasks"); op.Pageable == nil || op.Pageable.NextLinkName != "nextLink" {
		t.Error("ListOutboundTasks: x-ms-pageable with nextLinkName nextLink is required for Power Automate paging")
	}
}

// prop returns a property of a definition.
func prop(t *testing.T, doc swaggerDoc, def, name string) *swaggerSchema {
	t.Helper()
	d, ok := doc.Definitions[def]
	if !ok || d.Properties[name] == nil {
		t.Fatalf("no %s.%s", def, name)
	}
	return doc.resolve(t, d.Properties[name])
}

func queryParam(t *testing.T, doc swaggerDoc, opID, name string) swaggerParameter {
	t.Helper()
	for _, p := range operation(t, doc, opID).Parameters {
		if p.Name == name && p.In == "query" {
			return p
		}
	}
	t.Fatalf("%s: no query parameter %s", opID, name)
	return swaggerParameter{}
}

func TestConnectorEnumsAndBoundsMatchTheDomain(t *testing.T) {
	doc := loadSwagger(t)
	eqInt := func(what string, got *int, want int) {
		t.Helper()
		if got == nil || *got != want {
			t.Errorf("%s = %v, want %d", what, got, want)
		}
	}
	eqDefault := func(what string, got any, want any) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s default = %v, want %v", what, got, want)
		}
	}
	for _, b := range []struct {
		name          string
		lo, hi, deflt int
	}{
		{"priority", outbound.MinPriority, outbound.MaxPriority, outbound.DefaultPriority},
		{"maxAttempts", outbound.MinMaxAttempts, outbound.MaxMaxAttempts, outbound.DefaultMaxAttempts},
		{"maxQueueTimeSeconds", outbound.MinMaxQueueTimeSeconds, outbound.MaxMaxQueueTimeSeconds, outbound.DefaultMaxQueueTimeSeconds},
	} {
		p := prop(t, doc, "OutboundTaskRequest", b.name)
		eqInt(b.name+" minimum", p.Minimum, b.lo)
		eqInt(b.name+" maximum", p.Maximum, b.hi)
		eqDefault(b.name, p.Default, b.deflt)
	}
	eqInt("destination maxLength", prop(t, doc, "OutboundTaskRequest", "destination").MaxLength, outbound.MaxDestinationLength)
	eqInt("referenceId maxLength", prop(t, doc, "OutboundTaskRequest", "referenceId").MaxLength, outbound.MaxReferenceIDLength)
	eqInt("preferredUsers maxItems", prop(t, doc, "OutboundTaskRequest", "preferredUsers").MaxItems, outbound.MaxPreferredUsers)
	ctxProp := prop(t, doc, "OutboundTaskRequest", "context")
	eqInt("context maxProperties", ctxProp.MaxProperties, outbound.MaxContextEntries)
	eqInt("context value maxLength", ctxProp.AdditionalProperties.MaxLength, outbound.MaxContextValueLength)
	if got := doc.Definitions["OutboundTaskRequest"].Required; !slices.Equal(got, []string{"destination"}) {
		t.Errorf("OutboundTaskRequest required %v, want [destination]", got)
	}
	if got := prop(t, doc, "OutboundTask", "state").Enum; !slices.Equal(got, outbound.States) {
		t.Errorf("task state enum %v, want %v", got, outbound.States)
	}
	if got := queryParam(t, doc, "ListOutboundTasks", "state").Enum; !slices.Equal(got, outbound.States) {
		t.Errorf("list state enum %v, want %v", got, outbound.States)
	}
	top := queryParam(t, doc, "ListOutboundTasks", "top")
	eqInt("top minimum", top.Minimum, 1)
	eqInt("top maximum", top.Maximum, outbound.MaxListTop)
	eqDefault("top", top.Default, outbound.DefaultListTop)
	if got := prop(t, doc, "OutboundTaskCompletion", "outcome").Enum; !slices.Equal(got, outbound.Outcomes) {
		t.Errorf("outcome enum %v, want %v", got, outbound.Outcomes)
	}
	eqDefault("outcome", prop(t, doc, "OutboundTaskCompletion", "outcome").Default, outbound.OutcomeCompleted)
	eqInt("note maxLength", prop(t, doc, "OutboundTaskCompletion", "note").MaxLength, outbound.MaxNoteLength)

	hold := prop(t, doc, "RouteRequest", "holdSeconds")
	eqInt("holdSeconds minimum", hold.Minimum, routing.MinHoldSeconds)
	eqInt("holdSeconds maximum", hold.Maximum, routing.MaxHoldSeconds)
	eqInt("route preferredUsers maxItems", prop(t, doc, "RouteRequest", "preferredUsers").MaxItems, routing.MaxPreferredUsers)
	reasons := []string{switchboard.ReasonNotMember, switchboard.ReasonNotActive, switchboard.ReasonInConversation, switchboard.ReasonPresenceStale,
		switchboard.ReasonPresenceUnknown, switchboard.ReasonOffline, switchboard.ReasonDoNotDisturb, switchboard.ReasonInACall,
		switchboard.ReasonBusyNotDelivered, switchboard.ReasonAwayNotDelivered}
	excluded := doc.resolve(t, prop(t, doc, "RouteDecision", "excluded").Items)
	if got := excluded.Properties["reason"].Enum; !slices.Equal(got, reasons) {
		t.Errorf("reason enum %v, want %v", got, reasons)
	}
	sources := []string{switchboard.SourceAccount1, switchboard.SourceAccount2, switchboard.SourceApplication}
	if got := prop(t, doc, "RoutePresence", "source").Enum; !slices.Equal(got, sources) {
		t.Errorf("presence source enum %v, want %v", got, sources)
	}
}

// The connector's bounds and required fields are what the handler
// enforces: each bound is accepted, one past it refused naming the field;
// a request without a required field is refused, without an optional one
// accepted.
func TestConnectorBoundsAreTheValidators(t *testing.T) {
	doc := loadSwagger(t)
	e := newOutboundEnv(t, 50)
	req := doc.Definitions["OutboundTaskRequest"]
	valid := map[string]any{
		"destination": "+41440000000", "dueDateTimeUtc": "2026-11-23T12:00:00Z", "priority": 50, "maxAttempts": 1,
		"maxQueueTimeSeconds": 300, "preferredUsers": []string{}, "context": map[string]string{},
	}
	post := func(body map[string]any) (int, string) {
		t.Helper()
		raw, _ := json.Marshal(body)
		status, _, b := e.post(string(raw))
		if status >= 300 {
			return status, outboundProblem(t, b).Field
		}
		return status, ""
	}
	for name := range req.Properties {
		body := map[string]any{}
		for k, v := range valid {
			if k != name {
				body[k] = v
			}
		}
		status, field := post(body)
		if slices.Contains(req.Required, name) {
			if status != http.StatusBadRequest || field != name {
				t.Errorf("without required %s: %d (field %q), want 400 naming it", name, status, field)
			}
		} else if status != http.StatusAccepted {
			t.Errorf("without optional %s: %d (field %q), want 202", name, status, field)
		}
	}
	for name, p := range req.Properties {
		if p.Type != "integer" || p.Minimum == nil || p.Maximum == nil {
			continue
		}
		for _, c := range []struct {
			v    int
			want int
		}{{*p.Minimum, 202}, {*p.Maximum, 202}, {*p.Minimum - 1, 400}, {*p.Maximum + 1, 400}} {
			body := map[string]any{"destination": "+41440000000", name: c.v}
			status, field := post(body)
			if status != c.want || (c.want == 400 && field != name) {
				t.Errorf("%s = %d: %d (field %q), want %d", name, c.v, status, field, c.want)
			}
		}
	}
	for name, p := range req.Properties {
		var tooLong any
		switch {
		case p.MaxLength != nil:
			tooLong = strings.Repeat("a", *p.MaxLength+1)
		case p.MaxItems != nil:
			items := make([]string, *p.MaxItems+1)
			for i := range items {
				items[i] = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
			}
			tooLong = items
		default:
			continue
		}
		if status, field := post(map[string]any{"destination": "+41440000000", name: tooLong}); status != 400 || field != name {
			t.Errorf("%s past its limit: %d (field %q), want 400 naming it", name, status, field)
		}
	}
}

func TestConnectorSecurity(t *testing.T) {
	doc := loadSwagger(t)
	if len(doc.Security) != 1 {
		t.Fatalf("security %v, want one requirement", doc.Security)
	}
	for name := range doc.Security[0] {
		def, ok := doc.SecurityDefinitions[name]
		if !ok || def["type"] != "oauth2" {
			t.Errorf("security %s: definition %v, want an oauth2 (Entra ID) definition", name, def)
		}
	}
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "connector", "apiProperties.json"))
	if err != nil {
		t.Fatal(err)
	}
	var props struct {
		Properties struct {
			ConnectionParameters map[string]struct {
				Type string `json:"type"`
			} `json:"connectionParameters"`
			PolicyTemplateInstances []struct {
				TemplateID string            `json:"templateId"`
				Parameters map[string]string `json:"parameters"`
			} `json:"policyTemplateInstances"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(raw, &props); err != nil {
		t.Fatalf("apiProperties.json: %v", err)
	}
	// The Entra token is the connection's only credential: the handler
	// checks it and its app roles, and the routes are anonymous at the host
	// (function keys are not a way to secure production endpoints).
	cp := props.Properties.ConnectionParameters
	if len(cp) != 1 || cp["token"].Type != "oauthSetting" {
		t.Errorf("connection parameters %v, want only token (oauthSetting)", cp)
	}
	for _, p := range props.Properties.PolicyTemplateInstances {
		for _, v := range p.Parameters {
			if strings.Contains(strings.ToLower(v), "functions-key") || strings.Contains(v, "functionKey") {
				t.Errorf("policy %s still sends a function key: %v", p.TemplateID, p.Parameters)
			}
		}
	}
	tenantRoutes := 0
	for _, b := range httpBindings(t) {
		if strings.HasPrefix(b.Route, "tenants/{t}/") {
			tenantRoutes++
			if b.AuthLevel != "anonymous" {
				t.Errorf("%s (route %s) has authLevel %q: tenant routes are anonymous at the host, the handler's token and role check is the gate", b.function, b.Route, b.AuthLevel)
			}
		}
	}
	if tenantRoutes < 10 {
		t.Errorf("found %d tenant routes in functions/: the scan is broken", tenantRoutes)
	}
}

// isDistributionRoute reports whether key ("METHOD /api/...") is one of the
// waiting-line routes (SPEC section 10).
func isDistributionRoute(key string) bool {
	rt := NewRouter(slog.New(slog.DiscardHandler), nil)
	(&DistributionAPI{Now: time.Now}).Register(rt)
	for _, p := range rt.TenantRoutes() {
		if p == key {
			return true
		}
	}
	return false
}

package deploytest

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"switchboard/handler/internal/testenv"
)

// notAppSettings are the names the handler reads that the Bicep does not set
// as app settings, each with the reason. Where `instead` is given, the Bicep
// must set that alternative.
var notAppSettings = map[string]struct{ reason, instead string }{
	"FUNCTIONS_CUSTOMHANDLER_PORT": {reason: "set by the Functions host when it starts the handler"},
	"FUNCTIONS_HTTPWORKER_PORT":    {reason: "legacy name of the same port, also set by the host"},
	"LOCAL_QUEUE_URL":              {reason: "the local runner's in-process queue: local development only"},
	"WEBSITE_INSTANCE_ID":          {reason: "set by the platform on every instance in Azure (how the handler knows it runs there)"},
	"TABLES_CONNECTION_STRING": {
		reason:  "a connection string (Azurite, or a key-based account); Azure reaches the tables with the managed identity",
		instead: "TABLES_ENDPOINT",
	},
	"ServiceBusConnection": {
		reason:  "the connection-string form; Azure uses the identity-based form of the same setting",
		instead: "ServiceBusConnection__fullyQualifiedNamespace",
	},
}

// deployed is what the Bicep gives the Function App: its app settings (a
// literal string value, or nil where the value is an expression) and the
// Service Bus queues it creates.
type deployed struct {
	settings map[string]any
	queues   map[string]bool
}

func (d deployed) has(name string) bool { _, ok := d.settings[name]; return ok }

// literal returns the setting's value when the Bicep gives it as a literal.
func (d deployed) literal(name string) (string, bool) {
	s, ok := d.settings[name].(string)
	return s, ok
}

// deployedFrom reads the app settings (var appSettings of
// modules/functionapp.bicep plus one setting per queue of var
// serviceBusQueues of main.bicep, which main.bicep passes as queueSettings)
// from the bicep-check report.
func deployedFrom(t testing.TB, r bicepReport) deployed {
	t.Helper()
	d := deployed{settings: map[string]any{}, queues: map[string]bool{}}
	app, ok := r.file(t, "infra/modules/functionapp.bicep").Variables["appSettings"].(map[string]any)
	if !ok {
		t.Fatal("infra/modules/functionapp.bicep has no object literal `var appSettings`")
	}
	for k, v := range app {
		if s, ok := v.(string); ok {
			d.settings[k] = s
		} else {
			d.settings[k] = nil
		}
	}
	queues, ok := r.file(t, "infra/main.bicep").Variables["serviceBusQueues"].([]any)
	if !ok || len(queues) == 0 {
		t.Fatal("infra/main.bicep has no array literal `var serviceBusQueues`")
	}
	for i, q := range queues {
		obj, _ := q.(map[string]any)
		name, ok1 := obj["name"].(string)
		setting, ok2 := obj["setting"].(string)
		if !ok1 || !ok2 {
			t.Fatalf("serviceBusQueues[%d] = %v: want literal name and setting", i, q)
		}
		if _, dup := d.settings[setting]; dup {
			t.Fatalf("serviceBusQueues[%d]: setting %s is also in appSettings", i, setting)
		}
		d.settings[setting] = name
		d.queues[name] = true
	}
	return d
}

// configSettings returns the first argument of every get("NAME", ...) call
// in the Go file at path: the config package reads the environment only
// through that helper.
func configSettings(path string) ([]string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		if fn, ok := call.Fun.(*ast.Ident); ok && fn.Name == "get" {
			if name, ok := stringLit(call.Args[0]); ok {
				seen[name] = true
			}
		}
		return true
	})
	return sortedKeys(seen), nil
}

// directEnvReads returns the names read with os.Getenv / os.LookupEnv("NAME")
// in the handler's Go files under dir (tests, testdata, internal/ and the
// local runner excluded), with the file of each.
func directEnvReads(dir string) (map[string]string, error) {
	reads := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			switch {
			case d.Name() == "testdata", d.Name() == "internal", d.Name() == "localrunner", rel == "cmd/localrunner":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		osName := ""
		for _, imp := range f.Imports {
			if imp.Path.Value == `"os"` {
				osName = "os"
				if imp.Name != nil {
					osName = imp.Name.Name
				}
			}
		}
		if osName == "" {
			return nil
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "Getenv" && sel.Sel.Name != "LookupEnv") {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == osName {
				if name, ok := stringLit(call.Args[0]); ok {
					reads[name] = "handler/" + rel
				}
			}
			return true
		})
		return nil
	})
	return reads, err
}

// configDefaults returns the literal default of every get("NAME", "default")
// call in the Go file at path (names whose default is not a literal, or
// empty, are left out).
func configDefaults(path string) (map[string]string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		return nil, err
	}
	defaults := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) != 2 {
			return true
		}
		if fn, ok := call.Fun.(*ast.Ident); ok && fn.Name == "get" {
			name, ok1 := stringLit(call.Args[0])
			def, ok2 := stringLit(call.Args[1])
			if ok1 && ok2 && def != "" {
				defaults[name] = def
			}
		}
		return true
	})
	return defaults, nil
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// handlerReads returns every environment variable the handler reads, with
// where it is read.
func handlerReads(t testing.TB) map[string]string {
	t.Helper()
	root := testenv.RepoRoot(t)
	names, err := configSettings(filepath.Join(root, "handler", "config", "config.go"))
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("found no get(\"NAME\", ...) calls in handler/config/config.go: update configSettings to the way config reads the environment now")
	}
	reads, err := directEnvReads(filepath.Join(root, "handler"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		reads[n] = "handler/config/config.go"
	}
	return reads
}

func TestConfigSettingsParsesGetCalls(t *testing.T) {
	got, err := configSettings(filepath.Join("testdata", "config.go.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"INNER_DEFAULT", "PLAIN", "WITH_DEFAULT"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("configSettings = %v, want %v", got, want)
	}
}

func TestConfigDefaults(t *testing.T) {
	got, err := configDefaults(filepath.Join("testdata", "config.go.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"INNER_DEFAULT": "x"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("configDefaults = %v, want %v", got, want)
	}
}

func TestDirectEnvReadsSkipsTestsAndLocalRunner(t *testing.T) {
	got, err := directEnvReads(filepath.Join("testdata", "envreads"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"DIRECT_READ": "handler/app.go", "LOOKED_UP": "handler/sub/lookup.go"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("directEnvReads = %v, want %v", got, want)
	}
}

// TestBicepSetsEveryHandlerSetting fails when the handler reads a setting
// that the Function App does not get from the Bicep.
func TestBicepSetsEveryHandlerSetting(t *testing.T) {
	d := deployedFrom(t, infraReport(t))
	reads := handlerReads(t)
	for _, name := range sortedKeys(reads) {
		if skip, ok := notAppSettings[name]; ok {
			if skip.instead != "" && !d.has(skip.instead) {
				t.Errorf("%s reads %s, whose Azure form %s the Bicep does not set (%s)", reads[name], name, skip.instead, skip.reason)
			}
			continue
		}
		if !d.has(name) {
			t.Errorf("%s reads %s, which infra/modules/functionapp.bicep does not set: add it to appSettings (or, if it is not an app setting, to notAppSettings in this test with the reason)", reads[name], name)
		}
	}
}

// TestNotAppSettingsAreRead keeps the allow-list honest: every entry is a
// name the handler really reads. LOCAL_QUEUE_URL is exempt while the local
// runner's queue is being wired (wire_queue.go names it).
func TestNotAppSettingsAreRead(t *testing.T) {
	reads := handlerReads(t)
	for name := range notAppSettings {
		if _, ok := reads[name]; !ok && name != "LOCAL_QUEUE_URL" {
			t.Errorf("notAppSettings lists %s, which the handler does not read: remove it", name)
		}
	}
}

// binding is one entry of a function.json "bindings" array.
type binding map[string]any

func (b binding) str(key string) string { s, _ := b[key].(string); return s }

var percentSetting = regexp.MustCompile(`%([^%\s]+)%`)

// checkBindings returns every problem of the functions' bindings against the
// deployed settings and queues: a %SETTING% the Bicep does not set, a
// connection without its identity-based settings, a queue or topic the
// Bicep does not create.
func checkBindings(functions map[string][]binding, d deployed) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	for _, fn := range sortedKeys(functions) {
		for _, b := range functions[fn] {
			where := fmt.Sprintf("%s binding %q (%s)", fn, b.str("name"), b.str("type"))
			for _, key := range sortedKeys(b) {
				s, ok := b[key].(string)
				if !ok {
					continue
				}
				for _, m := range percentSetting.FindAllStringSubmatch(s, -1) {
					if !d.has(m[1]) {
						add("%s: %s uses %%%s%%, which the Bicep does not set", where, key, m[1])
					}
				}
			}
			if c := b.str("connection"); c != "" {
				problems = append(problems, checkConnection(where, c, b.str("type"), d)...)
			}
			if strings.HasPrefix(b.str("type"), "serviceBus") {
				if topic := b.str("topicName"); topic != "" {
					add("%s: topic %q: the Bicep creates no topics", where, topic)
				}
				if q := b.str("queueName"); q != "" {
					name := q
					if m := percentSetting.FindStringSubmatch(q); m != nil && m[0] == q {
						v, ok := d.literal(m[1])
						if !ok {
							if d.has(m[1]) {
								add("%s: queueName %s: the Bicep sets %s to an expression, want the literal queue name", where, q, m[1])
							}
							continue
						}
						name = v
					}
					if !d.queues[name] {
						add("%s: queue %q (queueName %s) is not created by the Bicep (serviceBusQueues in infra/main.bicep)", where, name, q)
					}
				}
			}
		}
	}
	return problems
}

// checkConnection requires the identity-based form of a binding connection:
// <c>__fullyQualifiedNamespace (Service Bus) or another <c>__* endpoint,
// with <c>__credential=managedidentity and <c>__clientId of the
// user-assigned identity. A plain <c> (a connection string) is refused.
func checkConnection(where, c, typ string, d deployed) []string {
	var problems []string
	if d.has(c) {
		problems = append(problems, fmt.Sprintf("%s: connection %s is set as a connection string; use the identity-based %s__* settings", where, c, c))
	}
	if strings.HasPrefix(typ, "serviceBus") {
		if !d.has(c + "__fullyQualifiedNamespace") {
			problems = append(problems, fmt.Sprintf("%s: connection %s: the Bicep does not set %s__fullyQualifiedNamespace", where, c, c))
		}
	} else {
		endpoint := false
		for name := range d.settings {
			if strings.HasPrefix(name, c+"__") && name != c+"__credential" && name != c+"__clientId" {
				endpoint = true
			}
		}
		if !endpoint {
			problems = append(problems, fmt.Sprintf("%s: connection %s: the Bicep sets no %s__* endpoint setting", where, c, c))
		}
	}
	if v, ok := d.literal(c + "__credential"); !ok || v != "managedidentity" {
		problems = append(problems, fmt.Sprintf("%s: connection %s: want %s__credential = 'managedidentity' in the Bicep", where, c, c))
	}
	if !d.has(c + "__clientId") {
		problems = append(problems, fmt.Sprintf("%s: connection %s: the Bicep does not set %s__clientId (the user-assigned identity)", where, c, c))
	}
	return problems
}

func TestCheckBindings(t *testing.T) {
	d := deployed{
		settings: map[string]any{
			"OUTBOUND_QUEUE":                "outbound-tasks",
			"DYNAMIC_QUEUE":                 nil,
			"POLL_SCHEDULE":                 "*/30 * * * * *",
			"SB__fullyQualifiedNamespace":   nil,
			"SB__credential":                "managedidentity",
			"SB__clientId":                  nil,
			"Half__fullyQualifiedNamespace": nil,
			"Plain":                         nil,
		},
		queues: map[string]bool{"outbound-tasks": true},
	}
	sb := func(queue, conn string) binding {
		return binding{"type": "serviceBusTrigger", "direction": "in", "name": "message", "queueName": queue, "connection": conn}
	}
	tests := []struct {
		name     string
		bindings []binding
		want     []string // substrings, one per expected problem
	}{
		{name: "queue by setting", bindings: []binding{sb("%OUTBOUND_QUEUE%", "SB")}},
		{name: "literal queue", bindings: []binding{sb("outbound-tasks", "SB")}},
		{name: "http", bindings: []binding{{"type": "httpTrigger", "name": "req", "route": "tenants/{t}/settings"}, {"type": "http", "name": "res"}}},
		{name: "timer by setting", bindings: []binding{{"type": "timerTrigger", "name": "timer", "schedule": "%POLL_SCHEDULE%"}}},
		{name: "literal timer", bindings: []binding{{"type": "timerTrigger", "name": "timer", "schedule": "15 */1 * * * *"}}},
		{name: "unknown setting", bindings: []binding{{"type": "timerTrigger", "name": "timer", "schedule": "%NOPE%"}},
			want: []string{"uses %NOPE%"}},
		{name: "queue setting not set", bindings: []binding{sb("%MISSING_QUEUE%", "SB")},
			want: []string{"uses %MISSING_QUEUE%"}},
		{name: "queue not created", bindings: []binding{sb("other-queue", "SB")},
			want: []string{`queue "other-queue"`}},
		{name: "queue setting is an expression", bindings: []binding{sb("%DYNAMIC_QUEUE%", "SB")},
			want: []string{"sets DYNAMIC_QUEUE to an expression"}},
		{name: "topic", bindings: []binding{{"type": "serviceBusTrigger", "name": "m", "topicName": "t", "subscriptionName": "s", "connection": "SB"}},
			want: []string{"creates no topics"}},
		{name: "unknown connection", bindings: []binding{sb("outbound-tasks", "Other")},
			want: []string{"Other__fullyQualifiedNamespace", "Other__credential", "Other__clientId"}},
		{name: "connection without identity", bindings: []binding{sb("outbound-tasks", "Half")},
			want: []string{"Half__credential", "Half__clientId"}},
		{name: "connection string", bindings: []binding{{"type": "queueTrigger", "name": "m", "queueName": "q", "connection": "Plain"}},
			want: []string{"set as a connection string", "no Plain__* endpoint", "Plain__credential", "Plain__clientId"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkBindings(map[string][]binding{"Fn": tt.bindings}, d)
			if len(got) != len(tt.want) {
				t.Fatalf("checkBindings = %q, want %d problems like %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

// readFunctions returns the bindings of every functions/<Name>/function.json.
func readFunctions(t testing.TB, dir string) map[string][]binding {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*", "function.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatalf("no */function.json under %s", dir)
	}
	out := map[string][]binding{}
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var fj struct {
			Bindings []binding `json:"bindings"`
		}
		if err := json.Unmarshal(raw, &fj); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out[filepath.Base(filepath.Dir(p))] = fj.Bindings
	}
	return out
}

// TestFunctionBindingsMatchBicep fails when a function.json names a setting,
// a connection or a queue that the Bicep does not provide.
func TestFunctionBindingsMatchBicep(t *testing.T) {
	d := deployedFrom(t, infraReport(t))
	functions := readFunctions(t, filepath.Join(testenv.RepoRoot(t), "functions"))
	for _, p := range checkBindings(functions, d) {
		t.Error(p)
	}
}

// TestHostStorageIsIdentityBased checks the Functions host's own storage
// connection: identity-based, never a connection string, and at the
// service endpoints the storage account reports (as Microsoft's Flex
// Consumption templates do): __accountName makes the host build
// public-cloud host names, wrong in any other cloud.
func TestHostStorageIsIdentityBased(t *testing.T) {
	r := infraReport(t)
	d := deployedFrom(t, r)
	if d.has("AzureWebJobsStorage") {
		t.Error("the Bicep sets AzureWebJobsStorage (a connection string); want the AzureWebJobsStorage__*ServiceUri settings with the identity")
	}
	if d.has("AzureWebJobsStorage__accountName") {
		t.Error("the Bicep sets AzureWebJobsStorage__accountName, which works only in the public cloud; want AzureWebJobsStorage__blobServiceUri, __queueServiceUri and __tableServiceUri")
	}
	app := r.file(t, "infra/modules/functionapp.bicep").Variables["appSettings"].(map[string]any)
	for _, svc := range []string{"blob", "queue", "table"} {
		name := "AzureWebJobsStorage__" + svc + "ServiceUri"
		if got, want := expr(app[name]), "storage.properties.primaryEndpoints."+svc; got != want {
			t.Errorf("app setting %s = %v, want the storage account's endpoint %s", name, app[name], want)
		}
	}
	if v, _ := d.literal("AzureWebJobsStorage__credential"); v != "managedidentity" {
		t.Errorf("AzureWebJobsStorage__credential = %q, want managedidentity", v)
	}
	if !d.has("AzureWebJobsStorage__clientId") {
		t.Error("the Bicep does not set AzureWebJobsStorage__clientId (the user-assigned identity)")
	}
	// Flex Consumption takes the runtime from functionAppConfig and refuses these.
	for _, name := range []string{"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE"} {
		if d.has(name) {
			t.Errorf("the Bicep sets %s, which a Flex Consumption app must not have", name)
		}
	}
}

package localrunner

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// App is a Functions app as the runner reads it from its script root:
// host.json and one folder per function holding its function.json.
type App struct {
	Root      string // the script root (holds host.json)
	Host      Host
	Functions []*Function // sorted by name
}

// Host is what the runner takes from host.json.
type Host struct {
	ExecutablePath     string   // customHandler.description.defaultExecutablePath
	Arguments          []string // customHandler.description.arguments
	WorkingDirectory   string   // customHandler.description.workingDirectory, absolute
	ForwardHTTP        bool     // customHandler.enableForwardingHttpRequest
	RoutePrefix        string   // extensions.http.routePrefix, default "api"
	MaxConcurrentCalls int      // extensions.serviceBus.maxConcurrentCalls, default 16
	FunctionTimeout    time.Duration
}

// Trigger types the runner runs.
const (
	HTTPTrigger       = "httpTrigger"
	TimerTrigger      = "timerTrigger"
	ServiceBusTrigger = "serviceBusTrigger"
)

// Function is one function of the app, checked.
type Function struct {
	Name     string
	Trigger  string    // HTTPTrigger, TimerTrigger or ServiceBusTrigger
	Binding  string    // the trigger binding's name: the key of its Data payload
	Bindings []Binding // all bindings, as declared

	// HTTP trigger.
	Route     *Route
	Methods   []string // upper case; empty accepts every method
	AuthLevel string   // anonymous, function or admin (not enforced locally)
	HTTPOut   string   // name of the http output binding ("$return" for the return value)
	Forward   bool     // the request is forwarded as is (enableForwardingHttpRequest and an HTTP-only function)

	// Timer trigger.
	Schedule     cron.Schedule
	ScheduleText string // after %SETTING% expansion
	RunOnStartup bool

	// Service Bus trigger.
	Queue      string // after %SETTING% expansion
	Connection string // name of the connection setting (default AzureWebJobsServiceBus)
}

// Binding is one entry of function.json's bindings array.
type Binding struct {
	Type      string
	Direction string
	Name      string
	Props     map[string]any
}

// AllowsMethod reports whether an HTTP function accepts method.
func (f *Function) AllowsMethod(method string) bool {
	if len(f.Methods) == 0 {
		return true
	}
	for _, m := range f.Methods {
		if m == method {
			return true
		}
	}
	return false
}

// DefaultMaxConcurrentCalls is the Service Bus extension's concurrency when
// host.json does not set it.
const DefaultMaxConcurrentCalls = 16

// DefaultFunctionTimeout is Flex Consumption's default functionTimeout.
const DefaultFunctionTimeout = 30 * time.Minute

// LoadApp reads host.json from root and every <functionsDir>/<Name>/function.json,
// resolving %SETTING% references against settings, and checks them the way
// the host does. Every problem is reported, each naming its function.
func LoadApp(root, functionsDir string, settings Settings) (*App, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	host, err := loadHost(root, settings)
	if err != nil {
		return nil, err
	}
	if rt, ok := settings.Lookup("FUNCTIONS_WORKER_RUNTIME"); !ok || !strings.EqualFold(rt, "custom") {
		return nil, fmt.Errorf("app setting FUNCTIONS_WORKER_RUNTIME is %q: a custom handler needs \"Custom\" (local.settings.json Values)", rt)
	}
	if functionsDir == "" {
		functionsDir = root
	}
	entries, err := os.ReadDir(functionsDir)
	if err != nil {
		return nil, fmt.Errorf("functions folder: %w", err)
	}
	app := &App{Root: root, Host: host}
	var errs []error
	seen := map[string]string{}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		path := filepath.Join(functionsDir, e.Name(), "function.json")
		if _, err := os.Stat(path); err != nil {
			continue // the host ignores folders without function.json
		}
		fn, disabled, err := loadFunction(e.Name(), path, host, settings)
		if err != nil {
			errs = append(errs, fmt.Errorf("function %s (%s): %w", e.Name(), path, err))
			continue
		}
		if other, dup := seen[strings.ToLower(fn.Name)]; dup {
			errs = append(errs, fmt.Errorf("function %s: same name as function %s (names are case-insensitive)", fn.Name, other))
			continue
		}
		seen[strings.ToLower(fn.Name)] = fn.Name
		if !disabled {
			app.Functions = append(app.Functions, fn)
		}
	}
	errs = append(errs, routeConflicts(app.Functions)...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sort.Slice(app.Functions, func(i, j int) bool { return app.Functions[i].Name < app.Functions[j].Name })
	return app, nil
}

// Function returns the function of that name (case-insensitive), or nil.
func (a *App) Function(name string) *Function {
	for _, f := range a.Functions {
		if strings.EqualFold(f.Name, name) {
			return f
		}
	}
	return nil
}

// ReadHost reads host.json from root, resolving %SETTING% references.
func ReadHost(root string, settings Settings) (Host, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return Host{}, err
	}
	return loadHost(root, settings)
}

func loadHost(root string, settings Settings) (Host, error) {
	raw, err := os.ReadFile(filepath.Join(root, "host.json"))
	if err != nil {
		return Host{}, fmt.Errorf("host.json: %w", err)
	}
	var hj struct {
		Version         string  `json:"version"`
		FunctionTimeout *string `json:"functionTimeout"`
		CustomHandler   *struct {
			Description *struct {
				DefaultExecutablePath string   `json:"defaultExecutablePath"`
				WorkingDirectory      string   `json:"workingDirectory"`
				Arguments             []string `json:"arguments"`
			} `json:"description"`
			EnableForwardingHTTPRequest bool `json:"enableForwardingHttpRequest"`
		} `json:"customHandler"`
		Extensions struct {
			HTTP struct {
				RoutePrefix *string `json:"routePrefix"`
			} `json:"http"`
			ServiceBus struct {
				MaxConcurrentCalls    *int `json:"maxConcurrentCalls"`
				MessageHandlerOptions struct {
					MaxConcurrentCalls *int `json:"maxConcurrentCalls"`
				} `json:"messageHandlerOptions"`
			} `json:"serviceBus"`
		} `json:"extensions"`
	}
	if err := json.Unmarshal(raw, &hj); err != nil {
		return Host{}, fmt.Errorf("host.json: %w", err)
	}
	if hj.Version != "2.0" {
		return Host{}, fmt.Errorf("host.json: version is %q, want \"2.0\"", hj.Version)
	}
	if hj.CustomHandler == nil || hj.CustomHandler.Description == nil || hj.CustomHandler.Description.DefaultExecutablePath == "" {
		return Host{}, fmt.Errorf("host.json: customHandler.description.defaultExecutablePath is missing: the local runner runs custom handlers only")
	}
	d := hj.CustomHandler.Description
	h := Host{
		ForwardHTTP:        hj.CustomHandler.EnableForwardingHTTPRequest,
		RoutePrefix:        "api",
		MaxConcurrentCalls: DefaultMaxConcurrentCalls,
		FunctionTimeout:    DefaultFunctionTimeout,
	}
	if h.ExecutablePath, err = settings.Expand(d.DefaultExecutablePath); err != nil {
		return Host{}, fmt.Errorf("host.json: defaultExecutablePath: %w", err)
	}
	for i, a := range d.Arguments {
		v, err := settings.Expand(a)
		if err != nil {
			return Host{}, fmt.Errorf("host.json: arguments[%d]: %w", i, err)
		}
		h.Arguments = append(h.Arguments, v)
	}
	wd, err := settings.Expand(d.WorkingDirectory)
	if err != nil {
		return Host{}, fmt.Errorf("host.json: workingDirectory: %w", err)
	}
	if !filepath.IsAbs(wd) {
		wd = filepath.Join(root, wd)
	}
	h.WorkingDirectory = wd
	if p := hj.Extensions.HTTP.RoutePrefix; p != nil {
		h.RoutePrefix = strings.Trim(*p, "/")
	}
	for _, n := range []*int{hj.Extensions.ServiceBus.MessageHandlerOptions.MaxConcurrentCalls, hj.Extensions.ServiceBus.MaxConcurrentCalls} {
		if n != nil {
			if *n < 1 {
				return Host{}, fmt.Errorf("host.json: extensions.serviceBus.maxConcurrentCalls is %d, want at least 1", *n)
			}
			h.MaxConcurrentCalls = *n
		}
	}
	if hj.FunctionTimeout != nil {
		if h.FunctionTimeout, err = parseTimeSpan(*hj.FunctionTimeout); err != nil {
			return Host{}, fmt.Errorf("host.json: functionTimeout: %w", err)
		}
	}
	return h, nil
}

var timeSpan = regexp.MustCompile(`^(?:(\d+)\.)?(\d{1,2}):(\d{1,2}):(\d{1,2})$`)

// parseTimeSpan parses a .NET TimeSpan as host.json writes it
// ("00:05:00", "1.00:00:00"). "-1" (unlimited) is refused: no plan that
// runs a custom handler on Flex Consumption allows it.
func parseTimeSpan(s string) (time.Duration, error) {
	m := timeSpan.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not a time span like 00:05:00", s)
	}
	n := func(i int) time.Duration {
		v, _ := strconv.Atoi(m[i])
		return time.Duration(v)
	}
	d := n(2)*time.Hour + n(3)*time.Minute + n(4)*time.Second
	if m[1] != "" {
		d += n(1) * 24 * time.Hour
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q is not a positive time span", s)
	}
	return d, nil
}

var (
	functionName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_\-]{0,127}$`)
	bindingName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

var httpMethods = map[string]bool{"GET": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "HEAD": true, "OPTIONS": true, "TRACE": true}

// cronParser reads NCRONTAB: six fields with seconds, or five without, as
// the host's timer extension accepts both.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// loadFunction reads and checks one function.json. disabled reports a
// function switched off by "disabled": true or the app setting
// AzureWebJobs.<Name>.Disabled.
func loadFunction(name, path string, host Host, settings Settings) (fn *Function, disabled bool, err error) {
	if !functionName.MatchString(name) {
		return nil, false, fmt.Errorf("%q is not a valid function name (a letter, then letters, digits, '_' or '-', at most 128)", name)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, false, err
	}
	var fj struct {
		Disabled any              `json:"disabled"`
		Bindings []map[string]any `json:"bindings"`
	}
	if err := json.Unmarshal(raw, &fj); err != nil {
		return nil, false, fmt.Errorf("not valid JSON: %w", err)
	}
	switch v := fj.Disabled.(type) {
	case bool:
		disabled = v
	case string:
		disabled = strings.EqualFold(v, "true") || v == "1"
	}
	if v := settings.Get("AzureWebJobs." + name + ".Disabled"); strings.EqualFold(v, "true") || v == "1" {
		disabled = true
	}
	if len(fj.Bindings) == 0 {
		return nil, false, fmt.Errorf("no bindings")
	}
	fn = &Function{Name: name}
	names := map[string]bool{}
	var triggers []Binding
	for i, props := range fj.Bindings {
		b, err := checkBinding(props, settings)
		if err != nil {
			return nil, false, fmt.Errorf("bindings[%d]: %w", i, err)
		}
		if names[strings.ToLower(b.Name)] {
			return nil, false, fmt.Errorf("binding name %q is used twice", b.Name)
		}
		names[strings.ToLower(b.Name)] = true
		fn.Bindings = append(fn.Bindings, b)
		if strings.HasSuffix(strings.ToLower(b.Type), "trigger") {
			triggers = append(triggers, b)
		}
	}
	switch len(triggers) {
	case 0:
		return nil, false, fmt.Errorf("no trigger binding: a function needs exactly one")
	case 1:
	default:
		return nil, false, fmt.Errorf("%d trigger bindings: a function can have only one", len(triggers))
	}
	trig := triggers[0]
	if trig.Direction != "in" {
		return nil, false, fmt.Errorf("binding %q: a trigger's direction must be \"in\"", trig.Name)
	}
	fn.Trigger, fn.Binding = trig.Type, trig.Name
	for _, b := range fn.Bindings {
		if b.Type == "http" {
			if fn.Trigger != HTTPTrigger {
				return nil, false, fmt.Errorf("binding %q: an http output needs an httpTrigger", b.Name)
			}
			if b.Direction != "out" {
				return nil, false, fmt.Errorf("binding %q: an http binding's direction must be \"out\"", b.Name)
			}
			fn.HTTPOut = b.Name
		}
	}
	switch fn.Trigger {
	case HTTPTrigger:
		err = fn.checkHTTP(trig, host)
	case TimerTrigger:
		err = fn.checkTimer(trig)
	case ServiceBusTrigger:
		err = fn.checkServiceBus(trig)
	}
	if err != nil {
		return nil, false, fmt.Errorf("binding %q (%s): %w", trig.Name, trig.Type, err)
	}
	return fn, disabled, nil
}

// checkBinding checks the fields every binding has and resolves every
// %SETTING% in its string properties.
func checkBinding(props map[string]any, settings Settings) (Binding, error) {
	str := func(key string) (string, error) {
		v, ok := props[key]
		if !ok {
			return "", fmt.Errorf("%q is missing", key)
		}
		s, ok := v.(string)
		if !ok || s == "" {
			return "", fmt.Errorf("%q must be a non-empty string", key)
		}
		return s, nil
	}
	var b Binding
	var err error
	if b.Type, err = str("type"); err != nil {
		return b, err
	}
	if b.Name, err = str("name"); err != nil {
		return b, fmt.Errorf("%s binding: %w", b.Type, err)
	}
	if b.Name != "$return" && !bindingName.MatchString(b.Name) {
		return b, fmt.Errorf("binding name %q is not a valid identifier", b.Name)
	}
	if b.Direction, err = str("direction"); err != nil {
		return b, fmt.Errorf("binding %q: %w", b.Name, err)
	}
	b.Direction = strings.ToLower(b.Direction)
	if b.Direction != "in" && b.Direction != "out" && b.Direction != "inout" {
		return b, fmt.Errorf("binding %q: direction %q is not in, out or inout", b.Name, b.Direction)
	}
	switch b.Type {
	case HTTPTrigger, TimerTrigger, ServiceBusTrigger, "http":
	default:
		if strings.HasSuffix(strings.ToLower(b.Type), "trigger") {
			return b, fmt.Errorf("binding %q: trigger type %q is not supported by the local runner (httpTrigger, timerTrigger, serviceBusTrigger; "+
				"type names are case-sensitive)", b.Name, b.Type)
		}
		return b, fmt.Errorf("binding %q: binding type %q is not supported by the local runner (only the http output)", b.Name, b.Type)
	}
	b.Props = map[string]any{}
	for k, v := range props {
		if s, ok := v.(string); ok && k != "type" && k != "name" && k != "direction" {
			expanded, err := settings.Expand(s)
			if err != nil {
				return b, fmt.Errorf("binding %q: %s: %w", b.Name, k, err)
			}
			v = expanded
		}
		b.Props[k] = v
	}
	return b, nil
}

func (b Binding) str(key string) (string, bool, error) {
	v, ok := b.Props[key]
	if !ok || v == nil {
		return "", false, nil
	}
	s, ok := v.(string)
	if !ok {
		return "", true, fmt.Errorf("%q must be a string", key)
	}
	return s, true, nil
}

func (b Binding) boolean(key string) (bool, error) {
	v, ok := b.Props[key]
	if !ok || v == nil {
		return false, nil
	}
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		if p, err := strconv.ParseBool(x); err == nil {
			return p, nil
		}
	}
	return false, fmt.Errorf("%q must be true or false", key)
}

func (fn *Function) checkHTTP(b Binding, host Host) error {
	level, _, err := b.str("authLevel")
	if err != nil {
		return err
	}
	switch strings.ToLower(level) {
	case "":
		fn.AuthLevel = "function"
	case "anonymous", "function", "admin":
		fn.AuthLevel = strings.ToLower(level)
	default:
		return fmt.Errorf("authLevel %q is not anonymous, function or admin", level)
	}
	if v, ok := b.Props["methods"]; ok && v != nil {
		list, ok := v.([]any)
		if !ok {
			return fmt.Errorf("methods must be an array of strings")
		}
		for _, m := range list {
			s, ok := m.(string)
			if !ok || !httpMethods[strings.ToUpper(s)] {
				return fmt.Errorf("methods: %v is not an HTTP method", m)
			}
			fn.Methods = append(fn.Methods, strings.ToUpper(s))
		}
	}
	route, _, err := b.str("route")
	if err != nil {
		return err
	}
	if route == "" {
		route = fn.Name
	}
	if fn.Route, err = ParseRoute(route); err != nil {
		return err
	}
	if host.RoutePrefix == "" {
		first := strings.ToLower(strings.SplitN(route, "/", 2)[0])
		if first == "admin" || first == "runtime" {
			return fmt.Errorf("route %q: with an empty routePrefix, routes under %s/ are reserved by the host", route, first)
		}
	}
	if fn.HTTPOut == "" {
		return fmt.Errorf("an httpTrigger function needs an http output binding")
	}
	// The host forwards the request as is only to HTTP-only functions.
	fn.Forward = host.ForwardHTTP && len(fn.Bindings) == 2
	return nil
}

func (fn *Function) checkTimer(b Binding) error {
	schedule, ok, err := b.str("schedule")
	if err != nil {
		return err
	}
	if !ok || strings.TrimSpace(schedule) == "" {
		return fmt.Errorf("schedule is missing")
	}
	if timeSpan.MatchString(schedule) {
		return fmt.Errorf("schedule %q is a TimeSpan, which Consumption and Flex Consumption plans do not run: use an NCRONTAB expression", schedule)
	}
	if strings.ContainsAny(schedule, "?@") {
		return fmt.Errorf("schedule %q: NCRONTAB has no '?' or '@' descriptors", schedule)
	}
	sched, err := cronParser.Parse(schedule)
	if err != nil {
		return fmt.Errorf("schedule %q is not an NCRONTAB expression ({second} {minute} {hour} {day} {month} {day-of-week}): %v", schedule, err)
	}
	fn.Schedule, fn.ScheduleText = sched, schedule
	if fn.RunOnStartup, err = b.boolean("runOnStartup"); err != nil {
		return err
	}
	if _, err := b.boolean("useMonitor"); err != nil {
		return err
	}
	return nil
}

func (fn *Function) checkServiceBus(b Binding) error {
	if topic, _, _ := b.str("topicName"); topic != "" {
		return fmt.Errorf("topicName %q: topic subscriptions are not supported by the local runner (the app uses queues only)", topic)
	}
	queue, _, err := b.str("queueName")
	if err != nil {
		return err
	}
	if strings.TrimSpace(queue) == "" {
		return fmt.Errorf("queueName is missing")
	}
	fn.Queue = queue
	conn, _, err := b.str("connection")
	if err != nil {
		return err
	}
	if conn == "" {
		conn = "AzureWebJobsServiceBus"
	}
	fn.Connection = conn
	if sessions, err := b.boolean("isSessionsEnabled"); err != nil || sessions {
		if err != nil {
			return err
		}
		return fmt.Errorf("isSessionsEnabled: sessions are not supported by the local runner")
	}
	if card, _, _ := b.str("cardinality"); strings.EqualFold(card, "many") {
		return fmt.Errorf("cardinality \"many\" (batches) is not supported by the local runner")
	}
	if _, err := b.boolean("autoComplete"); err != nil {
		return err
	}
	return nil
}

// routeConflicts reports HTTP functions whose routes match the same paths
// with a method in common: the host could not choose between them.
func routeConflicts(fns []*Function) []error {
	var errs []error
	for i, a := range fns {
		for _, b := range fns[i+1:] {
			if a.Trigger != HTTPTrigger || b.Trigger != HTTPTrigger || !sameShape(a.Route, b.Route) {
				continue
			}
			if m, ok := commonMethod(a, b); ok {
				errs = append(errs, fmt.Errorf("functions %s and %s: routes %q and %q both match %s requests to the same "+
					"paths", a.Name, b.Name, a.Route.Template, b.Route.Template, m))
			}
		}
	}
	return errs
}

func commonMethod(a, b *Function) (string, bool) {
	switch {
	case len(a.Methods) == 0 && len(b.Methods) == 0:
		return "all", true
	case len(a.Methods) == 0:
		return b.Methods[0], true
	case len(b.Methods) == 0:
		return a.Methods[0], true
	}
	for _, m := range a.Methods {
		if b.AllowsMethod(m) {
			return m, true
		}
	}
	return "", false
}

// Package layout holds the test of the handler's package layout: which
// package may import which (STYLE.md, benbjohnson/wtf's standard package
// layout). It has no code of its own.
package layout

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "switchboard/handler"

// kind is a package's role in the layout.
type kind string

const (
	// command: a main package; it wires everything and may import anything.
	command kind = "command"
	// vocabulary: the domain types, errors and interfaces every package
	// shares (switchboard), the table layer's interface and in-memory
	// table (store), the configuration (config), sealing secrets at rest
	// (secrets: standard library only), and small shared types (job: work
	// with a deadline; internal/follow).
	vocabulary kind = "vocabulary"
	// capability: what Switchboard does; it knows the others only through
	// the vocabulary's interfaces.
	capability kind = "capability"
	// adapter: one technology (Table Storage, Graph, Service Bus, ACS,
	// HTTP, the Functions protocol, Entra tokens, the local queue).
	adapter kind = "adapter"
	// tool: development tools under handler/dev (local runner, Graph
	// simulator, ACS fake): never part of what ships.
	tool kind = "tool"
	// harness: test tooling (handler/internal, contract suites, e2e test
	// packages): never part of what ships.
	harness kind = "harness"
)

// packages is every package of the module, relative to it, with its kind.
// A new package must be added here: the test fails for a package it does
// not know, and for one it lists that no longer exists.
var packages = map[string]kind{
	"":                    command,
	"dev/cmd/graphsim":    command,
	"dev/cmd/localrunner": command,
	"dev/cmd/eventsink":   command,
	"dev/cmd/connector":   command,

	"switchboard": vocabulary,
	"store":       vocabulary,
	"config":      vocabulary,
	"secrets":     vocabulary,
	// reseal seals stored secrets again under the current key, a row at a
	// time and by the Housekeeping sweep (settings and events share it).
	"secrets/reseal": vocabulary,
	"job":            vocabulary,
	// follow is a small shared type that ships (the cache that follows
	// storage), not test tooling, though it sits under internal/.
	"internal/follow": vocabulary,
	// outbox writes a capability's events into its own batch; egress is
	// the policy of which addresses tenant-chosen URLs may reach, shared by
	// the events capability and the ACS adapter.
	"outbox": vocabulary,
	"egress": vocabulary,
	// richnotify is Graph's rich-notification cipher suite (standard
	// library only, like secrets): presence decrypts with it, the Graph
	// simulator encrypts with it.
	"richnotify": vocabulary,

	"presence":  capability,
	"routing":   capability,
	"outbound":  capability,
	"settings":  capability,
	"events":    capability,
	"attendant": capability,
	"interact":  capability,
	// distribution knows routing and outbound only through switchboard's
	// types and its own small interfaces (Agents, Outbound).
	"distribution": capability,

	"graph":      adapter,
	"auth":       adapter,
	"aztable":    adapter,
	"servicebus": adapter,
	"acs":        adapter,
	"httpapi":    adapter,
	"functions":  adapter,
	"localqueue": adapter,
	// webui serves the web page's embedded files (HTTP, no domain logic).
	"webui": adapter,

	"dev/acstest":     tool,
	"dev/graphsim":    tool,
	"dev/localrunner": tool,
	"dev/connector":   tool,
	"dev/procnet":     tool,

	"internal/testenv":             harness,
	"internal/deploytest":          harness,
	"internal/e2e":                 harness,
	"internal/fakeclock":           harness,
	"internal/fakes":               harness,
	"internal/layout":              harness,
	"internal/queuetest":           harness,
	"store/storetest":              harness,
	"outbound/outbounde2e":         harness,
	"routing/routinge2e":           harness,
	"webui/browsertest":            harness,
	"distribution/distributione2e": harness,
}

// mayImport says which kinds a package of each kind may import in its
// non-test code. Tests may import anything: integration tests drive an
// adapter and a capability together.
var mayImport = map[kind][]kind{
	command:    {vocabulary, capability, adapter, tool, harness},
	vocabulary: {vocabulary},
	capability: {vocabulary},
	adapter:    {vocabulary},
	// Tools and harnesses are imported only by tests, commands and each
	// other: nothing that ships depends on them.
	tool:    {vocabulary, capability, adapter, tool},
	harness: {vocabulary, capability, adapter, tool, harness},
}

// pending are imports that break the rules and are being removed, each
// with the reason. Remove an entry when its import goes: the test fails
// for an entry that no longer happens.
var pending = map[[2]string]string{}

// onlyIn names third-party import paths that only the given packages may
// import (README: msgraph-sdk-go in handler/graph only).
var onlyIn = map[string][]string{
	"github.com/microsoftgraph/": {"graph"},
}

type listed struct {
	ImportPath string
	Imports    []string
}

// list returns the module's packages with their non-test imports.
func list(t *testing.T) []listed {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []listed
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listed
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < len(packages)/2 {
		t.Fatalf("go list found %d packages, expected about %d", len(pkgs), len(packages))
	}
	return pkgs
}

func rel(path string) (string, bool) {
	if path == module {
		return "", true
	}
	r, ok := strings.CutPrefix(path, module+"/")
	return r, ok
}

func name(p string) string {
	if p == "" {
		return "handler (main)"
	}
	return p
}

// check returns the violations of the rules in pkgs, and the pending
// exceptions that were seen.
func check(pkgs []listed) (violations []string, seen map[[2]string]bool) {
	seen = map[[2]string]bool{}
	known := map[string]bool{}
	for _, p := range pkgs {
		from, ok := rel(p.ImportPath)
		if !ok {
			continue
		}
		known[from] = true
		fk, ok := packages[from]
		if !ok {
			violations = append(violations, name(from)+": not in the layout table (add it to packages with its kind)")
			continue
		}
		for _, imp := range p.Imports {
			for prefix, allowed := range onlyIn {
				if strings.HasPrefix(imp, prefix) && !slices.Contains(allowed, from) {
					violations = append(violations, name(from)+" imports "+imp+": only "+strings.Join(allowed, ", ")+" may")
				}
			}
			to, ok := rel(imp)
			if !ok {
				continue
			}
			tk, ok := packages[to]
			if !ok {
				continue // reported as unknown on its own
			}
			if slices.Contains(mayImport[fk], tk) {
				continue
			}
			edge := [2]string{from, to}
			if _, ok := pending[edge]; ok {
				seen[edge] = true
				continue
			}
			violations = append(violations, name(from)+" ("+string(fk)+") imports "+name(to)+" ("+string(tk)+"): "+rule(fk, tk))
		}
	}
	for p := range packages {
		if !known[p] {
			violations = append(violations, name(p)+": in the layout table but not in the module (remove it)")
		}
	}
	slices.Sort(violations)
	return violations, seen
}

// rule explains why a kind may not import another.
func rule(from, to kind) string {
	switch {
	case to == tool || to == harness:
		return "development tools and test harnesses are imported only by tests and commands"
	case to == command:
		return "nothing imports a command"
	case from == vocabulary:
		return "the shared vocabulary depends on nothing else"
	case from == adapter && to == adapter:
		return "adapters do not import each other (main wires them)"
	case from == adapter:
		return "adapters do not import capabilities (take the interface or type from switchboard)"
	case from == capability && to == adapter:
		return "capabilities do not import adapters (main gives them one behind an interface)"
	case from == capability:
		return "capabilities do not import each other (main wires them through switchboard's interfaces)"
	}
	return "not allowed"
}

func TestImportsFollowTheLayout(t *testing.T) {
	violations, seen := check(list(t))
	for _, v := range violations {
		t.Error(v)
	}
	for edge, why := range pending {
		if !seen[edge] {
			t.Errorf("pending exception %s -> %s (%s) no longer happens: remove it from pending", edge[0], edge[1], why)
		}
	}
}

// The rules themselves, on a made-up module: each forbidden edge is
// caught, each allowed one is not.
func TestLayoutRules(t *testing.T) {
	pkg := func(from string, imports ...string) listed {
		p := listed{ImportPath: module + "/" + from}
		if from == "" {
			p.ImportPath = module
		}
		for _, i := range imports {
			if strings.Contains(i, ".") {
				p.Imports = append(p.Imports, i)
				continue
			}
			p.Imports = append(p.Imports, module+"/"+i)
		}
		return p
	}
	cases := []struct {
		name   string
		pkg    listed
		wantOK bool
	}{
		{"capability uses the vocabulary", pkg("routing", "switchboard", "store"), true},
		{"adapter uses the vocabulary", pkg("aztable", "store", "switchboard"), true},
		{"main imports anything", pkg("", "routing", "aztable", "dev/localrunner"), true},
		{"tool imports an adapter", pkg("dev/acstest", "acs"), true},
		{"harness imports a tool", pkg("internal/e2e", "dev/localrunner"), true},
		{"graph uses msgraph", pkg("graph", "github.com/microsoftgraph/msgraph-sdk-go/models"), true},
		{"adapter imports a capability", pkg("aztable", "routing"), false},
		{"adapter imports an adapter", pkg("auth", "httpapi"), false},
		{"capability imports an adapter", pkg("settings", "acs"), false},
		{"capability imports a capability", pkg("outbound", "routing"), false},
		{"vocabulary imports a capability", pkg("store", "presence"), false},
		{"capability imports a tool", pkg("presence", "dev/graphsim"), false},
		{"adapter imports a harness", pkg("servicebus", "internal/testenv"), false},
		{"tool imports a command", pkg("dev/graphsim", "dev/cmd/graphsim"), false},
		{"msgraph outside graph", pkg("routing", "github.com/microsoftgraph/msgraph-sdk-go/models"), false},
	}
	for _, c := range cases {
		// Every other package present, importing nothing, so that only the
		// case's own edges count.
		pkgs := []listed{c.pkg}
		for p := range packages {
			if module+"/"+p != c.pkg.ImportPath && !(p == "" && c.pkg.ImportPath == module) {
				pkgs = append(pkgs, pkg(p))
			}
		}
		violations, _ := check(pkgs)
		if ok := len(violations) == 0; ok != c.wantOK {
			t.Errorf("%s: violations %q, want ok %v", c.name, violations, c.wantOK)
		}
	}
	unknown, _ := check([]listed{pkg("newthing", "switchboard")})
	if !slices.ContainsFunc(unknown, func(v string) bool { return strings.HasPrefix(v, "newthing: not in the layout table") }) {
		t.Errorf("an unknown package is not reported: %q", unknown)
	}
}

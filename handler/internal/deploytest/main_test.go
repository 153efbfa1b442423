package deploytest

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"switchboard/handler/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// bicepReport is the --json output of tools/bicep-check.js.
type bicepReport struct {
	Files []bicepFile `json:"files"`
}

type bicepFile struct {
	File      string                `json:"file"`
	Errors    []bicepError          `json:"errors"`
	Variables map[string]any        `json:"variables"`
	Params    map[string]bicepParam `json:"params"`
	Outputs   map[string]any        `json:"outputs"`
}

// bicepParam is a parameter's default (nil when it has none) and its
// decorators by name, each with its argument values.
type bicepParam struct {
	Default    any              `json:"default"`
	Decorators map[string][]any `json:"decorators"`
}

// expr returns the source text of a value bicep-check reports as an
// expression ("" for a literal).
func expr(v any) string {
	m, _ := v.(map[string]any)
	s, _ := m["$expr"].(string)
	return s
}

type bicepError struct {
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Message string `json:"message"`
}

// file returns the report of the file whose path ends with suffix.
func (r bicepReport) file(t testing.TB, suffix string) bicepFile {
	t.Helper()
	for _, f := range r.Files {
		if strings.HasSuffix(filepath.ToSlash(f.File), "/"+suffix) {
			return f
		}
	}
	t.Fatalf("bicep-check report has no file %s", suffix)
	return bicepFile{}
}

// runBicepCheck runs tools/bicep-check.js on paths and returns its exit
// code, stdout and stderr.
func runBicepCheck(t testing.TB, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	root := testenv.RepoRoot(t)
	ensureNodeModule(t, root, "tree-sitter-bicep")
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is needed for the Bicep syntax check: %v", err)
	}
	cmd := exec.Command(node, append([]string{filepath.Join(root, "tools", "bicep-check.js")}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("run bicep-check: %v", err)
	}
	return code, out.String(), errOut.String()
}

// infraReport parses every Bicep file under infra/ and fails the test on a
// syntax error.
func infraReport(t testing.TB) bicepReport {
	t.Helper()
	code, stdout, stderr := runBicepCheck(t, "--json", filepath.Join(testenv.RepoRoot(t), "infra"))
	var r bicepReport
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("bicep-check --json (exit %d): %v\nstdout: %s\nstderr: %s", code, err, stdout, stderr)
	}
	if code != 0 {
		t.Fatalf("bicep-check found syntax errors in infra/ (exit %d): %+v\n%s", code, r.Files, stderr)
	}
	return r
}

var installMu sync.Mutex

// ensureNodeModule installs tools/ (npm ci) when a module it declares is
// missing: node_modules may predate the module's addition to package.json.
// It takes the same lock file as testenv.NodeBin.
func ensureNodeModule(t testing.TB, root, name string) {
	t.Helper()
	marker := filepath.Join(root, "tools", "node_modules", name, "package.json")
	if _, err := os.Stat(marker); err == nil {
		return
	}
	installMu.Lock()
	defer installMu.Unlock()
	lock, err := os.OpenFile(filepath.Join(root, "tools", ".install.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("lock tools/: %v", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(marker); err == nil {
		return
	}
	cmd := exec.Command("npm", "ci", "--prefix", filepath.Join(root, "tools"), "--no-audit", "--no-fund", "--loglevel=error")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in tools/ failed (Node.js and npm are needed): %v\n%s", err, out)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("%s is not installed by tools/package.json", name)
	}
}

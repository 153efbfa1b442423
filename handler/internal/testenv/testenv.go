// Package testenv starts the local servers that integration tests need
// (Azurite for Table Storage, and others in files beside this one) on free
// loopback ports, and stops them when the test binary's tests are done.
// Nothing is skipped: a missing tool is installed (npm ci in tools/) or
// fails the test with a clear message.
package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"switchboard/handler/aztable"
	"switchboard/handler/dev/procnet"
	"switchboard/handler/store"
)

// AzuriteAccountKey is Azurite's well-known development account key.
const AzuriteAccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

var (
	mu       sync.Mutex
	stops    []func()
	shared   string
	sharedMu sync.Mutex
)

// Main runs the package's tests and then stops every server started for
// them. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	StopAll()
	os.Exit(code)
}

// StopAll stops every server this package started.
func StopAll() {
	mu.Lock()
	s := stops
	stops = nil
	mu.Unlock()
	for i := len(s) - 1; i >= 0; i-- {
		s[i]()
	}
}

func onStop(f func()) {
	mu.Lock()
	stops = append(stops, f)
	mu.Unlock()
}

// RepoRoot returns the repository root (the folder holding go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("testenv: no go.mod above the working directory")
		}
		dir = parent
	}
}

var installMu sync.Mutex

// NodeBin returns the path of an executable installed by tools/package.json
// (tools/node_modules/.bin/name), running `npm ci` in tools/ first if the
// tools are not installed yet (under a file lock: test binaries run in
// parallel).
func NodeBin(t testing.TB, name string) string {
	t.Helper()
	root := RepoRoot(t)
	bin := filepath.Join(root, "tools", "node_modules", ".bin", name)
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	installMu.Lock()
	defer installMu.Unlock()
	lock, err := os.OpenFile(filepath.Join(root, "tools", ".install.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("testenv: lock: %v", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	cmd := exec.Command("npm", "ci", "--prefix", filepath.Join(root, "tools"), "--no-audit", "--no-fund", "--loglevel=error")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testenv: npm ci in tools/ failed (Node.js and npm are needed): %v\n%s", err, out)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("testenv: %s is not installed by tools/package.json", name)
	}
	return bin
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Process is a server started by StartProcess.
type Process struct {
	cmd  *exec.Cmd
	out  *OutputBuffer
	done chan struct{}
}

// Output returns what the process has printed so far.
func (p *Process) Output() string { return p.out.String() }

// Stop kills the process (and its children) and waits for it.
func (p *Process) Stop() {
	if p.cmd.Process != nil {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
	<-p.done
}

// StartProcess starts a server process in its own process group, killed
// with the test binary if that dies first, and waits until addr accepts TCP
// connections (at most wait). It is stopped by Main, or by the returned
// Process's Stop.
func StartProcess(t testing.TB, addr string, wait time.Duration, name string, args ...string) *Process {
	t.Helper()
	SkipShort(t, filepath.Base(name))
	cmd := exec.Command(name, args...)
	out := &OutputBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// Servers that write files next to themselves write them here.
	if dir, err := os.MkdirTemp("", "switchboard-testenv-"); err == nil {
		cmd.Dir = dir
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start %s: %v", name, err)
	}
	p := &Process{cmd: cmd, out: out, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(wait)
	for {
		// The port must accept connections and be our process's: a port
		// chosen free may have been taken by another test's server in the
		// meantime (the process then fails to bind and exits), and a dial
		// alone would take that server for ours.
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			if procnet.ListensOn(cmd.Process.Pid, addr) {
				break
			}
		}
		select {
		case <-p.done:
			t.Fatalf("testenv: %s exited before listening on %s:\n%s", filepath.Base(name), addr, out.String())
		default:
		}
		if time.Now().After(deadline) {
			p.Stop()
			t.Fatalf("testenv: %s did not listen on %s within %s:\n%s", filepath.Base(name), addr, wait, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	onStop(p.Stop)
	return p
}

// SkipShort skips t under -short, and only there: a test that starts a
// server (Azurite, the Service Bus stand-in, the handler behind the local
// runner) is not a unit test. Every starter here calls it, so make
// test-short starts no server; CI runs without -short and skips nothing.
func SkipShort(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("needs %s: runs without -short", what)
	}
}

// NewAzurite starts a private Azurite table service and returns its
// connection string. It is stopped when the test ends.
func NewAzurite(t testing.TB) string {
	t.Helper()
	SkipShort(t, "Azurite")
	conn, p := startAzurite(t)
	t.Cleanup(p.Stop)
	return conn
}

func startAzurite(t testing.TB) (string, *Process) {
	t.Helper()
	bin := NodeBin(t, "azurite-table")
	var lastErr string
	for attempt := 0; attempt < 3; attempt++ {
		port := FreePort(t)
		addr := "127.0.0.1:" + strconv.Itoa(port)
		p, err := tryStart(t, addr, bin, "--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck", "--loose",
			"--silent", "--tableHost", "127.0.0.1", "--tablePort", strconv.Itoa(port))
		if err != nil {
			lastErr = err.Error()
			continue
		}
		return AzuriteConnectionString(port), p
	}
	t.Fatalf("testenv: Azurite did not start: %s", lastErr)
	return "", nil
}

// tryStart is StartProcess that reports a failure instead of failing the
// test, so that a port taken in the meantime can be retried.
func tryStart(t testing.TB, addr, name string, args ...string) (p *Process, err error) {
	t.Helper()
	ft := &fatalCatcher{TB: t}
	func() {
		defer func() {
			if r := recover(); r != nil && r != errFatal {
				panic(r)
			}
		}()
		p = StartProcess(ft, addr, 30*time.Second, name, args...)
	}()
	if ft.msg != "" {
		return nil, fmt.Errorf("%s", ft.msg)
	}
	return p, nil
}

var errFatal = fmt.Errorf("fatal")

type fatalCatcher struct {
	testing.TB
	msg string
}

func (f *fatalCatcher) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(errFatal)
}

func (f *fatalCatcher) Fatal(args ...any) {
	f.msg = fmt.Sprint(args...)
	panic(errFatal)
}

// AzuriteConnectionString is the connection string of an Azurite table
// service on 127.0.0.1:port.
func AzuriteConnectionString(port int) string {
	return fmt.Sprintf(
		"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=%s;TableEndpoint=http://127.0.0.1:%d/devstoreaccount1;",
		AzuriteAccountKey,
		port,
	)
}

// Azurite returns the connection string of the Azurite table service shared
// by the package's tests, starting it on first use. Main stops it.
func Azurite(t testing.TB) string {
	t.Helper()
	SkipShort(t, "Azurite")
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == "" {
		conn, _ := startAzurite(t)
		shared = conn
		onStop(func() {
			sharedMu.Lock()
			shared = ""
			sharedMu.Unlock()
		})
	}
	return shared
}

// Tables returns Azure-backed tables on the shared Azurite whose names carry
// a prefix unique to this call, so tests do not see each other's rows.
func Tables(t testing.TB) store.Tables {
	t.Helper()
	SkipShort(t, "Azurite")
	tables, err := aztable.Open(aztable.Options{ConnectionString: Azurite(t)})
	if err != nil {
		t.Fatal(err)
	}
	return store.Prefixed(tables, UniqueName("t"))
}

// Backends runs fn against the in-memory tables and against Azurite (the
// latter skipped under -short): one contract, both table layers.
func Backends(t *testing.T, fn func(t *testing.T, tables store.Tables)) {
	t.Helper()
	t.Run("memory", func(t *testing.T) { fn(t, store.NewMemoryTables()) })
	t.Run("azurite", func(t *testing.T) { fn(t, Tables(t)) })
}

// Table returns one fresh Azure-backed table on the shared Azurite.
func Table(t testing.TB) store.Table {
	t.Helper()
	tb, err := Tables(t).Table(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// UniqueName returns prefix followed by 10 random hex digits: a valid,
// unique table name prefix.
func UniqueName(prefix string) string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// OutputBuffer collects a server's output for failure messages; safe for
// concurrent writes. Past Max bytes (default 1 MiB) it starts over, so a
// chatty server cannot grow it without bound.
type OutputBuffer struct {
	Max int
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *OutputBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	limit := b.Max
	if limit <= 0 {
		limit = 1 << 20
	}
	if b.buf.Len() > limit {
		b.buf.Reset()
	}
	return b.buf.Write(p)
}

// String returns what was written since the last reset.
func (b *OutputBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

package testenv

import (
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// StoppableAzurite is an Azurite table service that a test can stop and
// start again on the same port, its data kept in files in a temporary
// folder (an in-memory Azurite loses everything when it stops).
type StoppableAzurite struct {
	// Conn is its connection string; it stays valid across restarts.
	Conn string

	t    testing.TB
	port int
	dir  string
	mu   sync.Mutex
	p    *Process
}

// NewStoppableAzurite starts an Azurite table service with file
// persistence. It is stopped when the test ends.
func NewStoppableAzurite(t testing.TB) *StoppableAzurite {
	t.Helper()
	a := &StoppableAzurite{t: t, dir: t.TempDir()}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		a.port = FreePort(t)
		if lastErr = a.start(); lastErr == nil {
			a.Conn = AzuriteConnectionString(a.port)
			t.Cleanup(a.kill)
			return a
		}
	}
	t.Fatalf("testenv: Azurite (on disk) did not start: %v", lastErr)
	return nil
}

func (a *StoppableAzurite) start() error {
	p, err := tryStart(a.t, "127.0.0.1:"+strconv.Itoa(a.port), NodeBin(a.t, "azurite-table"),
		"--location", a.dir, "--disableTelemetry", "--skipApiVersionCheck", "--loose",
		"--silent", "--tableHost", "127.0.0.1", "--tablePort", strconv.Itoa(a.port))
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.p = p
	a.mu.Unlock()
	return nil
}

// Stop stops Azurite as an orderly shutdown does (SIGINT, the signal on
// which azurite-table writes its data out and closes; SIGTERM would lose
// what it wrote since its last autosave), killing it after 10 s.
// Connections to its port are refused until Start.
func (a *StoppableAzurite) Stop() {
	a.t.Helper()
	a.mu.Lock()
	p := a.p
	a.p = nil
	a.mu.Unlock()
	if p == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		a.t.Logf("testenv: Azurite did not stop within 10 s of SIGINT: killed")
		p.Stop()
	}
}

// Start starts Azurite again on the same port with the same data.
func (a *StoppableAzurite) Start() {
	a.t.Helper()
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = a.start(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond) // the port may linger a moment
	}
	a.t.Fatalf("testenv: Azurite did not start again on port %d: %v", a.port, err)
}

func (a *StoppableAzurite) kill() {
	a.mu.Lock()
	p := a.p
	a.p = nil
	a.mu.Unlock()
	if p != nil {
		p.Stop()
	}
}

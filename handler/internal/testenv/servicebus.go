package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// ServiceBusOptions configure a private Service Bus stand-in.
type ServiceBusOptions struct {
	// MaxDeliveryCount of every queue (default 10, as Service Bus).
	MaxDeliveryCount int
	// LockDuration of peek-locked messages (default 60 s).
	LockDuration time.Duration
}

var (
	sharedSB   string
	sharedSBMu sync.Mutex
)

// ServiceBus returns the connection string of the Service Bus stand-in
// (tools/sbstandin.js) shared by the package's tests, starting it on first
// use; Main stops it. The real azservicebus client connects to it
// (UseDevelopmentEmulator=true: plain AMQP, no TLS). Queues exist on first
// use; tests sharing it should use queue names of their own.
func ServiceBus(t testing.TB) string {
	t.Helper()
	SkipShort(t, "the Service Bus stand-in")
	sharedSBMu.Lock()
	defer sharedSBMu.Unlock()
	if sharedSB == "" {
		conn, _ := startServiceBus(t, ServiceBusOptions{})
		sharedSB = conn
		onStop(func() {
			sharedSBMu.Lock()
			sharedSB = ""
			sharedSBMu.Unlock()
		})
	}
	return sharedSB
}

// NewServiceBus starts a private Service Bus stand-in and returns its
// connection string. It is stopped when the test ends.
func NewServiceBus(t testing.TB, opts ServiceBusOptions) string {
	t.Helper()
	SkipShort(t, "the Service Bus stand-in")
	conn, p := startServiceBus(t, opts)
	t.Cleanup(p.Stop)
	return conn
}

// ServiceBusConnectionString is the connection string of a stand-in on
// 127.0.0.1:port.
func ServiceBusConnectionString(port int) string {
	return fmt.Sprintf("Endpoint=sb://127.0.0.1:%d;SharedAccessKeyName=standin;SharedAccessKey=c3RhbmRpbg==;UseDevelopmentEmulator=true", port)
}

func startServiceBus(t testing.TB, opts ServiceBusOptions) (string, *Process) {
	t.Helper()
	root := RepoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "tools", "node_modules", "rhea", "package.json")); err != nil {
		NodeBin(t, "azurite") // installs tools/node_modules (rhea among them)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("testenv: Node.js is needed for the Service Bus stand-in: %v", err)
	}
	script := filepath.Join(root, "tools", "sbstandin.js")
	var lastErr string
	for attempt := 0; attempt < 3; attempt++ {
		port := FreePort(t)
		args := []string{script, "--host", "127.0.0.1", "--port", strconv.Itoa(port)}
		if opts.MaxDeliveryCount > 0 {
			args = append(args, "--max-delivery-count", strconv.Itoa(opts.MaxDeliveryCount))
		}
		if opts.LockDuration > 0 {
			args = append(args, "--lock-duration-ms", strconv.FormatInt(opts.LockDuration.Milliseconds(), 10))
		}
		p, err := tryStart(t, "127.0.0.1:"+strconv.Itoa(port), node, args...)
		if err != nil {
			lastErr = err.Error()
			continue
		}
		return ServiceBusConnectionString(port), p
	}
	t.Fatalf("testenv: the Service Bus stand-in did not start: %s", lastErr)
	return "", nil
}

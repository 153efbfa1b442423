package testenv

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A server that cannot bind its port (another test's server took it after
// FreePort) is not taken for ready because that other server answers.
func TestStartProcessIsNotFooledByAnotherListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	// "sleep" never listens: the port answers, but not as its.
	_, err = tryStart(t, ln.Addr().String(), "sleep", "1")
	if err == nil || !strings.Contains(err.Error(), "exited before listening") {
		t.Fatalf("tryStart = %v; want it to see that sleep never listened", err)
	}

	// A process that does listen is found as the owner.
	port := FreePort(t)
	p, err := tryStart(t, "127.0.0.1:"+strconv.Itoa(port), "node", "-e",
		"require('net').createServer().listen("+strconv.Itoa(port)+", '127.0.0.1'); setTimeout(() => {}, 30000)")
	if err != nil {
		t.Fatalf("a listening process was not seen: %v", err)
	}
	start := time.Now()
	p.Stop()
	if time.Since(start) > 5*time.Second {
		t.Fatal("Stop took too long")
	}
}

package main

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// The handler listens on loopback only, whatever the port.
func TestListenIsLoopbackOnly(t *testing.T) {
	ln, err := listen("0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().(*net.TCPAddr)
	if !addr.IP.IsLoopback() {
		t.Errorf("listening on %s, want a loopback address", addr)
	}
}

// A request with an oversized header block is refused (431) instead of
// being buffered, and the server bounds how long reading and idling take.
func TestServerBoundsRequests(t *testing.T) {
	ln, err := listen("0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	if srv.ReadTimeout <= 0 || srv.IdleTimeout <= 0 || srv.ReadHeaderTimeout <= 0 {
		t.Errorf("timeouts: read %s, idle %s, header %s; want all set", srv.ReadTimeout, srv.IdleTimeout, srv.ReadHeaderTimeout)
	}
	do := func(headerBytes int) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/", nil)
		req.Header.Set("X-Padding", strings.Repeat("a", headerBytes))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := do(8 << 10); got != http.StatusOK {
		t.Errorf("8 KB of headers: %d, want 200", got)
	}
	if got := do(256 << 10); got != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("256 KB of headers: %d, want 431", got)
	}
}

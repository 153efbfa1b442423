package main

import (
	"net"
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

package main

import (
	"net"
	"net/http"
	"time"
)

// Limits of the handler's HTTP server. The host talks to it over loopback,
// so a request that takes long to arrive is not a slow network but a stuck
// or hostile peer. No write timeout: a function may run up to functionTimeout.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 60 * time.Second // headers and body
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10 // tokens and the host's headers fit many times over
)

// listen listens on port on the loopback interface only: the Functions host
// reaches the handler over loopback, and nothing else should.
func listen(port string) (net.Listener, error) {
	return net.Listen("tcp", net.JoinHostPort("127.0.0.1", port))
}

// newServer returns the handler's HTTP server for h.
func newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
}

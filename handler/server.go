package main

import (
	"net"
)

// listen listens on port on the loopback interface only: the Functions host
// reaches the handler over loopback, and nothing else should.
func listen(port string) (net.Listener, error) {
	return net.Listen("tcp", net.JoinHostPort("127.0.0.1", port))
}

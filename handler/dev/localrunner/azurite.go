package localrunner

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

// AzuriteAccountKey is Azurite's well-known development account key
// (public, the same on every machine).
const AzuriteAccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

// AzuriteConnectionString is the connection string of Azurite's table
// service on 127.0.0.1:port, in the explicit form aztables accepts.
func AzuriteConnectionString(port int) string {
	return fmt.Sprintf(
		"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=%s;TableEndpoint=http://127.0.0.1:%d/devstoreaccount1;",
		AzuriteAccountKey,
		port,
	)
}

// Azurite is an Azurite table service the runner started (make run).
type Azurite struct {
	ConnectionString string
	TableEndpoint    string
	proc             *child
	dir              string
}

// StartAzurite starts bin (tools/node_modules/.bin/azurite-table) in
// memory on a free loopback port and waits until it listens.
func StartAzurite(ctx context.Context, bin string, log io.Writer) (*Azurite, error) {
	if !isExecutableFile(bin) {
		return nil, fmt.Errorf("azurite: %s not found: install the tools first (make tools, or npm ci --prefix tools)", bin)
	}
	dir, err := os.MkdirTemp("", "switchboard-azurite-")
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		c, err := startChild("azurite", bin, []string{
			"--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck", "--loose", "--silent",
			"--tableHost", "127.0.0.1", "--tablePort", strconv.Itoa(port),
		}, dir, os.Environ(), &logger{w: log})
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		if lastErr = waitTCP(ctx, addr, 30*time.Second, c); lastErr == nil {
			return &Azurite{ConnectionString: AzuriteConnectionString(port), TableEndpoint: "http://" + addr + "/devstoreaccount1", proc: c, dir: dir}, nil
		}
		c.stop(5 * time.Second) // the port was taken in the meantime, most likely
	}
	os.RemoveAll(dir)
	return nil, fmt.Errorf("azurite: %w", lastErr)
}

// Stop stops Azurite; its data (in memory) is gone.
func (a *Azurite) Stop() {
	a.proc.stop(5 * time.Second)
	os.RemoveAll(a.dir)
}

package localrunner

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"

	"switchboard/handler/dev/procnet"
)

// child is a process the runner started (the handler, Azurite).
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // its exit error, once done
}

// startChild starts path with args in dir with exactly env, its output
// copied to the log under name.
func startChild(name, path string, args []string, dir string, env []string, log *logger) (*child, error) {
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = childAttr()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	copied := make(chan struct{}, 2)
	for _, r := range []io.Reader{stdout, stderr} {
		go func() { log.prefixLines(name, r); copied <- struct{}{} }()
	}
	go func() {
		<-copied
		<-copied
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// exited reports how the process ended ("exit status 2").
func (c *child) exited() string {
	if c.err == nil {
		return "exited with status 0"
	}
	return c.err.Error()
}

// stop asks the process to stop (SIGTERM) and kills it if it has not
// exited within grace.
func (c *child) stop(grace time.Duration) {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// waitHTTP polls GET url until any HTTP answer comes back, as the host polls
// the handler. It fails when the process exits first, when timeout passes or
// when ctx ends.
func waitHTTP(ctx context.Context, url string, timeout time.Duration, c *child) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if procnet.ListensOn(c.cmd.Process.Pid, req.URL.Host) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
			return fmt.Errorf("%s %s before answering GET %s", c.name, c.exited(), url)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer GET %s within %s", c.name, url, timeout)
		}
	}
}

// waitTCP waits until addr accepts connections (Azurite).
func waitTCP(ctx context.Context, addr string, timeout time.Duration, c *child) error {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			conn.Close()
			if procnet.ListensOn(c.cmd.Process.Pid, addr) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
			return fmt.Errorf("%s %s before listening on %s", c.name, c.exited(), addr)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not listen on %s within %s", c.name, addr, timeout)
		}
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// isExecutableFile reports whether path is a regular file with an execute bit.
func isExecutableFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

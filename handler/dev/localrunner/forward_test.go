package localrunner

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// slowBody sends its first part, pauses, then the rest: a client on a
// slower link than loopback.
type slowBody struct {
	parts []string
	pause time.Duration
}

func (s *slowBody) Read(p []byte) (int, error) {
	if len(s.parts) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.parts[0])
	s.parts[0] = s.parts[0][n:]
	if s.parts[0] == "" {
		s.parts = s.parts[1:]
		if len(s.parts) > 0 {
			time.Sleep(s.pause)
		}
	}
	return n, nil
}

// Forwarded replies arrive whole under concurrency: 20 clients send 50
// requests each, every reply a ~6 KB body unique to its request and written
// in two parts. Half are POSTs whose body arrives in two parts and which
// the handler answers before it has read the body, as it does when it
// refuses a request early: the reply must not be cut while the request
// body is still on its way.
func TestForwardedRepliesAreWholeUnderConcurrency(t *testing.T) {
	body := func(id string) string {
		return strings.Repeat(id+":0123456789abcdefghijklmnopqrstuvwxyz;", 6<<10/(len(id)+38)) + "end"
	}
	h := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			_, _ = io.WriteString(w, "ready")
			return
		}
		// Answer first, read after: an HTTP/1.1 server may (full duplex).
		_ = http.NewResponseController(w).EnableFullDuplex()
		w.Header().Set("Content-Type", "text/plain")
		b := body(r.URL.Query().Get("id"))
		_, _ = io.WriteString(w, b[:4<<10])
		_ = http.NewResponseController(w).Flush()
		time.Sleep(2 * time.Millisecond)
		_, _ = io.WriteString(w, b[4<<10:])
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	t.Cleanup(h.Close)
	root := writeApp(t, testHost, map[string]string{"Items": httpFunction("items", "get", "post")})
	base, _ := startRunner(t, Options{ScriptRoot: root, Settings: baseSettings(), HandlerURL: h.URL, NoTimers: true, Log: io.Discard})

	const clients, requests = 20, 50
	var wg sync.WaitGroup
	errs := make(chan string, clients*requests)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer client.CloseIdleConnections()
			for i := range requests {
				id := fmt.Sprintf("c%02d-r%02d", c, i)
				var req *http.Request
				if i%2 == 0 {
					req, _ = http.NewRequest(http.MethodGet, base+"/api/items?id="+id, nil)
				} else {
					req, _ = http.NewRequest(http.MethodPost, base+"/api/items?id="+id, &slowBody{parts: []string{strings.Repeat("x", 1<<10), strings.Repeat("y", 3<<10)}, pause: 5 * time.Millisecond})
					req.ContentLength = 4 << 10
				}
				resp, err := client.Do(req)
				if err != nil {
					errs <- fmt.Sprintf("%s: %v", id, err)
					continue
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || string(got) != body(id) {
					errs <- fmt.Sprintf("%s: status %d, %d of %d bytes (%v)", id, resp.StatusCode, len(got), len(body(id)), err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	var failed []string
	for e := range errs {
		failed = append(failed, e)
	}
	if len(failed) > 0 {
		t.Errorf("%d of %d replies not whole, e.g. %s", len(failed), clients*requests, strings.Join(failed[:min(5, len(failed))], "; "))
	}
}

// The front refuses an oversized header block (431) instead of buffering
// up to net/http's default megabyte.
func TestFrontBoundsHeaderSize(t *testing.T) {
	root := writeApp(t, testHost, map[string]string{"Items": httpFunction("items", "get")})
	echo := echoHandler(t)
	base, _ := startRunner(t, Options{ScriptRoot: root, Settings: baseSettings(), HandlerURL: echo.URL, NoTimers: true, Log: io.Discard})
	for size, want := range map[int]int{8 << 10: http.StatusOK, 256 << 10: http.StatusRequestHeaderFieldsTooLarge} {
		status, _ := do(t, http.MethodGet, base+"/api/items", "", map[string]string{"X-Padding": strings.Repeat("a", size)})
		if status != want {
			t.Errorf("%d bytes of headers: %d, want %d", size, status, want)
		}
	}
}

// The handler sees the Host the caller used and the X-Forwarded-* headers
// the Functions host sets, so the links it builds point at the front.
func TestForwardPreservesHostAndSetsForwardedHeaders(t *testing.T) {
	type seen struct{ Host, ForwardedHost, ForwardedProto, ForwardedFor string }
	got := make(chan seen, 1)
	h := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			got <- seen{r.Host, r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-For")}
		}
	}))
	t.Cleanup(h.Close)
	root := writeApp(t, testHost, map[string]string{"Items": httpFunction("items", "get")})
	base, _ := startRunner(t, Options{ScriptRoot: root, Settings: baseSettings(), HandlerURL: h.URL, NoTimers: true, Log: io.Discard})
	front := strings.TrimPrefix(base, "http://")
	if status, _ := get(t, base+"/api/items"); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	s := <-got
	if s.Host != front || s.ForwardedHost != front || s.ForwardedProto != "http" || s.ForwardedFor != "127.0.0.1" {
		t.Errorf("handler saw %+v; want Host and X-Forwarded-Host %s, X-Forwarded-Proto http, X-Forwarded-For 127.0.0.1", s, front)
	}
}

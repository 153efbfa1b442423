package routing_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"switchboard/handler/httpapi"
	"switchboard/handler/internal/testenv"
	"switchboard/handler/presence"
	"switchboard/handler/routing"
	"switchboard/handler/switchboard"
)

const benchTenant = "5b0c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3"

// benchGraph answers getPresencesByUserId from fixed readings: the
// presence store is filled by a real poll through it.
type benchGraph struct {
	readings map[string]switchboard.PresenceReading
}

func (g *benchGraph) Presences(ctx context.Context, tenantID string, src switchboard.PresenceSource, userIDs []string) ([]switchboard.PresenceReading, error) {
	out := make([]switchboard.PresenceReading, 0, len(userIDs))
	for _, u := range userIDs {
		if r, ok := g.readings[u]; ok {
			out = append(out, r)
		}
	}
	return out, nil
}

func (g *benchGraph) User(ctx context.Context, tenantID string, src switchboard.PresenceSource, upnOrID string) (switchboard.DirectoryUser, error) {
	return switchboard.DirectoryUser{ID: upnOrID}, nil
}

// BenchmarkRouteHTTP measures POST .../route through the real router and
// an HTTP server on loopback, with the routing and presence tables on
// Azurite (presence read through the presence store, filled by a poll),
// for services of 10, 100 and 1,000 members. Each route reserves an agent and
// the conversation is then released (DELETE), so the state stays the same
// from one request to the next; a tenth of the members hold other
// conversations throughout and every member has an idle time. It reports
// p50 and p99 of the route and of the release. Run with -benchtime 1x: each
// run makes a fixed number of requests.
func BenchmarkRouteHTTP(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			srv := startBench(b, n)
			for range b.N {
				route, release := srv.measure(b, 300)
				b.ReportMetric(ms(percentile(route, 50)), "route-p50-ms")
				b.ReportMetric(ms(percentile(route, 99)), "route-p99-ms")
				b.ReportMetric(ms(percentile(release, 50)), "release-p50-ms")
				b.ReportMetric(ms(percentile(release, 99)), "release-p99-ms")
			}
		})
	}
}

type benchServer struct {
	url    string
	client *http.Client
	seq    int
}

func user(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

func startBench(b *testing.B, n int) *benchServer {
	b.Helper()
	ctx := context.Background()
	tables := testenv.Tables(b)
	graph := &benchGraph{readings: map[string]switchboard.PresenceReading{}}
	avail := []string{switchboard.Available, switchboard.Available, switchboard.Available, switchboard.Available, switchboard.Available, switchboard.Available,
		switchboard.Busy, switchboard.Away, switchboard.DoNotDisturb, switchboard.Offline}
	in := routing.ServiceInput{Name: ptr("Bench")}
	for i := range n {
		u := user(i)
		in.Members = append(in.Members, routing.MemberInput{UserID: u})
		graph.readings[u] = switchboard.PresenceReading{UserID: u, Availability: avail[i%len(avail)], Activity: avail[i%len(avail)]}
	}
	presenceStore, err := presence.NewStore(ctx, presence.StoreOptions{Tables: tables})
	if err != nil {
		b.Fatal(err)
	}
	engine, err := routing.New(ctx, routing.Options{Tables: tables, Presence: presenceStore, StaleAfter: 120 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := engine.PutService(ctx, benchTenant, "bench", in, ""); err != nil {
		b.Fatal(err)
	}
	// Every member routed once (an idle time each); a tenth then keep
	// holding their conversation.
	for i := range n {
		c := fmt.Sprintf("warm-%d", i)
		d, err := engine.Route(ctx, benchTenant, "bench", switchboard.RouteRequest{ConversationID: c, Reserve: true, Hold: time.Hour, PreferredUsers: []string{user(i)}})
		if err != nil {
			b.Fatal(err)
		}
		if len(d.Agents) == 1 && i%10 != 0 {
			if err := engine.Release(ctx, benchTenant, c); err != nil {
				b.Fatal(err)
			}
		}
	}
	poller, err := presence.NewPoller(presence.PollerOptions{Store: presenceStore, Graph: graph, Tracked: engine, ApplicationConfigured: true})
	if err != nil {
		b.Fatal(err)
	}
	sum, err := poller.Poll(ctx, time.Now().Add(time.Minute))
	if err != nil {
		b.Fatal(err)
	}
	if got := sum.Tenants[benchTenant]; got.Error != "" || got.Users != n {
		b.Fatalf("presence poll: %+v", got)
	}
	rt := httpapi.NewRouter(slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	(&httpapi.RoutingAPI{Engine: engine, Now: time.Now}).Register(rt)
	hs := httptest.NewServer(rt)
	b.Cleanup(hs.Close)
	s := &benchServer{url: hs.URL + "/api/tenants/" + benchTenant, client: hs.Client()}
	s.measure(b, 20) // warm connections and caches
	return s
}

// measure makes count route+release pairs one after the other and returns
// the latencies.
func (s *benchServer) measure(b *testing.B, count int) (route, release []time.Duration) {
	b.Helper()
	for range count {
		s.seq++
		c := fmt.Sprintf("bench-%d", s.seq)
		start := time.Now()
		s.do(b, "POST", "/services/bench/route", fmt.Sprintf(`{"conversationId": %q, "reserve": true}`, c), http.StatusOK)
		route = append(route, time.Since(start))
		start = time.Now()
		s.do(b, "DELETE", "/conversations/"+c, "", http.StatusNoContent)
		release = append(release, time.Since(start))
	}
	return route, release
}

func (s *benchServer) do(b *testing.B, method, path, body string, want int) {
	req, err := http.NewRequest(method, s.url+path, bytes.NewReader([]byte(body)))
	if err != nil {
		b.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	rb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		b.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, rb)
	}
	if method == "POST" && !bytes.Contains(rb, []byte(`"holdExpiresAt":"`)) {
		b.Fatalf("route reserved nobody: %s", rb)
	}
}

func percentile(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ptr[T any](v T) *T { return &v }

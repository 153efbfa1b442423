package interact_test

import (
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"switchboard/handler/internal/testenv"
)

// BenchmarkCreateSession measures what the handler itself spends on a new
// session and on a customer's leave and rejoin, through the real router
// with the sessions on Azurite (ACS, Graph and distribution are fakes: their
// own latency is theirs). 200 sessions (the tenant's limit) are created by
// 20 callers at once, each from its own address, then each is read, left
// and rejoined.
func BenchmarkCreateSession(b *testing.B) {
	for range b.N {
		e := newEnvOn(b, testenv.Tables(b))
		var mu sync.Mutex
		var create, rejoin []time.Duration
		var wg sync.WaitGroup
		start := time.Now()
		for c := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 10 {
					t0 := time.Now()
					r := e.create(service, "X-Forwarded-For", "198.51.100."+strconv.Itoa(c))
					d := time.Since(t0)
					if r.status != http.StatusCreated {
						b.Errorf("session %d/%d: %d %s", c, i, r.status, r.body)
						return
					}
					s := session{id: r.str("sessionId"), resume: r.str("resumeToken")}
					e.customer("POST", s, "leave")
					t1 := time.Now()
					rj := e.customer("POST", s, "rejoin")
					dr := time.Since(t1)
					if rj.status != http.StatusOK {
						b.Errorf("rejoin: %d %s", rj.status, rj.body)
						return
					}
					mu.Lock()
					create, rejoin = append(create, d), append(rejoin, dr)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		wall := time.Since(start)
		slices.Sort(create)
		slices.Sort(rejoin)
		if len(create) == 0 {
			b.Fatal("no session created")
		}
		pct := func(ds []time.Duration, p float64) float64 {
			return float64(ds[int(float64(len(ds)-1)*p)].Microseconds()) / 1000
		}
		b.ReportMetric(float64(len(create))/wall.Seconds(), "sessions/s")
		b.ReportMetric(pct(create, 0.5), "create-p50-ms")
		b.ReportMetric(pct(create, 0.99), "create-p99-ms")
		b.ReportMetric(pct(rejoin, 0.5), "rejoin-p50-ms")
		b.ReportMetric(pct(rejoin, 0.99), "rejoin-p99-ms")
	}
}

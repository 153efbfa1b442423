package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Receiver is an event subscriber's webhook on loopback: it records every
// delivery, with whether it verifies (Standard Webhooks) under the
// subscription's secret, and answers it as the test says.
type Receiver struct {
	// URL is the receiver's base URL; any path under it is received.
	URL string

	answer func(Delivery) int
	mu     sync.Mutex
	secret string
	got    []Delivery
}

// Delivery is one request a Receiver got.
type Delivery struct {
	Path   string
	Header http.Header
	Body   []byte
	// Verified: the signature verifies under the secret given to SetSecret
	// before the delivery arrived.
	Verified bool
	// Status is what the receiver answered.
	Status int
}

func (d Delivery) String() string {
	return fmt.Sprintf("{%s %d verified=%t webhook-id=%s %s}", d.Path, d.Status, d.Verified, d.Header.Get("webhook-id"), d.Body)
}

// NewReceiver starts a Receiver, closed when the test ends. answer gives
// each delivery's status; it is called one delivery at a time, in the
// order they are recorded.
func NewReceiver(t testing.TB, answer func(Delivery) int) *Receiver {
	t.Helper()
	rcv := &Receiver{answer: answer}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		wh, err := standardwebhooks.NewWebhook(rcv.secret)
		d := Delivery{Path: r.URL.Path, Header: r.Header.Clone(), Body: body, Verified: err == nil && wh.Verify(body, r.Header) == nil}
		d.Status = rcv.answer(d)
		rcv.got = append(rcv.got, d)
		w.WriteHeader(d.Status)
	}))
	t.Cleanup(srv.Close)
	rcv.URL = srv.URL
	return rcv
}

// SetSecret sets the secret deliveries are verified with (the one the
// subscription's creation showed).
func (r *Receiver) SetSecret(secret string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secret = secret
}

// Deliveries are the deliveries so far, in order.
func (r *Receiver) Deliveries() []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Delivery(nil), r.got...)
}

// WaitFor polls the deliveries until ok holds of them, and returns them;
// it fails the test with what and the deliveries if that takes longer
// than within.
func (r *Receiver) WaitFor(t testing.TB, what string, within time.Duration, ok func([]Delivery) bool) []Delivery {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ds := r.Deliveries()
		if ok(ds) {
			return ds
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: deliveries %v", what, ds)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

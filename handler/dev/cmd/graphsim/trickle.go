package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// trickle keeps the demo's live view moving (`make run` only: graphsim
// -demo starts it once the demo services exist). Every step it enqueues a
// demo conversation into one of the services through the API, and plays
// the demo agents: a ringing offer is accepted, declined or left to lapse
// (RONA); a connected conversation is released after a while (after-call
// work); a caller left waiting too long hangs up.
type trickle struct {
	api      string // the app's base URL
	tenant   string
	services []string
	every    time.Duration
	client   *http.Client
	rand     *rand.Rand
	log      io.Writer
	now      func() time.Time

	// What the agents do with a ringing offer, as fractions; the rest lapse.
	accept, decline float64
	// A connected conversation lasts talkMin plus up to talkSpread.
	talkMin, talkSpread time.Duration
	// A caller waiting longer than patience hangs up.
	patience time.Duration

	// Conversations are named prefix-1, prefix-2, ...; the prefix is the
	// start time, so that a restarted demo does not meet its old ids.
	prefix  string
	n       int
	decided map[string]bool      // conversation/agent offers already acted on (or let ring)
	release map[string]time.Time // connected conversation → when its agent releases it
}

func newTrickle(api, tenant string, services []string, every time.Duration, log io.Writer) *trickle {
	return &trickle{
		api: strings.TrimRight(api, "/"), tenant: tenant, services: services, every: every,
		client: &http.Client{Timeout: 10 * time.Second}, rand: rand.New(rand.NewPCG(2026, uint64(time.Now().UnixNano()))),
		log: log, now: time.Now, prefix: fmt.Sprintf("demo-%d", time.Now().Unix()),
		accept: 0.7, decline: 0.1, talkMin: 15 * time.Second, talkSpread: 30 * time.Second, patience: 3 * time.Minute,
		decided: map[string]bool{}, release: map[string]time.Time{},
	}
}

// run steps every t.every until ctx ends. A failed call is logged and the
// trickle goes on (the app may be restarting).
func (t *trickle) run(ctx context.Context) error {
	tick := time.NewTicker(t.every)
	defer tick.Stop()
	for {
		t.step(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

var demoCustomers = []string{"Ada", "Grace", "Linus", "Margaret", "Alan", "Barbara", "Dennis", "Frances", "Ken", "Radia"}

func (t *trickle) step(ctx context.Context) {
	t.n++
	svc := t.services[t.rand.IntN(len(t.services))]
	name := demoCustomers[t.rand.IntN(len(demoCustomers))]
	conv := map[string]any{
		"conversationId": fmt.Sprintf("%s-%d", t.prefix, t.n),
		"priority":       30 + t.rand.IntN(41),
		"customer":       map[string]any{"displayName": name, "phone": fmt.Sprintf("+4144%07d", t.rand.IntN(10_000_000))},
		"context":        map[string]any{"source": "demo trickle"},
	}
	if err := t.call(ctx, http.MethodPost, "/services/"+url.PathEscape(svc)+"/queue", conv, nil); err != nil {
		t.logf("enqueue into %s: %v", svc, err)
	}
	listed := map[string]bool{}
	for _, s := range t.services {
		t.playQueue(ctx, s, listed)
	}
	for k := range t.decided {
		if c, _, _ := strings.Cut(k, "/"); !listed[c] {
			delete(t.decided, k)
		}
	}
	for c, at := range t.release {
		if t.now().Before(at) {
			continue
		}
		if err := t.call(ctx, http.MethodDelete, "/conversations/"+url.PathEscape(c), nil, nil); err != nil && !isStatus(err, http.StatusNotFound) {
			t.logf("release %s: %v", c, err)
			continue
		}
		delete(t.release, c)
	}
}

// playQueue answers the service's ringing offers and hangs up callers who
// waited too long; listed collects the conversations seen.
func (t *trickle) playQueue(ctx context.Context, svc string, listed map[string]bool) {
	var q struct {
		Conversations []struct {
			ConversationID string    `json:"conversationId"`
			QueuedAt       time.Time `json:"queuedAt"`
			Offers         []struct {
				UserID string `json:"userId"`
				State  string `json:"state"`
			} `json:"offers"`
		} `json:"conversations"`
	}
	if err := t.call(ctx, http.MethodGet, "/services/"+url.PathEscape(svc)+"/queue", nil, &q); err != nil {
		t.logf("queue of %s: %v", svc, err)
		return
	}
	for _, c := range q.Conversations {
		listed[c.ConversationID] = true
		path := "/conversations/" + url.PathEscape(c.ConversationID)
		if !c.QueuedAt.IsZero() && t.now().Sub(c.QueuedAt) > t.patience {
			if err := t.call(ctx, http.MethodDelete, path, nil, nil); err != nil && !isStatus(err, http.StatusNotFound) {
				t.logf("hang up %s: %v", c.ConversationID, err)
			}
			continue
		}
		for _, o := range c.Offers {
			key := c.ConversationID + "/" + o.UserID
			if o.State != "Ringing" || t.decided[key] {
				continue
			}
			t.decided[key] = true
			switch r := t.rand.Float64(); {
			case r < t.accept:
				err := t.call(ctx, http.MethodPost, path+"/accept", map[string]any{"userId": o.UserID}, nil)
				if err == nil {
					t.release[c.ConversationID] = t.now().Add(t.talkMin + time.Duration(t.rand.Int64N(int64(t.talkSpread)+1)))
				} else if !isStatus(err, http.StatusConflict) { // 409: another accepted first, or it lapsed
					t.logf("accept %s: %v", c.ConversationID, err)
				}
			case r < t.accept+t.decline:
				if err := t.call(ctx, http.MethodPost, path+"/decline", map[string]any{"userId": o.UserID}, nil); err != nil && !isStatus(err, http.StatusConflict) {
					t.logf("decline %s: %v", c.ConversationID, err)
				}
			}
			// Otherwise the offer rings out: the agent goes into RONA.
		}
	}
}

type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return fmt.Sprintf("%d %s", e.status, e.msg) }

func isStatus(err error, status int) bool {
	se, ok := err.(*statusError)
	return ok && se.status == status
}

// call sends one request to the tenant's API and decodes a JSON answer
// into out (when given).
func (t *trickle) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, t.api+"/api/tenants/"+t.tenant+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return &statusError{resp.StatusCode, strings.TrimSpace(string(msg))}
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

// logf reports a failed call, except one cut short by the end of the run.
func (t *trickle) logf(format string, args ...any) {
	for _, a := range args {
		if err, ok := a.(error); ok && errors.Is(err, context.Canceled) {
			return
		}
	}
	fmt.Fprintf(t.log, "graphsim: demo trickle: "+format+"\n", args...)
}

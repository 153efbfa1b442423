// Command eventsink is a webhook receiver for local development: it listens
// on loopback, subscribes itself to a tenant's events through the API of a
// running Switchboard (make run), verifies every delivery's Standard Webhooks
// signature and prints each event. Ctrl-C deletes the subscription.
//
//	go run ./handler/dev/cmd/eventsink -tenant <tenant id> [-api http://127.0.0.1:7071] [-events '*']
//
// With -secret it only receives (for a subscription made by hand, pointing
// at -addr).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "eventsink:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("eventsink", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "address to listen on (loopback)")
	api := fs.String("api", "http://127.0.0.1:7071", "Switchboard's base URL")
	tenant := fs.String("tenant", "", "tenant id to subscribe to (required unless -secret)")
	types := fs.String("events", "*", "comma-separated event types, or *")
	secret := fs.String("secret", "", "receive only, verifying with this whsec_ secret")
	status := fs.Int("status", http.StatusNoContent, "status to answer each delivery with (try 503 to see retries, 410 to unsubscribe)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	url := "http://" + ln.Addr().String() + "/events"
	fmt.Fprintf(out, "eventsink: listening on %s\n", url)

	var location string
	if *secret == "" {
		if *tenant == "" {
			return errors.New("-tenant is required (or -secret to only receive)")
		}
		location, *secret, err = subscribe(ctx, *api, *tenant, url, strings.Split(*types, ","))
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "eventsink: subscribed (%s); Ctrl-C unsubscribes\n", location)
	}
	wh, err := standardwebhooks.NewWebhook(*secret)
	if err != nil {
		return fmt.Errorf("secret: %w", err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		verdict := "signature ok"
		if err := wh.Verify(body, r.Header); err != nil {
			verdict = "SIGNATURE INVALID: " + err.Error()
		}
		var pretty bytes.Buffer
		if json.Indent(&pretty, body, "  ", "  ") != nil {
			pretty.Write(body)
		}
		fmt.Fprintf(
			out,
			"%s %s (webhook-id %s, %s)\n  %s\n",
			time.Now().Format(time.TimeOnly),
			r.Header.Get("Content-Type"),
			r.Header.Get("webhook-id"),
			verdict,
			pretty.String(),
		)
		w.WriteHeader(*status)
	})}
	go func() { _ = srv.Serve(ln) }()
	<-ctx.Done()
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shut)
	if location != "" {
		req, _ := http.NewRequestWithContext(shut, http.MethodDelete, location, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			fmt.Fprintf(out, "eventsink: unsubscribed (%d)\n", resp.StatusCode)
		}
	}
	return nil
}

func subscribe(ctx context.Context, api, tenant, url string, types []string) (location, secret string, err error) {
	body, _ := json.Marshal(map[string]any{"url": url, "events": types, "description": "eventsink (local development)"})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(api, "/")+"/api/tenants/"+tenant+"/subscriptions", bytes.NewReader(body))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", "", fmt.Errorf("subscribe: %w", err)
	}
	defer resp.Body.Close()
	reply, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return "", "", fmt.Errorf("subscribe: %d %s", resp.StatusCode, reply)
	}
	var sub struct {
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal(reply, &sub); err != nil || sub.Secret == "" {
		return "", "", fmt.Errorf("subscribe: no secret in the reply")
	}
	return resp.Header.Get("Location"), sub.Secret, nil
}

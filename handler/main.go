// Command handler is Switchboard's Azure Functions custom handler. The
// Functions host starts it, sets FUNCTIONS_CUSTOMHANDLER_PORT, forwards HTTP
// requests to /api/... and posts every other trigger to /{FunctionName}.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"switchboard/handler/attendant"
	"switchboard/handler/config"
	"switchboard/handler/distribution"
	"switchboard/handler/events"
	"switchboard/handler/functions"
	"switchboard/handler/graph"
	"switchboard/handler/httpapi"
	"switchboard/handler/interact"
	"switchboard/handler/job"
	"switchboard/handler/outbound"
	"switchboard/handler/presence"
	"switchboard/handler/routing"
	"switchboard/handler/secrets"
	"switchboard/handler/settings"
	"switchboard/handler/store"
	"switchboard/handler/switchboard"
	"switchboard/handler/webui"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "handler:", err)
		os.Exit(1)
	}
}

// app holds the handler while run assembles it: first the capabilities,
// each built from those it depends on (build), then their routes and
// functions (the wire* functions).
type app struct {
	cfg        config.Config
	log        *slog.Logger
	now        func() time.Time
	router     *httpapi.Router
	dispatcher *functions.Dispatcher
	closers    []func()

	// The capabilities, in the order build makes them.
	tables        store.Tables
	verifier      switchboard.Verifier // nil when API_AUTH=none
	queue         switchboard.Queue    // nil when no broker is configured
	secrets       *secrets.Keyring     // tenant secrets at rest
	events        *events.Service      // the outbox capabilities record events through
	settings      *settings.Service
	graph         *graph.Client // the one Graph client (presence, Teams sync)
	presenceStore *presence.Store
	routing       *routing.Engine
	poller        *presence.Poller
	pollBudget    time.Duration // how long one presence poll works
	presence      *presence.Service
	notifications *notificationsWiring // nil without PRESENCE_NOTIFICATIONS_URL
	outbound      *outbound.Service
	distribution  *distribution.Service
	attendant     *attendant.Service
	interact      *interact.Service
	ui            *webui.UI
}

// build makes the capabilities in the order they depend on each other:
// tables, queue, secrets, events (the outbox every capability records its
// events through), the Graph client (settings check contact search
// filters with it), settings, the presence store, the routing engine
// (reads presence), the poller (polls the routing services' members) and
// the presence service, the presence subscriptions (cover the most
// recently routed first), outbound (routes through the engine), the
// Attendant Console's search (reads settings, services and presence),
// distribution (offers through the engine, serves outbound's waiting
// tasks, is told of presence changes).
func (a *app) build(ctx context.Context) error {
	var err error
	if a.tables, err = openTables(ctx, a.cfg); err != nil {
		return fmt.Errorf("table storage: %w", err)
	}
	if a.verifier, err = newVerifier(ctx, a); err != nil {
		return fmt.Errorf("API authentication: %w", err)
	}
	if a.queue, err = openQueue(a); err != nil {
		return err
	}
	if a.secrets, err = newSecrets(a); err != nil {
		return err
	}
	if a.events, err = newEvents(ctx, a); err != nil {
		return err
	}
	if a.graph, err = newGraph(a); err != nil {
		return err
	}
	if a.settings, err = newSettings(ctx, a); err != nil {
		return err
	}
	if err := newPresenceStore(ctx, a); err != nil {
		return err
	}
	if a.routing, err = newRouting(ctx, a); err != nil {
		return err
	}
	if err := newPresencePoll(a); err != nil {
		return err
	}
	if a.notifications, err = newNotifications(a); err != nil {
		return err
	}
	if a.outbound, err = newOutbound(ctx, a); err != nil {
		return err
	}
	// The waiting lines, before the capabilities that use them (Interact
	// sessions, the attendant's waiting counts).
	if a.distribution, err = newDistribution(ctx, a); err != nil {
		return err
	}
	if a.attendant, err = newAttendant(a); err != nil {
		return err
	}
	if a.interact, err = newInteract(ctx, a); err != nil {
		return err
	}
	if a.ui, err = newUI(a); err != nil {
		return err
	}
	return nil
}

// housekeepingJob is one capability's share of the Housekeeping timer.
type housekeepingJob struct {
	name string
	run  func(ctx context.Context, inv *functions.Invocation) error
}

// run starts the handler and serves until ctx is done, then shuts down
// gracefully: in-flight invocations get up to 30 seconds to finish.
func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	log := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg, err := config.Load(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	a := &app{cfg: cfg, log: log, now: time.Now, dispatcher: functions.NewDispatcher(log)}
	defer func() {
		for i := len(a.closers) - 1; i >= 0; i-- {
			a.closers[i]()
		}
	}()
	if err := a.build(ctx); err != nil {
		return err
	}
	a.router = httpapi.NewRouter(log, a.verifier)
	wireHealth(a)
	wireSettings(a)
	wirePresence(a)
	wireRouting(a)
	wireOutbound(a)
	wireDistribution(a)
	wireEvents(a)
	wireAttendant(a)
	if err := wireInteract(ctx, a); err != nil {
		return err
	}
	wireUI(a)
	jobs := []housekeepingJob{routingHousekeeping(a), outboundHousekeeping(a), distributionHousekeeping(a), eventsHousekeeping(a), settingsHousekeeping(a),
		interactHousekeeping(a)}
	if a.notifications != nil {
		jobs = append(jobs, notificationsHousekeeping(a))
	}
	wireHousekeeping(a, jobs)

	mux := http.NewServeMux()
	// The host polls GET / until the handler answers: readiness.
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "switchboard handler ready\n")
	})
	mux.Handle("/api/", a.router)
	mux.Handle("POST /{name}", a.dispatcher)

	ln, err := listen(cfg.Port)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := newServer(mux)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("handler listening", "addr", ln.Addr().String(), "functions", a.dispatcher.Names())

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// wireHealth serves GET /api/health: liveness plus storage reachability.
func wireHealth(a *app) {
	a.router.Anonymous("GET /api/health", func(w http.ResponseWriter, r *http.Request) error {
		pingCtx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := a.tables.Ping(pingCtx); err != nil {
			a.log.Error("health: storage unreachable", "err", err)
			return httpapi.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unhealthy", "storage": "unreachable"})
		}
		return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"status": "healthy", "storage": "ok"})
	})
}

// housekeepingBudget is how long one Housekeeping run may work: well inside
// the Functions timeout, and before the next tick a minute later.
const housekeepingBudget = 45 * time.Second

// wireHousekeeping registers the Housekeeping timer: the capabilities' jobs
// run side by side under one deadline, and one failing does not stop the
// others.
func wireHousekeeping(a *app, jobs []housekeepingJob) {
	a.dispatcher.Handle("Housekeeping", functions.TimerFunc("timer", func(ctx context.Context, inv *functions.Invocation, _ functions.Timer) error {
		ctx, run := job.Start(ctx, job.Options{Name: "Housekeeping", Budget: housekeepingBudget, Log: a.log})
		logs := make([]*functions.Invocation, len(jobs))
		for i, j := range jobs {
			logs[i] = &functions.Invocation{}
			run.Go(ctx, j.name, func(ctx context.Context) error { return j.run(ctx, logs[i]) })
		}
		err := run.Finish()
		for _, l := range logs {
			inv.AppendLogs(l)
		}
		return err
	}))
}

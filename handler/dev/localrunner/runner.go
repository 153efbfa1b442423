// Package localrunner runs Switchboard's Functions app where Azure
// Functions Core Tools are not installed: it reads host.json and every
// function.json as the host does (and refuses what the host would refuse),
// starts the custom handler with the host's environment, and drives it with
// the host's custom-handler protocol (PROTOCOL.md): HTTP requests forwarded
// by route and method, timers fired on their NCRONTAB schedules, Service Bus
// messages delivered with peek-lock semantics, from a real Service Bus when
// one is configured and from an in-process queue otherwise.
//
// The runner's HTTP front is what `func start` serves on :7071: the HTTP
// functions under /{routePrefix}/ and an admin API under /admin/ (see
// front.go). Function keys are not enforced, as with `func start`.
package localrunner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"switchboard/handler/secrets"
)

// Options configure a Runner.
type Options struct {
	// ScriptRoot holds host.json. FunctionsDir holds one folder per function;
	// default ScriptRoot/functions when that folder exists (the repository's
	// layout), else ScriptRoot (the packaged app's layout).
	ScriptRoot   string
	FunctionsDir string
	// Settings are the app settings: the handler's environment and what
	// %NAME% references resolve against. See MergeEnvironment.
	Settings Settings
	// HandlerPath is the handler executable; default host.json's
	// defaultExecutablePath, relative to ScriptRoot.
	HandlerPath string
	// HandlerURL drives a handler that is already running instead of
	// starting one (tests).
	HandlerURL string
	// Listener is the HTTP front's listener; without it the runner listens
	// on Listen (default 127.0.0.1:7071).
	Listener net.Listener
	Listen   string
	// MaxDeliveryCount and RedeliveryDelay configure the in-process
	// queues (defaults 10 and 1 s).
	MaxDeliveryCount int
	RedeliveryDelay  time.Duration
	// NoTimers leaves timer functions to the admin endpoint only: no
	// schedule, no runOnStartup (deterministic tests).
	NoTimers bool
	// StartTimeout bounds the handler's start-up (default 60 s).
	StartTimeout time.Duration
	// Log receives the runner's and the handler's output (default stderr).
	Log io.Writer
	// Now is the clock (default time.Now).
	Now func() time.Time
}

const (
	stateStarting int32 = iota
	stateRunning
	stateStopping
)

// Runner runs one Functions app.
type Runner struct {
	opts          Options
	app           *App
	settings      Settings
	log           *logger
	now           func() time.Time
	broker        *Broker
	inv           *invoker
	timers        map[string]*timerState
	httpFunctions []*Function // most specific route first
	serviceBus    bool        // queues are on Service Bus, not in process

	state      atomic.Int32
	handlerURL string
	handlerPID atomic.Int64           // the handler process (0 with Options.HandlerURL)
	proxy      *httputil.ReverseProxy // forward's, to handlerURL
	workCtx    context.Context        // the runner's lifetime: background invocations
	background sync.WaitGroup
}

// New reads and checks the app. Every problem the host would report at
// start-up (bad bindings, unresolved %SETTING% references, unsupported
// routes) is an error here, naming the function.
func New(opts Options) (*Runner, error) {
	if opts.ScriptRoot == "" {
		opts.ScriptRoot = "."
	}
	if opts.FunctionsDir == "" {
		opts.FunctionsDir = opts.ScriptRoot
		if st, err := os.Stat(filepath.Join(opts.ScriptRoot, "functions")); err == nil && st.IsDir() {
			opts.FunctionsDir = filepath.Join(opts.ScriptRoot, "functions")
		}
	}
	if opts.Settings == nil {
		opts.Settings = Settings{}
	}
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:7071"
	}
	if opts.MaxDeliveryCount <= 0 {
		opts.MaxDeliveryCount = 10
	}
	if opts.RedeliveryDelay <= 0 {
		opts.RedeliveryDelay = time.Second
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 60 * time.Second
	}
	if opts.Log == nil {
		opts.Log = os.Stderr
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	app, err := LoadApp(opts.ScriptRoot, opts.FunctionsDir, opts.Settings)
	if err != nil {
		return nil, err
	}
	r := &Runner{
		opts: opts, app: app, settings: opts.Settings, now: opts.Now,
		log:    &logger{w: opts.Log},
		broker: NewBroker(opts.Now),
		timers: map[string]*timerState{},
	}
	r.broker.MaxDeliveryCount, r.broker.RedeliveryDelay = opts.MaxDeliveryCount, opts.RedeliveryDelay
	if strings.TrimSpace(r.settings["SECRETS_KEY"]) == "" {
		// One key for every handler process of this run, so that a restarted
		// handler still opens the secrets the one before it sealed.
		settings := Settings{}
		for k, v := range r.settings {
			settings[k] = v
		}
		settings["SECRETS_KEY"] = secrets.GenerateKey()
		r.settings = settings
		r.log.printf("runner", "SECRETS_KEY is not set: tenant secrets are sealed under a key made for this run (local development; set "+
			"SECRETS_KEY to keep them across runs)")
	}
	if err := r.chooseQueues(); err != nil {
		return nil, err
	}
	for _, fn := range app.Functions {
		switch fn.Trigger {
		case HTTPTrigger:
			r.httpFunctions = append(r.httpFunctions, fn)
		case TimerTrigger:
			r.timers[fn.Name] = &timerState{}
		}
	}
	sort.SliceStable(r.httpFunctions, func(i, j int) bool { return moreSpecific(r.httpFunctions[i].Route, r.httpFunctions[j].Route) })
	return r, nil
}

// chooseQueues decides where the Service Bus functions receive from: Service
// Bus when ServiceBusConnection (or any trigger's connection) is
// configured, and then every trigger's connection must be, as the host
// requires; the in-process queue when none is.
func (r *Runner) chooseQueues() error {
	r.serviceBus = serviceBusConfigured(r.settings, "ServiceBusConnection")
	for _, fn := range r.app.Functions {
		if fn.Trigger == ServiceBusTrigger && serviceBusConfigured(r.settings, fn.Connection) {
			r.serviceBus = true
		}
	}
	if !r.serviceBus {
		return nil
	}
	var errs []error
	for _, fn := range r.app.Functions {
		if fn.Trigger == ServiceBusTrigger && !serviceBusConfigured(r.settings, fn.Connection) {
			errs = append(errs, fmt.Errorf("function %s: Service Bus connection setting %s is not set (neither %s nor "+
				"%s__fullyQualifiedNamespace)", fn.Name, fn.Connection, fn.Connection, fn.Connection))
		}
	}
	return errors.Join(errs...)
}

// App returns the app as the runner read it.
func (r *Runner) App() *App { return r.app }

// Broker returns the in-process queues.
func (r *Runner) Broker() *Broker { return r.broker }

func (r *Runner) stateName() string {
	switch r.state.Load() {
	case stateRunning:
		return "Running"
	case stateStopping:
		return "Stopping"
	}
	return "Starting"
}

// Run starts the handler and serves until ctx ends (nil) or the handler
// exits on its own (an error). On the way out it stops the timers and
// queue consumers, then the handler (SIGTERM, then SIGKILL after 35 s).
func (r *Runner) Run(ctx context.Context) (err error) {
	ln := r.opts.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", r.opts.Listen); err != nil {
			return fmt.Errorf("HTTP front: %w", err)
		}
	}
	frontURL := "http://" + ln.Addr().String()
	// The handler's address is fixed before the front serves anything.
	port := 0
	if r.opts.HandlerURL != "" {
		r.handlerURL = r.opts.HandlerURL
	} else {
		if port, err = freePort(); err != nil {
			return err
		}
		r.handlerURL = "http://127.0.0.1:" + strconv.Itoa(port)
	}
	r.proxy = r.newProxy()
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	r.workCtx = workCtx
	var workers sync.WaitGroup
	var handler *child
	// Bounded like a real front end: a client that sends slowly or never
	// stops sending headers does not hold a connection or memory forever.
	// No write timeout: a function may run up to functionTimeout.
	srv := &http.Server{
		Handler:           r.front(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(ln) }()
	defer func() {
		r.state.Store(stateStopping)
		r.log.printf("runner", "stopping")
		stopWork()
		workers.Wait()
		r.background.Wait()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
		if handler != nil {
			handler.stop(35 * time.Second)
			r.log.printf("runner", "handler %s", handler.exited())
		}
	}()

	if r.opts.HandlerURL == "" {
		if handler, err = r.startHandler(frontURL, port); err != nil {
			return err
		}
		r.setHandlerPID(handler.cmd.Process.Pid)
		if err := waitHTTP(ctx, r.handlerURL+"/", r.opts.StartTimeout, handler); err != nil {
			return fmt.Errorf("handler: %w", err)
		}
	}
	r.inv = r.newInvoker()
	r.state.Store(stateRunning)
	r.log.printf("runner", "handler ready at %s; functions:\n%s", r.handlerURL, r.describe(frontURL))
	r.log.printf("runner", "listening on %s (admin API under %s/admin/; function keys are not checked locally)", frontURL, frontURL)
	if err := r.startTriggers(workCtx, &workers); err != nil {
		return err
	}

	var restarts []time.Time
	for {
		var exited <-chan struct{}
		if handler != nil {
			exited = handler.done
		}
		select {
		case <-ctx.Done():
			return nil
		case <-exited:
			if ctx.Err() != nil {
				return nil // stopped by the same signal as the runner
			}
			// The Functions host starts a worker that died again; one that
			// keeps dying is given up on.
			now := time.Now()
			restarts = append(restarts, now)
			for len(restarts) > 0 && now.Sub(restarts[0]) > time.Minute {
				restarts = restarts[1:]
			}
			if len(restarts) > maxHandlerRestarts {
				return fmt.Errorf("the handler stopped unexpectedly %d times within a minute, the last time: %s", len(restarts), handler.exited())
			}
			r.state.Store(stateStarting)
			r.log.printf("runner", "the handler stopped unexpectedly (%s); starting it again, as the Functions host does", handler.exited())
			next, err := r.startHandler(frontURL, port)
			if err != nil {
				return err
			}
			handler = next
			r.setHandlerPID(handler.cmd.Process.Pid)
			if err := waitHTTP(ctx, r.handlerURL+"/", r.opts.StartTimeout, handler); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("handler: %w", err)
			}
			r.state.Store(stateRunning)
			r.log.printf("runner", "handler ready again at %s", r.handlerURL)
		case err := <-srvErr:
			return fmt.Errorf("HTTP front: %w", err)
		}
	}
}

// maxHandlerRestarts bounds how often within a minute the runner starts a
// handler that stopped unexpectedly.
const maxHandlerRestarts = 5

func (r *Runner) setHandlerPID(pid int) { r.handlerPID.Store(int64(pid)) }

// startHandler starts the handler executable as the host does: in the
// working directory, with the app settings as environment and the port in
// FUNCTIONS_CUSTOMHANDLER_PORT. Without a Service Bus, LOCAL_QUEUE_URL
// tells the handler where the in-process queues are.
func (r *Runner) startHandler(frontURL string, port int) (*child, error) {
	path := r.opts.HandlerPath
	if path == "" {
		path = r.app.Host.ExecutablePath
		if !filepath.IsAbs(path) {
			path = filepath.Join(r.app.Root, path)
		}
	}
	if !isExecutableFile(path) {
		return nil, fmt.Errorf("handler executable %s not found (host.json defaultExecutablePath %q): build it or name it with "+
			"HandlerPath", path, r.app.Host.ExecutablePath)
	}
	env := Settings{}
	for k, v := range r.settings {
		env[k] = v
	}
	env["FUNCTIONS_CUSTOMHANDLER_PORT"] = strconv.Itoa(port)
	env["FUNCTIONS_HTTPWORKER_PORT"] = strconv.Itoa(port)
	env["AzureWebJobsScriptRoot"] = r.app.Root
	delete(env, "LOCAL_QUEUE_URL")
	if !r.serviceBus {
		env["LOCAL_QUEUE_URL"] = frontURL + "/admin/queues"
	}
	r.log.printf("runner", "starting %s on port %d", path, port)
	return startChild("handler", path, r.app.Host.Arguments, r.app.Host.WorkingDirectory, env.Environ(), r.log)
}

// startTriggers starts the timer schedules and the queue consumers.
func (r *Runner) startTriggers(ctx context.Context, wg *sync.WaitGroup) error {
	for _, fn := range r.app.Functions {
		switch fn.Trigger {
		case TimerTrigger:
			if r.opts.NoTimers {
				continue
			}
			if fn.RunOnStartup {
				wg.Add(1)
				go func() { defer wg.Done(); r.fireTimer(ctx, fn) }()
			}
			wg.Add(1)
			go func() { defer wg.Done(); r.runSchedule(ctx, fn, wg) }()
		case ServiceBusTrigger:
			if !r.serviceBus {
				wg.Add(1)
				go func() { defer wg.Done(); r.consumeLocal(ctx, fn, wg) }()
				continue
			}
			client, err := serviceBusClient(r.settings, fn.Connection)
			if err != nil {
				return fmt.Errorf("function %s: Service Bus connection %s: %w", fn.Name, fn.Connection, err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.consumeServiceBus(ctx, fn, client, wg)
				_ = client.Close(context.Background())
			}()
		}
	}
	return nil
}

func (r *Runner) newInvoker() *invoker {
	return &invoker{
		baseURL: r.handlerURL,
		client:  &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second}},
		timeout: r.app.Host.FunctionTimeout,
		log:     r.log,
		now:     r.now,
	}
}

// consumeLocal delivers fn's in-process queue to it, up to
// MaxConcurrentCalls messages at a time: completed on success, abandoned
// (redelivered, in the end dead-lettered) on failure.
func (r *Runner) consumeLocal(ctx context.Context, fn *Function, wg *sync.WaitGroup) {
	slots := make(chan struct{}, r.app.Host.MaxConcurrentCalls)
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		m, err := r.broker.Receive(ctx, fn.Queue)
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			d := deliveredMessage{
				Body: m.Body, MessageID: m.MessageID, DeliveryCount: m.DeliveryCount, SequenceNumber: m.SequenceNumber,
				EnqueuedTime: m.EnqueuedTime, LockToken: m.LockToken, ContentType: m.ContentType,
				CorrelationID: m.CorrelationID, Subject: m.Subject, ApplicationProperties: m.ApplicationProperties,
			}
			out := r.inv.invoke(ctx, fn, map[string]any{fn.Binding: messageBody(d.Body)}, messageMetadata(d))
			if out.Succeeded {
				_ = r.broker.Complete(fn.Queue, m.LockToken)
				return
			}
			dead, _ := r.broker.Abandon(fn.Queue, m.LockToken, out.Error)
			if dead {
				r.log.printf(fn.Name, "message %s (sequence %d) dead-lettered after %d deliveries", m.MessageID, m.SequenceNumber, m.DeliveryCount)
			}
		}()
	}
}

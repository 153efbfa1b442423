// Command localrunner runs Switchboard's Functions app without Azure
// Functions Core Tools: it reads host.json and functions/*/function.json,
// starts the custom handler as the host would and serves the HTTP functions,
// timers and Service Bus queues (see package localrunner). `make run` starts
// it with -azurite.
//
//	localrunner [-root dir] [-port 7071] [-settings file] [-handler path]
//	            [-azurite] [-no-timers] [-max-delivery-count 10] [-redelivery-delay 1s]
//
// App settings come from the settings file's Values (default
// <root>/local.settings.json, else <root>/local.settings.json.example), each
// overridden by an environment variable of the same name, as with Core
// Tools. Without -handler the handler is host.json's defaultExecutablePath
// under the root when that is an executable file (a `make package` folder),
// else it is built first with `go build -o bin/handler ./handler`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"switchboard/handler/dev/localrunner"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Environ(), os.Stderr); err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "localrunner: interrupted")
			os.Exit(130)
		}
		fmt.Fprintln(os.Stderr, "localrunner:", err)
		os.Exit(1)
	}
}

// run parses the flags, prepares settings, Azurite and the handler binary,
// and runs the app until ctx ends.
func run(ctx context.Context, args, environ []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("localrunner", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", "", "script root holding host.json (default: the repository root)")
	port := fs.Int("port", 7071, "port of the HTTP front on 127.0.0.1")
	settingsFile := fs.String("settings", "", "local.settings.json file (default: <root>/local.settings.json, else <root>/local.settings.json.example)")
	handlerPath := fs.String("handler", "", "handler executable (default: <root>/<defaultExecutablePath> when executable, else built into bin/handler)")
	azurite := fs.Bool("azurite", false, "start Azurite (in memory, free port) and point TABLES_CONNECTION_STRING and AzureWebJobsStorage at it")
	noTimers := fs.Bool("no-timers", false, "fire timer functions only through POST /admin/functions/{name}")
	maxDelivery := fs.Int("max-delivery-count", 10, "in-process queues: deliveries before a message is dead-lettered")
	redelivery := fs.Duration("redelivery-delay", time.Second, "in-process queues: pause before an abandoned message is delivered again")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	repo := repoRoot()
	if *root == "" {
		if repo == "" {
			return errors.New("no go.mod above the working directory: pass -root")
		}
		*root = repo
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "localrunner: "+format+"\n", a...) }

	settings, err := loadSettings(*root, *settingsFile, environ, logf)
	if err != nil {
		return err
	}
	if *azurite {
		if repo == "" {
			return errors.New("-azurite needs the repository (tools/node_modules) above the working directory")
		}
		az, err := localrunner.StartAzurite(ctx, filepath.Join(repo, "tools", "node_modules", ".bin", "azurite-table"), stderr)
		if err != nil {
			return err
		}
		defer az.Stop()
		settings["TABLES_CONNECTION_STRING"] = az.ConnectionString
		settings["AzureWebJobsStorage"] = az.ConnectionString
		logf("Azurite (tables, in memory) at %s", az.TableEndpoint)
	}
	if *handlerPath == "" {
		if *handlerPath, err = findOrBuildHandler(ctx, *root, repo, settings, logf); err != nil {
			return err
		}
	}
	r, err := localrunner.New(localrunner.Options{
		ScriptRoot:       *root,
		Settings:         settings,
		HandlerPath:      *handlerPath,
		Listen:           "127.0.0.1:" + strconv.Itoa(*port),
		MaxDeliveryCount: *maxDelivery,
		RedeliveryDelay:  *redelivery,
		NoTimers:         *noTimers,
		Log:              stderr,
	})
	if err != nil {
		return err
	}
	return r.Run(ctx)
}

// loadSettings reads the settings file's Values and lays the environment
// over them, as Core Tools do.
func loadSettings(root, file string, environ []string, logf func(string, ...any)) (localrunner.Settings, error) {
	if file == "" {
		for _, name := range []string{"local.settings.json", "local.settings.json.example"} {
			if _, err := os.Stat(filepath.Join(root, name)); err == nil {
				file = filepath.Join(root, name)
				break
			}
		}
	}
	values := localrunner.Settings{}
	if file != "" {
		var err error
		if values, err = localrunner.ReadSettingsFile(file); err != nil {
			return nil, err
		}
		logf("app settings from %s", file)
	} else {
		logf("no local.settings.json in %s: app settings from the environment only", root)
	}
	merged := localrunner.MergeEnvironment(values, environ)
	var overridden []string
	for k, v := range values {
		if merged[k] != v {
			overridden = append(overridden, k)
		}
	}
	sort.Strings(overridden)
	for _, k := range overridden {
		logf("skipping %s from the settings file: it is set in the environment", k)
	}
	return merged, nil
}

// findOrBuildHandler returns host.json's executable under root when it is
// one (a packaged app), else builds ./handler of the repository into
// bin/handler.
func findOrBuildHandler(ctx context.Context, root, repo string, settings localrunner.Settings, logf func(string, ...any)) (string, error) {
	host, err := localrunner.ReadHost(root, settings)
	if err != nil {
		return "", err
	}
	exe := host.ExecutablePath
	if !filepath.IsAbs(exe) {
		exe = filepath.Join(root, exe)
	}
	if st, err := os.Stat(exe); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
		return exe, nil
	}
	if repo == "" {
		return "", fmt.Errorf("handler executable %s not found and no repository to build it from: pass -handler", exe)
	}
	out := filepath.Join(repo, "bin", "handler")
	logf("building the handler: go build -o %s ./handler", out)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./handler")
	cmd.Dir = repo
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./handler: %v\n%s", err, b)
	}
	return out, nil
}

// repoRoot is the folder holding go.mod at or above the working directory,
// "" when there is none.
func repoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

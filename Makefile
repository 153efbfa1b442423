# Switchboard. `make run` and `make test` do all set-up on a machine with Go
# and Node.js: the npm tooling in tools/ (Azurite, the Service Bus stand-in)
# is installed on first use.
SHELL := bash
GO ?= go
TOOLS_STAMP := tools/node_modules/.switchboard-installed

.PHONY: all build run test test-short fuzz fuzz-targets bench package connector vet fmt tools clean chromium ui-vendor

all: build

tools: $(TOOLS_STAMP)

$(TOOLS_STAMP): tools/package.json tools/package-lock.json
	npm ci --prefix tools --no-audit --no-fund --loglevel=error
	touch $@

build:
	$(GO) build ./...

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l handler)" || { echo "gofmt needed:"; gofmt -l handler; exit 1; }

# The browser tests (handler/webui/browsertest) drive Debian's chromium
# headless; installed here when missing (needs root, as CI and the
# development machines are).
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# The web page's MSAL.js is vendored (committed) so the handler builds
# without npm; this refreshes it from tools/node_modules after the version
# in tools/package.json changed.
MSAL_DIR := handler/webui/static/vendor/msal
ui-vendor: tools
	mkdir -p $(MSAL_DIR)
	cp tools/node_modules/@azure/msal-browser/lib/msal-browser.min.js $(MSAL_DIR)/msal-browser.min.js
	cp tools/node_modules/@azure/msal-browser/lib/redirect-bridge/msal-redirect-bridge.min.js $(MSAL_DIR)/msal-redirect-bridge.min.js
	cp tools/node_modules/@azure/msal-browser/LICENSE $(MSAL_DIR)/LICENSE.txt
	node -p '"@azure/msal-browser " + require("./tools/node_modules/@azure/msal-browser/package.json").version' > $(MSAL_DIR)/VERSION.txt

# Every test, integration tests included: they start Azurite and the other
# local servers themselves, on free loopback ports, and stop them after.
# Then every fuzz target for FUZZTIME (20 s each, one after the other).
test: tools chromium vet
	$(GO) test -count=1 -timeout 25m ./...
	$(MAKE) --no-print-directory fuzz-targets FUZZTIME=20s

# Every fuzz target for longer: make fuzz FUZZTIME=30m for a night's run.
# Inputs that fail are kept under the package's testdata/fuzz and are then
# run by every go test.
FUZZTIME ?= 5m
fuzz: tools
	$(MAKE) --no-print-directory fuzz-targets FUZZTIME=$(FUZZTIME)

# Each func FuzzXxx of each package under handler/, one at a time (go test
# -fuzz takes one target per run).
fuzz-targets:
	@set -e; for file in $$(grep -rl --include='*_test.go' '^func Fuzz' handler | sort); do \
		pkg=./$$(dirname $$file); \
		for target in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$file); do \
			echo "fuzz: $$pkg $$target for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

# Unit tests only: every test that needs a server (Azurite, the Service Bus
# stand-in, the handler behind the local runner) skips under -short
# (testenv.SkipShort), so this starts none. Fast feedback while editing.
test-short:
	$(GO) test -short -count=1 ./...

# The app on this machine without Functions Core Tools: Azurite (tables, in
# memory, a free loopback port) and the local runner, which builds and starts
# the handler and serves http://127.0.0.1:7071 (functions under /api/, the
# admin API under /admin/), with the Graph/Entra simulator (handler/dev/cmd/graphsim)
# and its demo tenant: 50 agents in two services whose presence changes over
# time. Ctrl-C stops all of it. Flags for the runner go
# in RUN_ARGS, e.g. make run RUN_ARGS='-port 8080 -no-timers'.
run: tools
	@$(GO) build -o bin/localrunner ./handler/dev/cmd/localrunner
	@$(GO) build -o bin/graphsim ./handler/dev/cmd/graphsim
	@bin/graphsim -demo -- bin/localrunner -azurite $(RUN_ARGS)

bench: tools
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./handler/...

# The app folder that `func start`, the local runner and `azd deploy` take:
# host.json, one folder per function (functions/<Name>/function.json becomes
# <Name>/function.json) and the handler cross-compiled for the Flex
# Consumption workers (linux/amd64, static). DIST=<dir> puts it elsewhere.
DIST ?= dist
package:
	rm -rf $(DIST)/app
	mkdir -p $(DIST)/app
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags='-s -w' -o $(DIST)/app/handler ./handler
	cp host.json $(DIST)/app/host.json
	cp -R functions/. $(DIST)/app/
	@echo "make package: $(DIST)/app is ready"

# A ready-to-import copy of the Power Automate connector in $(DIST)/connector:
# connector/ with this deployment's host, OAuth client id and resource URI
# (azd's outputs SWITCHBOARD_API_URL, PRESENCE_APP_CLIENT_ID, API_AUDIENCE)
# and the operator's CONNECTOR_PRIVACY_POLICY_URL and CONNECTOR_CONTACT_EMAIL,
# read from the environment, else from `azd env get-values` when azd is
# installed. Nothing is written while a value is missing.
connector:
	@if [ -z "$$SWITCHBOARD_API_URL" ] && command -v azd >/dev/null 2>&1; then \
		set -a; eval "$$(azd env get-values)"; set +a; \
	fi; \
	$(GO) run ./handler/dev/cmd/connector -src connector -out $(DIST)/connector

clean:
	rm -rf bin dist

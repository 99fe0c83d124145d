# Sovereign: `make run` starts the server on the embedded SQLite default,
# `make test` runs every test. Both work on a fresh machine with Go and Node.js.

GO       ?= go
NPM      ?= npm
BIN      := bin/sovereign
VERSION  ?= $(shell git describe --tags --match 'v[0-9]*' --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
# -trimpath: builds do not depend on the clone's directory, so a fresh clone
# reuses the Go build cache and release binaries are reproducible.
GOFLAGS_BUILD := -trimpath
FUZZTIME ?= 5m

.PHONY: release all build run assets sdk-ts openapi clients check-clients lint test test-go test-go-postgres test-clients test-app test-browser fuzz vet clean bench

all: build

## assets: what the binary embeds: the docs renderer (two files of one pinned
## npm package, no dependency tree), the admin UI (no npm packages) and the
## member app (web/app, its own package.json and lock file)
assets: web/dist/docs/web-components.min.js web/dist/admin/index.html web/dist/app/index.html

web/dist/docs/web-components.min.js: web/docs-renderer.json web/fetch-docs-renderer.mjs
	node web/fetch-docs-renderer.mjs

web/dist/admin/index.html: web/build.mjs $(wildcard web/admin/*)
	node web/build.mjs

# The TypeScript SDK package (clients/ts/dist, rule under sdk-ts below):
# the member app consumes it as a package (web/app/package.json:
# file:../../clients/ts).

# The member app (/app) has its own package.json and lock file.
# Its file:../../clients/ts dependency runs the SDK's prepare script (tsc), so
# the SDK's own packages are installed first.
web/app/node_modules/.package-lock.json: web/app/package.json web/app/package-lock.json clients/ts/node_modules/.package-lock.json
	cd web/app && $(NPM) ci --no-audit --no-fund --loglevel=error
	@touch $@

# web/app/build.mjs also bundles the admin console's passkey helper into
# web/dist/admin, so it runs after web/build.mjs.
web/dist/app/index.html: web/app/node_modules/.package-lock.json clients/ts/dist/src/index.js web/dist/admin/index.html \
		web/app/build.mjs web/app/tsconfig.json web/admin/passkeys.mjs $(shell find web/app/src web/app/static -type f 2>/dev/null)
	cd web/app && node build.mjs

## build: compile the server binary into bin/ (and build the TypeScript SDK
## package in clients/ts/dist, which the web app consumes)
## (static, without cgo, as the releases: SQLite is pure Go, and a cgo build
## maps libc besides, about 2 MB more RSS)
build: assets sdk-ts
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/sovereign

## release: static linux/amd64 and linux/arm64 (Raspberry Pi 3/4/5) binaries
## with the web assets embedded, in dist/, with SHA256SUMS. VERSION comes from
## the git tag (vMAJOR.MINOR.PATCH, see CHANGELOG.md).
RELEASE_DIR ?= dist
RELEASE_PLATFORMS := linux/amd64 linux/arm64
release: assets
	@rm -rf $(RELEASE_DIR) && mkdir -p $(RELEASE_DIR)
	@for p in $(RELEASE_PLATFORMS); do \
	  os=$${p%/*}; arch=$${p#*/}; out=$(RELEASE_DIR)/sovereign-$(VERSION)-$$os-$$arch; \
	  echo "build $$out"; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build $(GOFLAGS_BUILD) -ldflags "$(LDFLAGS) -s -w" -o $$out ./cmd/sovereign || exit 1; \
	done
	cp LICENSE CHANGELOG.md packaging/systemd/sovereign.service $(RELEASE_DIR)/
	cd $(RELEASE_DIR) && sha256sum sovereign-* LICENSE CHANGELOG.md sovereign.service > SHA256SUMS && cat SHA256SUMS

## run: build and start the server (http://localhost:8080, data in ./data)
run: build
	./$(BIN) serve

## openapi: regenerate openapi.yaml from the code
openapi:
	$(GO) run ./cmd/sovereign openapi > openapi.yaml

# The Go client generator, pinned (go run fetches it into the module cache;
# it is not a dependency of the server's go.mod).
OAPI_CODEGEN := $(GO) run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2

# npm ci also runs the package's `prepare` script, which builds dist/.
clients/ts/node_modules/.package-lock.json: clients/ts/package.json clients/ts/package-lock.json
	cd clients/ts && $(NPM) ci --no-audit --no-fund --loglevel=error
	@touch $@

## sdk-ts: build the TypeScript SDK package (@sovereign-im/client) into clients/ts/dist
sdk-ts: clients/ts/dist/src/index.js

clients/ts/dist/src/index.js: clients/ts/node_modules/.package-lock.json clients/ts/tsconfig.json clients/ts/tsconfig.build.json $(wildcard clients/ts/src/*.ts)
	cd clients/ts && $(NPM) run --silent build
	@touch $@

## clients: regenerate the SDKs' generated code from openapi.yaml (TS types,
## Go client in the clients/go module's sovereign package)
clients: clients/ts/node_modules/.package-lock.json
	cd clients/ts && ./node_modules/.bin/openapi-typescript ../../openapi.yaml -o src/schema.d.ts
	cd clients/go/sovereign && $(OAPI_CODEGEN) -config oapi-codegen.yaml ../../../openapi.yaml

## check-clients: fail when the generated SDK code differs from what openapi.yaml produces
check-clients: clients/ts/node_modules/.package-lock.json
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	  clients/ts/node_modules/.bin/openapi-typescript openapi.yaml -o $$tmp/schema.d.ts --silent && \
	  (cd $$tmp && $(OAPI_CODEGEN) -config $(CURDIR)/clients/go/sovereign/oapi-codegen.yaml $(CURDIR)/openapi.yaml) && \
	  diff -u clients/ts/src/schema.d.ts $$tmp/schema.d.ts && \
	  diff -u clients/go/sovereign/client.gen.go $$tmp/client.gen.go && \
	  echo "generated clients match openapi.yaml" || \
	  { echo "generated clients are stale: run 'make clients' and commit the result"; exit 1; }

# The Go SDK is its own module (clients/go): ./... of the server's module
# does not reach it, so vet and test it from its directory as well.
SDK_GO := clients/go

vet:
	$(GO) vet ./...
	cd $(SDK_GO) && $(GO) vet ./...

## lint: go vet, gofmt, no merge-conflict markers, plus the OpenAPI linter
## (@redocly/cli from npm, offline; a lint-time tool in tools/openapi-lint,
## never a build input)
LINT_NODE := tools/openapi-lint/node_modules/.package-lock.json
$(LINT_NODE): tools/openapi-lint/package.json tools/openapi-lint/package-lock.json
	cd tools/openapi-lint && $(NPM) ci --no-audit --no-fund --loglevel=error
	@touch $@

lint: vet $(LINT_NODE)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	@! git grep -n -E '^(<<<<<<<|>>>>>>>)( |$$)|^=======$$' -- ':!*.md' || { echo "merge-conflict markers above"; exit 1; }
	cd tools/openapi-lint && ./node_modules/.bin/redocly lint ../../openapi.yaml --config ../../redocly.yaml

## test: every test: vet, the spec lint, Go tests with the race detector (with
## the crash test), the SDK drift check, the TypeScript SDK's tests (with the
## end-to-end test against the real binary) and the admin UI and member app in a browser
test: lint test-go test-go-postgres check-clients test-clients test-app test-browser

test-go: assets
	$(GO) test -race -count=1 -timeout 30m ./...
	cd $(SDK_GO) && $(GO) test -race -count=1 -timeout 30m ./...
	@# Without -race (its goroutine limit is below 10,000 streams' readers):
	$(GO) test -count=1 -run TestCapacityIdleStreamRSS ./cmd/sovereign-bench

## test-go-postgres: the store and handler suites again on PostgreSQL
## (127.0.0.1:5432 as user postgres, trust authentication: each test gets a
## fresh database cloned from a migrated template; override the server with
## SOVEREIGN_TEST_PG_URL), plus the PostgreSQL-only tests of those packages
## (several instances, ordering). The real-binary PostgreSQL tests
## (tests/scaleout: two instances; crashtest: SIGKILL of one of two) run in
## test-go's ./... beside the SQLite crash test, whenever PostgreSQL answers
PG_PACKAGES = ./store/... ./handlers/... ./server/...
test-go-postgres: assets
	SOVEREIGN_TEST_DATABASE=postgres $(GO) test -race -count=1 -timeout 30m $(PG_PACKAGES)

## test-clients: build the server binary, then run the TypeScript SDK's tests
## (unit tests, the end-to-end test that starts bin/sovereign, and the
## packaging test: npm pack, a fresh project installs the tarball and runs a
## smoke flow against bin/sovereign, an esbuild browser bundle)
test-clients: build clients/ts/node_modules/.package-lock.json
	cd clients/ts && ./node_modules/.bin/tsc -p . && SOVEREIGN_BIN=$(CURDIR)/$(BIN) node --test dist/test/*.test.js

## test-app: unit tests of the member app's pure parts (envelopes, padding,
## device names, plain-words errors); the flows are in test-browser
test-app: web/dist/app/index.html
	cd web/app && node test.mjs

## test-browser: the admin UI and the member app in headless Chromium (CHROMIUM=/usr/bin/chromium) with a virtual
## passkey authenticator, against the real binary; screenshots land in artifacts/admin/. node --test runs every
## tests/browser/*.test.mjs (app-attachments.test.mjs: photos, files, voice notes with Chromium's fake microphone)
tests/browser/node_modules/.package-lock.json: tests/browser/package.json tests/browser/package-lock.json
	cd tests/browser && $(NPM) ci --no-audit --no-fund --loglevel=error
	@touch $@

test-browser: build tests/browser/node_modules/.package-lock.json
	cd tests/browser && node --test --test-concurrency=1

## fuzz: run every fuzz target for FUZZTIME each (tools/fuzz-target.sh:
## a bare deadline flake of Go's fuzzing coordinator is retried once)
fuzz:
	@# Targets are found in the sources (listing them with go test -list
	@# would build every package's test binary first).
	@for dir in $$(grep -rl --include='*_test.go' --exclude-dir=node_modules --exclude-dir=clients '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go | cut -c6-); do \
	    echo "== $$dir $$f ($(FUZZTIME))"; \
	    GO=$(GO) ./tools/fuzz-target.sh $$dir $$f $(FUZZTIME) || exit 1; \
	  done; \
	done
	@# The Go SDK is its own module: its fuzz targets run from its directory.
	@cd $(SDK_GO) && for dir in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go | cut -c6-); do \
	    echo "== clients/go/$$dir $$f ($(FUZZTIME))"; \
	    GO=$(GO) $(CURDIR)/tools/fuzz-target.sh $$dir $$f $(FUZZTIME) || exit 1; \
	  done; \
	done

clean:
	rm -rf bin dist web/dist/docs web/dist/admin web/dist/app artifacts clients/ts/dist

## bench: short run of every sovereign-bench scenario (under 3 minutes;
## ends with issue #22's table: figure, today, target, measured;
## results in bench-results/). Scale up with BENCHFLAGS, e.g.
## make bench BENCHFLAGS="--duration 60s --conns 10000 --rate 1000"
BENCHFLAGS ?=
bench:
	$(GO) run ./cmd/sovereign-bench --table --concurrency 8,64 --size 128 --duration 10s --warmup 2s --fanout-runs 100x8000x32,1000x200x8 --fanout-duration 8s --conns 10000 --wakeups 200 $(BENCHFLAGS)

# Sovereign: `make run` starts the server on the embedded SQLite default,
# `make test` runs every test. Both work on a fresh machine with Go and Node.js.

GO       ?= go
NPM      ?= npm
BIN      := bin/sovereign
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
FUZZTIME ?= 5m

.PHONY: all build run assets openapi lint test test-go test-browser fuzz vet clean

all: build

## assets: install the front-end packages from npm and copy what the binary embeds
assets: web/dist/docs/web-components.min.js web/dist/admin/index.html

web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	cd web && $(NPM) ci --no-audit --no-fund --loglevel=error
	@touch $@

web/dist/docs/web-components.min.js: web/node_modules/.package-lock.json web/build.mjs
	cd web && node build.mjs

web/dist/admin/index.html: web/node_modules/.package-lock.json web/build.mjs $(wildcard web/admin/*)
	cd web && node build.mjs

## build: compile the server binary into bin/
build: assets
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/sovereign

## run: build and start the server (http://localhost:8080, data in ./data)
run: build
	./$(BIN) serve

## openapi: regenerate openapi.yaml from the code
openapi:
	$(GO) run ./cmd/sovereign openapi > openapi.yaml

vet:
	$(GO) vet ./...

## lint: go vet plus the OpenAPI linter (@redocly/cli from npm, offline)
lint: vet assets
	cd web && ./node_modules/.bin/redocly lint ../openapi.yaml --config ../redocly.yaml

## test: every test: vet, the spec lint, Go tests with the race detector, the admin UI in a browser
test: lint test-go test-browser

test-go: assets
	$(GO) test -race -count=1 ./...

## test-browser: the admin UI in headless Chromium (CHROMIUM=/usr/bin/chromium) with a virtual
## passkey authenticator, against the real binary; screenshots land in artifacts/admin/
tests/browser/node_modules/.package-lock.json: tests/browser/package.json tests/browser/package-lock.json
	cd tests/browser && $(NPM) ci --no-audit --no-fund --loglevel=error
	@touch $@

test-browser: build tests/browser/node_modules/.package-lock.json
	cd tests/browser && node --test --test-concurrency=1

## fuzz: run every fuzz target for FUZZTIME each
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf bin web/dist/docs web/dist/admin artifacts

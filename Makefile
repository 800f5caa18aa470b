# Finetune Dispatcher: every day-to-day command. `make help` lists them.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# pip may put uv where PATH does not look yet (e.g. before a pyenv rehash); `python3 -m uv` always works.
UV ?= $(shell command -v uv >/dev/null 2>&1 && echo uv || echo python3 -m uv)
SUB ?= dev-user
PYTEST_ARGS ?=

# Source files mypy checks (strict, see pyproject.toml). Add each new lib/service here.
TYPED_SRC := libs/contracts/src libs/ftd/src libs/messaging/src libs/netguard/src libs/servicekit/src libs/workerlink/src services/job-api/src \
	services/gpu-worker/src services/data-service/src services/registry-service/src services/model-server/src \
	services/webhook-service/src

# Each checkout gets its own database (finetune_<8 hex of the checkout path>), so two clones on
# one machine never share data. The environment may still set FTD_DATABASE_NAME.
FTD_DATABASE_NAME ?= finetune_$(shell printf '%s' "$(CURDIR)" | sha256sum | cut -c1-8)
export FTD_DATABASE_NAME

# Exports FTD_JWT_SECRET and FINETUNE_WORKER_KEY from .dev/secrets.env (written by scripts/dev.sh)
# unless the environment already sets them, the same precedence dev.sh uses.
LOAD_DEV_SECRETS := if [ -f .dev/secrets.env ]; then \
	  while IFS='=' read -r key value; do [ -n "$${!key:-}" ] || export "$$key=$$value"; done \
	    < <(grep -E '^[A-Z_][A-Z0-9_]*=' .dev/secrets.env); \
	fi

.PHONY: help install install-training ensure-services system-packages dev test test-steps test-all test-unit test-integration lint format typecheck \
	contracts contracts-check openapi migrate bench token clean \
	ui-install ui-gen ui-check ui-test ui-build ui-e2e test-ui

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

install-training: install ## The worker's training stack into .venv, outside uv.lock (CPU torch if none)
	@UV='$(UV)' bash scripts/install-training.sh

# Bytecode is compiled here, once, for the packages and for the workspace's own sources: a process
# that finds no .pyc compiles every module it imports, and cannot keep the result where
# PYTHONDONTWRITEBYTECODE is set (as on some CI machines). Measured there: the training stack's
# import 26 s of CPU without .pyc, 12 s with; each test stack starts a worker that imports it.
install: ## Install uv if missing, then sync the workspace (keeps extra packages such as torch)
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 \
	  || python3 -m pip install --quiet uv
	$(UV) sync --inexact --all-packages --compile-bytecode
	@$(UV) run --no-sync python -m compileall -q -j 0 libs services tests conftest.py >/dev/null

ensure-services: ## Start PostgreSQL and RabbitMQ on localhost if they are down
	@bash scripts/ensure-services.sh

system-packages: ## Install Debian's chromium and nginx (apt-get) if they are missing
	@bash scripts/ensure-system-packages.sh

dev: ## Run the whole platform on http://localhost:8000 (Ctrl-C stops it)
	@UV='$(UV)' bash scripts/dev.sh

test: ## Everything CI runs: lint, types, all tests; then its total time
	@SECONDS=0; status=0; $(MAKE) --no-print-directory test-steps || status=$$?; \
	  outcome=$$([ "$$status" -eq 0 ] && echo passed || echo "failed (exit status $$status)"); \
	  printf 'make test %s in %dm%02ds\n' "$$outcome" $$((SECONDS / 60)) $$((SECONDS % 60)); \
	  exit "$$status"

# What `make test` runs (it times this and passes its exit status on): the set-up, then the checks
# and the tests side by side (each one's output printed whole when it ends).
# install-training ran, so a test skipped for a missing torch fails (services/gpu-worker/tests/training_stack.py).
# ui-install before pytest: the docs, README and UI browser tests drive chromium through the UI's
# playwright-core. pytest runs on TEST_PROCESSES processes (pytest-xdist; conftest.py keeps what
# shares a stack on one process); the UI's browser tests are one of its tests (tests/e2e/test_e2e_ui.py).
TEST_PROCESSES ?= 4
test-steps: install install-training ensure-services system-packages ui-install
	@$(MAKE) --no-print-directory -j 5 --output-sync=target lint typecheck ui-check ui-test test-all

test-all: ## pytest, all of it, as make test runs it (TEST_PROCESSES processes, PYTEST_ARGS)
	FTD_REQUIRE_TRAINING_STACK=1 FTD_REQUIRE_BROWSER=1 $(UV) run pytest -n $(TEST_PROCESSES) --dist loadgroup --durations=25 $(PYTEST_ARGS)

test-unit: install ## Unit tests only (no I/O)
	$(UV) run pytest -m "not integration" $(PYTEST_ARGS)

test-integration: install ensure-services ## Tests against the real PostgreSQL and RabbitMQ
	$(UV) run pytest -m integration $(PYTEST_ARGS)

test-cluster: install ## Failover on a local three-node RabbitMQ cluster (not in make test)
	$(UV) run pytest -m cluster tests/cluster $(PYTEST_ARGS)

CHAOS_JOBS ?= 100
.PHONY: chaos
chaos: install install-training ensure-services ## Chaos run: CHAOS_JOBS jobs while replicas, workers, broker nodes die (not in make test)
	FTD_CHAOS_JOBS=$(CHAOS_JOBS) $(UV) run pytest -m chaos tests/chaos -s $(PYTEST_ARGS)

lint: ## ruff lint and format check
	$(UV) run ruff check .
	$(UV) run ruff format --check .

format: ## Apply ruff fixes and formatting
	$(UV) run ruff check --fix .
	$(UV) run ruff format .

typecheck: ## mypy --strict over the source packages
	$(UV) run mypy $(TYPED_SRC)

contracts: ## Regenerate docs/contracts (JSON Schema + AsyncAPI) from libs/contracts
	$(UV) run python -m contracts.export

contracts-check: ## Fail if docs/contracts is out of date
	$(UV) run python -m contracts.export --check

openapi: ## Regenerate docs/openapi/*.json from the code
	$(UV) run job-api openapi
	$(UV) run data-service openapi
	$(UV) run registry-service openapi
	$(UV) run model-server openapi
	$(UV) run webhook-service openapi

migrate: ensure-services ## Create each service's database role and schema, then run its migrations
	@$(LOAD_DEV_SECRETS); $(UV) run job-api db-init && $(UV) run data-service db-init \
	  && $(UV) run registry-service db-init && $(UV) run model-server db-init \
	  && $(UV) run webhook-service db-init

bench: ## Run every bench/*.py (BENCH_ARGS=--quick for a short check)
	@shopt -s nullglob; for script in bench/[a-z]*.py; do \
	  echo "== $$script"; $(UV) run python "$$script" $(BENCH_ARGS); \
	done

.PHONY: compose-test
compose-test: ## docker-compose.yml for real with podman: build, up, train+deploy+call, restarts, down
	bash scripts/compose-test.sh

token: ## Print a development JWT for SUB (default dev-user)
	@if [ -z "$(strip $(SUB))" ]; then echo "make token: SUB is empty; name a user, e.g. make token SUB=alice" >&2; exit 2; fi
	@$(LOAD_DEV_SECRETS); FTD_ENV="$${FTD_ENV:-development}" $(UV) run --quiet job-api token --sub '$(SUB)'

clean: ## Remove caches and dev logs (keeps .venv and .dev/secrets.env)
	find . -name __pycache__ -type d -not -path './.venv/*' -prune -exec rm -rf {} +
	rm -rf .pytest_cache .mypy_cache .ruff_cache .dev/logs

# --- web UI (frontend/: SvelteKit, Node >= 20.19) -----------------------------------------------
NPM ?= npm
UI := frontend

$(UI)/node_modules/.package-lock.json: $(UI)/package-lock.json $(UI)/package.json
	$(NPM) --prefix $(UI) ci --no-audit --no-fund
	@touch $@

ui-install: $(UI)/node_modules/.package-lock.json ## Install the UI's npm packages (from package-lock.json)

ui-gen: ui-install ## Regenerate the UI's API types (docs/openapi/*.json) and output-name cases
	$(NPM) --prefix $(UI) run gen:api
	$(UV) run python $(UI)/scripts/output_model_cases.py

ui-check: ui-install ## API types current, svelte-check (strict TS), prettier
	$(NPM) --prefix $(UI) run check:api
	$(UV) run python $(UI)/scripts/output_model_cases.py --check
	$(NPM) --prefix $(UI) run check
	$(NPM) --prefix $(UI) run lint

ui-test: ui-install ## The UI's unit tests (vitest)
	$(NPM) --prefix $(UI) test

ui-build: ui-install ## Build the UI into frontend/build (static files, index.html fallback)
	$(NPM) --prefix $(UI) run build

# Against a running stack: E2E_BASE_URL=http://localhost:8000 (E2E_TOKEN defaults to a dev token).
# Without E2E_BASE_URL: the whole platform with a CPU worker on free ports (tests/e2e/ftd_stack.py).
ui-e2e: ui-install ## Browser tests (Debian chromium): every flow, screenshots, axe, phone size
	@command -v chromium >/dev/null 2>&1 || { echo "ui-e2e: needs Debian's chromium (apt-get install chromium)"; exit 1; }
	@if [ -n "$${E2E_BASE_URL:-}" ]; then \
	  $(LOAD_DEV_SECRETS); \
	  export E2E_TOKEN="$${E2E_TOKEN:-$$(FTD_ENV="$${FTD_ENV:-development}" $(UV) run --quiet job-api token --sub e2e-user)}"; \
	  $(NPM) --prefix $(UI) run e2e; \
	else \
	  $(UV) run python tests/e2e/ftd_stack.py; \
	fi

test-ui: ui-check ui-test ui-e2e ## Everything for the UI: checks, unit and browser tests

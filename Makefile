# Every target installs what it needs first; `make` alone lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
# uv from PATH, else the one `pip install uv` puts next to Python.
UV := $(or $(shell command -v uv 2>/dev/null),$(PYTHON) -m uv)
RUN := $(UV) run --frozen
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= $(shell nproc 2>/dev/null || echo 1)
N ?= 1000
# pytest-xdist workers of `make test`: one per core, at most 4 (each has its own
# scratch databases; beyond 4 the set-up outweighs the gain). TEST_WORKERS=0: none.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); echo $$(( n < 4 ? n : 4 )))
# HTTP parser of `make serve`: h11 like the image (it caps a request head; see
# the Dockerfile), unless UVICORN_HTTP=httptools is set in the environment.
UVICORN_HTTP ?= h11

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-20s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: uv
uv:
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 \
		|| $(PYTHON) -m pip install --quiet uv

.PHONY: install
install: uv ## Install the locked dependencies (dev tools included) into .venv
	@$(UV) sync --frozen --quiet

.env:
	@$(PYTHON) scripts/dev_env.py

.PHONY: migrate
migrate: install .env ## Create or upgrade the database schema (alembic upgrade head)
	$(RUN) alembic upgrade head

.PHONY: run
run: migrate ## Serve on :8000 with auto-reload (embedded SQLite unless DB_URL is set)
	$(RUN) uvicorn app.main:create_app --factory --host $(HOST) --port $(PORT) --reload --no-access-log \
		--no-server-header

# Where `make serve`'s workers add up their metrics (METRICS_ENABLED=true), its files
# deleted at each start: prometheus-client's multiprocess mode.
PROMETHEUS_MULTIPROC_DIR ?= $(CURDIR)/.prometheus-multiproc

.PHONY: serve
serve: migrate ## Production-style server: WORKERS processes (default one per core), no reload
	@mkdir -p "$(PROMETHEUS_MULTIPROC_DIR)" && cd "$(PROMETHEUS_MULTIPROC_DIR)" \
		&& rm -f counter_*.db gauge_*.db histogram_*.db summary_*.db
	PROMETHEUS_MULTIPROC_DIR="$(PROMETHEUS_MULTIPROC_DIR)" $(RUN) uvicorn app.main:create_app --factory --host $(HOST) --port $(PORT) \
		--workers $(WORKERS) --no-access-log --proxy-headers --no-server-header --http $(UVICORN_HTTP)

.PHONY: seed
seed: migrate ## Bulk-load N users (default 1000), a live session each, into the database: make seed N=1000000
	$(RUN) python -m bench.seed --count $(N)

.PHONY: bench
bench: install ## Benchmark with wrk (apt-get install wrk); PostgreSQL when BENCH_DB_URL is set
	$(RUN) python -m bench.run $(BENCH_ARGS)

.PHONY: bench-scale
bench-scale: install ## p50 at 1,000 vs 1,000,000 users on scratch PostgreSQL databases (server: BENCH_DB_URL)
	$(RUN) python -m bench.run --scale-compare $(BENCH_ARGS)

.PHONY: test
test: install ## Run the whole suite with coverage (SQLite, and PostgreSQL when reachable)
	$(RUN) pytest -n $(TEST_WORKERS) --dist loadfile --cov --cov-report=term $(PYTEST_ARGS)

.PHONY: e2e
e2e: install ## Browser tests: examples/frontend in headless Chromium (apt-get install chromium)
	$(RUN) pytest -m e2e tests/e2e $(PYTEST_ARGS)

.PHONY: lint
lint: install ## Ruff lint and format check, and the import contracts
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) lint-imports

.PHONY: format
format: install ## Apply ruff's fixes and formatting
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

.PHONY: typecheck
typecheck: install ## mypy --strict over app, tests and migrations
	$(RUN) mypy

.PHONY: migration
migration: install .env ## New migration from the models: make migration m="add x to users"
	@test -n "$(m)" || { echo 'usage: make migration m="what it does"'; exit 2; }
	$(RUN) alembic revision --autogenerate -m "$(m)"

.PHONY: create-admin
create-admin: migrate ## Create an admin: make create-admin EMAIL=a@b.c NAME=Ann (password prompted or ADMIN_PASSWORD)
	@test -n "$(EMAIL)" -a -n "$(NAME)" || { echo 'usage: make create-admin EMAIL=you@example.com NAME="Your Name"'; exit 2; }
	$(RUN) python -m app.cli create-admin --email "$(EMAIL)" --name "$(NAME)"

.PHONY: pre-commit-install
pre-commit-install: install ## Run the checks before every commit
	$(RUN) pre-commit install

.PHONY: docker-lint
docker-lint: ## Check Dockerfile (hadolint) and docker-compose.yml (compose config), no engine needed
	bash scripts/check_docker_files.sh

.PHONY: pre-commit
pre-commit: install ## Run every pre-commit hook on all files
	$(RUN) pre-commit run --all-files

.PHONY: docker-up
docker-up: ## Build and start PostgreSQL, migrations and the API with Docker Compose
	@test -n "$$JWT_SECRET_KEY" || { echo 'export JWT_SECRET_KEY=<32+ random characters> first'; exit 2; }
	docker compose up --build -d

.PHONY: docker-down
docker-down: ## Stop the Compose stack (data volume kept)
	docker compose down

.PHONY: clean
clean: ## Remove caches and coverage output (keeps .venv, .env and app.db)
	rm -rf .pytest_cache .mypy_cache .ruff_cache htmlcov .coverage coverage.xml
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +

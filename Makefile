# B2P Engage. `make run` starts the platform with a demo tenant; `make test` runs every check.
# The work is done by the scripts in scripts/, which also install what a bare Debian lacks.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Extra arguments: make test PYTEST_ARGS='-k "foo and not bar"'; make bench BENCH_ARGS=...
PYTEST_ARGS ?=
BENCH_ARGS ?=
export PYTEST_ARGS BENCH_ARGS

VENV := .venv
PY := $(VENV)/bin/python

.PHONY: help run test bench lint migrate messages services venv venv-dev clean

help:
	@echo "make run       platform + demo tenant on http://127.0.0.1:8000/ (embedded SQLite/broker unless DATABASE_URL/REDIS_URL)"
	@echo "make test      services, ruff, checks, migrations, OpenAPI, pytest (PYTEST_ARGS=...)"
	@echo "make bench     benchmarks in bench/ (BENCH_ARGS=...)"
	@echo "make lint      ruff check"
	@echo "make migrate   apply migrations (DATABASE_URL or embedded SQLite)"
	@echo "make messages  makemessages -l ru, then compilemessages"
	@echo "make services  install/start PostgreSQL and Redis for tests"
	@echo "make clean     remove .venv, .local and caches"

run:
	@bash scripts/run.sh

test:
	@bash scripts/test.sh

bench:
	@bash scripts/bench.sh

lint: venv-dev
	$(VENV)/bin/ruff check .

migrate: venv
	@mkdir -p .local
	DEBUG="$${DEBUG:-true}" $(PY) manage.py migrate --noinput

messages:
	@bash scripts/messages.sh

services:
	@bash scripts/ensure_services.sh

venv:
	@bash scripts/venv.sh prod

venv-dev:
	@bash scripts/venv.sh dev

clean:
	rm -rf $(VENV) .local .pytest_cache .ruff_cache test-results staticfiles
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# Two commands for a new user: `make run` and `make test`. See README.md.
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PORT ?= 8000

.PHONY: install run test lint bench-inference bench-training bench-exports bench-load clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[ml,dev]'
	@touch $(STAMP)

install: $(STAMP)

## Migrate, seed the demo and serve the app with a real Celery worker (SQLite, filesystem broker).
run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	@echo ""
	@echo "  ParkWatch is starting at http://127.0.0.1:$(PORT)/"
	@echo "  demo accounts: visitor / parkwatch-visitor, curator / parkwatch-curator, admin / parkwatch-admin"
	@echo "  (Ctrl-C stops the web server and the worker)"
	@echo ""
	PATH="$(BIN):$$PATH" PORT=$(PORT) $(BIN)/honcho start -f Procfile

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/python manage.py spectacular --validate --fail-on-warn --file var/openapi-schema.yaml

## The whole suite: lint, import contracts, tests (PostgreSQL and Redis when DATABASE_URL/REDIS_URL say so).
test: lint
	rm -rf var/test
	$(BIN)/python -m pytest

bench-inference: install
	$(BIN)/python bench/inference.py

clean:
	rm -rf var/test .pytest_cache .ruff_cache

bench-training: install
	$(BIN)/python bench/training.py

bench-exports: install
	$(BIN)/python bench/export_memory.py

## Upload load on gunicorn with and without an inference worker (PostgreSQL and Redis on loopback).
bench-load: install
	$(BIN)/python bench/load.py

# Coinfrs developer commands. `make run` and `make test` work on a fresh machine with Python 3.11 + pip.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# gcloud-tasks-emulator needs protobuf<5, which the app's google clients cannot share: own venv.
TASKS_VENV := .venv-tasks
PYTEST_ARGS ?=

.PHONY: help setup run serve test bench lint migrate clean

help:
	@echo "make run      start the local stack, run the daily pipeline once, print a summary, keep serving"
	@echo "make test     run the whole test suite"
	@echo "make serve    start the local stack only (honours DATABASE_URL, PORT, provider URLs, ...)"
	@echo "make setup    install what is missing (idempotent)"
	@echo "make migrate  apply pending migrations (embedded PostgreSQL when DATABASE_URL is unset)"
	@echo "make bench    print benchmark figures (imports, Binance backfill, ETL throughput)"
	@echo "make lint     ruff"

setup: $(VENV)/.installed $(TASKS_VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

$(TASKS_VENV)/.installed:
	@test -x $(TASKS_VENV)/bin/python || $(PYTHON) -m venv $(TASKS_VENV)
	$(TASKS_VENV)/bin/pip install --quiet --disable-pip-version-check gcloud-tasks-emulator==0.6.2
	@touch $@

run: setup
	$(PY) -m infra.local.stack run

serve: setup
	$(PY) -m infra.local.stack serve

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

# Figures, not pass/fail: cold imports, a Binance backfill's calls and weight, ETL throughput,
# a year of daily reconciliation (50 assets x 6 accounts).
BENCH_ETL_RECORDS ?= 1000000
bench: setup
	$(PY) tests/bench/import_times.py
	$(PY) tests/bench/binance_backfill.py --days 60
	$(PY) tests/bench/binance_etl.py --records $(BENCH_ETL_RECORDS)
	$(PY) tests/bench/reconciliation.py --days 365 --assets 50

lint: setup
	$(PY) -m ruff check .

migrate: setup
	$(PY) -m infra.local.stack migrate

clean:
	rm -rf $(VENV) $(TASKS_VENV) .local

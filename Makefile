# The two commands: `make run` (SQLite, no keys) and `make test` (PostgreSQL + Redis + Chromium).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
TEST_DATABASE_URL ?= postgres://root@127.0.0.1:5432/chatfocus
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
PYTEST_ARGS ?=

.PHONY: run test migrate seed lint bench install install-dev services

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.runtime $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

migrate: install
	DEBUG=1 $(PY) manage.py migrate --noinput

seed: migrate
	DEBUG=1 $(PY) manage.py seed

run: seed
	DEBUG=1 $(PY) manage.py runserver 127.0.0.1:8000

services:
	./scripts/ensure-test-services.sh

test: install-dev services
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) -m pytest --create-db $(PYTEST_ARGS)
	DATABASE_URL=sqlite:///$(CURDIR)/.test-smoke.sqlite3 REDIS_URL= $(PY) -m pytest -m smoke --create-db -q $(PYTEST_ARGS)

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: install-dev services
	./scripts/ensure-bench-tools.sh
	$(PY) bench/run.py

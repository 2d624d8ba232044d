# The two commands: `make run` (SQLite, no keys) and `make test` (PostgreSQL + Redis + Chromium).
# Installs come from the hashed locks (requirements.txt, requirements-dev.txt); `make lock` rewrites
# them from requirements.in / requirements-dev.in.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
TEST_DATABASE_URL ?= postgres://root@127.0.0.1:5432/chatfocus
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
PYTEST_ARGS ?=
# Extra uv options for `make lock`, e.g. LOCK_ARGS="--upgrade-package django" (by default pins stay put).
LOCK_ARGS ?=
UV_VERSION := $(shell sed -n 's/^uv==//p' requirements-dev.in)
LOCK := $(VENV)/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 \
	--python-platform x86_64-unknown-linux-gnu --custom-compile-command "make lock" $(LOCK_ARGS)
# A Procfile process, run here from the virtualenv exactly as the platform runs it.
PROCFILE = PATH="$(CURDIR)/$(VENV)/bin:$$PATH" exec sh -c "$$(sed -n 's/^$(1): //p' Procfile)"

.PHONY: run test migrate seed lint bench install install-dev services lock build start worker beat shell schema clients

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt | $(PY)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements-dev.txt
	touch $(VENV)/.runtime $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

# Rewrites both locks after an edit of requirements.in or requirements-dev.in; the dev lock is
# constrained by the runtime lock, so both pin the same versions.
lock: | $(PY)
	$(PY) -m pip install --quiet uv==$(UV_VERSION)
	$(LOCK) requirements.in -o requirements.txt
	$(LOCK) requirements-dev.in --constraint requirements.txt -o requirements-dev.txt

migrate: install
	DEBUG=1 $(PY) manage.py migrate --noinput

seed: migrate
	DEBUG=1 $(PY) manage.py seed

run: seed
	DEBUG=1 $(PY) manage.py runserver 127.0.0.1:$${PORT:-8000}

# What the image build does: static files collected, Django's checks and complete migrations.
build: install
	$(PY) manage.py collectstatic --noinput
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run

# The Procfile's processes with the environment (or .env) as it is: production settings unless DEBUG=1.
start: install
	$(call PROCFILE,web)

worker: install
	$(call PROCFILE,worker)

beat: install
	$(call PROCFILE,beat)

shell: install
	$(PY) manage.py shell

services:
	./scripts/ensure-test-services.sh

test: install-dev services clients
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(PY) -m pytest --create-db $(PYTEST_ARGS)
	DATABASE_URL=sqlite:///$(CURDIR)/.test-smoke.sqlite3 REDIS_URL= $(PY) -m pytest -m smoke --create-db -q $(PYTEST_ARGS)

# django-upgrade skips request_headers: the middleware reads request.META on every request rather than
# building request.headers' dict (same rule in .pre-commit-config.yaml).
lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	git ls-files -z '*.py' | xargs -0 $(VENV)/bin/django-upgrade --target-version 5.2 --skip request_headers --check

# Timing goals live here, not in `make test`: the load benchmarks, then the timing checks in bench/test_*.py.
BENCH_DATABASE_URL ?= postgres://root@127.0.0.1:5432/cf_bench
BENCH_REDIS_URL ?= redis://127.0.0.1:6379/14
bench: install-dev services
	./scripts/ensure-bench-tools.sh
	$(PY) bench/run.py
	DATABASE_URL=$(BENCH_DATABASE_URL) REDIS_URL=$(BENCH_REDIS_URL) $(PY) -m pytest bench -q -s -p no:cacheprovider --create-db

# The API schema the JS client is typed from; a test fails when the committed copy drifts.
schema: install-dev
	$(PY) manage.py spectacular --validate --fail-on-warn --file clients/openapi.yaml

# The JS client's dependencies from its lock (its build and tests run from pytest).
clients:
	cd clients/js && npm ci --no-audit --no-fund

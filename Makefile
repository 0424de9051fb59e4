# The two commands of the README:
#   make run    start Scriptbox (installs what it needs first)
#   make test   run the whole test suite (installs system packages too)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
ARGS ?=

.PHONY: run desktop test lint deps test-deps desktop-deps bundle notices ui vm2 system-deps bench clean

run: deps
	$(PY) app.py serve $(ARGS)

desktop: deps desktop-deps
	$(PY) app.py desktop $(ARGS)

test: system-deps test-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest $(PYTEST_ARGS)

lint: test-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# --- Python -------------------------------------------------------------
$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.runtime: requirements.txt | $(VENV)/bin/python
	$(PIP) install -q -r requirements.txt
	touch $@

$(VENV)/.test: requirements-test.txt $(VENV)/.runtime
	$(PIP) install -q -r requirements-test.txt
	touch $@

$(VENV)/.desktop: requirements-desktop.txt $(VENV)/.runtime
	$(PIP) install -q -r requirements-desktop.txt
	touch $@

desktop-deps: $(VENV)/.desktop

$(VENV)/.packaging: packaging/requirements-build.txt $(VENV)/.desktop
	$(PIP) install -q -r packaging/requirements-build.txt
	touch $@

# The one-folder desktop bundle in dist/scriptbox (docs/desktop.md), with LICENSE and
# the generated third-party notices; it fails if a bundled file's licence is unknown.
bundle: deps desktop-deps $(VENV)/.packaging
	PY=$(PY) packaging/build.sh

# The third-party notices of the dependencies alone, without building (build/notices).
notices: deps desktop-deps $(VENV)/.packaging
	$(PY) packaging/notices.py build/notices

# --- Node: the vm2 runner and the admin UI -------------------------------
# Stamp files: `npm ci` runs again only when a lock file changed, the build only
# when a UI source did (ui/dist/index.html is the build's own stamp).
VM2_DIR := scriptbox/runners/vm2
UI_SOURCES := $(shell find ui/src -type f 2>/dev/null) ui/index.html ui/build.mjs

$(VM2_DIR)/node_modules/.stamp: $(VM2_DIR)/package-lock.json
	cd $(VM2_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

ui/node_modules/.stamp: ui/package-lock.json
	cd ui && npm ci --no-audit --no-fund --loglevel=error
	touch $@

ui/dist/index.html: ui/node_modules/.stamp $(UI_SOURCES) ui/package.json
	cd ui && npm run build
	touch $@

vm2: $(VM2_DIR)/node_modules/.stamp

ui: ui/dist/index.html

# --- Everything `run` needs ----------------------------------------------
deps: $(VENV)/.runtime vm2 ui

# --- Everything `test` needs beyond `run` --------------------------------
test-deps: deps desktop-deps $(VENV)/.test $(VENV)/.packaging

system-deps:
	./scripts/install-system-deps.sh

# Benchmarks print median and spread next to a raw baseline (numbers in docs/engine.md).
# The first four print every figure of issue 16's table: start latency, vm2 start to end,
# output throughput against a pipe, live line lag with 1 and 5 viewers per run.
bench: deps
	$(PY) bench/start_latency.py
	$(PY) bench/vm2_start.py
	$(PY) bench/throughput.py
	$(PY) bench/fanout.py
	$(PY) bench/cli.py
	$(PY) bench/tokens.py
	$(PY) bench/soak.py --seconds 60
	$(PY) bench/auth_flood.py
	$(PY) bench/tools.py
	$(PY) bench/schedules.py --minutes 2

clean:
	rm -rf $(VENV) ui/node_modules ui/dist scriptbox/runners/vm2/node_modules build dist

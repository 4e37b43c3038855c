# CivicGrid — the two commands a newcomer needs are `make run` and `make test`.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
MANAGE := $(PY) manage.py
HOST ?= 127.0.0.1
PORT ?= 8000
CHROMIUM := /usr/bin/chromium

.DEFAULT_GOAL := help
.PHONY: help setup run serve test lint fmt bench messages clean chromium

help:
	@echo "make run    install everything, migrate, load the demo city, serve http://$(HOST):$(PORT)"
	@echo "make test   lint, migrations check and the whole test suite"
	@echo "make bench  speed benchmarks (writes bench/results.json)"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt requirements-dev.txt | $(PY)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Compiled translations are build output; the .po files are the source.
messages: $(VENV)/.installed
	$(MANAGE) compilemessages --ignore=.venv --ignore=node_modules -v 0

setup: $(VENV)/.installed node_modules/.package-lock.json messages
	@mkdir -p var

# Browser tests drive Debian's Chromium; install it when it is missing.
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
		if [ "$$(id -u)" = "0" ]; then \
			echo "Installing Debian's chromium for the browser tests"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else \
			echo "Browser tests need $(CHROMIUM): run 'sudo apt-get install chromium'"; \
		fi; \
	fi

run: setup
	$(MANAGE) migrate --no-input -v 0
	$(MANAGE) seed_demo --if-empty
	$(MANAGE) demo_logins --url http://$(HOST):$(PORT)
	$(MANAGE) schedule_sweeps -v 0
	@echo "Background worker: started beside the web server (logs in var/worker.log)"
	@$(MANAGE) db_worker >var/worker.log 2>&1 & echo $$! > var/worker.pid
	@trap 'kill $$(cat var/worker.pid) 2>/dev/null; rm -f var/worker.pid' EXIT INT TERM; \
		$(MANAGE) runserver $(HOST):$(PORT)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: setup chromium lint
	$(MANAGE) makemigrations --check --dry-run
	$(VENV)/bin/pytest

bench: setup
	$(PY) bench/run.py

clean:
	rm -rf var/static .pytest_cache .ruff_cache bench/results.json

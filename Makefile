# Two commands on a fresh machine (README.md): `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= config.yaml

.PHONY: run test lint typecheck pytest bench peer browser tools services clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,bench,cluster]'
	touch $(STAMP)

run: $(STAMP)
	@mkdir -p var
	$(BIN)/ussd-sim serve --config $(CONFIG)

# Debian's Chromium for the browser tests (README.md): installed when missing and
# possible; the browser tests fail (never skip) under CI=true when it is absent.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	      || echo "warning: could not install chromium"; \
	  else echo "warning: chromium missing and cannot be installed here"; fi; }

# Debian's tshark for the PDU capture tests (docs/operations.md), the same way: installed when
# missing and possible, never interactively (wireshark-common's "may non-root users capture?"
# is answered no); the tests that need it fail (never skip) under CI=true when it is absent.
tools:
	@command -v tshark >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections; \
	     apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tshark >/dev/null) \
	      || echo "warning: could not install tshark"; \
	  else echo "warning: tshark missing and cannot be installed here"; fi; }

# Debian's redis-server and PostgreSQL for the cluster tests (docs/cluster.md), the same way:
# installed when missing and possible; the suite starts its own servers on free loopback ports
# and the tests that need them fail (never skip) under CI=true when they are absent.
services:
	@{ command -v redis-server >/dev/null 2>&1 && \
	   { command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }; } || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server postgresql >/dev/null) \
	      || echo "warning: could not install redis-server and postgresql"; \
	  else echo "warning: redis-server or postgresql missing and cannot be installed here"; fi; }

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) browser tools services
	$(BIN)/python -m pytest -q

test: lint typecheck pytest

# docs/performance.md figures in one table (docs/performance.md). The SMPP peer is a bare SMSC on npm
# `smpp`; without node/npm the table says so and the rest still runs.
peer:
	@if command -v npm >/dev/null 2>&1; then \
	  npm install --prefix bench/peer --no-audit --no-fund --loglevel=error \
	    || echo "warning: npm install of the SMPP peer failed"; \
	else echo "warning: npm missing: no peer SMSC in the bench"; fi

bench: $(STAMP) peer
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build dist .mypy_cache .pytest_cache .ruff_cache

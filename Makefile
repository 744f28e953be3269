# One command each on a fresh clone: `make run`, `make test`. Each makes its own virtualenv.
# The interpreter .venv is made from: the first of PYTHON_CANDIDATES that is 3.11 or newer and can
# make a virtualenv (the distribution's /usr/bin/python3, then python3 on PATH), else python3;
# `make PYTHON=...` chooses. Distributions build CPython with profile-guided and link-time
# optimization and link it statically; pyenv's build (`--enable-shared`, neither) cost the
# engine's processes 5-14% more CPU an event on the same code in held runs at 10,000 lines/s,
# and their p99 under 2 s (docs/operator.md, Install; bench/interpreters.py compares).
PYTHON_CANDIDATES ?= /usr/bin/python3 python3
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell for p in $(PYTHON_CANDIDATES); do \
	$$p -c 'import sys, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { echo $$p; exit 0; }; done; echo python3)
endif
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint bench install clean services services-down console

# The web console: npm packages from the lockfile, bundled into soc/console/static. Rebuilt only
# when a source file changes (the stamp), so run/test/bench cost nothing when it is current.
CONSOLE_STAMP := soc/console/static/.stamp
CONSOLE_SOURCES := $(shell find console -path console/node_modules -prune -o -type f -print 2>/dev/null)

console/node_modules/.stamp: console/package.json console/package-lock.json
	cd console && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(CONSOLE_STAMP): console/node_modules/.stamp $(CONSOLE_SOURCES)
	cd console && node build.mjs
	touch $@

console: $(CONSOLE_STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP) console
	$(BIN)/soc run $(ARGS)

# Real Kafka and Elasticsearch on loopback for the integration tests (deploy/local/).
services:
	bash deploy/local/services.sh up

services-down:
	bash deploy/local/services.sh down

test: $(STAMP) services console
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP) services console
	$(BIN)/python bench/run.py
	$(BIN)/python bench/detect.py
	$(BIN)/python bench/correlation.py
	$(BIN)/python bench/scan.py
	$(BIN)/python bench/agent.py
	$(BIN)/python bench/exports.py
	$(BIN)/python bench/notify.py
	$(BIN)/python bench/normalize.py
	$(BIN)/python bench/collectors.py
	$(BIN)/python bench/netmeta.py
	$(BIN)/python bench/kafka_codecs.py
	$(BIN)/python bench/incidents.py
	$(BIN)/python bench/retention.py
	$(BIN)/python bench/store_es.py
	$(BIN)/python bench/index_path.py
	$(BIN)/python bench/front.py
	$(BIN)/python bench/interpreters.py
	$(BIN)/python bench/distributed.py
	$(BIN)/python bench/console.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
	rm -rf console/node_modules soc/console/static test-artifacts

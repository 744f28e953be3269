# One command each on a fresh clone: `make run`, `make test`. Each makes its own virtualenv.
# The interpreter .venv is made from: the distribution's /usr/bin/python3 when it is 3.11 or newer
# and can make a virtualenv, else the first python3 on PATH; `make PYTHON=...` chooses another.
# Distributions build theirs with profile-guided and link-time optimization and link it
# statically; a build without (pyenv's, `--enable-shared`) ran the engine's normalizing and
# detecting stage 9-11% slower on the same code (bench/interpreters.py) and cost held runs at
# 10,000 events/s their p99 under 2 s (docs/operator.md, Sizing).
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell for p in /usr/bin/python3 python3; do \
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

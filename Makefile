# The two commands of the README's quick start: `make run` and `make test`.
# Both create .venv on first use and reinstall when pyproject.toml or a lock file changes.
#
# Every Python package comes from the lock files in requirements/ (exact versions, each file
# hash-checked: pip --require-hashes), made by `make lock` from pyproject.toml with uv:
#   build.txt    pip and the build backend (requirements/build.in), installed first
#   service.txt  the service's dependencies and its speedups extra (uvloop): `make run`, the image
#   test.txt     those, at the same versions, plus the test extra (`make test`)
#   uv.txt       uv itself, pinned in requirements/uv.in, for `make lock`
# The project is then installed without dependencies and without build isolation, so that
# nothing unlocked is downloaded.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
FRONTEND_DIR := $(wildcard frontend)

.DEFAULT_GOAL := help
.PHONY: help run test test-only test-random test-js lint format audit lock bench bench-search mutate clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || \
		{ echo "chat-service needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

PIP_LOCKED := $(BIN)/python -m pip install --quiet --require-hashes
# pip relays the build backend's warnings: deprecations show, setuptools' note that an editable
# install is one does not.
PIP_PROJECT := PYTHONWARNINGS="ignore:Editable installation." \
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation

# The page's Markdown libraries (frontend/package.json) when Node.js is here; the page works
# without them, showing replies as plain text. The same npm ci installs the dev dependencies
# that check the page (make test-js) into node_modules/, which is never served: copy-vendor.mjs
# copies the libraries' builds alone into vendor/.
NPM := $(shell command -v npm 2>/dev/null)
ifdef NPM
FRONTEND_LIBRARIES := frontend/vendor/.installed
else
FRONTEND_LIBRARIES := no-frontend-libraries
endif

frontend/vendor/.installed: frontend/package.json frontend/package-lock.json frontend/copy-vendor.mjs
	cd frontend && $(NPM) ci --no-audit --no-fund --loglevel=error
	@touch $@

.PHONY: no-frontend-libraries
no-frontend-libraries:
	@echo "npm not found: the page shows replies as plain text; install Node.js and run make again for Markdown."

$(VENV)/.installed-build: $(BIN)/python requirements/build.txt
	$(PIP_LOCKED) -r requirements/build.txt
	@touch $@

$(VENV)/.installed-run: $(VENV)/.installed-build pyproject.toml requirements/service.txt
	$(PIP_LOCKED) -r requirements/service.txt
	$(PIP_PROJECT) -e .
	@touch $@

# test.txt holds service.txt's versions (`make lock` compiles it under that constraint), so the
# test environment is also the run environment.
$(VENV)/.installed-test: $(VENV)/.installed-build pyproject.toml requirements/test.txt
	$(PIP_LOCKED) -r requirements/test.txt
	$(PIP_PROJECT) -e .
	@touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run $(FRONTEND_LIBRARIES) ## serve the API (and the page, if frontend/ exists) on 127.0.0.1:8000
	CHAT_FRONTEND_DIR=$${CHAT_FRONTEND_DIR-$(FRONTEND_DIR)} $(BIN)/chat-service

# The suite waits far more than it computes (servers, browsers, model latency), so it runs in
# TEST_WORKERS processes (pytest-xdist), each test taken by whichever is free; ports are handed
# out per worker (tests/support/service.py). TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= 4

test: $(VENV)/.installed-test $(FRONTEND_LIBRARIES) ## run every test, then the linters
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal
	$(MAKE) --no-print-directory lint
	$(if $(NPM),$(MAKE) --no-print-directory test-js,@echo "npm not found: the page's JavaScript checks (make test-js) did not run.")

test-only: $(VENV)/.installed-test $(FRONTEND_LIBRARIES) ## run the tests without the linters (pass ARGS="-k name")
	$(BIN)/python -m pytest $(ARGS)

# pytest-randomly shuffles modules, then the tests within each, and prints the seed it used:
# SEED=<that number> repeats an order that failed.
test-random: $(VENV)/.installed-test ## the unit tests in a random order (SEED=n repeats one)
	$(BIN)/python -m pytest -p randomly $(if $(SEED),--randomly-seed=$(SEED)) tests/unit $(ARGS)

# ESLint, the type check (tsc), the unit tests (node --test) and the content hashes in the
# page's URLs (stamp.mjs --check): frontend/README.md.
test-js: $(FRONTEND_LIBRARIES) ## the page's JavaScript checks: ESLint, tsc, node --test, hashes
	@test -n "$(NPM)" || { echo "make test-js needs Node.js and npm" >&2; exit 1; }
	cd frontend && $(NPM) run --silent check

lint: $(VENV)/.installed-test ## ruff (lint and format check), mypy, and the import contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# The load scenarios, then search over 100,000 exchanges (10,000 in a quick run).
bench: $(VENV)/.installed-test ## load benchmark and search (needs wrk, postgres; ARGS="--quick": short)
	$(BIN)/python -m bench $(ARGS)
	$(BIN)/python -m bench.search $(if $(findstring --quick,$(ARGS)),--exchanges 10000 --repeats 20)

bench-search: $(VENV)/.installed-test ## search over 100,000 exchanges on both stores (p50/p95; needs postgres)
	$(BIN)/python -m bench.search $(ARGS)

# ARGS=chat_service/api/validation.py mutates that module only: mutmut names a mutant
# module.x_function__mutmut_N (a package's own code: package.x_...).
MUTANT_GLOB = $(patsubst %.__init__,%,$(subst /,.,$(basename $(ARGS)))).x*
mutate: $(VENV)/.installed-test ## mutation testing with the unit tests (ARGS=path: one module)
	$(BIN)/mutmut run $(if $(ARGS),"$(MUTANT_GLOB)") > mutants.log 2>&1 \
		|| { tail -n 30 mutants.log; exit 1; }
	$(BIN)/python -m tests.support.mutation

# Needs PyPI's JSON API or OSV: the GitHub workflow runs it, .ci/run does not (README).
audit: $(VENV)/.installed-test ## pip-audit the lock files: fail on known vulnerabilities
	$(BIN)/pip-audit --strict --progress-spinner off --disable-pip --require-hashes \
		-r requirements/build.txt -r requirements/service.txt -r requirements/test.txt \
		-r requirements/uv.txt

# The lock files, from pyproject.toml and requirements/*.in, by the uv pinned in uv.in. Without
# ARGS, what is locked stays unless pyproject.toml or a .in file now excludes it; ARGS=--upgrade
# takes the newest versions allowed (ARGS="--upgrade-package aiohttp": that one). The files'
# headers hold the exact uv command: Renovate re-runs it (.github/renovate.json), so keep its
# options to those Renovate accepts (tests/deploy/test_lock.py lists them). One lock for every
# platform and Python >= 3.11 (--universal): CI's Python 3.11, the image's 3.12 and developers'
# machines install from the same files.
UV_COMPILE = UV_NO_CONFIG=1 $(BIN)/uv pip compile --quiet --universal --generate-hashes \
	--python-version=3.11 $(ARGS)

$(BIN)/uv: $(VENV)/.installed-build requirements/uv.txt
	$(PIP_LOCKED) -r requirements/uv.txt
	@touch $@

lock: $(BIN)/uv ## regenerate requirements/*.txt from pyproject.toml (ARGS=--upgrade: newest allowed)
	$(UV_COMPILE) --output-file=requirements/build.txt requirements/build.in
	$(UV_COMPILE) --extra=speedups --output-file=requirements/service.txt pyproject.toml
	$(UV_COMPILE) --extra=speedups --extra=test --constraints=requirements/service.txt \
		--constraints=requirements/build.txt --output-file=requirements/test.txt pyproject.toml
	$(UV_COMPILE) --output-file=requirements/uv.txt requirements/uv.in

format: $(VENV)/.installed-test ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: ## remove the virtualenv, the page's libraries and caches (not your chat.db)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info \
		frontend/node_modules frontend/vendor mutants mutants.log

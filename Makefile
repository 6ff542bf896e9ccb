# Two commands do all set-up from a fresh clone: `make demo` and `make test`.
# Both bootstrap .venv from pyproject.toml pinned by constraints.txt.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
## Parallel test processes (pytest-xdist): one per core by default; PYTEST_WORKERS=0 runs them in
## this process, one at a time. Tests that must not overlap share an xdist_group (--dist loadgroup).
PYTEST_WORKERS ?= auto
PYTEST_PARALLEL := -n $(PYTEST_WORKERS) --dist loadgroup

.PHONY: venv demo test test-fast lint typecheck bench constraints clean

venv: $(STAMP)

## The package needs Python 3.11 or newer (DuckDB 2.0 does): an older interpreter gets that said,
## with the way out, not pip's "ResolutionImpossible" about a pinned dependency.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "$(VENV) runs Python $$($(BIN)/python -c 'import platform; print(platform.python_version())'):" \
	    "airflow-provider-numberyo needs 3.11 or newer." >&2; \
	  echo "Remove $(VENV) and run make again with a newer interpreter, e.g. make PYTHON=python3.11 test" >&2; \
	  exit 1; }
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check numberyo_provider tests dags bench dbt scripts
	$(BIN)/ruff format --check numberyo_provider tests dags bench dbt scripts

typecheck: $(STAMP)
	$(BIN)/mypy

## Everything CI runs: lint, format check, mypy, the whole pytest suite.
test: lint typecheck
	$(BIN)/python -m pytest -q $(PYTEST_PARALLEL) $(PYTEST_ARGS)

## Quick feedback while developing: skips the tests marked slow.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" -x $(PYTEST_PARALLEL) $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py $(DEMO_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run.py

## Re-pin constraints.txt from the current .venv (after changing dependencies).
constraints:
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^airflow-provider-numberyo' > constraints.txt

## What the walk-throughs in README.md, docs/getting-started.md and docs/cli.md create when followed
## from the repository root (tests/test_docs.py checks this list against what they really create).
## The warehouse's check ledger goes with it (the checks stay in the account's history: a sync reloads them).
WALKTHROUGH_FILES := warehouse.duckdb warehouse.duckdb.ledger.sqlite contacts.duckdb sample-contacts.duckdb \
	parquet numberyo-parquet dbt/target dbt/logs

## Remove the environment, caches, `make demo`'s .demo/ and what the docs' walk-throughs create.
clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
	rm -rf $(WALKTHROUGH_FILES) $(addsuffix .wal,$(filter %.duckdb,$(WALKTHROUGH_FILES))) \
		$(addsuffix -journal,$(filter %.sqlite,$(WALKTHROUGH_FILES)))

# Two commands on a fresh machine: `make e2e-staging` and `make test`. Everything else is optional.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WORKERS ?= 0
PYTEST_WORKERS := $(if $(filter-out 0 1,$(WORKERS)),-n $(WORKERS) --dist loadgroup,)

.PHONY: help venv test lint fmt

help:
	@echo "make e2e-staging   validate staging (default: the local replica, healthy)"
	@echo "make test          the project's own tests"
	@echo "make lint | fmt    ruff (+ actionlint)"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/pytest $(PYTEST_WORKERS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

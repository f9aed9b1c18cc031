# Two commands on a fresh machine: `make e2e-staging` and `make test`. The virtualenv builds itself.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WORKERS ?= 0
PYTEST_WORKERS := $(if $(filter-out 0 1,$(WORKERS)),-n $(WORKERS) --dist loadgroup,)
REPORTS ?= reports
ALLURE_RESULTS := $(REPORTS)/allure-results
SUITE := tests/e2e_staging
SCENARIO ?= healthy
# Empty: the suite's own default selection (everything but the reproduction and verify-fix suites,
# which run when a marker expression selects them; see harness/pytest_plugin.py OPT_IN_MARKERS).
MARKERS ?=
PYTEST_ARGS ?=

# One suite run: Allure, JUnit, verdict, in $(REPORTS), which the run holds for as long as it lives (a
# second run there is refused, saying so); --fresh-reports empties the Allure results once it holds
# them (not --clean-alluredir, which races under xdist).
# $(1): marker expression (empty: the default selection); $(2): environment prefix.
define run_suite
	$(2) $(BIN)/pytest $(SUITE) $(PYTEST_WORKERS) $(if $(1),-m "$(1)",) --alluredir $(ALLURE_RESULTS) \
		--fresh-reports --junitxml $(REPORTS)/junit.xml --verdict $(REPORTS)/verdict.json $(PYTEST_ARGS)
endef

.PHONY: help venv test lint fmt e2e-staging reproduce-1278 verify-fix nightly report report-check replica-up replica-down

help:
	@echo "make e2e-staging     validate staging (E2E_ENV=local by default: the replica, healthy; REPLICA_PROFILE=legacy|aebb16f|head)"
	@echo "make reproduce-1278  the Issue #1278 reproduction suite (local: the replica in scenario issue-1278)"
	@echo "make verify-fix      is #1278 fixed? wait for health, golden path x3, availability/p95/db-phase gates"
	@echo "make nightly         one night of JOB (default e2e-staging): its history pulled, the job run, its night pushed, trackers told"
	@echo "make report          Allure 3 HTML report with history and a quality gate (needs Node.js + npm)"
	@echo "make report-check    make report, then check it in headless Chromium (first page, flaky, attempts, gate)"
	@echo "make test            the project's own tests"
	@echo "make replica-up      start the local replica (SCENARIO=healthy|issue-1278|...); replica-down stops it"
	@echo "make lint | fmt      ruff (lint also: mypy, and the workflows: schema, actionlint, zizmor auditor)"
	@echo "make venv            the virtualenv (.venv); every target builds it when it needs it"
	@echo "make help            this list: the targets, then every E2E_* setting"
	@echo
	@# The settings, from their one table (harness/settings.py); without the virtualenv, the system's
	@# Python may lack the packages it imports: then say how to get them, rather than build it here.
	@$(if $(wildcard $(STAMP)),$(BIN)/python,$(PYTHON)) -m harness.settings 2>/dev/null \
		|| echo "The E2E_* settings: make venv, then make help (or .venv/bin/python -m harness.settings --help)"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

venv: $(STAMP)

# The project's own tests, three files at a time: most of their time is spent waiting on replicas and
# suite runs (a third of the machine's CPU is used with two), so a third process shortens it on 2 cores
# (TEST_WORKERS=0 runs them in one process).
TEST_WORKERS ?= 3
test: $(STAMP)
	$(BIN)/pytest $(if $(filter-out 0 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile,) $(PYTEST_ARGS)

# The workflows, offline: GitHub's schema; actionlint (expressions, contexts, run: scripts through the
# wheel's shellcheck); actionlint again with each `@<sha> # vX.Y.Z` pin read as `@vX`, since it knows
# actions' inputs and runtimes by release tag only; zizmor's auditor persona (false positives included:
# one kept would be an ignore in .github/zizmor.yml saying why).
PIN_AS_TAG := s/@[0-9a-f]{40} \# (v[0-9]+)[.0-9]*$$/@\1/
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy harness contract replica tests benchmarks
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(BIN)/actionlint -shellcheck=$(BIN)/shellcheck .github/workflows/*.yml
	for f in .github/workflows/*.yml; do \
		sed -E '$(PIN_AS_TAG)' "$$f" | $(BIN)/actionlint -shellcheck= -stdin-filename "$$f (pins as tags)" - || exit 1; \
	done
	$(BIN)/zizmor --offline --no-progress --persona=auditor .github/workflows/

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

e2e-staging: $(STAMP)
	$(call run_suite,$(MARKERS),)

reproduce-1278: $(STAMP)
	$(call run_suite,issue_1278,REPLICA_SCENARIO=$${REPLICA_SCENARIO:-issue-1278})

# Local story: the replica starts broken (issue-1278, three instances crash-looping) and its fault is
# cleared while we wait; the startup gates then read the startups that followed the fix. Another
# REPLICA_SCENARIO brings its own instance count.
VERIFY_INSTANCES := $(if $(REPLICA_SCENARIO),,3)
verify-fix: $(STAMP)
	$(call run_suite,verify_fix,REPLICA_SCENARIO=$${REPLICA_SCENARIO:-issue-1278} REPLICA_INSTANCES=$${REPLICA_INSTANCES:-$(VERIFY_INSTANCES)} E2E_LOCAL_FIX_AFTER_S=$${E2E_LOCAL_FIX_AFTER_S:-5})

# One night of a job as the nightly workflow runs it (python -m harness.nightly --help): the history of
# JOB on E2E_ENV pulled from the store (GitHub, when GITHUB_REPOSITORY and GITHUB_TOKEN are set; else the
# local file), the job run with E2E_HISTORY, the night pushed and the trackers told.
JOB ?= e2e-staging
nightly: $(STAMP)
	$(BIN)/python -m harness.nightly night --job $(JOB) --reports $(REPORTS)

# Allure 3 HTML (npm, no Java) with history carried in $(REPORTS)/history.jsonl, and the quality gate
# evaluated inside the report (tools/allure-report.mjs: 3.14.3's `allure quality-gate` feeds nothing to
# the report's Quality Gates tab). An empty run (no test result) adds no history entry. Sets $$gate.
define allure_report
	set -e; [ -x node_modules/.bin/allure ] && [ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund --silent; \
	rm -rf $(REPORTS)/allure-report; append=1; \
	if ! $(BIN)/python -m harness.report.allure_files has-results $(ALLURE_RESULTS); then append=0; \
		echo "report: no test results in $(ALLURE_RESULTS): an empty run, no history entry added"; fi; \
	gate=0; REPORTS=$(REPORTS) ALLURE_APPEND_HISTORY=$$append node tools/allure-report.mjs $(ALLURE_RESULTS) $(REPORTS)/verdict.json || gate=$$?; \
	echo "report: $(REPORTS)/allure-report/index.html (history: $(REPORTS)/history.jsonl, quality gate exit $$gate)"
endef
NO_NPM := make report needs Node.js 20+ with npm (Debian: apt-get install nodejs npm); the suite, verdict and JUnit work without it

report: $(STAMP)
	@if ! command -v npm >/dev/null 2>&1; then echo "$(NO_NPM)"; exit 0; fi; \
	$(allure_report); \
	exit $$gate

# The report as a reader sees it: headless Chromium (Debian's chromium) over http://127.0.0.1 checks the
# first page (headline, cause, owner, outcome, coverage), flaky marks against the verdict, attempt steps'
# statuses and the quality gate; screenshots in $(REPORTS)/report-*.png. Not part of `make test`.
report-check: $(STAMP)
	@if ! command -v npm >/dev/null 2>&1; then echo "$(NO_NPM)"; exit 1; fi; \
	if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "report-check: installing Debian's chromium (apt-get install -y chromium)"; \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
				|| { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }; \
		else echo "report-check needs Debian's chromium at /usr/bin/chromium: sudo apt-get install -y chromium"; exit 1; fi; \
	fi; \
	$(allure_report); \
	node tools/report-check.mjs $(REPORTS) $$gate

replica-up: $(STAMP)
	$(BIN)/python -m replica up --scenario $(SCENARIO)

replica-down: $(STAMP)
	$(BIN)/python -m replica down

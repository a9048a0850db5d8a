# Lainaamo's two commands for newcomers: `make demo` and `make test`.
# Both build .venv on first use and reinstall only when pyproject.toml changes.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# One stamp per set of extras: touched after a successful install, so a later run skips pip
# unless pyproject.toml is newer.
DEMO_STAMP := $(VENV)/.installed-demo
DEV_STAMP := $(VENV)/.installed-dev
PIP_INSTALL := $(BIN)/python -m pip install --disable-pip-version-check

.DEFAULT_GOAL := help
.PHONY: help demo test test-clock-ahead lint unit services messages clean distclean

help:
	@echo "make demo       install once into .venv, then run .venv/bin/lainaamo demo"
	@echo "make test       everything CI runs: lint, type check, all tests on real services"
	@echo "make lint       ruff check, ruff format --check, mypy, lint-imports (import contracts)"
	@echo "make unit       only tests/unit (no services needed)"
	@echo "make test-clock-ahead   all tests with the wall clock a year ahead (CLOCK_AHEAD_DAYS)"
	@echo "make services   install/start Mosquitto, PostgreSQL and Chromium for the tests if missing"
	@echo "make messages   re-extract the console's strings into its fi/sv catalogues"
	@echo "make clean      remove caches; make distclean also removes .venv and var/"
	@echo "Variables: PYTHON=$(PYTHON) (3.11 or newer), LAINAAMO_TEST_PG_URL"

# Each check runs even when an earlier one failed, so that one run (and one CI round) shows
# every problem; the exit status still says whether all passed.
LINT_CHECKS := "$(BIN)/ruff check ." "$(BIN)/ruff format --check ." "$(BIN)/mypy" "$(BIN)/lint-imports --no-cache"
define run_checks
	@failed=""; \
	for check in $(1); do \
	    echo "+ $$check"; \
	    $$check || failed="$$failed  $$check\n"; \
	done; \
	if [ -n "$$failed" ]; then printf "\nFailed:\n$$failed" >&2; exit 1; fi
endef

demo: $(DEMO_STAMP)
	$(BIN)/lainaamo demo

test: $(DEV_STAMP) services
	$(call run_checks,$(LINT_CHECKS) "$(BIN)/pytest")

lint: $(DEV_STAMP)
	$(call run_checks,$(LINT_CHECKS))

unit: $(DEV_STAMP)
	$(BIN)/pytest tests/unit

# The whole suite with every Python process's wall clock a year ahead (monotonic time stays
# real): no test may depend on today's date. See tests/support/clock_ahead/sitecustomize.py.
CLOCK_AHEAD_DAYS ?= 365
test-clock-ahead: $(DEV_STAMP) services
	LAINAAMO_TEST_CLOCK_AHEAD_DAYS=$(CLOCK_AHEAD_DAYS) PYTHONPATH=tests/support/clock_ahead $(BIN)/pytest -p no:time_machine \
	    -W "ignore:Module already imported so cannot be rewritten:pytest.PytestAssertRewriteWarning"

services:
	@bash scripts/ensure-services.sh

# The venv is made once; its interpreter is checked here rather than on every run, which
# keeps the second `make demo` instant.
$(BIN)/python:
	@command -v $(PYTHON) >/dev/null || { \
	    echo "'$(PYTHON)' not found: Lainaamo needs Python 3.11 or newer." \
	        "Install python3, or run make again with PYTHON=/path/to/python3.11." >&2; \
	    exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	    echo "Lainaamo needs Python 3.11 or newer; '$(PYTHON)' is $$($(PYTHON) --version 2>&1)." \
	        "Run make again with PYTHON=python3.11 (or another 3.11+ interpreter)." >&2; \
	    exit 1; }
	@# Debian and Ubuntu ship venv's ensurepip separately; without it venv fails halfway.
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	    echo "'$(PYTHON) -m venv' is not available: install the Debian/Ubuntu package" \
	        "python3-venv (sudo apt-get install python3-venv) and run make again." >&2; \
	    exit 1; }
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); exit 1; }

# Order-only on the interpreter: it is a symlink whose target's date means nothing here.
$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(PIP_INSTALL) -e '.[demo]'
	@touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(PIP_INSTALL) -e '.[dev]'
	@touch $@

CONSOLE := server/entrypoints/console
messages: $(DEV_STAMP)
	$(BIN)/pybabel extract -F $(CONSOLE)/babel.cfg --no-location --sort-output \
	    -k _ -k _l -k lazy_gettext -o $(CONSOLE)/translations/messages.pot .
	for lang in fi sv; do \
	    po=$(CONSOLE)/translations/$$lang/LC_MESSAGES/messages.po; \
	    if [ -f $$po ]; then \
	        $(BIN)/pybabel update --no-fuzzy-matching -i $(CONSOLE)/translations/messages.pot -d $(CONSOLE)/translations -l $$lang; \
	    else \
	        $(BIN)/pybabel init -i $(CONSOLE)/translations/messages.pot -d $(CONSOLE)/translations -l $$lang; \
	    fi; \
	done

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis build
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) var

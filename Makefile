# Both entry points build .venv from the pinned lock file first, so they work on a fresh clone.
PY ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed

export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_HOME := $(CURDIR)/var/prefect

.PHONY: demo demo-reset test test-unit lint venv chromium poppler

$(STAMP): pyproject.toml requirements.lock
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q -c requirements.lock -e '.[test]'
	mkdir -p var
	touch $(STAMP)

venv: $(STAMP)

# Each `make demo` is the next night on the same ledger (var/cmesync.db, the default config's) and sandbox
# registries; `make demo-reset` starts over from an empty ledger.
demo: $(STAMP)
	$(VENV)/bin/cmesync run --embedded

demo-reset: $(STAMP)
	$(VENV)/bin/cmesync run --embedded --fresh

# Headless Chromium for the HTML transcript test (Debian's package; the browser is never downloaded by a test).
chromium:
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver)

# pdftotext and pdftoppm, with which the certificate tests read the PDFs back.
poppler:
	command -v pdftotext >/dev/null && command -v pdftoppm >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq poppler-utils)

test: $(STAMP) chromium poppler
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/pytest

# The tier a developer runs often: tests that need nothing but Python (tiers in README "Tests").
test-unit: $(STAMP)
	$(VENV)/bin/pytest -m unit

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

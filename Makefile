# One entry per habit. Every target installs what it needs itself (a venv in .venv).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test browser lint typecheck unit functional integration up down status runs check-config bench plan deploy clean

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing the pinned dependencies into $(VENV) (first run only)…"
	@$(PY) -m pip install -qq --disable-pip-version-check -r requirements-dev.txt
	@touch $(STAMP)

venv: $(STAMP)

## demo: bring up the local stack, run the scenario end to end, tear everything down
demo: $(STAMP)
	$(PY) -m emulators demo

## test: lint, type check and the whole test suite (unit, functional, integration)
test: lint typecheck browser
	$(PY) -m pytest -q

# Debian's Chromium renders the status page in a test; installed when missing and possible (root + apt),
# never a failure: without it that one test skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && echo "installing Debian's chromium for the status-page screenshot test (first run only)…" \
	  && timeout 300 apt-get update -qq && timeout 600 apt-get install -y -qq chromium >/dev/null; } \
	  || echo "chromium is not installed: the status-page screenshot test will skip"

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP)
	$(PY) -m mypy

unit: $(STAMP)
	$(PY) -m pytest -q -m unit

functional: $(STAMP)
	$(PY) -m pytest -q -m functional

integration: $(STAMP)
	$(PY) -m pytest -q -m integration

check-config: $(STAMP)
	$(PY) -m shared.config check $${PIPELINE_CONFIG:-pipeline.yaml}

## plan: what `deploy` would create in GOOGLE_CLOUD_PROJECT (no stack, no credentials): a summary, then the
## exact gcloud commands. deploy: apply it (gcloud with your credentials; safe to re-run). docs/deploy.md
plan: $(STAMP)
	$(PY) -m shared.operator deploy plan $(ARGS)

deploy: $(STAMP)
	$(PY) -m shared.operator deploy apply $(ARGS)

up: $(STAMP)
	$(PY) -m emulators up

down: $(STAMP)
	$(PY) -m emulators down

## status: the stack's components; status RUN=ID: that run's chain (python -m shared.operator status)
status: $(STAMP)
ifdef RUN
	@eval "$$($(PY) -m emulators env 2>/dev/null)"; $(PY) -m shared.operator status $(RUN) $(ARGS)
else
	$(PY) -m emulators status
endif

## runs: the latest runs in the ledger (of the local stack when one runs; ARGS="--json" etc.)
runs: $(STAMP)
	@eval "$$($(PY) -m emulators env 2>/dev/null)"; $(PY) -m shared.operator runs $(ARGS)

## bench: measure cold starts, hot paths, the burst and scale against baselines of the same run (< 5 min);
## the table on stdout, bench/results.json, charts in docs/performance/. FULL=1 adds the 100,000-run tier.
bench: $(STAMP)
	$(PY) -m bench $(if $(FULL),--full,)

clean:
	rm -rf .run .mypy_cache .ruff_cache .pytest_cache

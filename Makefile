# Modelog developer commands. Everything runs from .venv, created on demand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
GEN_STAMP := libs/modelog/_gen/.generated
# The stock MLflow client (and the libraries whose MLflow callbacks we test) lives in its own venv:
# MLflow is a peer we prove compatibility with, never a Modelog dependency.
MLFLOW_VENV := .venv-mlflow
MLFLOW_STAMP := $(MLFLOW_VENV)/.installed
# MLflow 2.9, the oldest server the importer reads (`modelog import mlflow`), as a second peer.
MLFLOW2_VENV := .venv-mlflow2
MLFLOW2_STAMP := $(MLFLOW2_VENV)/.installed
PROTOS := $(shell find proto -name '*.proto')

.PHONY: install dev test test-fast lint proto bench clean browser ui

install: $(STAMP) $(GEN_STAMP) $(MLFLOW_STAMP) $(MLFLOW2_STAMP) ui

$(STAMP): requirements.lock pyproject.toml setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

$(MLFLOW_STAMP): requirements-mlflow.lock
	@test -x $(MLFLOW_VENV)/bin/python || $(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-mlflow.lock
	@touch $(MLFLOW_STAMP)

$(MLFLOW2_STAMP): requirements-mlflow2.lock
	@test -x $(MLFLOW2_VENV)/bin/python || $(PYTHON) -m venv $(MLFLOW2_VENV)
	$(MLFLOW2_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-mlflow2.lock
	@touch $(MLFLOW2_STAMP)

# The web UI (services/gateway/ui): npm packages from the committed lockfile, built by Vite into
# ui/dist, which the gateway serves at /. Rebuilt when the lockfile or a source changes. Without
# Node.js (>= 20.19, Vite's minimum) the build is skipped with a note: the API works, / says how to build.
UI := services/gateway/ui
UI_DEPS := $(UI)/node_modules/.installed
UI_STAMP := $(UI)/node_modules/.built
UI_SRC := $(shell find $(UI)/src $(UI)/public -type f 2>/dev/null) $(UI)/index.html $(UI)/vite.config.ts $(UI)/tsconfig.json

ui:
	@if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
	  echo "ui: Node.js and npm not found: the web UI is not built (the API works without it; install Node.js 20 and run make ui)"; \
	elif ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then \
	  echo "ui: Node.js $$(node --version) is older than 20.19: the web UI is not built (the API works without it)"; \
	else $(MAKE) --no-print-directory $(UI_STAMP); fi

$(UI_DEPS): $(UI)/package-lock.json $(UI)/package.json
	cd $(UI) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(UI_STAMP): $(UI_DEPS) $(UI_SRC)
	cd $(UI) && npm run build --silent
	@touch $@

proto: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) infra/scripts/gen_proto.py

$(GEN_STAMP): $(STAMP) $(PROTOS) infra/scripts/gen_proto.py
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) infra/scripts/gen_proto.py

dev: install
	$(VENV)/bin/modelog up

test: install browser
	$(PY) -m pytest -p no:cacheprovider --basetemp=$(CURDIR)/.pytest-tmp

# The browser tests (the drift report, the web UI in tests/ui) drive Debian's chromium. Installed when missing and we can (root
# with apt-get); a failed install never fails the build: the test then skips and says why.
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
	  echo "chromium: not installed and no apt-get here; the browser tests will skip"; \
	elif [ "$$(id -u)" != 0 ]; then \
	  echo "chromium: not installed and not root; the browser tests will skip (apt-get install chromium)"; \
	else \
	  echo "chromium: installing Debian's chromium for the browser tests"; \
	  if (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	       >/tmp/modelog-chromium-install.log 2>&1; then echo "chromium: installed"; \
	  else echo "chromium: apt-get install failed (last lines below); the browser tests will skip"; \
	       tail -n 5 /tmp/modelog-chromium-install.log || true; fi; \
	fi

lint: install
	$(VENV)/bin/ruff check libs services tests infra
	$(VENV)/bin/ruff format --check libs services tests infra
	$(VENV)/bin/mypy -p eventlog -p modelog -p modelog_platform -p modelog_services

bench: install
	$(PY) -m tests.bench.run

clean:
	rm -rf $(VENV) $(MLFLOW_VENV) $(MLFLOW2_VENV) libs/modelog/_gen build *.egg-info $(UI)/node_modules $(UI)/dist

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
PROTOS := $(shell find proto -name '*.proto')

.PHONY: install dev test test-fast lint proto bench clean browser

install: $(STAMP) $(GEN_STAMP) $(MLFLOW_STAMP)

$(STAMP): requirements.lock pyproject.toml setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

$(MLFLOW_STAMP): requirements-mlflow.lock
	@test -x $(MLFLOW_VENV)/bin/python || $(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-mlflow.lock
	@touch $(MLFLOW_STAMP)

proto: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) infra/scripts/gen_proto.py

$(GEN_STAMP): $(STAMP) $(PROTOS) infra/scripts/gen_proto.py
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) infra/scripts/gen_proto.py

dev: install
	$(VENV)/bin/modelog up

test: install browser
	$(PY) -m pytest -p no:cacheprovider --basetemp=$(CURDIR)/.pytest-tmp

# The drift report's browser test drives Debian's chromium. Installed when missing and we can (root
# with apt-get); a failed install never fails the build: the test then skips and says why.
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
	  echo "chromium: not installed and no apt-get here; the report browser test will skip"; \
	elif [ "$$(id -u)" != 0 ]; then \
	  echo "chromium: not installed and not root; the report browser test will skip (apt-get install chromium)"; \
	else \
	  echo "chromium: installing Debian's chromium for the report browser test"; \
	  if (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	       >/tmp/modelog-chromium-install.log 2>&1; then echo "chromium: installed"; \
	  else echo "chromium: apt-get install failed (last lines below); the report browser test will skip"; \
	       tail -n 5 /tmp/modelog-chromium-install.log || true; fi; \
	fi

lint: install
	$(VENV)/bin/ruff check libs services tests infra
	$(VENV)/bin/ruff format --check libs services tests infra
	$(VENV)/bin/mypy -p eventlog -p modelog -p modelog_platform -p modelog_services

bench: install
	$(PY) -m tests.bench.run

clean:
	rm -rf $(VENV) $(MLFLOW_VENV) libs/modelog/_gen build *.egg-info

# Modelog developer commands. Everything runs from .venv, created on demand.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
GEN_STAMP := libs/modelog/_gen/.generated
PROTOS := $(shell find proto -name '*.proto')

.PHONY: install dev test test-fast lint proto bench clean

install: $(STAMP) $(GEN_STAMP)

$(STAMP): requirements.lock pyproject.toml setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

proto: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) infra/scripts/gen_proto.py

$(GEN_STAMP): $(STAMP) $(PROTOS) infra/scripts/gen_proto.py
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) infra/scripts/gen_proto.py

dev: install
	$(VENV)/bin/modelog up

test: install
	$(PY) -m pytest -p no:cacheprovider --basetemp=$(CURDIR)/.pytest-tmp

lint: install
	$(VENV)/bin/ruff check libs services tests infra
	$(VENV)/bin/ruff format --check libs services tests infra
	$(VENV)/bin/mypy -p eventlog -p modelog -p modelog_platform -p modelog_services

bench: install
	$(PY) -m tests.bench.run

clean:
	rm -rf $(VENV) libs/modelog/_gen build *.egg-info

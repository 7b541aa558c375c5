# cutover: the two commands are `make demo` (the main job on the local sandbox)
# and `make test` (every test and static check). Both set themselves up.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint sanity unit integration clean

$(STAMP): requirements.txt
	@command -v python3 >/dev/null || { echo "python3 (3.11) is required"; exit 1; }
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) -m sandbox up

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	tests/lint/run

sanity: $(STAMP)
	tests/sanity/run

unit: $(STAMP)
	$(PY) -m pytest tests/unit

integration: $(STAMP)
	$(PY) -m pytest tests/integration

test: $(STAMP)
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory sanity
	$(PY) -m pytest

clean:
	-$(PY) -m sandbox stop
	rm -rf .tmp .sandbox .pytest_cache .ruff_cache

# Quickstart: `make demo` (sets up, then runs the main job) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test test-fast lint bench demo clean

$(STAMP): requirements.txt requirements-gateway.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

# checkov pins packaging<24, pytest needs >=24: it lives in its own venv inside .venv.
CHECKOV_STAMP := $(VENV)/checkov/.installed
$(CHECKOV_STAMP): deploy/requirements-checkov.txt | $(STAMP)
	test -x $(VENV)/checkov/bin/python || $(PYTHON) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/pip install --quiet -r deploy/requirements-checkov.txt
	touch $(CHECKOV_STAMP)

# TF Serving's generated modules without the TF runtime: `python -m gateway` (tfserving mode)
# puts this folder first on sys.path (gateway/lean_protos.py), so it never loads TensorFlow.
LEAN_PROTOS := $(VENV)/lean-protos/LEAN_PROTOS
$(LEAN_PROTOS): gateway/lean_protos.py $(STAMP)
	$(PY) -m gateway.lean_protos --out $(VENV)/lean-protos

setup: $(STAMP) $(CHECKOV_STAMP) $(LEAN_PROTOS)  ## create .venv and install everything (pinned)

test: setup  ## lint, type check, then every test (slow ones included)
	$(MAKE) lint
	$(PY) -m pytest

test-fast: setup  ## unit tests without the slow ones
	$(PY) -m pytest -m "not slow" tests/unit

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy $(wildcard contract fundus synthetic model gateway demo harness bench reliability observability deploy)
	$(PY) -m observability.build --check

# The gateway image (and the models image from ./export) with docker or podman; where no
# registry is reachable, from a Python 3.11 base built with debootstrap (docs/deploy.md).
.PHONY: image test-container
image:  ## build dr-gateway:<version> and dr-models:<version> (python -m deploy.images)
	$(PYTHON) -m deploy.images

test-container: setup  ## only the container tests (tests/container; make test runs them too)
	$(PY) -m pytest tests/container

bench: setup  ## benchmarks that print side-by-side ratios (see docs/benchmarks.md)
	$(PY) -m bench.preprocess

demo: setup  ## build the demo model if needed, serve it, grade the samples (Ctrl-C stops)
	$(PY) -m model.demo --out export
	$(PY) -m demo --model-dir export

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

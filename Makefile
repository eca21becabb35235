# Svod — two commands: `make run` (whole suite with demo data) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SERVICES := ingestion identity profile segmentation quality
LINT_PATHS := conftest.py $(wildcard libs services cli tests scripts benchmarks deploy)

.PHONY: run test test-fast lint gen venv bench bench-quick bench-pipeline clean help

help:
	@echo "make run    - start all five services on Postgres with demo data (Ctrl-C stops)"
	@echo "make test   - lint, then the full test suite against real Postgres and gRPC servers"
	@echo "make bench  - benchmarks at the issues' scales (long); make bench-quick: small"
	@echo "make bench-pipeline - the whole pipeline end to end beside its raw ceilings"
	@echo "              (BENCH_ARGS=--quick: 20k customers, a few minutes)"
	@echo "make gen    - regenerate Python stubs from protos/ into gen/"

venv: $(VENV)/.installed

$(VENV)/.installed: $(wildcard requirements/*.txt) scripts/bootstrap_venv.sh
	PYTHON=$(PYTHON) bash scripts/bootstrap_venv.sh $(VENV)
	touch $@

gen: $(VENV)/.installed
	$(PY) scripts/gen_protos.py

# Spans go to a local file too: `svod trace show TRACE_ID` reads it.
run: gen
	SVOD_TRACES_FILE=$${SVOD_TRACES_FILE:-.data/traces.jsonl} $(PY) -m svod_cli run --demo

# Type-checked sources: strict for libs, domains and use cases (pyproject.toml [tool.mypy]).
# The unit tier's in-memory fakes too: each assigns itself to the port it stands in for, so a
# port that gains a method fails lint until its fake has it.
TYPED_PATHS := libs/svod_runtime libs/svod_names libs/svod_contacts cli/svod_cli $(wildcard services/*/src/svod_*) \
	$(wildcard services/*/tests/unit/*fakes.py)

lint: gen
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy $(TYPED_PATHS)
	$(VENV)/bin/lint-imports

test: lint
	$(PY) -m pytest

test-fast: gen
	$(PY) -m pytest -x -q

bench: gen
	$(PY) -m pip install -q -r requirements/bench.txt
	$(PY) -m benchmarks.run_all $(BENCH_ARGS)

bench-quick: gen
	$(PY) -m pip install -q -r requirements/bench.txt
	$(PY) -m benchmarks.run_all --quick

# The five services end to end through the public API (benchmarks/pipeline/bench.py).
bench-pipeline: gen
	$(PY) -m benchmarks.pipeline.bench $(BENCH_ARGS)

clean:
	rm -rf gen .pytest_cache .ruff_cache
include deploy/deploy.mk

# Every target creates the virtual environment it needs (.venv) on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo up test tools bench gameday soak check lint format typecheck contracts clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP) tools  ## One latency incident end to end on the embedded defaults
	$(BIN)/llmedic demo

up: $(STAMP)  ## Prefect server + every deployment + the approval sweeper
	$(BIN)/llmedic up

tools:  ## Prometheus + Alertmanager for the end-to-end tests (Debian packages, when root)
	@bash scripts/test-tools.sh

test: $(STAMP) tools  ## The test suite
	$(BIN)/python -m pytest -q

gameday: $(STAMP) tools  ## Every shipped game-day scenario through the whole stack, scored
	$(BIN)/llmedic gameday

soak: $(STAMP) tools  ## The long fault and security suite (15,000 fuzzed payloads, 60 s outages, storms)
	LLMEDIC_FUZZ_EXAMPLES=5000 $(BIN)/python -m pytest -q tests/test_receiver.py -k fuzz
	$(BIN)/python -m pytest -q -s -m soak tests/test_soak.py tests/test_receiver_e2e.py

BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed
BENCH_ROWS ?= 10000000

$(BENCH_STAMP): pyproject.toml
	@test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip uv
	$(BENCH_VENV)/bin/uv pip install --quiet --python $(BENCH_VENV)/bin/python -e '.[bench]'
	@touch $(BENCH_STAMP)

bench: $(STAMP) $(BENCH_STAMP) tools  ## Benchmarks, printed beside their targets
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null; } || true
	$(BIN)/python bench/receiver.py
	$(BENCH_VENV)/bin/python bench/data_audit.py --rows $(BENCH_ROWS)
	$(BIN)/python bench/leak.py
	$(BIN)/python bench/accuracy.py
	$(BIN)/python bench/orchestration.py
	$(BIN)/python bench/gameday.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(STAMP)
	$(BIN)/mypy

contracts: $(STAMP)  ## The layer contracts of pyproject.toml (import-linter)
	$(BIN)/lint-imports --no-cache

check: lint typecheck contracts test  ## ruff (lint + format) + mypy strict + layer contracts + tests

clean:
	rm -rf $(VENV) .llmedic .mypy_cache .ruff_cache .pytest_cache

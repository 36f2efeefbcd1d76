PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: install test lint bench leaderboard

# torch first, pinned: its CPU wheel lies on the machine; an unpinned torch pulls GBs of CUDA.
install:
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[dev]'

test: lint
	$(PYTHON) -m pytest -q

lint:
	$(PYTHON) -m ruff check robustbench_lite attacks defenses tests
	$(PYTHON) -m ruff format --check robustbench_lite attacks defenses tests

bench:
	$(PYTHON) -m tests.bench

leaderboard:
	rb run --attack all --defense all --profile standard --quiet

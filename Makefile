# Every target is self-sufficient on a fresh clone: it creates the virtualenv
# and installs the project (with the dev extra) when pyproject.toml changed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The suite runs on pytest-xdist workers, one per core: every test has its
# own directory, store and Redis key prefix (and each worker its own Redis
# server), so none needs the machine to itself. One run in one process:
# make test PYTEST_ARGS="-n 0 tests/test_codec.py".
PYTEST_ARGS ?= -n auto

.PHONY: install test demo bench bench-quick lint format typecheck clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/resumable demo

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m benchmarks

bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks --quick

lint: $(STAMP)
	$(BIN)/ruff check resumable/*.py resumable/_cli resumable/testing runtime stores tests benchmarks examples
	$(BIN)/ruff format --check resumable/*.py resumable/_cli resumable/testing runtime stores tests benchmarks examples

format: $(STAMP)
	$(BIN)/ruff check --fix resumable/*.py resumable/_cli resumable/testing runtime stores tests benchmarks examples
	$(BIN)/ruff format resumable/*.py resumable/_cli resumable/testing runtime stores tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy -p resumable

clean:
	rm -rf .venv .venv-* .resumable .pytest_cache .mypy_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# One set of habits: CI (.ci/run) calls `make test`, the README's test command.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install test lint format typecheck pytest bench demo clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

## test: install what the tests need, then lint, type-check and run the whole suite
test: install lint typecheck pytest

pytest: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install
	$(BIN)/mypy

## bench: the core benchmark (CDAS step against the authors'-style naive implementation)
bench: install
	$(BIN)/cdas bench core

## demo: the main job on the embedded store
demo: install
	$(BIN)/cdas demo

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info services/coordinator/*.egg-info

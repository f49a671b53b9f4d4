# Every target creates .venv and installs the project into it when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-fast lint render example bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

render: $(STAMP)
	$(BIN)/python scripts/render.py $(ARGS)

example: $(STAMP)
	$(BIN)/python scripts/tiles_example.py

bench: $(STAMP)
	$(BIN)/python scripts/bench_tiling.py
	$(BIN)/python scripts/bench_render.py

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache .hypothesis

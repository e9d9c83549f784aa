# kerastune: `make demo` (install + offline demo), `make test` (install + tests on both backends).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test test-tensorflow test-jax lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -e ".[test]"

demo: install
	$(BIN)/kerastune demo

test-tensorflow:
	KERAS_BACKEND=tensorflow $(BIN)/pytest -q

test-jax:
	KERAS_BACKEND=jax $(BIN)/pytest -q

test: install lint
	$(MAKE) test-tensorflow
	$(MAKE) test-jax

lint:
	$(BIN)/ruff check kerastune recipes tests

clean:
	rm -rf runs .pytest_cache

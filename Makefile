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

# test_distribution.py needs simulated devices (tests/conftest.py), so it runs in a process of its own.
test-tensorflow:
	KERAS_BACKEND=tensorflow $(BIN)/pytest -q --ignore=tests/test_distribution.py
	KERAS_BACKEND=tensorflow KERASTUNE_TEST_DEVICES=1 $(BIN)/pytest -q tests/test_distribution.py

test-jax:
	KERAS_BACKEND=jax $(BIN)/pytest -q --ignore=tests/test_distribution.py
	KERAS_BACKEND=jax KERASTUNE_TEST_DEVICES=1 $(BIN)/pytest -q tests/test_distribution.py

test: install lint
	$(MAKE) test-tensorflow
	$(MAKE) test-jax

lint:
	$(BIN)/ruff check kerastune recipes tests

clean:
	rm -rf runs .pytest_cache

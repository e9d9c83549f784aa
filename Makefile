# kerastune: `make demo` (install + offline demo), `make test` (install + tests on both backends),
# `make bench` (speed against transformers + PyTorch; `make bench QUICK=1` for the shorter one).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo bench test test-fast test-tensorflow test-jax lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -e ".[test]"

demo: install
	$(BIN)/kerastune demo

bench: install
	$(BIN)/kerastune bench $(if $(QUICK),--quick)

# Two pytest workers, a test file each at a time (most of a test's time is single-threaded Python and
# compilation), the longest files first (tests/conftest.py). test_distribution.py needs simulated devices
# (tests/conftest.py): a pytest process of its own, after the workers (run beside them, it slowed both).
PYTEST := $(BIN)/pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=12 --ignore=tests/test_distribution.py
test-tensorflow:
	KERAS_BACKEND=tensorflow $(PYTEST)
	KERAS_BACKEND=tensorflow KERASTUNE_TEST_DEVICES=1 $(BIN)/pytest -q tests/test_distribution.py

test-jax:
	KERAS_BACKEND=jax $(PYTEST)
	KERAS_BACKEND=jax KERASTUNE_TEST_DEVICES=1 $(BIN)/pytest -q tests/test_distribution.py

# A developer's loop (TensorFlow, under 5 minutes on 2 cores): everything but training runs and trained
# PyTorch references (@pytest.mark.slow) and the simulated-device file.
test-fast: lint
	KERAS_BACKEND=tensorflow $(PYTEST) -m "not slow"

test: install lint
	$(MAKE) test-tensorflow
	$(MAKE) test-jax

lint:
	$(BIN)/ruff check kerastune benchmarks recipes tests

clean:
	rm -rf runs .pytest_cache

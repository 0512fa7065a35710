# SemanticDialect: every target sets up .venv on first use (torch pinned first, then the project).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: setup demo test bench sim rtl synth clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: an unpinned resolve would pull gigabytes of CUDA wheels.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/sdialect demo

test: setup
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup -m "not slow" tests

# Benchmarks write JSON under build/bench/; the kernel benchmark needs a GPU and says so without one.
bench: setup
	$(VENV)/bin/sdialect bench golden
	$(VENV)/bin/sdialect bench model
	$(VENV)/bin/sdialect bench kernels

# Full hardware regression: Amaranth tests, lint of every default config, 100k-block Verilator
# sweeps, and the tile replaying captured layers of the embedded model (slow tests included).
sim: setup
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup tests/test_hw_*.py tests/test_sim_*.py tests/test_tile_*.py

rtl: setup
	$(VENV)/bin/sdialect rtl --all --lint --out build/rtl

synth: setup
	$(VENV)/bin/sdialect synth

clean:
	rm -rf build .pytest_cache

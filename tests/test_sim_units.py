"""cocotb testbenches on the generated Verilog under Verilator and Icarus, run from pytest.

Each configuration is built once per simulator in its own build directory and one cocotb run
executes all of ``sim.tb_unit``'s tests on it (random sweep with valid/ready back-pressure,
latency/II, many resets at random points), comparing bit-exactly with the golden model. ``make
test`` runs the small list on Verilator, two MAC arrays (one C-slow) and a decoder on Icarus, and the
reset test at several seeds; the ``slow`` lists (``make sim``) hold the 100k-block sweeps on Verilator
and every unit on Icarus, issue 10's pipelined units included. Every run writes its summary (speed, coverage) under ``build/sim/reports/``, which
``python -m sim.coverage`` merges.
"""

from __future__ import annotations

import json
import os

import pytest

from hw import Book, DecoderConfig, DSUConfig, FrontEndConfig, MACArrayConfig, TwoStageConfig
from sim.runner import SIM_ROOT, run_cocotb, simulator_missing

#: (config, beats): representative fraction for `make test`, under Verilator.
FAST = [
    (DSUConfig(book=Book.FB32, block=32), 15_000),
    (TwoStageConfig(block=32), 15_000),
    (DecoderConfig(lanes=4), 2_000),
    (FrontEndConfig(block=32), 2_000),
    (MACArrayConfig(rows=2, cols=2, block=32), 300),
]

#: (config, beats): the same units under Icarus in `make test` (Icarus builds in a second; it
#: simulates the big selector models slowly, so those go to the slow list).
FAST_ICARUS = [
    (MACArrayConfig(rows=2, cols=2, block=32), 120),
    (DecoderConfig(lanes=4), 600),
    (MACArrayConfig(rows=1, cols=2, block=16, interleave=4), 48),  # C-slow: L interleaved jobs per group
]

#: (config, beats): the full sweeps (>= 100k blocks per selector), `make sim`, Verilator.
SLOW = [
    (DSUConfig(book=Book.FB32, block=32), 120_000),
    (DSUConfig(book=Book.DIALECTFP4_16, block=32), 110_000),
    (DSUConfig(book=Book.FB32, block=32, dialects_per_cycle=8), 20_000),
    (TwoStageConfig(block=32), 120_000),
    (DecoderConfig(lanes=32), 4_000),
    (FrontEndConfig(block=32), 50_000),
    (MACArrayConfig(rows=4, cols=4, block=32), 3_000),
    # Issue 10's pipelined units as synthesized (hw/README.md): the 13-stage DSU and the 8-stage
    # two-stage selector (skid FIFOs), and the C-slow MAC array at L = 8 (7 PE stages, 8-register ring).
    (DSUConfig(book=Book.FB32, block=32, pipeline_stages=13), 60_000),
    (TwoStageConfig(block=32, pipeline_stages=8), 60_000),
    (MACArrayConfig(rows=2, cols=2, block=32, interleave=8), 1_500),
]

#: (config, beats): every unit regression again under Icarus, `make sim` (fewer beats: Icarus is an
#: interpreter; the speed of each is in its report).
SLOW_ICARUS = [
    (DSUConfig(book=Book.FB32, block=32), 6_000),
    (DSUConfig(book=Book.DIALECTFP4_16, block=32), 6_000),
    (DSUConfig(book=Book.FB32, block=32, dialects_per_cycle=8), 2_000),
    (TwoStageConfig(block=32), 20_000),
    (DecoderConfig(lanes=32), 4_000),
    (FrontEndConfig(block=32), 10_000),
    (MACArrayConfig(rows=4, cols=4, block=32), 600),
    (DSUConfig(book=Book.FB32, block=32, pipeline_stages=13), 3_000),
    (TwoStageConfig(block=32, pipeline_stages=8), 10_000),
    (MACArrayConfig(rows=2, cols=2, block=32, interleave=8), 300),
]

#: Seeds of the reset test in every CI run (``SDIALECT_RESET_SEEDS=4,5,...`` picks others). The
#: mutation check runs the reset-less-accumulator mutant at each of them.
RESET_SEEDS = tuple(int(s) for s in os.environ.get("SDIALECT_RESET_SEEDS", "1,2,3,4").split(","))
#: The MAC array the reset test bites on.
RESET_CONFIG = MACArrayConfig(rows=2, cols=2, block=32)

#: Where each run's summary goes (``python -m sim.coverage`` reads them).
REPORTS = SIM_ROOT / "reports"


def _check(config, beats, root, simulator, *, seed=1, testcase=None, tests=3):
    missing = simulator_missing(simulator)
    if missing:
        pytest.skip(missing)
    result = run_cocotb(config, simulator=simulator, beats=beats, seed=seed, root=root, testcase=testcase)
    print(f"{simulator} {config.name} seed {seed}: {result.tests} tests, {result.failures} failures")
    if result.report:
        REPORTS.mkdir(parents=True, exist_ok=True)
        tag = f"{simulator}-{config.name}-{root.name}-seed{seed}-{testcase or 'all'}"
        (REPORTS / f"{tag}.json").write_text(json.dumps(result.report, indent=1))
    assert result.tests == tests
    assert result.failures == 0, f"seed {seed} failed on {simulator}; see {result.results_file}"
    return result


@pytest.mark.parametrize("config,beats", FAST, ids=[c.name for c, _ in FAST])
def test_unit_under_verilator(config, beats):
    _check(config, beats, SIM_ROOT, "verilator")


@pytest.mark.parametrize("config,beats", FAST_ICARUS, ids=[c.name for c, _ in FAST_ICARUS])
def test_unit_under_icarus(config, beats):
    _check(config, beats, SIM_ROOT, "icarus")


@pytest.mark.parametrize("seed", RESET_SEEDS, ids=[f"seed{s}" for s in RESET_SEEDS])
def test_resets_bite_at_every_seed(seed):
    """Twelve resets per run, half aimed at a partial sum in flight (the testbench fails if none hit
    one), at several seeds; each seed is printed and in the failure message."""
    result = _check(RESET_CONFIG, 0, SIM_ROOT, "icarus", seed=seed, testcase="resets_at_random_points", tests=1)
    states = result.report["tests"]["resets_at_random_points"]["resets"]
    assert states["partial_sum"] >= 2, f"seed {seed}: only {states} resets hit a partial sum"


@pytest.mark.slow
@pytest.mark.parametrize("config,beats", SLOW, ids=[c.name for c, _ in SLOW])
def test_unit_full_sweep_under_verilator(config, beats):
    # A separate tree: the slow sweep may run beside the fast list under xdist.
    _check(config, beats, SIM_ROOT / "full", "verilator")


@pytest.mark.slow
@pytest.mark.parametrize("config,beats", SLOW_ICARUS, ids=[c.name for c, _ in SLOW_ICARUS])
def test_unit_full_sweep_under_icarus(config, beats):
    _check(config, beats, SIM_ROOT / "full", "icarus")

"""cocotb 2.x testbenches on the generated Verilog under Verilator, run from pytest.

Each configuration is built once in its own ``build/sim/<name>`` directory and one cocotb run
executes all of ``sim.tb_unit``'s tests on it (random sweep with valid/ready back-pressure,
latency/II, reset mid-stream), comparing bit-exactly with the golden model. ``make test`` runs the
small list; the ``slow`` list (``make sim``) holds the 100k-block selector sweeps.
"""

from __future__ import annotations

import pytest

from hw import Book, DecoderConfig, DSUConfig, FrontEndConfig, MACArrayConfig, TwoStageConfig
from sim.runner import run_cocotb

#: (config, beats): representative fraction for `make test`.
FAST = [
    (DSUConfig(book=Book.FB32, block=32), 15_000),
    (TwoStageConfig(block=32), 15_000),
    (DecoderConfig(lanes=4), 2_000),
    (FrontEndConfig(block=32), 2_000),
    (MACArrayConfig(rows=2, cols=2, block=32), 300),
]

#: (config, beats): the full sweeps (>= 100k blocks per selector), `make sim`.
SLOW = [
    (DSUConfig(book=Book.FB32, block=32), 120_000),
    (DSUConfig(book=Book.DIALECTFP4_16, block=32), 110_000),
    (DSUConfig(book=Book.FB32, block=32, dialects_per_cycle=8), 20_000),
    (TwoStageConfig(block=32), 120_000),
    (DecoderConfig(lanes=32), 4_000),
    (FrontEndConfig(block=32), 50_000),
    (MACArrayConfig(rows=4, cols=4, block=32), 3_000),
]


def _check(config, beats, root):
    result = run_cocotb(config, beats=beats, root=root)
    assert result.tests == 3
    assert result.failures == 0, f"see {result.results_file}"


@pytest.mark.parametrize("config,beats", FAST, ids=[c.name for c, _ in FAST])
def test_unit_under_verilator(config, beats):
    from sim.runner import SIM_ROOT

    _check(config, beats, SIM_ROOT)


@pytest.mark.slow
@pytest.mark.parametrize("config,beats", SLOW, ids=[c.name for c, _ in SLOW])
def test_unit_full_sweep_under_verilator(config, beats):
    from sim.runner import SIM_ROOT

    # A separate tree: the slow sweep may run beside the fast list under xdist.
    _check(config, beats, SIM_ROOT / "full")

"""The DSU batch sweep: at least 10^6 random and corner blocks golden <-> RTL under Verilator (`make sim`).

The quick test streams 20k blocks through the same testbench (``sim.tb_sweep``) so the sweep
machinery itself is exercised by `make test`; the slow one is the million-block run, whose
totals and speed land in ``build/sim/reports/`` (and its coverage in the `make sim` report).
"""

from __future__ import annotations

import json

import pytest

from hw import Book, DSUConfig
from sim.runner import SIM_ROOT, run_cocotb

CONFIG = DSUConfig(book=Book.FB32, block=32)
#: `make sim`: the million-block sweep (seed printed and in the report).
MILLION = 1_000_000


def _sweep(blocks: int, root, seed: int = 11):
    result = run_cocotb(CONFIG, beats=blocks, seed=seed, root=root, test_module="sim.tb_sweep")
    summary = result.report
    print(f"{CONFIG.name} seed {seed}: {summary.get('blocks')} blocks in {summary.get('seconds')} s, "
          f"{summary.get('blocks_per_second')} blocks/s, {summary.get('mismatching_chunks')} mismatching chunks")
    reports = SIM_ROOT / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    (reports / f"sweep-{CONFIG.name}-{blocks}-seed{seed}.json").write_text(json.dumps(summary, indent=1))
    assert result.tests == 1
    assert result.failures == 0, f"see {result.results_file}"
    assert summary["blocks"] == blocks and summary["mismatching_chunks"] == 0
    return summary


def test_dsu_sweep_machinery():
    # The build of test_sim_units' fast DSU run (same sources, same directory): built once.
    _sweep(20_000, SIM_ROOT)


@pytest.mark.slow
def test_dsu_million_block_sweep():
    _sweep(MILLION, SIM_ROOT / "full")

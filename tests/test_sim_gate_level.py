"""Gate level: the Yosys-synthesized netlists of a DSU and of one PE (a 1 x 1 MAC array) under cocotb,
bit-exact against golden with back-pressure, latency/II and resets (``sim.tb_unit``), on Icarus."""

from __future__ import annotations

import pytest

from hw import Book, DSUConfig, MACArrayConfig
from sim.runner import SIM_ROOT, run_cocotb, simulator_missing

GATE_LEVEL = [
    (DSUConfig(book=Book.DIALECTFP4_16, block=16), 300),
    (MACArrayConfig(rows=1, cols=1, block=16), 60),
]


@pytest.mark.slow
@pytest.mark.parametrize("config,beats", GATE_LEVEL, ids=[c.name for c, _ in GATE_LEVEL])
def test_netlist_is_bit_exact(config, beats):
    missing = simulator_missing("icarus")
    if missing:
        pytest.skip(missing)
    result = run_cocotb(config, simulator="icarus", beats=beats, root=SIM_ROOT, gate_level=True, resets=6)
    assert result.tests == 3
    assert result.failures == 0, f"see {result.results_file}"
    netlist = (result.results_file.parent / "netlist.v").read_text()
    assert "always" in netlist and "module " + config.name in netlist

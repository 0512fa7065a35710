"""The tile's captured-activation replay under cocotb/Verilator on the pipelined PEs of issue 10 (`make sim`).

`make test` replays a tiny-model capture through 2 x 2 MXFP4 and FB32 tiles at C-slow L = 4
(tests/test_tile_regression.py). Here (slow): the same replay through 2 x 2 tiles at L = 8 (the
adder ring's eight registers: every adder cut in use) in FB32 and MXFP4, and through the 2 x 2 NVFP4
tile (pre-quantized activations, the E4M3 block-scale and tensor-scale path in every PE). Each run
(``sim.tile.tb_tile``) checks every output bit for bit at full rate with the documented latency on
every output beat and >= 95 % sustained PE utilization, then again under random valid on ``a`` and
``w`` and random ready on ``o`` after a reset that hit work in flight.
"""

from __future__ import annotations

import pytest

from hw.tile import Tile, TileConfig, TileFormat
from sim.runner import SIM_ROOT
from sim.tile.capture import tiny_capture
from sim.tile.runner import run_tile_regression

REPORTS = SIM_ROOT.parent / "report" / "tile"

PIPELINED_TILES = [
    TileConfig(format=TileFormat.FB32, rows=2, cols=2, interleave=8),
    TileConfig(format=TileFormat.MXFP4, rows=2, cols=2, interleave=8),
    TileConfig(format=TileFormat.NVFP4, rows=2, cols=2, block=16),
]


@pytest.mark.slow
@pytest.mark.parametrize("config", PIPELINED_TILES, ids=[c.name for c in PIPELINED_TILES])
def test_pipelined_tile_replays_a_tiny_model_capture_bit_exact(config, tmp_path):
    capture = tiny_capture(config, tmp_path / "capture")
    result = run_tile_regression(config, capture, report_file=REPORTS / f"tiny_{config.name}.json")
    report = result.report
    assert result.tests == 2  # full-rate replay, and back-pressure + a reset mid-stream
    assert result.failures == 0, "\n".join(report.get("failures", [])[:20]) or f"see {result.report_file}"
    assert report["records"] and all(r["outputs_bit_exact"] for r in report["records"])
    assert report["latency_cycles"] == Tile.timing(config).latency
    assert all(r["latency_cycles"] == [report["latency_cycles"]] for r in report["records"])
    assert report["min_pe_utilization"] >= 0.95

"""cocotb regressions of the format-variant RTL (quarter grid, E4M3 block scale, registry books) on the
generated Verilog under Verilator, bit-exact against golden: one per new unit variant (the unit
testbench ``sim.tb_unit``: random stream under back-pressure, latency / II, resets at random points)
and the tdit64-q-e4m3 tile replaying a tiny-model capture (``sim.tile.tb_tile``), which covers the
E4M3 quarter-grid scale path of the PEs. Slow (Verilator builds of the 64-dialect DSU take minutes
on the shared machine): ``make sim`` runs them, or ``pytest -m slow tests/test_hw_variants_sim.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from golden.formats import Grid
from hw import Book, DecoderConfig, DSUConfig, FrontEndConfig, ScaledFrontEndConfig
from sim.runner import SIM_ROOT
from tests.test_sim_units import _check

pytestmark = pytest.mark.slow

#: (config, beats): each new unit variant once under Verilator.
VARIANTS = [
    (FrontEndConfig(block=32, grid=Grid.QUARTER), 5_000),
    (ScaledFrontEndConfig(block=32, grid=Grid.QUARTER), 5_000),
    (DSUConfig(book=Book("tdit64-q-e4m3"), block=32, pipeline_stages=6), 10_000),
    (DSUConfig(book=Book("tdit-q-e4m3"), block=32), 10_000),
    (DecoderConfig(books=(Book("tdit64-q-e4m3"), Book("tdit-q-e4m3")), lanes=4), 2_000),
]


@pytest.mark.parametrize("config,beats", VARIANTS, ids=[c.name for c, _ in VARIANTS])
def test_variant_unit_under_verilator(config, beats):
    _check(config, beats, SIM_ROOT / "variants", "verilator")


def _replay_tiny_capture(config, tmp_path, decomposition=None):
    """Capture two layers of the tiny model (golden.dit.tiny, integer path) at two steps in the tile's
    format and replay them through the tile under Verilator (full rate; back-pressure + a reset)."""
    import torch

    from golden.dit import CaptureConfig, Execution, QuantConfig, capture, quantize_, tiny_inputs, tiny_transformer
    from sim.tile.capture import TINY_ARCHITECTURE, TINY_TIMESTEPS
    from sim.tile.runner import run_tile_regression

    model = tiny_transformer(TINY_ARCHITECTURE, seed=0)
    quantize_(model, QuantConfig(format=config.format.value, block=config.block, execution=Execution.INTEGER,
                                 decomposition=decomposition))  # fmt: skip
    path = tmp_path / "capture"
    with capture(model, path, CaptureConfig(layers=("blocks.1.attn1.to_q", "blocks.1.attn1.to_out.0"), steps=(1, 2))):
        with torch.no_grad():
            inputs = tiny_inputs(TINY_ARCHITECTURE, batch=1, seed=0)
            for t in TINY_TIMESTEPS:
                model(**inputs, timestep=torch.full((1,), t), return_dict=False)
    report_file = SIM_ROOT.parent / "report" / "tile" / f"tiny_{config.name}.json"
    result = run_tile_regression(config, Path(path), report_file=report_file, root=SIM_ROOT / "variants" / "tile")
    assert result.tests == 2
    assert result.failures == 0, "\n".join(result.report.get("failures", [])[:20]) or f"see {result.report_file}"
    assert result.report["records"] and all(r["outputs_bit_exact"] for r in result.report["records"])
    return result.report


def test_tdit64_q_e4m3_tile_replays_a_tiny_model_capture_under_verilator(tmp_path):
    """tdit64-q-e4m3 (no AD: the tile takes one activation tensor scale per pass) through a 2 x 2 tile:
    quantizer (E4M3 front-end + 64-dialect LUT DSU), buffer, quarter-grid decoders, E4M3 PEs."""
    from hw.tile import TileConfig, TileFormat

    _replay_tiny_capture(TileConfig(format=TileFormat("tdit64-q-e4m3"), rows=2, cols=2), tmp_path)


def test_quarter_grid_e8m0_tile_from_a_formatbook_file_under_verilator(tmp_path):
    """A quarter-grid E8M0 book given as a file (tdit-q-e4m3's table under the shared exponent; no such
    book ships), AD on: quarter-grid block front-end, 32-dialect DSU, decoders and E8M0 quarter PEs.
    The cocotb process finds the book through the file path the tile configuration stores."""
    import golden
    from golden.dit import DecompositionConfig
    from golden.formatbook import format_to_json, format_from_json, save_format_file
    from hw.tile import TileConfig, TileFormat

    file = tmp_path / "tdit-q-e8m0-test.json"
    data = {**format_to_json(golden.get_format("tdit-q-e4m3")), "name": "tdit-q-e8m0-test", "scale": "e8m0"}
    save_format_file(file, format_from_json(data, file))
    config = TileConfig(format=TileFormat(str(file)), rows=2, cols=2)
    assert str(file.resolve()) in config.to_json()
    report = _replay_tiny_capture(config, tmp_path, DecompositionConfig(rho=0.1, profile_every=1))
    assert any(r["salient_rows"] > 0 for r in report["records"]), "the decomposition (AD) produced no residual rows"

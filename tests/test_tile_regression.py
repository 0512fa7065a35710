"""The tile under Verilator replays activations captured from the golden model, bit for bit.

`make test`: a tiny random-weight Wan model (golden.dit.tiny) runs three denoising steps with the
decomposition (AD) on, and SeDA on for FB32, on the integer path; two layers at two steps are captured
and replayed through a 2 x 2 tile (one shared quantizer, C-slow L = 4) in the MXFP4 and FB32
configurations, at full rate and again under random back-pressure on every stream with a reset mid-stream. Every tile output equals
golden.quantized_matmul on the captured operands, the decomposition merge of the tile's outputs
equals the captured layer output, and the MAC array's sustained utilization is >= 95 %.
`make sim` (slow): the embedded trained model (evaluation/assets) at several layers and steps, the
DialectFP4-16 tile, and a DSU at half parallelism whose utilization must drop to one half.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hw.tile import TileConfig, TileFormat, predicted_utilization
from sim.runner import SIM_ROOT
from sim.tile.capture import EMBEDDED_LAYERS, embedded_capture, tiny_capture, tiny_quant_config
from sim.tile.runner import run_tile_regression
from sim.tile.workload import CaptureMismatch, check_capture_matches

#: Where the regression summaries go (simulation speed, utilization per record).
REPORTS = SIM_ROOT.parent / "report" / "tile"
EMBEDDED_MODEL = Path(__file__).resolve().parent.parent / "evaluation" / "assets" / "tiny-video-dit"

FAST = [TileConfig(format=TileFormat.MXFP4, rows=2, cols=2), TileConfig(format=TileFormat.FB32, rows=2, cols=2)]


def _check(config: TileConfig, capture: Path, name: str, *, min_utilization: float = 0.95) -> dict:
    result = run_tile_regression(config, capture, report_file=REPORTS / f"{name}.json", min_utilization=min_utilization)
    report = result.report
    assert result.tests == 2  # full-rate replay, and back-pressure + reset mid-stream
    assert result.failures == 0, "\n".join(report.get("failures", [])[:20]) or f"see {result.report_file}"
    assert report["records"] and all(r["outputs_bit_exact"] for r in report["records"])
    assert report["min_pe_utilization"] >= min_utilization
    return report


@pytest.mark.parametrize("config", FAST, ids=[c.name for c in FAST])
def test_tile_replays_a_tiny_model_capture_bit_exact(config, tmp_path):
    capture = tiny_capture(config, tmp_path / "capture")
    report = _check(config, capture, f"tiny_{config.name}")
    records = report["records"]
    assert {r["step"] for r in records} == {1, 2} and len({r["layer"] for r in records}) == 2
    assert any(r["salient_rows"] > 0 for r in records), "the decomposition (AD) produced no residual rows"


def test_a_capture_of_another_format_is_refused():
    mx = TileConfig(format=TileFormat.MXFP4)
    with pytest.raises(CaptureMismatch, match="the capture holds fb32 blocks of 32, but the tile computes mxfp4 blocks of 32"):
        check_capture_matches(mx, tiny_quant_config(TileConfig(format=TileFormat.FB32)))
    with pytest.raises(CaptureMismatch, match="fb32 blocks of 16"):
        check_capture_matches(TileConfig(format=TileFormat.FB32), tiny_quant_config(TileConfig(format=TileFormat.FB32, block=16)))


@pytest.mark.slow
def test_dialectfp4_tile_replays_a_tiny_model_capture_bit_exact(tmp_path):
    config = TileConfig(format=TileFormat.DIALECTFP4, rows=2, cols=2)
    _check(config, tiny_capture(config, tmp_path / "capture"), f"tiny_{config.name}")


@pytest.mark.slow
def test_a_slow_dsu_behind_the_buffer_matches_the_throughput_model(tmp_path):
    """A DSU costing 4 of 32 dialects per cycle (8 cycles per block): the buffer decouples it from the
    array, whose utilization is then min(1, compute cycles / quantize cycles) per row tile (hw/TILE.md)."""
    config = TileConfig(format=TileFormat.FB32, rows=2, cols=2, dialects_per_cycle=4)
    capture = tiny_capture(config, tmp_path / "capture", layers=("blocks.1.attn1.to_q",), steps=(1,))
    report = _check(config, capture, f"tiny_{config.name}", min_utilization=0.0)
    for record in report["records"]:
        predicted = predicted_utilization(config, record["out_features"], record["k_blocks"])
        assert 0.85 * predicted <= record["pe_utilization"] <= predicted + 0.05, (record, predicted)


@pytest.mark.slow
@pytest.mark.skipif(not EMBEDDED_MODEL.is_dir(), reason="the embedded model (evaluation/assets) is not in this checkout")
@pytest.mark.parametrize("config", FAST, ids=[c.name for c in FAST])
def test_tile_replays_embedded_model_layers_bit_exact(config):
    capture = embedded_capture(config, SIM_ROOT.parent / "capture" / "tile" / config.format.value)
    report = _check(config, capture, f"embedded_{config.name}")
    assert {r["layer"] for r in report["records"]} == set(EMBEDDED_LAYERS)
    assert len({r["step"] for r in report["records"]}) >= 2

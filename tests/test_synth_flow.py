"""`make synth` works from a fresh clone: one small unit through both flows (Yosys generic gates, and
ECP5 synthesis + nextpnr place and route), the report files, and the command line's errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hw import Book, DecoderConfig
from rtl_gen.synth import synthesize_ecp5, synthesize_generic, write_design
from rtl_gen.synth_report import Design, run_report

# The module fixture synthesizes once: keep its tests on one xdist worker (--dist loadgroup).
pytestmark = pytest.mark.xdist_group("synth")

SMALL = DecoderConfig(books=(Book.E2M1,), lanes=2)


@pytest.fixture(scope="module")
def small_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    path = run_report([Design("E2M1 decoder, 2 lanes", SMALL, True)], flows=("generic", "ecp5"), out=root / "report",
                      work=root / "work", timeout=900)  # fmt: skip
    return root, path


def test_both_flows_measure_a_small_unit(small_report):
    root, path = small_report
    data = json.loads((root / "report" / "hw.json").read_text())
    (entry,) = data["designs"]
    generic, ecp5 = entry["flows"]["generic"], entry["flows"]["ecp5"]
    # Two lanes of a registered 8-entry ROM: 2 x (4-bit magnitude + sign) + valid = 11 flip-flops.
    assert generic["total"]["flip_flops"] == ecp5["total"]["flip_flops"] == 11
    assert generic["total"]["transistors"] > 0 and generic["total"]["cells"] > 11
    assert 0 < ecp5["total"]["luts"] < 64 and ecp5["total"]["dsps"] == 0
    assert ecp5["fmax_mhz"] is not None and ecp5["fmax_mhz"] > 50
    text = path.read_text()
    assert "| E2M1 decoder, 2 lanes |" in text and "make synth" in text


def test_generic_flow_keeps_the_hierarchy_and_sums_it(tmp_path):
    from hw.tile_front_end import E2M1EncoderConfig

    verilog = write_design(E2M1EncoderConfig(block=16), tmp_path / "rtl")
    assert write_design(E2M1EncoderConfig(block=16), tmp_path / "rtl") == verilog  # unchanged: reused
    result = synthesize_generic(verilog, "e2m1_encoder_b16", tmp_path / "generic")
    assert list(result.modules) == ["e2m1_encoder_b16"]
    # Registers: exponent (8) + 16 codes of 4 bits + valid; the dialect bit is constant 0 and optimized away.
    assert result.total.flip_flops == 8 + 16 * 4 + 1


def test_ecp5_counts_without_place_and_route(tmp_path):
    verilog = write_design(SMALL, tmp_path / "rtl")
    result = synthesize_ecp5(verilog, SMALL.name, tmp_path / "ecp5", place_and_route=False)
    assert result.fmax_mhz is None and result.total.flip_flops == 11


@pytest.mark.parametrize(
    "arguments,message",
    [
        (["--flows", "asic"], "unknown flow 'asic'; expected some of generic, ecp5"),
        (["--only", "no_such_design"], "no design name contains no_such_design"),
    ],
)
def test_cli_rejects_bad_arguments_in_one_sentence(arguments, message, tmp_path):
    command = [sys.executable, "-m", "sdialect.cli", "synth", "--out", str(tmp_path / "r"), "--work", str(tmp_path / "w"), *arguments]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert message in done.stderr
    assert not (tmp_path / "r").exists()

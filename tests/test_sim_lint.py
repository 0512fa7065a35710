"""The Verilator lint waivers (``rtl_gen/lint_waivers.vlt``) waive Amaranth's idioms, not real dead logic."""

from __future__ import annotations

import pytest

from hw import Book, DSUConfig, MACArrayConfig, TwoStageConfig
from rtl_gen.generate import LINT_WAIVERS, lint, write_verilog

DEAD = """module dead_logic(input clk, input [3:0] a, output [3:0] y);
  wire [3:0] forgotten;
  assign forgotten = a + 4'd1;
  assign y = a;
endmodule
"""


def test_every_waiver_has_a_reason():
    lines = LINT_WAIVERS.read_text().splitlines()
    assert lines[0] == "`verilator_config"
    for k, line in enumerate(lines):
        if line.startswith("lint_off"):
            assert "-rule" in line, f"waiver without a rule: {line}"
            above = [x for x in lines[:k] if x.strip()]
            assert above and above[-1].startswith(("//", "lint_off")), f"waiver without a comment: {line}"


def test_a_dead_named_signal_still_warns(tmp_path):
    path = tmp_path / "dead_logic.v"
    path.write_text(DEAD)
    result = lint(path, "dead_logic")
    assert result.returncode != 0
    assert "UNUSEDSIGNAL" in result.stderr and "forgotten" in result.stderr, result.stderr


PIPELINED = [
    DSUConfig(book=Book.DIALECTFP4_16, block=16, pipeline_stages=3),
    TwoStageConfig(block=16, pipeline_stages=3),
    *(pytest.param(c, marks=pytest.mark.slow) for c in (
        MACArrayConfig(rows=1, cols=2, block=16, interleave=4),
        MACArrayConfig(rows=1, cols=2, block=16, interleave=8),
        MACArrayConfig(rows=1, cols=2, block=16, interleave=4, nvfp4=True),
        MACArrayConfig(rows=1, cols=2, block=16, interleave=8, nvfp4=True),
    )),
]  # fmt: skip
PIPELINED_IDS = ["dsu_dialectfp4_b16_p16_s3", "two_stage_b16_s3", "mac_array_r1_c2_b16_l4", "mac_array_r1_c2_b16_l8",
                 "nvfp4_mac_array_r1_c2_b16_l4", "nvfp4_mac_array_r1_c2_b16_l8"]  # fmt: skip


@pytest.mark.parametrize("config", PIPELINED, ids=PIPELINED_IDS)
def test_issue_10_pipelined_units_lint_clean_with_their_per_signal_waivers(config, tmp_path):
    """The skid FIFO, stage-copy, C-slow (L = 4 and 8) and NVFP4 PE waivers are limited to these units'
    files: they must suffice."""
    result = lint(write_verilog(config, tmp_path), config.name)
    assert result.returncode == 0, result.stderr

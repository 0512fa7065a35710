"""The Verilator lint waivers (``rtl_gen/lint_waivers.vlt``) waive Amaranth's idioms, not real dead logic."""

from __future__ import annotations

from rtl_gen.generate import LINT_WAIVERS, lint

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

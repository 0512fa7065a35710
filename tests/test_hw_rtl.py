"""Verilog generation: deterministic, lint-clean under ``verilator --lint-only -Wall`` (documented
waivers in ``rtl_gen/lint_waivers.vlt``), and the ``sdialect rtl`` command line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hw import Book, DecoderConfig, DSUConfig, FrontEndConfig, MACArrayConfig, TwoStageConfig
from rtl_gen.generate import DEFAULT_CONFIGS, lint, write_verilog

#: Small members of every unit family (the big defaults are linted by `make sim`).
SMALL_CONFIGS = [
    FrontEndConfig(block=16),
    DSUConfig(book=Book.DIALECTFP4_16, block=16),
    DSUConfig(book=Book.FB32, block=16, dialects_per_cycle=4),
    TwoStageConfig(block=32),
    DecoderConfig(lanes=4),
    MACArrayConfig(rows=1, cols=2, block=16),
]


@pytest.mark.parametrize("config", SMALL_CONFIGS, ids=[c.name for c in SMALL_CONFIGS])
def test_generation_is_byte_identical_and_lint_clean(config, tmp_path):
    first = write_verilog(config, tmp_path / "first").read_bytes()
    second_path = write_verilog(config, tmp_path / "second")
    assert first == second_path.read_bytes()
    assert f"module {config.name}(".encode() in first
    result = lint(second_path, config.name)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("config", DEFAULT_CONFIGS, ids=[c.name for c in DEFAULT_CONFIGS])
def test_default_configs_lint_clean(config, tmp_path):
    result = lint(write_verilog(config, tmp_path), config.name)
    assert result.returncode == 0, result.stderr


def test_cli_writes_the_same_bytes_in_a_fresh_process(tmp_path):
    """Two separate `sdialect rtl` runs (fresh interpreters, fresh hash seeds) agree byte for byte."""
    outputs = []
    for run in ("a", "b"):
        command = [sys.executable, "-m", "sdialect.cli", "rtl", "--unit", "dsu", "--book", "dialectfp4",
                   "--block", "16", "--dialects-per-cycle", "4", "--out", str(tmp_path / run)]
        done = subprocess.run(command, capture_output=True, text=True, check=False,
                              env=dict(os.environ, PYTHONHASHSEED="1" if run == "a" else "2"))
        assert done.returncode == 0, done.stderr
        outputs.append((tmp_path / run / "dsu_dialectfp4_b16_p4.v").read_bytes())
    assert outputs[0] == outputs[1]
    assert (tmp_path / "a" / "dsu_dialectfp4_b16_p4.json").read_text().startswith('{"block": 16')


def test_cli_rejects_a_bad_parameter_in_one_sentence(tmp_path):
    command = [sys.executable, "-m", "sdialect.cli", "rtl", "--unit", "dsu", "--dialects-per-cycle", "3",
               "--out", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "dialects_per_cycle must divide the 32 dialects of FB32, got 3" in done.stderr
    assert not list(tmp_path.iterdir())

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
    path = run_report([Design("E2M1 decoder, 2 lanes", SMALL, True, "e2m1", "decoder")], flows=("generic", "ecp5"),
                      out=root / "report", work=root / "work", timeout=900)  # fmt: skip
    return root, path


def test_both_flows_measure_a_small_unit(small_report):
    root, path = small_report
    data = json.loads((root / "report" / "hw.json").read_text())
    (entry,) = data["designs"]
    # Two lanes of a registered 8-entry ROM: 2 x (4-bit magnitude + sign) + valid = 11 flip-flops.
    assert entry["flip_flops"] == entry["ff"] == 11
    assert entry["extrapolated"] is False and entry["format"] == "e2m1" and entry["unit"] == "decoder"
    assert entry["transistors"] > 0 and entry["transistors_with_ff"] > entry["transistors"]
    assert 0 < entry["lut4"] < 64 and entry["dsp"] == 0
    assert entry["fmax_mhz"] is not None and entry["fmax_mhz"] > 50
    for field in ("name", "format", "unit", "rows", "cols", "extrapolated", "transistors", "transistors_with_ff",
                  "lut4", "ff", "dsp", "fmax_mhz"):
        assert field in entry
    assert entry["synthesized"] is True
    text = path.read_text()
    assert "| E2M1 decoder, 2 lanes |" in text and "make synth" in text


def test_readme_table_shows_synthesized_designs_and_names_the_rest():
    """The README table comes from hw.json alone: tiles with their ratio to MXFP4 of the same size, units
    with their Fmax, and a design without numbers named below, never shown as a row of dashes."""
    from rtl_gen.synth_report import readme_table

    def record(name, fmt, unit, rows, transistors, fmax=None):
        return {"name": name, "label": name, "format": fmt, "unit": unit, "rows": rows, "cols": rows,
                "transistors_with_ff": transistors, "lut4": None, "ff": None, "fmax_mhz": fmax,
                "synthesized": transistors is not None}  # fmt: skip

    data = {"tile_parameters": {"block": 32, "input": "bf16", "quantizers": 1, "interleave": 8},
            "designs": [record("t_fb32_16", "fb32", "tile", 16, 1_100), record("t_mx_16", "mxfp4", "tile", 16, 1_000),
                        record("t_nv_16", "nvfp4", "tile", 16, None), record("dsu_x", "fb32", "dsu", 1, 50, 102.34)]}  # fmt: skip
    table = readme_table(data)
    assert "| fb32 16 x 16 | 1,100 | 1.100 | - / - | - |" in table
    assert "| mxfp4 16 x 16 | 1,000 | 1.000 |" in table
    assert "nvfp4 16 x 16" not in table and "(no cached result): `t_nv_16`." in table
    assert "| dsu_x | 50 | - / - | 102.3 |" in table


def test_generic_flow_keeps_the_hierarchy_and_sums_it(tmp_path):
    from hw.tile_front_end import E2M1EncoderConfig

    verilog = write_design(E2M1EncoderConfig(block=16), tmp_path / "rtl")
    assert write_design(E2M1EncoderConfig(block=16), tmp_path / "rtl") == verilog  # unchanged: reused
    result = synthesize_generic(verilog, "e2m1_encoder_b16", tmp_path / "generic")
    assert list(result.modules) == ["e2m1_encoder_b16"]
    # Registers: exponent (8) + 16 codes of 4 bits + valid; the dialect bit is constant 0 and optimized away.
    from hw.common import enable_chunks

    # exponent, 16 codes, valid, and one more valid copy per further 32-bit chunk (hw.common.register_stage)
    assert result.total.flip_flops == 8 + 16 * 4 + 1 + len(enable_chunks(8 + 16 * 4)) - 1


def test_a_changed_generator_regenerates_the_verilog(tmp_path, monkeypatch):
    """The stamp holds the generator's digest: the same configuration from changed hw/ sources is
    elaborated again instead of reusing Verilog (and synthesis results) of the old sources."""
    import rtl_gen.synth as synth
    from hw.tile_front_end import E2M1EncoderConfig

    config = E2M1EncoderConfig(block=16)
    verilog = write_design(config, tmp_path / "rtl")
    stamp = verilog.with_suffix(".json")
    assert json.loads(stamp.read_text())["generator"] == synth.generator_digest()
    verilog.write_text("// stale\n")  # the Verilog of some older generator
    assert write_design(config, tmp_path / "rtl").read_text() == "// stale\n"  # same sources: reused
    monkeypatch.setattr(synth, "generator_digest", lambda: "0" * 64)
    assert "module e2m1_encoder_b16" in write_design(config, tmp_path / "rtl").read_text()
    assert json.loads(stamp.read_text())["generator"] == "0" * 64


def test_sources_changed_after_import_are_refused(tmp_path, monkeypatch):
    """A long run keeps the hw modules it imported: once the files on disk differ from those, it writes
    no Verilog stamped with the new files' digest (it would be the old generator's Verilog)."""
    import rtl_gen.synth as synth
    from hw.tile_front_end import E2M1EncoderConfig

    synth.generator_digest()  # taken at first use
    monkeypatch.setattr(synth, "_source_digest", lambda: "f" * 64)  # an edit to hw/ since then
    with pytest.raises(synth.SynthError, match="sources changed after this process imported them"):
        write_design(E2M1EncoderConfig(block=16), tmp_path / "rtl")
    assert not (tmp_path / "rtl").exists()


def test_hierarchical_synthesis_counts_each_pe_instance(tmp_path):
    """A 2 x 2 MAC array: the PE module is synthesized once, and the total counts it four times."""
    from hw import MACArrayConfig

    config = MACArrayConfig(rows=2, cols=2, block=16, interleave=4, output_depth=2)
    verilog = write_design(config, tmp_path / "rtl", hierarchical=True)
    result = synthesize_generic(verilog, config.name, tmp_path / "generic")
    assert result.occurrences()["pe_b16_l4"] == 4
    pe = result.modules["pe_b16_l4"]
    assert pe.transistors > 10_000
    assert result.total.transistors >= 4 * pe.transistors
    assert result.total.flip_flops == sum(c.flip_flops * result.occurrences()[m] for m, c in result.modules.items())


def test_flip_flop_pricing():
    from rtl_gen.synth import flip_flop_transistors

    assert flip_flop_transistors("$_DFF_P_") == 24
    assert flip_flop_transistors("$_SDFF_PP0_") == 28
    assert flip_flop_transistors("$_DFFE_PP_") == 32
    assert flip_flop_transistors("$_SDFFE_PP0P_") == 36


def test_another_seed_places_again_beside_the_default_placement(small_report):
    """``--seed N``: nextpnr runs with that seed into its own log, report and cache entry; the default
    seed's files and result stay, and the report names the seed."""
    root, _ = small_report
    work = root / "work"
    before = {p.name: p.read_bytes() for p in (work / "ecp5").glob("*") if "seed" not in p.name}
    run_report([Design("E2M1 decoder, 2 lanes", SMALL, True, "e2m1", "decoder")], flows=("ecp5",),
               out=root / "report-seed2", work=work, timeout=900, seed=2)  # fmt: skip
    data = json.loads((root / "report-seed2" / "hw.json").read_text())
    (entry,) = data["designs"]
    assert data["nextpnr_seed"] == 2 and "--seed 2" in data["flows"]["ecp5"]
    assert entry["fmax_mhz"] is not None and entry["fmax_mhz"] > 50 and not entry["cached"]
    name = SMALL.name
    assert (work / "ecp5" / f"{name}.seed2.nextpnr.log").is_file()
    assert (work / "ecp5" / f"{name}.placed.seed2.result.json").is_file()
    after = {p.name: p.read_bytes() for p in (work / "ecp5").glob("*") if "seed" not in p.name}
    assert after == before


def test_ecp5_counts_without_place_and_route(tmp_path):
    verilog = write_design(SMALL, tmp_path / "rtl")
    result = synthesize_ecp5(verilog, SMALL.name, tmp_path / "ecp5", place_and_route=False)
    assert result.fmax_mhz is None and result.total.flip_flops == 11


@pytest.mark.parametrize(
    "arguments,message",
    [
        (["--flows", "asic"], "unknown flow 'asic'; expected some of generic, ecp5"),
        (["--only", "no_such_design"], "no design name contains no_such_design"),
        (["--readme", "nonexistent.md"], "nonexistent.md has no <!-- hw-table:begin --> ... <!-- hw-table:end --> markers"),
        (["--place-size", "2y2"], "--place-size must look like 2x2 (rows x cols), got '2y2'"),
        (["--seed", "0"], "--seed must be a positive integer, got 0"),
    ],
)
def test_cli_rejects_bad_arguments_in_one_sentence(arguments, message, tmp_path):
    command = [sys.executable, "-m", "sdialect.cli", "synth", "--out", str(tmp_path / "r"), "--work", str(tmp_path / "w"), *arguments]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert message in done.stderr
    assert not (tmp_path / "r").exists()

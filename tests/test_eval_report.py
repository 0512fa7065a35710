"""The report's statistics and wording follow the numbers: intervals, paired differences, the
win / loss / within-noise rule, motion strata, and the summary's verdict."""

import math

import pytest

from evaluation import stats
from evaluation.analysis import CRITERIA, analyze, describe, difference, fmt_number
from evaluation.report import headline_table, lut_cost, summary_lines
from golden.formats import DIALECTFP4_16, FB32

CLIPS = ("clip a", "clip b", "clip c", "clip d")
SEEDS = (0, 1, 2)
UNITS = [{"clip": c, "seed": s} for s in SEEDS for c in CLIPS]
N = len(UNITS)


def entry(label, group, psnr, *, spread=None, ssim=0.95, tce=0.01, sqnr=20.0, against=None, fmt="mxfp4"):
    """A method entry with per-video values ``psnr + spread[i]``."""
    spread = spread if spread is not None else [0.1 * ((i * 7) % 5 - 2) for i in range(N)]
    per = [psnr + d for d in spread]

    def block(values):
        return {"mean": sum(values) / len(values), "per_sample": values}

    return {
        "label": label, "group": group, "against": against, "format": fmt, "bits_per_element": 4.25,
        "weight_bits_per_element_effective": 4.25, "activation_bits_per_element_effective": 4.25,
        "bits_per_element_effective": 4.25, "salient_row_fraction": 0.0,
        "psnr": {**block(per), "per_frame": [[v] * 8 for v in per]},
        "ssim": {**block([ssim] * N), "per_frame": [[ssim] * 8] * N},
        "temporal_consistency_error": {**block([tce] * N), "per_pair": [[tce] * 7] * N},
        "final_latent_sqnr": block([sqnr + d for d in spread]), "final_latent_sqnr_db": sqnr,
        "latent_sqnr_per_step": [sqnr], "layer_sqnr": {"activation_db": {"median": 20.0}, "output_db": {"median": 19.0},
                                                       "per_layer": []},
        "wall_time_s": 1.0, "step_time_s_after_warmup": 0.1,
    }  # fmt: skip


def result(methods):
    motion = [0.01 * (1 + CLIPS.index(u["clip"])) for u in UNITS]
    return {
        "command": "sdialect demo", "model": {"name": "toy", "pixel_space": True}, "device": "cpu",
        "settings": {"clips": len(CLIPS), "seeds": list(SEEDS), "samples": N, "steps": 1, "units": UNITS},
        "reference": {"wall_time_s": 1.0, "step_time_s_after_warmup": 0.1, "motion_per_sample": motion,
                      "motion_per_pair": [[m] * 7 for m in motion]},
        "methods": methods, "dialect_usage": {},
    }  # fmt: skip


def test_t_quantiles_match_the_table_and_the_normal_limit():
    assert stats.t975(1) == 12.706 and stats.t975(11) == 2.201
    assert abs(stats.t975(31) - 2.040) < 1e-3 and abs(stats.t975(10_000) - 1.960) < 1e-3


def test_interval_is_the_student_t_interval():
    values = [1.0, 2.0, 3.0, 4.0]
    s = stats.interval(values)
    half = 3.182 * math.sqrt(5 / 3) / 2
    assert s["mean"] == 2.5 and s["n"] == 4
    assert s["ci95"] == pytest.approx([2.5 - half, 2.5 + half])
    assert stats.interval([7.0])["ci95"] is None


def test_a_consistent_difference_is_a_win_and_the_swap_a_loss():
    r = result({"mxfp4": entry("MXFP4", "baseline", 30.0), "fb32": entry("FB32", "proposed", 31.0, fmt="fb32")})
    psnr = CRITERIA[0]
    d = difference(r, "fb32", "mxfp4", psnr)
    assert d["verdict"] == stats.WIN and d["mean"] == pytest.approx(1.0) and d["better_units"] == N
    assert difference(r, "mxfp4", "fb32", psnr)["verdict"] == stats.LOSS
    assert "a win beyond run-to-run noise" in describe(d, psnr)


def test_lower_is_better_metrics_flip_the_verdict():
    r = result({"mxfp4": entry("MXFP4", "baseline", 30.0, tce=0.02), "fb32": entry("FB32", "proposed", 30.0, tce=0.01, fmt="fb32")})
    tce = next(c for c in CRITERIA if c.key == "temporal_consistency_error")
    # Identical per video: a zero-width interval that excludes zero (every video 0.01 better).
    assert difference(r, "fb32", "mxfp4", tce)["verdict"] == stats.WIN


def test_a_difference_inside_the_noise_is_called_within_noise():
    noisy = [(-1) ** i * 2.0 for i in range(N)]
    r = result({"mxfp4": entry("MXFP4", "baseline", 30.0, spread=[0.0] * N),
                "fb32": entry("FB32", "proposed", 30.1, spread=noisy, fmt="fb32")})  # fmt: skip
    d = difference(r, "fb32", "mxfp4", CRITERIA[0])
    assert d["ci95"][0] < 0 < d["ci95"][1]
    assert d["verdict"] == stats.NOISE
    text = describe(d, CRITERIA[0])
    assert "within noise" in text and "win" not in text and "loss" not in text


def test_identical_values_are_a_tie_not_a_loss():
    r = result({"mxfp4": entry("MXFP4", "baseline", 30.0), "fb32": entry("FB32", "proposed", 31.0, fmt="fb32")})
    ssim = CRITERIA[1]
    d = difference(r, "fb32", "mxfp4", ssim)
    assert d["verdict"] == "tie" and "loss" not in describe(d, ssim)


def test_tiny_nonzero_differences_are_not_printed_as_zero():
    assert fmt_number(0.00003, 4, signed=True) == "+3e-05"
    assert fmt_number(0.0, 4, signed=True) == "+0.0000"
    assert fmt_number(1.23456, 2) == "1.23"


def test_analysis_fields_and_per_seed_values():
    r = analyze(result({"mxfp4": entry("MXFP4", "baseline", 30.0), "fb32": entry("FB32", "proposed", 31.0, fmt="fb32")}))
    s = r["statistics"]["fb32"]["psnr"]
    assert set(s) >= {"mean", "ci95", "sd", "n", "per_seed"} and s["n"] == N
    assert set(s["per_seed"]) == {str(x) for x in SEEDS}
    keys = {(d["a"], d["b"], d["metric"]) for d in r["paired_differences"]}
    assert {("fb32", "mxfp4", c.key) for c in CRITERIA} <= keys
    strata = r["motion_strata"]
    assert strata["clips"] == {"low motion": ["clip a", "clip b"], "high motion": ["clip c", "clip d"]}
    assert strata["per_stratum"]["high motion"]["fb32"]["psnr"]["n"] == 2 * len(SEEDS)
    assert set(strata["frame_pairs"]["per_stratum"]) <= {"low", "middle", "high"}
    assert r["verdict"] and r["verdict"][0].startswith("- **PSNR**: best is FB32")


def test_ablations_are_paired_with_the_default_they_vary():
    methods = {
        "fb32+ad+seda": entry("FB32+AD+SeDA", "proposed", 31.0, fmt="fb32"),
        "fb32+seda-no-ad": entry("SeDA without AD", "ablation", 30.5, against="fb32+ad+seda", fmt="fb32"),
    }
    r = analyze(result(methods))
    d = next(d for d in r["paired_differences"] if d["a"] == "fb32+seda-no-ad" and d["metric"] == "psnr")
    assert d["b"] == "fb32+ad+seda" and d["verdict"] == stats.LOSS
    text = "\n".join(summary_lines({**r, "lut_cost": []}, strip_files=[]))
    assert "| SeDA without AD | FB32+AD+SeDA |" in text


def test_summary_opens_with_the_verdict_and_headline_table_has_every_method():
    r = analyze(result({"mxfp4": entry("MXFP4", "baseline", 30.0), "fb32": entry("FB32", "proposed", 31.0, fmt="fb32")}))
    lines = summary_lines({**r, "lut_cost": []}, strip_files=[])
    assert lines[2] == "## Verdict"
    assert "beyond run-to-run noise" in lines[4]
    rows = headline_table(r)
    assert len(rows) == 2 + 2 + 1
    mean = r["statistics"]["fb32"]["psnr"]["mean"]
    assert rows[3].startswith(f"| FB32 | 4.250 | 4.250 | {mean:.2f} ± ")


def test_lut_cost_counts_the_tables_bits():
    fb32 = lut_cost(FB32)
    assert fb32["idx_table_bits"] == 32 * 32 * 3
    assert fb32["err_table_bits"] == 32 * 32 * FB32.err_bits
    assert fb32["rom_bits"] == fb32["idx_table_bits"] + fb32["err_table_bits"]
    assert lut_cost(DIALECTFP4_16)["idx_entries"] == 16 * 32
    assert int(FB32.err_table.max()).bit_length() == FB32.err_bits


def _target(gain, *, noisy=False, tce_worse=False):
    from evaluation.analysis import TARGET_BASELINE

    spread = [(-1) ** i * 2.0 for i in range(N)] if noisy else None
    methods = {
        TARGET_BASELINE: entry("NVFP4-4/6", "baseline", 30.0, spread=[0.0] * N, tce=0.010),
        "fb32": entry("FB32", "proposed", 30.0 + gain, spread=spread, tce=0.012 if tce_worse else 0.009, fmt="fb32"),
        # Best on PSNR, but a low-rank branch: not a SemanticDialect configuration for the target.
        "fb32+lowrank-r4": {**entry("FB32+low-rank r=4", "proposed", 40.0, fmt="fb32"), "baseline": "svdquant"},
    }
    return next(line for line in analyze(result(methods))["verdict"] if line.startswith("- **Target**"))


def test_target_line_follows_the_gain_and_its_interval():
    line = _target(0.8)
    assert "FB32 (4.25 effective bits) vs NVFP4-4/6" in line and "low-rank r=4 (" not in line
    assert "**met**" in line and ": PSNR +0." in line and "better on 4 of 4 clips" in line
    assert _target(0.3).count("**not met**") == 1  # a win, but less than +0.5 dB
    assert _target(0.8, noisy=True).count("**not met**") == 1  # +0.8 dB inside the noise
    assert _target(0.8, tce_worse=True).count("**not met**") == 1  # temporal error worse beyond noise


def test_per_layer_drift_table_has_one_column_per_formatbook():
    methods = {k: {**entry(label, "proposed", 30.0, fmt="fb32"), "baseline": None, "config": config}
               for k, label, config in (("fb32", "FB32", {"decomposition": None, "seda": None}),
                                        ("fb32+ad+seda", "FB32+AD+SeDA", {"decomposition": {}, "seda": {}}))}  # fmt: skip
    layer = {"changed_block_fraction_per_step": [0.25, 0.75], "step_to_step_tv": [0.1, 0.1], "frame_to_frame_tv": [0.02]}
    drift = {"per_step_histogram": [], "per_frame_histogram": [], "changed_block_fraction_per_step": [0.5, 0.5],
             "step_to_step_tv": [0.1], "frame_to_frame_tv": [0.02],
             "per_layer": [{"layer": "blocks.0.q", **layer}, {"layer": "blocks.1.q", **layer, "changed_block_fraction_per_step": [0.1, None]}]}  # fmt: skip
    r = result(methods)
    r["dialect_usage"] = {k: {"formatbook": "FB32", "drift": drift} for k in methods}
    r = analyze(r)
    text = "\n".join(summary_lines({**r, "lut_cost": [lut_cost(FB32)]}, strip_files=[]))
    assert "| layer | FB32+AD+SeDA |" in text  # the book's method with AD and SeDA stands for it
    assert "| blocks.0.q | 50.0 % / 0.020 |" in text and "| blocks.1.q | 10.0 % / 0.020 |" in text
    assert "least step-to-step drift in blocks.1.q (10.0 %), most in blocks.0.q (50.0 %) of 2 layers" in text


def test_dialect_drift_counts_changes_per_layer_and_in_total():
    from types import SimpleNamespace

    import torch

    from evaluation.runner import DialectDrift

    call = SimpleNamespace(num_video_tokens=4, grid=(2, 1, 2))  # 2 frames of 1 x 2 tokens
    drift = DialectDrift(num_dialects=4, batch=1)

    def layer(name):
        return SimpleNamespace(name=name, role=SimpleNamespace(value="video"),
                               block_state=SimpleNamespace(model=SimpleNamespace(call=call)))  # fmt: skip

    def observe(name, ids):
        act = SimpleNamespace(main=SimpleNamespace(dialect=torch.tensor(ids).reshape(4, 1)))
        drift.observe(layer(name), None, act, None, None)

    observe("a", [0, 1, 2, 3]); observe("b", [0, 0, 0, 0])  # fmt: skip
    drift.step = 1
    observe("a", [0, 1, 2, 0]); observe("b", [1, 1, 1, 1])  # fmt: skip
    out = drift.as_dict()
    assert out["changed_block_fraction_per_step"] == [5 / 8]
    per_layer = {e["layer"]: e for e in out["per_layer"]}
    assert per_layer["a"]["changed_block_fraction_per_step"] == [0.25]
    assert per_layer["b"]["changed_block_fraction_per_step"] == [1.0]
    assert per_layer["b"]["step_to_step_tv"] == [1.0] and per_layer["b"]["frame_to_frame_tv"] == [0.0]
    # Frame 0 used {0, 1} twice, frame 1 {2, 3} then {2, 0}: TV 0.5 (0.25 + 0.5 + 0.5 + 0.25) = 0.75.
    assert per_layer["a"]["frame_to_frame_tv"] == [0.75]


def test_clip_level_interval_averages_each_clips_seeds_first():
    # fb32 is +1 dB on clips a and b and +3 dB on c and d, the same for every seed.
    gain = {"clip a": 1.0, "clip b": 1.0, "clip c": 3.0, "clip d": 3.0}
    spread = [gain[u["clip"]] for u in UNITS]
    r = result({"mxfp4": entry("MXFP4", "baseline", 30.0, spread=[0.0] * N),
                "fb32": entry("FB32", "proposed", 30.0, spread=spread, fmt="fb32")})  # fmt: skip
    d = difference(r, "fb32", "mxfp4", CRITERIA[0])
    clips = d["over_clips"]
    assert clips["n"] == len(CLIPS) and clips["mean"] == pytest.approx(2.0) and clips["better_clips"] == 4
    half = stats.t975(3) * math.sqrt(4 / 3) / 2  # sd of (1, 1, 3, 3) is sqrt(4/3)
    assert clips["ci95"] == pytest.approx([2.0 - half, 2.0 + half])
    assert d["n"] == N and d["ci95"][1] - d["ci95"][0] < clips["ci95"][1] - clips["ci95"][0]


def test_reanalyze_rewrites_only_the_derived_fields(tmp_path, capsys):
    import json

    from evaluation.results import main

    measured = result({"nvfp4-46": entry("NVFP4-4/6", "baseline", 30.0), "fb32": entry("FB32", "proposed", 31.0, fmt="fb32")})
    stale = {**analyze(measured), "lut_cost": [], "verdict": ["- stale"]}
    (tmp_path / "metrics.json").write_text(json.dumps(stale))
    assert main(["--reanalyze", str(tmp_path / "metrics.json")]) == 0
    fresh = json.loads((tmp_path / "metrics.json").read_text())
    assert fresh["methods"] == stale["methods"] and fresh["verdict"] != ["- stale"]
    assert "over_clips" in fresh["paired_differences"][0]
    assert (tmp_path / "summary.md").read_text().splitlines()[2] == "## Verdict"
    assert "- **Target**" in capsys.readouterr().out

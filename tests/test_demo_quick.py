"""`sdialect demo --quick` end to end on CPU, on the real embedded weights: the report and its fields.

The run is made smaller than ``--quick`` (one clip, two denoising steps) to fit the test budget; it
still runs the whole pipeline: every headline method quantized with golden.dit, generation, metrics,
capture, plots, frame strips, GIF and the generated summary.
"""

import json

import pytest

from golden.formats import get_format
from sdialect.cli import main

# The module fixture runs the expensive part once: keep its tests on one xdist worker
# (`make test` uses --dist loadgroup).
pytestmark = pytest.mark.xdist_group("demo")


HEADLINE = ("mxfp4", "nvfp4", "nvfp4-46", "dialectfp4-16", "svdquant-nvfp4-r4", "svdquant-mxfp4-r4",
            "svdquant-int4-r4", "vidit-q-int4", "fb32", "fb32+ad", "fb32+ad+seda", "fb32+lowrank-r4")
STEPS = 2
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "report"
    code = main(["demo", "--quick", "--samples", "1", "--steps", str(STEPS), "--out", str(out)])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def result(report):
    return json.loads((report / "metrics.json").read_text())


def test_no_staging_folder_is_left(report):
    assert not report.with_name(report.name + ".partial").exists()


def test_every_headline_method_has_every_metric(result):
    assert tuple(result["methods"]) == HEADLINE
    for key, entry in result["methods"].items():
        if entry["baseline"] is None:
            assert entry["bits_per_element"] == get_format(entry["config"]["format"]).bits_per_element(), key
        else:
            assert entry["weight_bits_per_element_effective"] >= entry["bits_per_element"], key
        for metric in ("psnr", "ssim", "temporal_consistency_error"):
            assert len(entry[metric]["per_sample"]) == 1
        assert len(entry["psnr"]["per_frame"][0]) == 8
        assert 0 < entry["psnr"]["mean"] < 100
        assert -1 <= entry["ssim"]["mean"] <= 1
        assert entry["temporal_consistency_error"]["mean"] >= 0
        assert len(entry["latent_sqnr_per_step"]) == STEPS
        layers = entry["layer_sqnr"]
        assert layers["per_layer"] and all(layer["calls"] == STEPS for layer in layers["per_layer"])
        assert layers["activation_db"]["median"] is not None and layers["output_db"]["median"] is not None
        assert entry["wall_time_s"] > 0 and entry["peak_memory_mib"] >= 0


def test_decomposition_quantizes_some_rows_twice(result):
    methods = result["methods"]
    assert methods["fb32"]["salient_row_fraction"] == 0
    assert methods["fb32+ad"]["salient_row_fraction"] > 0
    assert methods["fb32+ad"]["activation_bits_per_element_effective"] > methods["fb32"]["bits_per_element"]


def test_dialect_usage_histograms(result):
    usage = result["dialect_usage"]
    assert set(usage) == {"dialectfp4-16", "fb32", "fb32+ad", "fb32+ad+seda", "fb32+lowrank-r4"}
    for hist in usage.values():
        book = get_format(hist["format"]).formatbook
        assert len(hist["counts"]) == book.num_dialects
        assert sum(hist["counts"]) > 0
        assert sum(hist["family_counts"]) == sum(hist["counts"])


def test_reference_is_compared_with_its_training_clip(result):
    assert "vs_training_clip" in result["reference"]
    assert result["reference"]["wall_time_s"] > 0


def test_capture_is_loadable(report):
    from golden.dit import load_capture

    capture = load_capture(report / "capture")
    assert capture.records
    assert capture.config.seda is not None and capture.config.decomposition is not None
    assert {r.step for r in capture.records} <= {0, 1}


def test_pictures_and_plots(report, result):
    files = result["files"]
    for name in [*files["strips"], *files["plots"].values()]:
        assert (report / name).read_bytes()[:8] == PNG_MAGIC, name
    assert (report / files["gif"]).read_bytes()[:6] in (b"GIF89a", b"GIF87a")


def test_summary_states_every_comparison(report, result):
    summary = (report / "summary.md").read_text()
    for entry in result["methods"].values():
        assert f"| {entry['label']} |" in summary
    for proposed in ("FB32", "FB32+AD", "FB32+AD+SeDA"):
        for baseline in ("MXFP4", "NVFP4", "NVFP4-4/6", "DialectFP4-16", "SVDQuant NVFP4 r=4", "ViDiT-Q INT4"):
            assert f"**{proposed} vs {baseline}**" in summary
    assert summary.splitlines()[2] == "## Verdict"


def test_metrics_carry_statistics_strata_lut_cost_and_drift(result):
    assert result["settings"]["units"] == [{"clip": result["settings"]["sample_names"][0].split(", seed")[0], "seed": 0}]
    stats = result["statistics"]["fb32"]["psnr"]
    assert stats["n"] == 1 and stats["ci95"] is None and stats["per_seed"] == {"0": stats["mean"]}
    # One video: no interval, so every difference is within noise (or an exact tie).
    assert {d["verdict"] for d in result["paired_differences"]} <= {"within noise", "tie"}
    assert result["motion_strata"]["per_stratum"]
    assert {c["formatbook"] for c in result["lut_cost"]} == {"FB32", "DialectFP4-16"}
    drift = result["dialect_usage"]["fb32+ad+seda"]["drift"]
    assert len(drift["per_step_histogram"]) == STEPS and len(drift["changed_block_fraction_per_step"]) == STEPS - 1
    assert all(0 <= f <= 1 for f in drift["changed_block_fraction_per_step"])
    layers = {entry["layer"] for entry in drift["per_layer"]}
    assert layers and layers <= {layer["name"] for layer in result["methods"]["fb32+ad+seda"]["layer_sqnr"]["per_layer"]}
    assert all(len(e["changed_block_fraction_per_step"]) == STEPS - 1 for e in drift["per_layer"])
    assert result["methods"]["fb32+ad"]["step_time_s_after_warmup"] > 0
    svd = result["methods"]["svdquant-nvfp4-r4"]
    assert svd["weight_bits_per_element_effective"] > 4.5 and svd["activation_bits_per_element_effective"] > 4.5


def test_gif_is_labelled_and_strips_have_difference_rows(report, result):
    from PIL import Image

    from evaluation.visuals import GIF_LABEL_HEIGHT, UPSCALE

    gif = Image.open(report / result["files"]["gif"])
    assert gif.size[1] == GIF_LABEL_HEIGHT + 32 * UPSCALE
    band = gif.convert("RGB").crop((0, 0, gif.size[0], GIF_LABEL_HEIGHT))
    assert min(band.getextrema()[0]) < 128  # dark label text on the white band
    strip = Image.open(report / result["files"]["strips"][0])
    headline = len(result["methods"])
    assert strip.size[1] > (1 + 2 * headline) * 0.34 * UPSCALE * 100 * 0.95  # reference + method + difference rows
    assert "sdialect demo --quick" in result["command"] or result["command"].startswith("sdialect")

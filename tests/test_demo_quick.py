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


HEADLINE = ("mxfp4", "nvfp4", "nvfp4-46", "dialectfp4-16", "fb32", "fb32+ad", "fb32+ad+seda")
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
        assert entry["bits_per_element"] == get_format(entry["config"]["format"]).bits_per_element(), key
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
    assert set(usage) == {"dialectfp4-16", "fb32", "fb32+ad", "fb32+ad+seda"}
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
        for baseline in ("MXFP4", "NVFP4", "NVFP4-4/6", "DialectFP4-16"):
            assert f"**{proposed} vs {baseline}**" in summary
    assert "sdialect demo --quick" in result["command"] or result["command"].startswith("sdialect")

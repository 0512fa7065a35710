"""`sdialect synth`: the hardware cost report (HARDWARE.md section 3) into build/report/hw.md and hw.json.

    sdialect synth                      # every design of DESIGNS, both flows (make synth)
    sdialect synth --only tile_mxfp4    # designs whose name contains a substring
    sdialect synth --flows generic      # skip the ECP5 flow

Each tile is synthesized with its hierarchy kept, so one run per tile gives the tile's total and the
share of each unit inside it (front-end, selector, decoders, MAC array); the extra designs are the
units no tile contains (the exhaustive LUT selector over DialectFP4-16, NVFP4's element path).
"""

from __future__ import annotations

import argparse

from golden.errors import UsageError

FLOWS = ("generic", "ecp5")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="build/report", help="report folder (default build/report)")
    parser.add_argument("--work", default="build/synth", help="Verilog, scripts and tool logs (default build/synth)")
    parser.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="synthesize only designs whose name contains TEXT (repeatable)")  # fmt: skip
    parser.add_argument("--flows", default=",".join(FLOWS), help="comma-separated subset of: generic, ecp5")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per tool run (default 1800)")


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .synth_report import DESIGNS, run_report

    flows = tuple(f.strip() for f in args.flows.split(",") if f.strip())
    unknown = [f for f in flows if f not in FLOWS]
    if unknown or not flows:
        raise UsageError(f"unknown flow {unknown[0] if unknown else args.flows!r}; expected some of {', '.join(FLOWS)}")
    designs = [d for d in DESIGNS if not args.only or any(text in d.name for text in args.only)]
    if not designs:
        raise UsageError(f"no design name contains {' or '.join(args.only)}; known: {', '.join(d.name for d in DESIGNS)}")
    report = run_report(designs, flows=flows, out=Path(args.out), work=Path(args.work), timeout=args.timeout)
    print(report)
    return 0

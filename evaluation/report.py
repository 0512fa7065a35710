"""The report folder: summary.md, metrics.json, PNG plots, frame strips and a GIF.

Every sentence of the summary is generated from the measured numbers in ``metrics.json`` (through
``analysis``): which method wins on which metric, by how much, with the 95 % interval of the paired
difference, and a win or a loss only when that interval excludes zero. Nothing here knows the
outcome in advance.
"""

from __future__ import annotations

import json
from pathlib import Path

from golden.formats import FORMATS, get_format

from . import visuals
from .analysis import CRITERIA, Criterion, analyze, describe, fmt_number
from .methods import Group
from .runner import Run

SUMMARY_FILE = "summary.md"
METRICS_FILE = "metrics.json"
STRIP_FILE = "frames_sample{index}.png"
GIF_FILE = "side_by_side.gif"
CAPTURE_DIR = "capture"
PLOTS = {
    "latent_sqnr": "latent_sqnr_per_step.png",
    "psnr": "psnr.png",
    "iso_bit": "psnr_vs_effective_bits.png",
    "psnr_per_frame": "psnr_per_frame.png",
    "temporal_error": "temporal_error_per_frame_pair.png",
    "layer_sqnr": "layer_activation_sqnr.png",
    "dialect_usage": "dialect_usage.png",
}
#: Magnitude-code index bits (8 magnitudes per dialect) of the IDX table entries.
INDEX_BITS = 3


def _ci(summary: dict, decimals: int) -> str:
    """``mean ± half-width`` of an interval dict (just the mean without an interval)."""
    if summary["ci95"] is None:
        return fmt_number(summary["mean"], decimals)
    half = (summary["ci95"][1] - summary["ci95"][0]) / 2
    return f"{fmt_number(summary['mean'], decimals)} ± {fmt_number(half, decimals)}"


def headline_table(result: dict, *, groups: tuple[str, ...] | None = None) -> list[str]:
    """The Markdown headline table: one row per method (mean ± 95 % CI half-width over the videos),
    effective weight and activation bits, and the generation time per step after the warm-up."""
    result = result if "statistics" in result else analyze(result)
    rows = [
        "| method | W bits | A bits (eff.) | PSNR (dB) | SSIM | temporal err | final latent SQNR (dB)"
        " | layer out SQNR median (dB) | s/step |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, m in result["methods"].items():
        if groups is not None and m["group"] not in groups:
            continue
        s = result["statistics"][key]
        out = m["layer_sqnr"]["output_db"]["median"]
        step = m.get("step_time_s_after_warmup")
        rows.append(
            f"| {m['label']} | {m['weight_bits_per_element_effective']:.3f} | {m['activation_bits_per_element_effective']:.3f}"
            f" | {_ci(s['psnr'], 2)} | {_ci(s['ssim'], 4)} | {_ci(s['temporal_consistency_error'], 5)}"
            f" | {_ci(s['final_latent_sqnr'], 2)} | {fmt_number(out, 2)} | {fmt_number(step, 3)} |"
        )
    ref = result["reference"]
    rows.append(f"| Reference (float32) | 32 | 32 | - | - | - | - | - | {fmt_number(ref.get('step_time_s_after_warmup'), 3)} |")
    return rows


def _difference_table(result: dict, pairs: list[tuple[str, str]], differences: list[dict]) -> list[str]:
    methods = result["methods"]
    by = {(d["a"], d["b"], d["metric"]): d for d in differences}
    rows = ["| comparison | " + " | ".join(c.name for c in CRITERIA) + " | videos better (PSNR) |",
            "|---|" + "---|" * len(CRITERIA) + "---:|"]  # fmt: skip
    for a, b in pairs:
        cells = [describe(by[(a, b, c.key)], c) for c in CRITERIA]
        d = by[(a, b, "psnr")]
        rows.append(f"| **{methods[a]['label']} vs {methods[b]['label']}** | " + " | ".join(cells) + f" | {d['better_units']} of {d['n']} |")
    return rows


def lut_cost(book) -> dict:
    """Sizes of a formatbook's selection tables (golden.formats.Formatbook.idx_table / err_table)."""
    entries = int(book.idx_table.numel())  # dialects x magnitude codes
    index_bits = max(INDEX_BITS, int(book.idx_table.max()).bit_length())
    idx_bits = entries * index_bits
    err_bits = int(book.err_table.numel()) * book.err_bits
    return {
        "formatbook": book.name,
        "dialects": book.num_dialects,
        "idx_entries": entries,
        "idx_entry_bits": index_bits,
        "idx_table_bits": idx_bits,
        "err_entries": int(book.err_table.numel()),
        "err_entry_bits": book.err_bits,
        "err_table_bits": err_bits,
        # hw/select.py instantiates each table once (one IDX ROM read by every lane, the ERR table
        # split over the parallel candidates' ROMs), so the ROM bits equal the table bits.
        "rom_bits": idx_bits + err_bits,
    }


def lut_costs(result: dict) -> list[dict]:
    """``lut_cost`` of every formatbook a dialect method of ``result`` uses."""
    books = {}
    for m in result["methods"].values():
        if m["format"] in FORMATS and get_format(m["format"]).is_dialect:
            book = get_format(m["format"]).formatbook
            books[book.name] = lut_cost(book)
    return list(books.values())


def _lut_section(result: dict) -> list[str]:
    books = result.get("lut_cost") or []
    if not books:
        return []
    lines = [
        "## Lookup-table cost",
        "",
        "Derivation (docs/NUMERICS.md section 2.1): a block's magnitude code u (5 bits, 0..31, on the half grid;",
        "6 bits, 0..63, on the quarter grid) indexes, per dialect d, IDX[d][u] = #{k in 0..6 : u >= h[k] + h[k+1]}",
        "(the nearest of the dialect's 8 magnitudes h in grid units, ties up) and ERR[d][u] = (2u + 1 - 4 h[IDX[d][u]])^2",
        "(the squared error of the code's bin centre, in quarter grid units squared); both are fixed by the",
        "formatbook (hand-made, or fitted offline by `sdialect formatbook fit`), computed once",
        "(`golden.formats.Formatbook.idx_table`/`err_table`) and become ROMs in hardware (`hw/select.py`), so",
        "they cost no calibration at run time and do not change with the activations.",
        "",
        "| formatbook | dialects | IDX entries x bits | IDX bits | ERR entries x bits | ERR bits | ROM bits |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in books:
        lines.append(
            f"| {c['formatbook']} | {c['dialects']} | {c['idx_entries']} x {c['idx_entry_bits']} | {c['idx_table_bits']:,}"
            f" | {c['err_entries']} x {c['err_entry_bits']} | {c['err_table_bits']:,} | {c['rom_bits']:,} |"
        )
    lines += ["", "Dialect-usage drift (video-token activation blocks of every quantized layer):", "",
              "| method | blocks changing dialect, step to step (mean) | histogram TV distance, step to step (mean)"
              " | histogram TV distance, frame to frame (mean) |", "|---|---:|---:|---:|"]  # fmt: skip
    for key, usage in result["dialect_usage"].items():
        drift = usage.get("drift")
        if not drift:
            continue
        changed = _mean(drift["changed_block_fraction_per_step"])
        lines.append(
            f"| {result['methods'][key]['label']} | {fmt_number(None if changed is None else 100 * changed, 1)} %"
            f" | {fmt_number(_mean(drift['step_to_step_tv']), 3)} | {fmt_number(_mean(drift['frame_to_frame_tv']), 3)} |"
        )
    return lines + [""] + _layer_drift_section(result)


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def drift_columns(result: dict) -> list[str]:
    """The methods the per-layer drift table shows: per formatbook, its headline method with the
    most of AD and SeDA on (the book's plain LUT method when none has them)."""
    methods = result["methods"]
    chosen: dict[str, str] = {}
    for key, usage in result["dialect_usage"].items():
        m = methods[key]
        if m["group"] == Group.ABLATION.value or m.get("baseline") is not None or not (usage.get("drift") or {}).get("per_layer"):
            continue
        config = m.get("config") or {}
        rank = (config.get("decomposition") is not None) + (config.get("seda") is not None)
        best = chosen.get(usage["formatbook"])
        if best is None or rank > best[0]:
            chosen[usage["formatbook"]] = (rank, key)
    return [key for _, key in chosen.values()]


def _layer_drift_section(result: dict) -> list[str]:
    columns = drift_columns(result)
    if not columns:
        return []
    methods, usage = result["methods"], result["dialect_usage"]
    per_layer = {k: {e["layer"]: e for e in usage[k]["drift"]["per_layer"]} for k in columns}
    layers = list(dict.fromkeys(name for k in columns for name in per_layer[k]))
    lines = [
        "Per-layer dialect-usage drift (video-token activation blocks of each quantized layer; per cell: the share of"
        " blocks changing dialect from one step to the next, mean over steps / the histogram TV distance between"
        " consecutive frames, mean over frame pairs):",
        "",
        "| layer | " + " | ".join(methods[k]["label"] for k in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for name in layers:
        cells = []
        for k in columns:
            entry = per_layer[k].get(name)
            if entry is None:
                cells.append("-")
                continue
            changed = _mean(entry["changed_block_fraction_per_step"])
            cells.append(f"{fmt_number(None if changed is None else 100 * changed, 1)} % / {fmt_number(_mean(entry['frame_to_frame_tv']), 3)}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    for k in columns:
        ranked = [(c, e["layer"]) for e in per_layer[k].values() if (c := _mean(e["changed_block_fraction_per_step"])) is not None]
        if len(ranked) > 1:
            lo, hi = min(ranked), max(ranked)
            lines.append(
                f"- {methods[k]['label']}: least step-to-step drift in {lo[1]} ({100 * lo[0]:.1f} %), most in {hi[1]}"
                f" ({100 * hi[0]:.1f} %) of {len(ranked)} layers."
            )
    return lines + [""]


def _motion_section(result: dict) -> list[str]:
    strata = result["motion_strata"]
    methods = result["methods"]
    lines = ["## Motion strata", "", f"Definition: {strata['definition']} (threshold {strata['threshold']:.4f}).", ""]
    for name, clips in strata["clips"].items():
        if clips:
            motions = ", ".join(f"{c} ({strata['clip_motion'][c]:.4f})" for c in clips)
            lines.append(f"- {name}: {motions}")
    names = list(strata["per_stratum"])
    lines += ["", "| method | " + " | ".join(f"PSNR {n}" for n in names) + " | " + " | ".join(f"temporal err {n}" for n in names) + " |",
              "|---|" + "---:|" * (2 * len(names))]  # fmt: skip
    for key, m in methods.items():
        if m["group"] == Group.ABLATION.value:
            continue
        cells = [_ci(strata["per_stratum"][n][key]["psnr"], 2) for n in names]
        cells += [_ci(strata["per_stratum"][n][key]["temporal_consistency_error"], 5) for n in names]
        lines.append(f"| {m['label']} | " + " | ".join(cells) + " |")
    psnr = CRITERIA[0]
    lines.append("")
    for n in names:
        by = {(d["a"], d["b"], d["metric"]): d for d in strata["paired_differences"][n]}
        for a, b in (("fb32+ad+seda", "fb32+ad"), ("fb32+ad", "fb32")):
            if (a, b, psnr.key) in by:
                lines.append(f"- {n}, {methods[a]['label']} vs {methods[b]['label']}: PSNR {describe(by[(a, b, psnr.key)], psnr)}.")
    pairs = strata["frame_pairs"]
    lines += ["", f"Frame pairs by the reference's motion (tertile edges {pairs['edges'][0]:.4f}, {pairs['edges'][1]:.4f};"
              f" pairs per stratum {pairs['counts']}): temporal-consistency error, mean ± 95 % CI.", "",
              "| method | " + " | ".join(pairs["per_stratum"]) + " |", "|---|" + "---:|" * len(pairs["per_stratum"])]  # fmt: skip
    for key, m in methods.items():
        if m["group"] == Group.ABLATION.value:
            continue
        cells = [_ci(pairs["per_stratum"][s][key]["temporal_consistency_error"], 5) for s in pairs["per_stratum"]]
        lines.append(f"| {m['label']} | " + " | ".join(cells) + " |")
    return lines + [""]


def ablation_section(result: dict) -> list[str]:
    methods = result["methods"]
    ablations = [k for k, m in methods.items() if m["group"] == Group.ABLATION.value and m.get("against") in methods]
    if not ablations:
        return []
    by = {(d["a"], d["b"], d["metric"]): d for d in result["paired_differences"]}
    lines = ["## Ablations (each against the default it varies; paired over the same videos)", "",
             "| ablation | against | eff. bits (W / A) | PSNR (dB) | " + " | ".join(f"Δ {c.name}" for c in CRITERIA) + " |",
             "|---|---|---:|---:|" + "---|" * len(CRITERIA)]  # fmt: skip
    for k in ablations:
        m = methods[k]
        s = result["statistics"][k]
        cells = [describe(by[(k, m["against"], c.key)], c) for c in CRITERIA]
        lines.append(
            f"| {m['label']} | {methods[m['against']]['label']} | {m['weight_bits_per_element_effective']:.3f} /"
            f" {m['activation_bits_per_element_effective']:.3f} | {_ci(s['psnr'], 2)} | " + " | ".join(cells) + " |"
        )
    return lines + [""]


def _mean_curve(rows: list[list[float]]) -> list[float]:
    return [sum(col) / len(col) for col in zip(*rows)]


def _plots(out: Path, result: dict) -> None:
    methods = result["methods"]
    headline = {k: m for k, m in methods.items() if m["group"] != Group.ABLATION.value}
    stats = result["statistics"]
    visuals.line_plot(
        out / PLOTS["latent_sqnr"],
        [(m["label"], list(range(1, len(m["latent_sqnr_per_step"]) + 1)), m["latent_sqnr_per_step"]) for m in headline.values()],
        xlabel="denoising step", ylabel="latent SQNR vs reference (dB)", title="Per-step latent SQNR", integer_x=True,
    )  # fmt: skip
    half = [(stats[k]["psnr"]["ci95"][1] - stats[k]["psnr"]["ci95"][0]) / 2 if stats[k]["psnr"]["ci95"] else 0.0 for k in headline]
    visuals.bar_plot(
        out / PLOTS["psnr"], [m["label"] for m in headline.values()], [stats[k]["psnr"]["mean"] for k in headline],
        errors=half, ylabel="PSNR vs reference (dB)", title="Video PSNR against the full-precision reference (mean, 95 % CI)",
    )  # fmt: skip
    points = []
    for k, m in methods.items():
        ci = stats[k]["psnr"]["ci95"]
        points.append((m["label"], m["group"], m["bits_per_element_effective"], stats[k]["psnr"]["mean"],
                       (ci[1] - ci[0]) / 2 if ci else None))  # fmt: skip
    visuals.scatter_plot(
        out / PLOTS["iso_bit"], points, xlabel="effective bits per element ((weights + activations) / 2)",
        ylabel="PSNR vs reference (dB)", title="Iso-bit view: quality against the bits actually moved",
    )  # fmt: skip
    visuals.line_plot(
        out / PLOTS["psnr_per_frame"],
        [(m["label"], list(range(len(m["psnr"]["per_frame"][0]))), _mean_curve(m["psnr"]["per_frame"])) for m in headline.values()],
        xlabel="frame", ylabel="PSNR (dB), mean over videos", title="Per-frame PSNR", integer_x=True,
    )  # fmt: skip
    visuals.line_plot(
        out / PLOTS["temporal_error"],
        [(m["label"], list(range(1, len(m["temporal_consistency_error"]["per_pair"][0]) + 1)),
          _mean_curve(m["temporal_consistency_error"]["per_pair"])) for m in headline.values()],
        xlabel="frame pair (t-1, t)", ylabel="temporal-consistency error", title="Temporal error per frame pair",
        integer_x=True,
    )  # fmt: skip
    series = []
    for m in headline.values():
        values = [layer["activation_sqnr_db"] for layer in m["layer_sqnr"]["per_layer"]]
        series.append((m["label"], list(range(len(values))), [float("nan") if v is None else v for v in values]))
    visuals.line_plot(
        out / PLOTS["layer_sqnr"], series, xlabel="quantized layer (model order)", ylabel="activation SQNR (dB)",
        title="Per-layer activation SQNR", integer_x=True,
    )  # fmt: skip
    usage = {k: u for k, u in result["dialect_usage"].items() if k in headline}
    if usage:
        panels = {}
        for k, u in usage.items():
            panels.setdefault(u["formatbook"], []).append((methods[k]["label"], u["fraction"]))
        visuals.grouped_bars(
            out / PLOTS["dialect_usage"],
            [(f"{book} dialects", [str(i) for i in range(len(series[0][1]))], series) for book, series in panels.items()],
            ylabel="fraction of blocks", title="Dialect usage per formatbook (activation blocks)",
        )  # fmt: skip


def _pictures(out: Path, result: dict, runs: dict[str, Run], names: tuple[str, ...], strips: int) -> list[str]:
    files = []
    headline = ["reference", *[k for k, m in result["methods"].items() if m["group"] != Group.ABLATION.value]]
    for i in range(min(strips, len(names))):
        rows = [(runs[k].label if k == "reference" else result["methods"][k]["label"], runs[k].video[i]) for k in headline]
        path = out / STRIP_FILE.format(index=i)
        visuals.frame_strip(path, rows, title=f"{names[i]}: reference and methods, same noise and seed")
        files.append(path.name)
    shown = ["reference", *[k for k in headline[1:] if result["methods"][k]["group"] != Group.LITERATURE.value]]
    visuals.gif(out / GIF_FILE, [(runs[k].label if k == "reference" else result["methods"][k]["label"], runs[k].video[0]) for k in shown])
    return files


def summary_lines(result: dict, *, strip_files: list[str], staging: Path | None = None) -> list[str]:
    """summary.md: the verdict first, then the tables the verdict is drawn from."""
    settings = result["settings"]
    methods = result["methods"]
    seeds = settings.get("seeds", [settings.get("seed", 0)])
    lines = [f"# SemanticDialect evaluation: {result['model']['name']}", "", "## Verdict", ""]
    lines += result["verdict"]
    lines += [
        "",
        "Differences are paired over the same videos (same clip, seed and initial noise), with a 95 % Student-t"
        " interval; a win or a loss is called only when the interval excludes zero, anything else is within the"
        " run-to-run noise. Effective bits count AD's second quantization of the salient rows and the low-rank"
        " branches' bf16 factors.",
        "",
        f"Command: `{result['command']}`" + (f" ({result['run_time_s']:.0f} s on {result['machine']})" if "run_time_s" in result else ""),
        "",
        f"{settings['clips']} clips x {len(seeds)} seeds ({', '.join(map(str, seeds))}) = {settings['samples']} videos,"
        f" {settings['steps']} flow-matching Euler steps, device {result['device']}. Every method is W4A4 on every"
        " linear of the transformer blocks (docs/ALGORITHMS.md section 1) and is compared with the same model at"
        " float32 from the same initial noise. PSNR/SSIM/temporal error are computed on the"
        + (" decoded RGB frames (pixel-space model)." if result["model"]["pixel_space"] else
           " latents scaled by the reference's peak (no VAE is loaded).")
        + " Seconds per step are medians after the first (warm-up) step, on a shared CPU: indicative only.",
        "",
    ]  # fmt: skip
    ref = result["reference"]
    if "vs_training_clip" in ref:
        lines += [
            f"Model check: at full precision the reference generations score {ref['vs_training_clip']['psnr']['mean']:.2f} dB"
            f" PSNR / {ref['vs_training_clip']['ssim']['mean']:.3f} SSIM against the training clips they are"
            " conditioned on (the model card shows the clips and samples side by side).",
            "",
        ]
    lines += ["## Headline (mean ± 95 % CI half-width over the videos)", "", *headline_table(result), ""]
    proposed = [k for k, m in methods.items() if m["group"] == Group.PROPOSED.value]
    references = [k for k, m in methods.items() if m["group"] in (Group.BASELINE.value, Group.LITERATURE.value)]
    if proposed and references:
        lines += ["## Proposed methods against each baseline (paired differences)", ""]
        lines += _difference_table(result, [(p, b) for p in proposed for b in references], result["paired_differences"])
        lines.append("")
    steps = [(a, b) for a, b in (("fb32+ad", "fb32"), ("fb32+ad+seda", "fb32+ad")) if a in methods and b in methods]
    if steps:
        lines += ["## What AD and SeDA add", "", *_difference_table(result, steps, result["paired_differences"]), ""]
    lines += ablation_section(result)
    lines += _motion_section(result)
    lines += _lut_section(result)
    lines += ["## Pictures", ""]
    lines += [f"![frame strip {i}]({name})" for i, name in enumerate(strip_files)]
    lines += [f"![side by side]({GIF_FILE}) (GIF: reference, then the headline methods, labelled)", ""]
    lines += [f"![{k}]({v})" for k, v in PLOTS.items() if staging is None or (staging / v).is_file()]
    if staging is not None and (staging / CAPTURE_DIR).is_dir():
        lines += ["", f"Activation capture for the hardware regression (FB32+AD+SeDA): `{CAPTURE_DIR}/`."]
    return lines


def write_report(staging: Path, result: dict, runs: dict[str, Run], *, names: tuple[str, ...], strips: int = 2) -> dict:
    """Analyse ``result`` and write plots, pictures, metrics.json and summary.md into ``staging``
    (which may already hold the capture). Returns the analysed result."""
    result = analyze(result)
    result["lut_cost"] = lut_costs(result)
    _plots(staging, result)
    strip_files = _pictures(staging, result, runs, names, strips)
    lines = summary_lines(result, strip_files=strip_files, staging=staging)
    result = {**result, "files": {"summary": SUMMARY_FILE, "strips": strip_files, "gif": GIF_FILE, "plots": PLOTS}}
    (staging / METRICS_FILE).write_text(json.dumps(result, indent=1, allow_nan=False) + "\n")
    (staging / SUMMARY_FILE).write_text("\n".join(lines) + "\n")
    return result


__all__ = ["CRITERIA", "Criterion", "ablation_section", "headline_table", "lut_cost", "summary_lines", "write_report"]

"""The report folder: summary.md, metrics.json, PNG plots, frame strips and a GIF.

Every sentence of the summary is generated from the measured numbers in ``metrics.json``: which of
FB32, FB32 + AD and FB32 + AD + SeDA win or lose against each baseline, by how much, and on how many
samples. Nothing here knows the outcome in advance.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from . import visuals
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
    "layer_sqnr": "layer_activation_sqnr.png",
    "dialect_usage": "dialect_usage.png",
}


@dataclass(frozen=True)
class Criterion:
    """A metric the summary compares methods on: ``key`` into a method entry, whether higher is
    better, its unit and the number of decimals shown."""

    key: str
    name: str
    higher_is_better: bool
    unit: str
    decimals: int
    per_sample: bool


CRITERIA = (
    Criterion("psnr", "PSNR", True, " dB", 2, True),
    Criterion("ssim", "SSIM", True, "", 4, True),
    Criterion("temporal_consistency_error", "temporal-consistency error", False, "", 5, True),
    Criterion("final_latent_sqnr_db", "final latent SQNR", True, " dB", 2, False),
)


def _value(entry: dict, criterion: Criterion) -> float:
    value = entry[criterion.key]
    return value["mean"] if isinstance(value, dict) else value


def _fmt(value: float | None, decimals: int) -> str:
    return "n/a" if value is None else f"{value:.{decimals}f}"


def compare(a: dict, b: dict, criterion: Criterion) -> dict:
    """How method entry ``a`` does against ``b`` on one criterion: verdict, values, margin, and the
    number of samples on which ``a`` is strictly better."""
    va, vb = _value(a, criterion), _value(b, criterion)
    better = (va > vb) if criterion.higher_is_better else (va < vb)
    verdict = "ties" if va == vb else ("wins" if better else "loses")
    out = {"verdict": verdict, "a": va, "b": vb, "margin": va - vb}
    if criterion.per_sample:
        pa, pb = a[criterion.key]["per_sample"], b[criterion.key]["per_sample"]
        sign = 1 if criterion.higher_is_better else -1
        out["samples_better"] = sum(1 for x, y in zip(pa, pb) if sign * (x - y) > 0)
        out["samples"] = len(pa)
    return out


def _sentence(label_a: str, label_b: str, a: dict, b: dict) -> str:
    parts = []
    for c in CRITERIA:
        r = compare(a, b, c)
        detail = (
            f"{_fmt(r['a'], c.decimals)} vs {_fmt(r['b'], c.decimals)}{c.unit}, "
            f"{'+' if r['margin'] >= 0 else ''}{_fmt(r['margin'], c.decimals)}"
        )
        if "samples" in r:
            detail += f", better on {r['samples_better']} of {r['samples']} samples"
        parts.append(f"{r['verdict']} on {c.name} ({detail})")
    bits = f"at {a['bits_per_element']:.3f} vs {b['bits_per_element']:.3f} bits per element"
    return f"- **{label_a} vs {label_b}**: " + "; ".join(parts) + f"; {bits}."


def claims(result: dict) -> list[str]:
    """The summary's findings, each generated from the numbers in ``result``."""
    methods = result["methods"]
    baselines = [k for k, m in methods.items() if m["group"] == Group.BASELINE.value]
    proposed = [k for k, m in methods.items() if m["group"] == Group.PROPOSED.value]
    lines = ["### Proposed methods against each baseline", ""]
    for p in proposed:
        for b in baselines:
            lines.append(_sentence(methods[p]["label"], methods[b]["label"], methods[p], methods[b]))
    lines += ["", "### Score card (how many of the baselines each proposed method beats)", ""]
    lines.append("| method | " + " | ".join(c.name for c in CRITERIA) + " |")
    lines.append("|---|" + "---:|" * len(CRITERIA))
    for p in proposed:
        cells = []
        for c in CRITERIA:
            wins = sum(compare(methods[p], methods[b], c)["verdict"] == "wins" for b in baselines)
            cells.append(f"{wins} of {len(baselines)}")
        lines.append(f"| {methods[p]['label']} | " + " | ".join(cells) + " |")
    steps = [("fb32+ad", "fb32", "What AD adds (FB32+AD vs FB32)"),
             ("fb32+ad+seda", "fb32+ad", "What SeDA adds (FB32+AD+SeDA vs FB32+AD)")]  # fmt: skip
    for a, b, title in steps:
        if a in methods and b in methods:
            lines += ["", f"### {title}", "", _sentence(methods[a]["label"], methods[b]["label"], methods[a], methods[b])]
            extra = methods[a]["activation_bits_per_element_effective"]
            lines.append(
                f"- Counting the second quantization of the salient rows, {methods[a]['label']} moves"
                f" {extra:.3f} activation bits per element ({methods[a]['salient_row_fraction'] * 100:.1f} % of the"
                f" rows quantized twice)."
            )
    lines += ["", "### Best method per metric", ""]
    for c in CRITERIA:
        pick = max if c.higher_is_better else min
        best = pick(methods, key=lambda k: _value(methods[k], c))
        lines.append(f"- {c.name}: {methods[best]['label']} ({_fmt(_value(methods[best], c), c.decimals)}{c.unit}).")
    ablations = [k for k, m in methods.items() if m["group"] == Group.ABLATION.value]
    if ablations and "fb32+ad+seda" in methods:
        lines += ["", "### Ablations (each against FB32+AD+SeDA at its defaults)", ""]
        for k in ablations:
            lines.append(_sentence(methods[k]["label"], methods["fb32+ad+seda"]["label"], methods[k], methods["fb32+ad+seda"]))
    return lines


def headline_table(result: dict) -> list[str]:
    """The Markdown headline table (one row per method)."""
    rows = [
        "| method | bits/elem | PSNR (dB) | SSIM | temporal err | final latent SQNR (dB) | layer act SQNR median (dB)"
        " | layer out SQNR median (dB) | generate (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in result["methods"].values():
        act = m["layer_sqnr"]["activation_db"]["median"]
        out = m["layer_sqnr"]["output_db"]["median"]
        rows.append(
            f"| {m['label']} | {m['bits_per_element']:.3f} | {m['psnr']['mean']:.2f} | {m['ssim']['mean']:.4f}"
            f" | {m['temporal_consistency_error']['mean']:.5f} | {_fmt(m['final_latent_sqnr_db'], 2)}"
            f" | {_fmt(act, 2)} | {_fmt(out, 2)} | {m['wall_time_s']:.1f} |"
        )
    ref = result["reference"]
    rows.append(f"| Reference (float32) | 32 | - | - | - | - | - | - | {ref['wall_time_s']:.1f} |")
    return rows


def _plots(out: Path, result: dict) -> None:
    methods = result["methods"]
    visuals.line_plot(
        out / PLOTS["latent_sqnr"],
        [(m["label"], list(range(1, len(m["latent_sqnr_per_step"]) + 1)), m["latent_sqnr_per_step"]) for m in methods.values()],
        xlabel="denoising step", ylabel="latent SQNR vs reference (dB)", title="Per-step latent SQNR",
    )  # fmt: skip
    visuals.bar_plot(
        out / PLOTS["psnr"], [m["label"] for m in methods.values()], [m["psnr"]["mean"] for m in methods.values()],
        ylabel="PSNR vs reference (dB)", title="Video PSNR against the full-precision reference",
    )  # fmt: skip
    series = []
    for m in methods.values():
        values = [layer["activation_sqnr_db"] for layer in m["layer_sqnr"]["per_layer"]]
        series.append((m["label"], list(range(len(values))), [float("nan") if v is None else v for v in values]))
    visuals.line_plot(
        out / PLOTS["layer_sqnr"], series, xlabel="quantized layer (model order)", ylabel="activation SQNR (dB)",
        title="Per-layer activation SQNR",
    )  # fmt: skip
    usage = result["dialect_usage"]
    if usage:
        visuals.line_plot(
            out / PLOTS["dialect_usage"],
            [(methods[k]["label"], list(range(len(u["fraction"]))), u["fraction"]) for k, u in usage.items()],
            xlabel="dialect id", ylabel="fraction of activation blocks", title="Dialect usage",
        )  # fmt: skip


def _pictures(out: Path, result: dict, runs: dict[str, Run], names: tuple[str, ...], strips: int) -> list[str]:
    files = []
    order = ["reference", *result["methods"]]
    for i in range(min(strips, len(names))):
        rows = [(runs[k].label if k == "reference" else result["methods"][k]["label"], runs[k].video[i]) for k in order]
        path = out / STRIP_FILE.format(index=i)
        visuals.frame_strip(path, rows, title=f"{names[i]}: reference and methods, same noise and seed")
        files.append(path.name)
    headline = ["reference", *[k for k, m in result["methods"].items() if m["group"] != Group.ABLATION.value]]
    visuals.gif(out / GIF_FILE, [(k, runs[k].video[0]) for k in headline])
    return files


def write_report(
    staging: Path, out: Path, result: dict, runs: dict[str, Run], *, names: tuple[str, ...], strips: int = 2
) -> Path:
    """Write plots, pictures, metrics.json and summary.md into ``staging`` (which may already hold
    the capture), then move it to ``out`` in one rename. Returns ``out``."""
    staging.mkdir(parents=True, exist_ok=True)
    _plots(staging, result)
    strip_files = _pictures(staging, result, runs, names, strips)
    result = {**result, "files": {"summary": SUMMARY_FILE, "strips": strip_files, "gif": GIF_FILE, "plots": PLOTS}}
    (staging / METRICS_FILE).write_text(json.dumps(result, indent=1, allow_nan=False) + "\n")
    settings = result["settings"]
    lines = [
        f"# SemanticDialect evaluation: {result['model']['name']}",
        "",
        f"Command: `{result['command']}`",
        "",
        f"{settings['samples']} samples ({', '.join(names)}), {settings['steps']} flow-matching Euler steps,"
        f" seed {settings['seed']}, device {result['device']}. Every method is W4A4 on every linear of the"
        " transformer blocks (ALGORITHMS.md section 1) and is compared with the same model at float32 from the"
        " same initial noise. PSNR/SSIM/temporal error are computed on the"
        + (" decoded RGB frames (pixel-space model)." if result["model"]["pixel_space"] else
           " latents scaled by the reference's peak (no VAE is loaded).")
        + " Wall times are for the whole generation on this machine (shared CPU: indicative only).",
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
    lines += ["## Headline", "", *headline_table(result), "", "## Findings (generated from the numbers above)", ""]
    lines += claims(result)
    lines += ["", "## Pictures", ""]
    lines += [f"![frame strip {i}]({name})" for i, name in enumerate(strip_files)]
    lines += [f"![side by side]({GIF_FILE}) (GIF: reference, then the headline methods, left to right)", ""]
    lines += [f"![{k}]({v})" for k, v in PLOTS.items() if (staging / v).is_file()]
    if (staging / CAPTURE_DIR).is_dir():
        lines += ["", f"Activation capture for the hardware regression (FB32+AD+SeDA): `{CAPTURE_DIR}/`."]
    (staging / SUMMARY_FILE).write_text("\n".join(lines) + "\n")
    out = Path(out)
    if out.exists():
        old = out.with_name(out.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(out, old)
        os.replace(staging, out)
        shutil.rmtree(old)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, out)
    return out


__all__ = ["CRITERIA", "claims", "compare", "headline_table", "write_report"]

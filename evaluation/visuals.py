"""Pictures for the model card and the report: frame strips, GIFs and line plots (PNG)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

#: Each 32 x 32 frame is drawn this many times larger (nearest neighbour) so it stays readable.
UPSCALE = 3


def to_uint8_frames(video: torch.Tensor) -> np.ndarray:
    """One video (C, F, H, W) in [-1, 1] -> uint8 RGB (F, H, W, 3). Latent videos show their first
    three channels as RGB (a single channel as grey)."""
    video = video.detach().float().cpu()
    video = video[:3] if video.shape[0] >= 3 else video[:1].expand(3, *video.shape[1:])
    unit = ((video + 1.0) / 2.0).clamp(0.0, 1.0)
    return (unit.permute(1, 2, 3, 0).numpy() * 255.0 + 0.5).astype(np.uint8)


def _atomic_target(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.stem}.tmp{path.suffix}")


#: Difference maps show |method - reference| multiplied by this gain (clipped to white).
DIFF_GAIN = 8.0


def difference_frames(reference: torch.Tensor, video: torch.Tensor, gain: float = DIFF_GAIN) -> np.ndarray:
    """uint8 grey (F, H, W, 3): ``gain * |video - reference|`` in [0, 1] pixel units, per pixel the
    mean over channels, clipped at 1 (white = an error of 1 / gain or more)."""
    ref = ((reference.detach().float().cpu() + 1.0) / 2.0).clamp(0.0, 1.0)
    test = ((video.detach().float().cpu() + 1.0) / 2.0).clamp(0.0, 1.0)
    err = ((test - ref).abs().mean(dim=0) * gain).clamp(0.0, 1.0)  # (F, H, W)
    grey = (err.numpy() * 255.0 + 0.5).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def frame_strip(
    path: Path,
    rows: Sequence[tuple[str, torch.Tensor]],
    *,
    title: str | None = None,
    differences: bool = True,
    gain: float = DIFF_GAIN,
) -> None:
    """Save a PNG grid: one labelled row per (label, video (C, F, H, W)), one column per frame. With
    ``differences`` every row after the first (the reference) is followed by its difference map
    against the first row, ``gain x |error|``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = [(label, to_uint8_frames(video)) for label, video in rows]
    if differences and len(rows) > 1:
        reference = rows[0][1]
        expanded = [images[0]]
        for (label, video), item in zip(rows[1:], images[1:]):
            expanded += [item, (f"|error| x {gain:g}", difference_frames(reference, video, gain))]
        images = expanded
    num_frames = images[0][1].shape[0]
    fig, axes = plt.subplots(
        len(images), num_frames, figsize=(1.4 + num_frames * 0.32 * UPSCALE, len(images) * 0.34 * UPSCALE),
        squeeze=False,
    )
    for r, (label, video) in enumerate(images):
        for f in range(num_frames):
            ax = axes[r][f]
            ax.imshow(video[f], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if f == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=7)
            if r == 0:
                ax.set_title(f"t={f}", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(pad=0.3)
    tmp = _atomic_target(path)
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


#: Height in pixels of the label band above each video in the GIF.
GIF_LABEL_HEIGHT = 12


def gif(path: Path, rows: Sequence[tuple[str, torch.Tensor]], *, ms_per_frame: int = 250) -> None:
    """Save an animated GIF with the videos side by side, each labelled above (PIL's built-in font)."""
    from PIL import Image, ImageDraw, ImageFont

    frames = [to_uint8_frames(v) for _, v in rows]
    height, width = frames[0].shape[1] * UPSCALE, frames[0].shape[2] * UPSCALE
    gap = 4
    font = ImageFont.load_default()
    canvas_w = len(rows) * width + (len(rows) - 1) * gap
    band = Image.new("RGB", (canvas_w, GIF_LABEL_HEIGHT), "white")
    draw = ImageDraw.Draw(band)
    for i, (label, _) in enumerate(rows):
        text = label
        while text and draw.textlength(text, font=font) > width:
            text = text[:-1]
        draw.text((i * (width + gap), 0), text, fill="black", font=font)
    images = []
    for f in range(frames[0].shape[0]):
        canvas = Image.new("RGB", (canvas_w, GIF_LABEL_HEIGHT + height), "white")
        canvas.paste(band, (0, 0))
        for i, video in enumerate(frames):
            tile = video[f].repeat(UPSCALE, axis=0).repeat(UPSCALE, axis=1)
            canvas.paste(Image.fromarray(tile), (i * (width + gap), GIF_LABEL_HEIGHT))
        images.append(canvas)
    tmp = _atomic_target(path)
    images[0].save(tmp, save_all=True, append_images=images[1:], duration=ms_per_frame, loop=0)
    os.replace(tmp, path)


def line_plot(
    path: Path,
    series: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    logy: bool = False,
    integer_x: bool = False,
) -> None:
    """Save a PNG line plot of (label, x values, y values) series (``integer_x``: ticks on integers only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for label, xs, ys in series:
        ax.plot(xs, ys, label=label, linewidth=1.2, marker="o" if integer_x else None, markersize=2.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if logy:
        ax.set_yscale("log")
    if integer_x:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    tmp = _atomic_target(path)
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def zoomed_limits(values: Sequence[float], errors: Sequence[float] | None = None) -> tuple[float, float]:
    """A y range around the data (bars start at the range's bottom, not at 0), 15 % padding."""
    errors = errors or [0.0] * len(values)
    lo = min(v - e for v, e in zip(values, errors))
    hi = max(v + e for v, e in zip(values, errors))
    pad = 0.15 * (hi - lo) if hi > lo else max(abs(hi), 1.0) * 0.05
    return lo - pad, hi + pad


def bar_plot(
    path: Path,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    ylabel: str,
    title: str,
    errors: Sequence[float] | None = None,
    decimals: int = 2,
    zoom: bool = True,
) -> None:
    """Save a PNG bar chart with a value label on each bar; ``errors``: half-widths of error bars;
    ``zoom``: the y axis spans the data's range instead of starting at zero."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4.0, 0.7 * len(labels) + 1.5), 3.8))
    bottom, top = zoomed_limits(values, errors) if zoom else (0.0, max(values) * 1.15)
    heights = [v - bottom for v in values]
    ax.bar(range(len(labels)), heights, bottom=bottom, color="#4477aa", yerr=errors, capsize=3 if errors else 0)
    for i, v in enumerate(values):
        ax.text(i, v + (errors[i] if errors else 0.0), f"{v:.{decimals}f}", ha="center", va="bottom", fontsize=6)
    ax.set_ylim(bottom, top)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=35, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    tmp = _atomic_target(path)
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def grouped_bars(
    path: Path, panels: Sequence[tuple[str, Sequence[str], Sequence[tuple[str, Sequence[float]]]]], *, ylabel: str, title: str
) -> None:
    """Save one bar panel per (panel title, category labels, [(series label, values)]): e.g. dialect
    usage per formatbook, one panel per format (ids of different formatbooks are different dialects)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 1, figsize=(7.5, 2.6 * len(panels)), squeeze=False)
    for ax, (panel, categories, series) in zip(axes[:, 0], panels):
        width = 0.8 / max(1, len(series))
        for j, (label, values) in enumerate(series):
            xs = [i + (j - (len(series) - 1) / 2) * width for i in range(len(categories))]
            ax.bar(xs, values, width=width, label=label)
        ax.set_xticks(range(len(categories)))
        ax.set_xticklabels(categories, fontsize=6)
        ax.set_title(panel, fontsize=9)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=6, ncol=3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    tmp = _atomic_target(path)
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def scatter_plot(
    path: Path,
    points: Sequence[tuple[str, str, float, float, float | None]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
) -> None:
    """Save a labelled scatter of (label, group, x, y, y error half-width or None), one colour per group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.2, 4.6))
    groups = list(dict.fromkeys(g for _, g, _, _, _ in points))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for gi, group in enumerate(groups):
        chosen = [p for p in points if p[1] == group]
        ax.errorbar(
            [p[2] for p in chosen], [p[3] for p in chosen],
            yerr=[p[4] or 0.0 for p in chosen], fmt="o", markersize=4, capsize=2,
            color=colours[gi % len(colours)], label=group,
        )  # fmt: skip
        for label, _, x, y, _ in chosen:
            ax.annotate(label, (x, y), fontsize=5, xytext=(3, 2), textcoords="offset points")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    tmp = _atomic_target(path)
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)

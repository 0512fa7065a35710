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


def frame_strip(path: Path, rows: Sequence[tuple[str, torch.Tensor]], *, title: str | None = None) -> None:
    """Save a PNG grid: one labelled row per (label, video (C, F, H, W)), one column per frame."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = [to_uint8_frames(v) for _, v in rows]
    num_frames = frames[0].shape[0]
    fig, axes = plt.subplots(
        len(rows), num_frames, figsize=(0.1 + num_frames * 0.32 * UPSCALE, len(rows) * 0.34 * UPSCALE),
        squeeze=False,
    )
    for r, ((label, _), video) in enumerate(zip(rows, frames)):
        for f in range(num_frames):
            ax = axes[r][f]
            ax.imshow(video[f], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if f == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
            if r == 0:
                ax.set_title(f"t={f}", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(pad=0.3)
    tmp = _atomic_target(path)
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def gif(path: Path, rows: Sequence[tuple[str, torch.Tensor]], *, ms_per_frame: int = 250) -> None:
    """Save an animated GIF with the videos side by side (labels are in the report, not the GIF)."""
    from PIL import Image

    frames = [to_uint8_frames(v) for _, v in rows]
    gap = np.full((frames[0].shape[1], 2, 3), 255, np.uint8)
    images = []
    for f in range(frames[0].shape[0]):
        parts = []
        for video in frames:
            parts += [video[f], gap]
        row = np.concatenate(parts[:-1], axis=1)
        row = row.repeat(UPSCALE, axis=0).repeat(UPSCALE, axis=1)
        images.append(Image.fromarray(row))
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
) -> None:
    """Save a PNG line plot of (label, x values, y values) series."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for label, xs, ys in series:
        ax.plot(xs, ys, label=label, linewidth=1.2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=7)
    fig.tight_layout()
    tmp = _atomic_target(path)
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def bar_plot(path: Path, labels: Sequence[str], values: Sequence[float], *, ylabel: str, title: str) -> None:
    """Save a PNG bar chart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4.0, 0.7 * len(labels) + 1.5), 3.6))
    ax.bar(range(len(labels)), values, color="#4477aa")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    tmp = _atomic_target(path)
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)

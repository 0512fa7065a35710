"""The evaluation loop: reference generation, then every method on a fresh quantized copy.

For each method the float transformer is deep-copied and quantized with ``golden.dit.quantize_``;
the same initial noise and conditions are denoised with the same scheduler; per-step latents are
compared with the reference's on the fly (per-step SQNR), ``golden.dit.collect_stats`` gathers the
per-layer activation/output SQNR and dialect histograms, and the FB32 + AD + SeDA run records a few
layer calls with ``golden.dit.capture`` for the hardware regression.
"""

from __future__ import annotations

import copy
import math
import statistics
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

import torch
from tqdm.auto import tqdm

from golden.formats import get_format
from . import metrics
from .methods import Method, ablation_methods, formatbook_methods, headline_methods
from .sampling import generate
from .workload import Workload

#: The method whose run is captured for the hardware regression (AD and SeDA on).
CAPTURE_METHOD = "fb32+ad+seda"


@dataclass(frozen=True, kw_only=True)
class Settings:
    """How much to generate: ``steps`` Euler steps; ``ablations`` adds the one-knob variations;
    ``capture_layers`` (fnmatch patterns) at ``capture_steps`` are recorded into the report."""

    steps: int
    ablations: bool = False
    formatbooks: bool = False  # also the fitted formatbooks (evaluation.methods.formatbook_methods)
    capture: bool = True
    capture_layers: tuple[str, ...] = (
        "transformer_blocks.0.attn.to_q",
        "transformer_blocks.0.ff.net.0.proj",
        "single_transformer_blocks.0.proj_out",
        "blocks.0.attn1.to_q",
        "blocks.0.ffn.net.0.proj",
    )
    capture_steps: tuple[int, ...] = (0, 1)

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"Settings.steps must be a positive integer, got {self.steps!r}.")

    def methods(self) -> tuple[Method, ...]:
        extra = formatbook_methods() if self.formatbooks else ()
        return headline_methods() + extra + (ablation_methods() if self.ablations else ())


@dataclass
class Run:
    """One generation: ``video`` (B, C, F, H, W) float32 on CPU, timings and, for methods, stats."""

    key: str
    label: str
    video: torch.Tensor
    wall_time_s: float
    peak_memory_mib: float
    step_sqnr_db: list[float] = field(default_factory=list)
    method: Method | None = None
    quantize_time_s: float = 0.0
    quantize_peak_memory_mib: float = 0.0
    layer_stats: list[dict] = field(default_factory=list)
    dialect_counts: list[int] | None = None
    salient_fraction: float = 0.0
    capture_dir: str | None = None


def _finite(value: float | None) -> float | None:
    """JSON has no infinities: an exact (infinite-SQNR) value is reported as metrics.MAX_DB."""
    if value is None or math.isnan(value):
        return None
    return max(-metrics.MAX_DB, min(metrics.MAX_DB, value))


def reference_run(workload: Workload, settings: Settings) -> tuple[Run, list[torch.Tensor]]:
    """Generate at full precision, keeping the latents after every step (CPU float32)."""
    steps: list[torch.Tensor] = []
    device = workload.noise.device
    bar = tqdm(total=settings.steps, desc="reference (float32)", leave=False, unit="step")

    def on_step(i: int, latents: torch.Tensor) -> None:
        steps.append(latents.detach().cpu().clone())
        bar.update()

    with metrics.Measure(device) as measured:
        video = generate(
            workload.transformer, workload.cond, workload.noise, steps=settings.steps, on_step=on_step,
            denoiser=workload.denoiser,
        )  # fmt: skip
    bar.close()
    run = Run(
        key="reference", label="Reference (float32)", video=video.cpu(), wall_time_s=measured.wall_time_s,
        peak_memory_mib=measured.peak_memory_mib,
    )  # fmt: skip
    return run, steps


def method_run(
    method: Method, workload: Workload, settings: Settings, reference_steps: list[torch.Tensor], capture_dir: Path | None
) -> Run:
    """Quantize a fresh copy of the float transformer with ``method`` and generate."""
    from golden.dit import CaptureConfig, capture, collect_stats, quantize_, quantized_layers, reset_schedule

    model = copy.deepcopy(workload.transformer)
    report = quantize_(model, method.quant_config())
    reset_schedule(model)
    sqnrs: list[float] = []
    bar = tqdm(total=settings.steps, desc=method.label, leave=False, unit="step")

    def on_step(i: int, latents: torch.Tensor) -> None:
        sqnrs.append(_finite(metrics.sqnr_db(reference_steps[i], latents.detach().cpu())))
        bar.update()

    def denoise():
        return generate(
            model, workload.cond, workload.noise, steps=settings.steps, on_step=on_step, denoiser=workload.denoiser
        )

    with collect_stats(model) as stats, metrics.Measure(workload.noise.device) as measured:
        if capture_dir is not None:
            names = [n for n in quantized_layers(model) if any(fnmatch(n, p) for p in settings.capture_layers)]
            config = CaptureConfig(layers=tuple(names) or ("*",), steps=settings.capture_steps)
            with capture(model, capture_dir, config):
                video = denoise()
        else:
            video = denoise()
    bar.close()
    layer_stats = [s.as_dict() for s in stats.values()]
    counts = None
    for s in stats.values():
        if s.dialect_counts is not None:
            counts = s.dialect_counts.clone() if counts is None else counts + s.dialect_counts
    rows = sum(s.rows for s in stats.values())
    salient = sum(s.salient_rows for s in stats.values())
    for entry in layer_stats:
        entry["activation_sqnr_db"] = _finite(entry["activation_sqnr_db"])
        entry["output_sqnr_db"] = _finite(entry["output_sqnr_db"])
    return Run(
        key=method.key, label=method.label, video=video.cpu(), wall_time_s=measured.wall_time_s,
        peak_memory_mib=measured.peak_memory_mib, step_sqnr_db=sqnrs, method=method,
        quantize_time_s=report.wall_time_s, quantize_peak_memory_mib=report.peak_memory_bytes / 2**20,
        layer_stats=layer_stats, dialect_counts=None if counts is None else counts.tolist(),
        salient_fraction=salient / rows if rows else 0.0,
        capture_dir=None if capture_dir is None else str(capture_dir),
    )  # fmt: skip


def _image_space(workload: Workload, reference: torch.Tensor, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-space models are compared as is; latent models are scaled by the reference's peak
    |value| per sample into [-1, 1] (there is no VAE here), the same scale for both videos."""
    if workload.pixel_space:
        return reference, video
    scale = reference.abs().flatten(1).amax(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1, 1)
    return reference / scale, video / scale


def _summary(values: list[float]) -> dict:
    finite = [v for v in values if v is not None]
    if not finite:
        return {"min": None, "median": None, "mean": None, "max": None}
    return {"min": min(finite), "median": statistics.median(finite), "mean": statistics.fmean(finite), "max": max(finite)}


def video_metrics(workload: Workload, reference: torch.Tensor, video: torch.Tensor) -> dict:
    """PSNR, SSIM (per frame and per sample) and temporal-consistency error against the reference."""
    ref, test = _image_space(workload, reference, video)
    psnr = metrics.psnr_per_frame(ref, test)
    ssim = metrics.ssim_per_frame(ref, test)
    tce = [metrics.temporal_consistency_error(ref[i : i + 1], test[i : i + 1]) for i in range(ref.shape[0])]
    return {
        "psnr": {"mean": float(psnr.mean()), "per_sample": psnr.mean(dim=1).tolist(), "per_frame": psnr.tolist()},
        "ssim": {"mean": float(ssim.mean()), "per_sample": ssim.mean(dim=1).tolist(), "per_frame": ssim.tolist()},
        "temporal_consistency_error": {"mean": float(sum(tce) / len(tce)), "per_sample": tce},
    }


def method_entry(workload: Workload, reference: Run, run: Run) -> dict:
    """The metrics.json entry of one method."""
    method = run.method
    entry = {
        "label": run.label,
        "group": method.group.value,
        "config": method.quant_config().to_json(),
        "bits_per_element": method.bits_per_element(),
        # AD quantizes the salient rows twice; this is the activation storage actually moved.
        "activation_bits_per_element_effective": method.bits_per_element() * (1.0 + run.salient_fraction),
        "salient_row_fraction": run.salient_fraction,
        **video_metrics(workload, reference.video, run.video),
        "latent_sqnr_per_step": run.step_sqnr_db,
        "final_latent_sqnr_db": run.step_sqnr_db[-1] if run.step_sqnr_db else None,
        "layer_sqnr": {
            "activation_db": _summary([s["activation_sqnr_db"] for s in run.layer_stats]),
            "output_db": _summary([s["output_sqnr_db"] for s in run.layer_stats]),
            "per_layer": [{k: v for k, v in s.items() if k != "dialect_histogram"} for s in run.layer_stats],
        },
        "wall_time_s": run.wall_time_s,
        "peak_memory_mib": run.peak_memory_mib,
        "quantize_time_s": run.quantize_time_s,
        "quantize_peak_memory_mib": run.quantize_peak_memory_mib,
    }
    return entry


def dialect_usage(run: Run) -> dict | None:
    """Dialect-usage histogram of a dialect-format run (summed over layers, steps and blocks)."""
    if run.dialect_counts is None:
        return None
    book = get_format(run.method.format).formatbook
    counts = torch.tensor(run.dialect_counts, dtype=torch.int64)
    total = int(counts.sum())
    families = [int(counts[book.family_mask(f)].sum()) for f in range(book.num_families)]
    return {
        "format": run.method.format,
        "formatbook": book.name,
        "counts": run.dialect_counts,
        "fraction": [c / total if total else 0.0 for c in run.dialect_counts],
        "family_size": book.family_size,
        "family_counts": families,
    }


def evaluate(workload: Workload, settings: Settings, *, capture_root: Path | None) -> tuple[dict, dict[str, Run]]:
    """Run the reference and every method; returns (metrics dict, runs by key incl. "reference")."""
    reference, reference_steps = reference_run(workload, settings)
    runs = {"reference": reference}
    methods = settings.methods()
    for method in tqdm(methods, desc="methods", unit="method"):
        capture_dir = None
        if settings.capture and capture_root is not None and method.key == CAPTURE_METHOD:
            capture_dir = capture_root
        runs[method.key] = method_run(method, workload, settings, reference_steps, capture_dir)
    result = {
        "reference": {
            "label": reference.label,
            "wall_time_s": reference.wall_time_s,
            "peak_memory_mib": reference.peak_memory_mib,
        },
        "methods": {},
        "dialect_usage": {},
    }
    if workload.targets is not None:
        # How close the full-precision generation is to the clip it was trained on (model quality).
        result["reference"]["vs_training_clip"] = video_metrics(workload, workload.targets.cpu(), reference.video)
    for method in methods:
        run = runs[method.key]
        result["methods"][method.key] = method_entry(workload, reference, run)
        usage = dialect_usage(run)
        if usage is not None:
            result["dialect_usage"][method.key] = usage
    return result, runs


__all__ = ["CAPTURE_METHOD", "Run", "Settings", "evaluate"]

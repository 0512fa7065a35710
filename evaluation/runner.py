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
import time
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
#: Seed of the calibration noise of the baselines' smoothing (never one of the evaluation's seeds).
CALIBRATION_SEED = 2**31 - 1


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
        """Headline methods, then the fitted formatbooks (with ``formatbooks``), then (with
        ``ablations``) every ablation not already among them."""
        out = list(headline_methods()) + list(formatbook_methods() if self.formatbooks else ())
        if self.ablations:
            keys = {m.key for m in out}
            out += [m for m in ablation_methods() if m.key not in keys]
        return tuple(out)


@dataclass
class Run:
    """One generation: ``video`` (B, C, F, H, W) float32 on CPU, timings and, for methods, stats."""

    key: str
    label: str
    video: torch.Tensor
    wall_time_s: float
    peak_memory_mib: float
    step_time_s: list[float] = field(default_factory=list)
    step_sqnr_db: list[float] = field(default_factory=list)
    method: Method | None = None
    quantize_time_s: float = 0.0
    quantize_peak_memory_mib: float = 0.0
    layer_stats: list[dict] = field(default_factory=list)
    dialect_counts: list[int] | None = None
    salient_fraction: float = 0.0
    capture_dir: str | None = None
    weight_bits: float | None = None
    activation_bits: float | None = None
    drift: dict | None = None


class _StepClock:
    """Seconds of each denoising step (``on_step`` marks the end of one)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._last = time.perf_counter()

    def tick(self) -> None:
        now = time.perf_counter()
        self.times.append(now - self._last)
        self._last = now


def steady_step_time(times: list[float]) -> float | None:
    """Median seconds per step after the first (warm-up: lazy tables, first-call allocation)."""
    rest = times[1:] if len(times) > 1 else times
    return statistics.median(rest) if rest else None


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

    clock = _StepClock()

    def on_step(i: int, latents: torch.Tensor) -> None:
        clock.tick()
        steps.append(latents.detach().cpu().clone())
        bar.update()

    with metrics.Measure(device) as measured:
        clock.__init__()
        video = generate(
            workload.transformer, workload.cond, workload.noise, steps=settings.steps, on_step=on_step,
            denoiser=workload.denoiser,
        )  # fmt: skip
    bar.close()
    run = Run(
        key="reference", label="Reference (float32)", video=video.cpu(), wall_time_s=measured.wall_time_s,
        peak_memory_mib=measured.peak_memory_mib, step_time_s=clock.times,
    )  # fmt: skip
    return run, steps


def calibration_amax(workload: Workload, settings: Settings) -> dict[str, torch.Tensor]:
    """Per-input-channel max |x| of every block linear over one float generation from calibration
    noise (seed ``CALIBRATION_SEED``, same conditions): the baselines' smoothing statistics."""
    from golden.dit.baselines import calibrate

    noise = torch.randn(
        workload.noise.shape, generator=torch.Generator().manual_seed(CALIBRATION_SEED)
    ).to(workload.noise)
    with calibrate(workload.transformer) as amax:
        generate(workload.transformer, workload.cond, noise, steps=settings.steps, denoiser=workload.denoiser)
    return amax


class DialectDrift:
    """How the chosen dialects change over denoising steps and frames (an observer of the quantized
    linears of video tokens): per step and per frame histograms, and the fraction of the very same
    activation blocks (layer, sample, token, block) whose dialect changed from one step to the next;
    all of it summed over the layers and, in ``per_layer``, for each layer on its own."""

    def __init__(self, num_dialects: int, batch: int) -> None:
        self.num_dialects = num_dialects
        self.batch = batch
        self.step = 0
        self.per_step: dict[int, torch.Tensor] = {}
        self.per_frame: dict[int, torch.Tensor] = {}
        self.previous: dict[str, tuple[int, torch.Tensor]] = {}
        self.changed: dict[int, list[int]] = {}  # step -> [changed blocks, compared blocks]
        # The same per quantized layer (model order): name -> step -> counts / [changed, compared].
        self.layer_step: dict[str, dict[int, torch.Tensor]] = {}
        self.layer_frame: dict[str, dict[int, torch.Tensor]] = {}
        self.layer_changed: dict[str, dict[int, list[int]]] = {}

    def observe(self, layer, rows, act, plan, y) -> None:
        dialect = act.main.dialect
        state = getattr(layer, "block_state", None)
        call = None if state is None else state.model.call
        if dialect is None or call is None or getattr(layer, "role", None) is None or layer.role.value != "video":
            return
        ids = dialect.reshape(self.batch, -1, dialect.shape[-1])[:, : call.num_video_tokens].to(torch.int64)
        counts = torch.bincount(ids.reshape(-1), minlength=self.num_dialects).cpu()
        self.per_step[self.step] = self.per_step.get(self.step, 0) + counts
        layer_step = self.layer_step.setdefault(layer.name, {})
        layer_step[self.step] = layer_step.get(self.step, 0) + counts
        _, rows_, cols = call.grid
        frames = ids.reshape(self.batch, call.grid[0], rows_ * cols, -1)
        layer_frame = self.layer_frame.setdefault(layer.name, {})
        for f in range(call.grid[0]):
            c = torch.bincount(frames[:, f].reshape(-1), minlength=self.num_dialects).cpu()
            self.per_frame[f] = self.per_frame.get(f, 0) + c
            layer_frame[f] = layer_frame.get(f, 0) + c
        previous = self.previous.get(layer.name)
        if previous is not None and previous[0] == self.step - 1 and previous[1].shape == ids.shape:
            changed = int((previous[1] != ids).sum())
            for entry in (self.changed.setdefault(self.step, [0, 0]),
                          self.layer_changed.setdefault(layer.name, {}).setdefault(self.step, [0, 0])):  # fmt: skip
                entry[0] += changed
                entry[1] += ids.numel()
        self.previous[layer.name] = (self.step, ids)

    def as_dict(self) -> dict:
        def tv(a: torch.Tensor, b: torch.Tensor) -> float:
            pa, pb = a.double() / max(1, int(a.sum())), b.double() / max(1, int(b.sum()))
            return float(0.5 * (pa - pb).abs().sum())

        def changed_fraction(changed: dict[int, list[int]], steps: list[int]) -> list[float | None]:
            return [changed[s][0] / changed[s][1] if s in changed and changed[s][1] else None for s in steps[1:]]

        def drift(per_step: dict, per_frame: dict, changed: dict) -> dict:
            steps, frames = sorted(per_step), sorted(per_frame)
            return {
                "step_to_step_tv": [tv(per_step[a], per_step[b]) for a, b in zip(steps, steps[1:])],
                "frame_to_frame_tv": [tv(per_frame[a], per_frame[b]) for a, b in zip(frames, frames[1:])],
                "changed_block_fraction_per_step": changed_fraction(changed, steps),
            }

        return {
            "per_step_histogram": [self.per_step[s].tolist() for s in sorted(self.per_step)],
            "per_frame_histogram": [self.per_frame[f].tolist() for f in sorted(self.per_frame)],
            **drift(self.per_step, self.per_frame, self.changed),
            # The same three drift measures for each quantized layer of video tokens, in model order.
            "per_layer": [
                {"layer": name, **drift(self.layer_step[name], self.layer_frame[name], self.layer_changed.get(name, {}))}
                for name in self.layer_step
            ],
        }


def _build(method: Method, workload: Workload, amax: dict | None):
    """A fresh quantized copy of the float transformer and its layers' bit counts."""
    model = copy.deepcopy(workload.transformer)
    if method.baseline is None:
        from golden.dit import quantize_, quantized_layers, reset_schedule

        report = quantize_(model, method.quant_config())
        reset_schedule(model)
        return model, quantized_layers(model), report.wall_time_s, report.peak_memory_bytes / 2**20
    from golden.dit.baselines import baseline_layers, quantize_baseline_

    with metrics.Measure("cpu") as measured:
        quantize_baseline_(model, method.baseline_config(), amax)
    return model, baseline_layers(model), measured.wall_time_s, measured.peak_memory_mib


def method_run(
    method: Method,
    workload: Workload,
    settings: Settings,
    reference_steps: list[torch.Tensor],
    capture_dir: Path | None,
    amax: dict | None = None,
) -> Run:
    """Quantize a fresh copy of the float transformer with ``method`` and generate."""
    from golden.dit import CaptureConfig, LayerStats, capture

    model, layers, quantize_s, quantize_mib = _build(method, workload, amax)
    stats = {name: LayerStats(name=name) for name in layers}
    book = None if method.baseline is not None else get_format(method.format).formatbook
    drift = DialectDrift(book.num_dialects, workload.noise.shape[0]) if book is not None and get_format(method.format).is_dialect else None
    for name, layer in layers.items():
        layer.observers.append(stats[name].observe)
        if drift is not None:
            layer.observers.append(drift.observe)
    sqnrs: list[float] = []
    bar = tqdm(total=settings.steps, desc=method.label, leave=False, unit="step")
    clock = _StepClock()

    def on_step(i: int, latents: torch.Tensor) -> None:
        clock.tick()
        sqnrs.append(_finite(metrics.sqnr_db(reference_steps[i], latents.detach().cpu())))
        if drift is not None:
            drift.step = i + 1
        bar.update()

    def denoise():
        clock.__init__()
        return generate(
            model, workload.cond, workload.noise, steps=settings.steps, on_step=on_step, denoiser=workload.denoiser
        )

    with metrics.Measure(workload.noise.device) as measured:
        if capture_dir is not None and method.baseline is None:
            names = [n for n in layers if any(fnmatch(n, p) for p in settings.capture_layers)]
            config = CaptureConfig(layers=tuple(names) or ("*",), steps=settings.capture_steps)
            with capture(model, capture_dir, config):
                video = denoise()
        else:
            video = denoise()
    bar.close()
    for name, layer in layers.items():
        layer.observers.remove(stats[name].observe)
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
    weight_bits = activation_bits = None
    if method.baseline is not None:
        # Element-weighted over the layers: weights by N * K, activations by the rows * K each layer saw.
        w_elems = {n: l.out_features * l.in_features for n, l in layers.items()}
        a_elems = {n: stats[n].rows * l.in_features for n, l in layers.items()}
        weight_bits = sum(l.weight_bits_per_element * w_elems[n] for n, l in layers.items()) / sum(w_elems.values())
        a_total = sum(a_elems.values())
        activation_bits = (
            sum(l.activation_bits_per_element * a_elems[n] for n, l in layers.items()) / a_total if a_total else None
        )
    return Run(
        key=method.key, label=method.label, video=video.cpu(), wall_time_s=measured.wall_time_s,
        peak_memory_mib=measured.peak_memory_mib, step_time_s=clock.times, step_sqnr_db=sqnrs, method=method,
        quantize_time_s=quantize_s, quantize_peak_memory_mib=quantize_mib,
        layer_stats=layer_stats, dialect_counts=None if counts is None else counts.tolist(),
        salient_fraction=salient / rows if rows else 0.0,
        capture_dir=None if capture_dir is None else str(capture_dir),
        weight_bits=weight_bits, activation_bits=activation_bits,
        drift=None if drift is None else drift.as_dict(),
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
    """PSNR, SSIM (per frame and per sample) and temporal-consistency error (per frame pair and per
    sample) against the reference."""
    ref, test = _image_space(workload, reference, video)
    psnr = metrics.psnr_per_frame(ref, test)
    ssim = metrics.ssim_per_frame(ref, test)
    pairs = metrics.temporal_error_per_pair(ref, test)
    return {
        "psnr": {"mean": float(psnr.mean()), "per_sample": psnr.mean(dim=1).tolist(), "per_frame": psnr.tolist()},
        "ssim": {"mean": float(ssim.mean()), "per_sample": ssim.mean(dim=1).tolist(), "per_frame": ssim.tolist()},
        "temporal_consistency_error": {
            "mean": float(pairs.mean()), "per_sample": pairs.mean(dim=1).tolist(), "per_pair": pairs.tolist(),
        },
    }  # fmt: skip


def _per_sample_sqnr(reference: torch.Tensor, video: torch.Tensor) -> dict:
    """SQNR of each sample's final latents against the reference's (dB, capped)."""
    values = [_finite(metrics.sqnr_db(reference[i], video[i])) for i in range(reference.shape[0])]
    return {"mean": statistics.fmean(values), "per_sample": values}


def method_entry(workload: Workload, reference: Run, run: Run) -> dict:
    """The metrics.json entry of one method."""
    method = run.method
    bits = method.bits_per_element()
    # AD quantizes the salient rows twice: the activation storage actually moved per element.
    act_bits = run.activation_bits if run.activation_bits is not None else bits * (1.0 + run.salient_fraction)
    weight_bits = run.weight_bits if run.weight_bits is not None else bits
    entry = {
        "label": run.label,
        "group": method.group.value,
        "against": method.against,
        "baseline": method.baseline,
        "format": method.format,
        "config": method.config_json(),
        "bits_per_element": bits,
        "weight_bits_per_element_effective": weight_bits,
        "activation_bits_per_element_effective": act_bits,
        # One number per method for the iso-bit view: weights and activations weighted equally.
        "bits_per_element_effective": 0.5 * (weight_bits + act_bits),
        "salient_row_fraction": run.salient_fraction,
        **video_metrics(workload, reference.video, run.video),
        "latent_sqnr_per_step": run.step_sqnr_db,
        "final_latent_sqnr_db": run.step_sqnr_db[-1] if run.step_sqnr_db else None,
        "final_latent_sqnr": _per_sample_sqnr(reference.video, run.video),
        "layer_sqnr": {
            "activation_db": _summary([s["activation_sqnr_db"] for s in run.layer_stats]),
            "output_db": _summary([s["output_sqnr_db"] for s in run.layer_stats]),
            "per_layer": [{k: v for k, v in s.items() if k != "dialect_histogram"} for s in run.layer_stats],
        },
        "wall_time_s": run.wall_time_s,
        "step_time_s": run.step_time_s,
        "step_time_s_after_warmup": steady_step_time(run.step_time_s),
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
        "drift": run.drift,
    }


def evaluate(workload: Workload, settings: Settings, *, capture_root: Path | None) -> tuple[dict, dict[str, Run]]:
    """Run the reference and every method; returns (metrics dict, runs by key incl. "reference")."""
    reference, reference_steps = reference_run(workload, settings)
    runs = {"reference": reference}
    methods = settings.methods()
    amax = calibration_amax(workload, settings) if any(m.baseline for m in methods) else None
    for method in tqdm(methods, desc="methods", unit="method"):
        capture_dir = None
        if settings.capture and capture_root is not None and method.key == CAPTURE_METHOD:
            capture_dir = capture_root
        runs[method.key] = method_run(method, workload, settings, reference_steps, capture_dir, amax)
    ref_unit = metrics.to_unit(reference.video)
    result = {
        "reference": {
            "label": reference.label,
            "wall_time_s": reference.wall_time_s,
            "step_time_s": reference.step_time_s,
            "step_time_s_after_warmup": steady_step_time(reference.step_time_s),
            "peak_memory_mib": reference.peak_memory_mib,
            # Motion energy: mean |ref[t+1] - ref[t]| in [0, 1] pixel units, per sample and per frame pair.
            "motion_per_sample": metrics.motion_energy(ref_unit).tolist(),
            "motion_per_pair": metrics.motion_energy_per_pair(ref_unit).tolist(),
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

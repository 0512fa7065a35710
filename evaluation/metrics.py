"""Offline quality and cost metrics (ALGORITHMS.md section 5); pure torch, no downloaded weights.

Videos are float tensors (B, C, F, H, W) in the model's pixel range [-1, 1]; the image metrics map
them to [0, 1] first (clamped), so PSNR is in dB for a peak of 1. Latents and activations are
compared with SQNR = 10 log10(sum ref^2 / sum (ref - test)^2) in dB.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from golden.dit.memory import PeakMemory

#: Reported for identical inputs instead of +inf (keeps metrics.json finite), in dB.
MAX_DB = 100.0
#: SSIM constants of Wang et al. 2004 for a data range of 1: window 11, sigma 1.5, K1, K2.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _check_pair(ref: torch.Tensor, test: torch.Tensor) -> None:
    if ref.shape != test.shape:
        raise ValueError(f"Reference shape {tuple(ref.shape)} and test shape {tuple(test.shape)} differ.")
    if ref.dim() != 5:
        raise ValueError(f"Videos must be (B, C, F, H, W), got shape {tuple(ref.shape)}.")


def to_unit(video: torch.Tensor) -> torch.Tensor:
    """Map [-1, 1] pixels to [0, 1] (clamped), float64 for stable sums."""
    return ((video.double() + 1.0) / 2.0).clamp(0.0, 1.0)


def _db(signal: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    ratio = signal / noise.clamp_min(torch.finfo(torch.float64).tiny)
    return (10.0 * torch.log10(ratio)).clamp(max=MAX_DB)


def psnr_per_frame(ref: torch.Tensor, test: torch.Tensor) -> torch.Tensor:
    """PSNR of each frame, float64 (B, F) in dB, peak 1 after :func:`to_unit`."""
    _check_pair(ref, test)
    mse = (to_unit(ref) - to_unit(test)).square().mean(dim=(1, 3, 4))
    return _db(torch.ones_like(mse), mse)


def _gaussian_window(device: torch.device) -> torch.Tensor:
    coords = torch.arange(SSIM_WINDOW, dtype=torch.float64, device=device) - (SSIM_WINDOW - 1) / 2
    g = torch.exp(-coords.square() / (2 * SSIM_SIGMA**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim_per_frame(ref: torch.Tensor, test: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of each frame, float64 (B, F): Gaussian 11 x 11 window (sigma 1.5), valid region
    only, per channel, averaged over channels and positions (Wang et al. 2004)."""
    _check_pair(ref, test)
    b, c, f, h, w = ref.shape
    if min(h, w) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs frames of at least {SSIM_WINDOW} pixels a side, got {h} x {w}.")
    # (B, C, F, H, W) -> (B * F * C, 1, H, W): every channel of every frame is one image.
    x = to_unit(ref).permute(0, 2, 1, 3, 4).reshape(b * f * c, 1, h, w)
    y = to_unit(test).permute(0, 2, 1, 3, 4).reshape(b * f * c, 1, h, w)
    window = _gaussian_window(ref.device)

    def conv(t: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(t, window)

    mu_x, mu_y = conv(x), conv(y)
    var_x = conv(x * x) - mu_x.square()
    var_y = conv(y * y) - mu_y.square()
    cov = conv(x * y) - mu_x * mu_y
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2))
    return ssim_map.mean(dim=(1, 2, 3)).reshape(b, f, c).mean(dim=2)


def temporal_consistency_error(ref: torch.Tensor, test: torch.Tensor) -> float:
    """Mean |(ref[t+1] - ref[t]) - (test[t+1] - test[t])| over all frame pairs, in [0, 1] pixel units."""
    _check_pair(ref, test)
    if ref.shape[2] < 2:
        raise ValueError("Temporal consistency needs at least two frames.")
    ref_u, test_u = to_unit(ref), to_unit(test)
    d_ref = ref_u[:, :, 1:] - ref_u[:, :, :-1]
    d_test = test_u[:, :, 1:] - test_u[:, :, :-1]
    return float((d_ref - d_test).abs().mean())


def temporal_error_per_pair(ref: torch.Tensor, test: torch.Tensor) -> torch.Tensor:
    """float64 (B, F - 1): the temporal-consistency error of each frame pair (t, t + 1) of each sample;
    its mean is :func:`temporal_consistency_error`."""
    _check_pair(ref, test)
    if ref.shape[2] < 2:
        raise ValueError("Temporal consistency needs at least two frames.")
    ref_u, test_u = to_unit(ref), to_unit(test)
    d_ref = ref_u[:, :, 1:] - ref_u[:, :, :-1]
    d_test = test_u[:, :, 1:] - test_u[:, :, :-1]
    return (d_ref - d_test).abs().mean(dim=(1, 3, 4))


def motion_energy_per_pair(video_unit: torch.Tensor) -> torch.Tensor:
    """float64 (B, F - 1): mean |x[t+1] - x[t]| of each frame pair of a (B, C, F, H, W) video in [0, 1]."""
    if video_unit.dim() != 5 or video_unit.shape[2] < 2:
        raise ValueError(f"Motion energy needs (B, C, F, H, W) videos with two frames or more, got {tuple(video_unit.shape)}.")
    return (video_unit[:, :, 1:] - video_unit[:, :, :-1]).abs().double().mean(dim=(1, 3, 4))


def motion_energy(video_unit: torch.Tensor) -> torch.Tensor:
    """float64 (B,): mean absolute frame difference of each sample (the motion strata's key)."""
    return motion_energy_per_pair(video_unit).mean(dim=1)


def sqnr_db(ref: torch.Tensor, test: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio of ``test`` against ``ref`` in dB (capped at MAX_DB)."""
    if ref.shape != test.shape:
        raise ValueError(f"Reference shape {tuple(ref.shape)} and test shape {tuple(test.shape)} differ.")
    ref64, test64 = ref.double(), test.double()
    return float(_db(ref64.square().sum(), (ref64 - test64).square().sum()))


@dataclass
class Measurement:
    """Wall time in seconds and peak memory in MiB of one measured region: the extra memory the
    region needed (``golden.dit.memory.PeakMemory``: on CUDA the allocator's peak above its level at
    entry; on CPU the resident set size sampled every 5 ms above its size at entry)."""

    wall_time_s: float = 0.0
    peak_memory_mib: float = 0.0


class Measure:
    """Context manager filling a :class:`Measurement` (``with Measure(device) as m: ...``)."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.result = Measurement()
        self._peak = PeakMemory(self.device)

    def __enter__(self) -> Measurement:
        self._peak.__enter__()
        self._start = time.perf_counter()
        return self.result

    def __exit__(self, *exc) -> None:
        self._peak.__exit__(*exc)
        self.result.wall_time_s = time.perf_counter() - self._start
        self.result.peak_memory_mib = self._peak.bytes / 2**20

"""Means, 95 % confidence intervals and paired differences, and the wording that follows them.

The unit of every interval is one generated video: a (clip, seed) pair. ``interval(values)`` is the
Student-t interval ``mean +- t(0.975, n - 1) * sd / sqrt(n)``; ``paired(a, b)`` is the same interval
on the per-video differences ``a_i - b_i`` (the methods share clips, seeds and initial noise, so the
pairing removes the clip-to-clip spread). A difference is a *win* or a *loss* only when its interval
excludes zero; otherwise it is *within noise*. With a single video there is no interval (``None``)
and every difference is within noise.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

#: t(0.975, df) for df = 1 .. 30 (two-sided 95 %), the standard table values.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
_Z975 = 1.959964

WIN, LOSS, NOISE = "win", "loss", "within noise"


def t975(df: int) -> float:
    """Two-sided 95 % Student-t quantile; beyond the table, the Cornish-Fisher expansion (error < 1e-3)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def interval(values: Sequence[float]) -> dict:
    """``{"mean", "ci95": [lo, hi] or None, "sd", "n"}`` of the values."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("an interval needs at least one value")
    mean = statistics.fmean(values)
    if len(values) < 2:
        return {"mean": mean, "ci95": None, "sd": None, "n": len(values)}
    sd = statistics.stdev(values)
    half = t975(len(values) - 1) * sd / math.sqrt(len(values))
    return {"mean": mean, "ci95": [mean - half, mean + half], "sd": sd, "n": len(values)}


def paired(a: Sequence[float], b: Sequence[float]) -> dict:
    """The interval of the per-unit differences ``a - b`` (same units, same order)."""
    if len(a) != len(b):
        raise ValueError(f"paired values need the same units, got {len(a)} and {len(b)}")
    return interval([x - y for x, y in zip(a, b)])


def verdict(difference: dict, *, higher_is_better: bool) -> str:
    """WIN / LOSS when the difference's interval excludes zero (in the good / bad direction), else NOISE."""
    ci = difference["ci95"]
    if ci is None:
        return NOISE
    lo, hi = ci
    if lo > 0 or hi < 0:
        better = lo > 0 if higher_is_better else hi < 0
        return WIN if better else LOSS
    return NOISE


__all__ = ["LOSS", "NOISE", "WIN", "interval", "paired", "t975", "verdict"]

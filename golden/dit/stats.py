"""Per-layer statistics of a quantized model (feeds the evaluation report, ALGORITHMS.md section 5).

``with collect_stats(model) as stats:`` records, for every forward call of every ``QuantizedLinear``:
the activation SQNR (input rows against their decomposed reconstruction ``deq(Q1) + deq(Q2)``), the
output SQNR against the float layer (needs ``QuantConfig(retain_float_weights=True)``; None
otherwise) and a histogram of the dialect ids the activation blocks chose (dialect formats).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ..formats import get_format
from .model import quantized_layers

__all__ = ["LayerStats", "collect_stats"]


def sqnr_db(signal: float, noise: float) -> float:
    """10 log10(signal / noise); +inf for an exact reconstruction, -inf for an all-zero signal."""
    if noise == 0:
        return math.inf
    if signal == 0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


@dataclass
class LayerStats:
    """Sums over the calls of one layer (float64 sums of squares; int64 dialect counts)."""

    name: str
    calls: int = 0
    rows: int = 0
    salient_rows: int = 0
    act_signal: float = 0.0
    act_noise: float = 0.0
    out_signal: float = 0.0
    out_noise: float = 0.0
    has_output_reference: bool = False
    dialect_counts: torch.Tensor | None = field(default=None, repr=False)

    @property
    def activation_sqnr_db(self) -> float:
        return sqnr_db(self.act_signal, self.act_noise)

    @property
    def output_sqnr_db(self) -> float | None:
        """Output SQNR against the float layer, or None without retained float weights."""
        return sqnr_db(self.out_signal, self.out_noise) if self.has_output_reference else None

    def as_dict(self) -> dict:
        """JSON-ready summary (SQNRs in dB, dialect histogram as a list)."""
        return {
            "name": self.name,
            "calls": self.calls,
            "rows": self.rows,
            "salient_rows": self.salient_rows,
            "activation_sqnr_db": self.activation_sqnr_db,
            "output_sqnr_db": self.output_sqnr_db,
            "dialect_histogram": None if self.dialect_counts is None else self.dialect_counts.tolist(),
        }

    def observe(self, layer, rows: torch.Tensor, act, plan, y: torch.Tensor) -> None:
        x = rows.to(torch.float64)
        x_hat = act.dequantize().to(torch.float64)
        self.calls += 1
        self.rows += rows.shape[0]
        self.salient_rows += 0 if act.salient_rows is None else int(act.salient_rows.numel())
        self.act_signal += float((x**2).sum())
        self.act_noise += float(((x - x_hat) ** 2).sum())
        if layer.float_weight is not None:
            reference = torch.nn.functional.linear(
                rows.to(torch.float64), layer.float_weight.to(torch.float64),
                None if layer.bias is None else layer.bias.to(torch.float64),
            )  # fmt: skip
            self.has_output_reference = True
            self.out_signal += float((reference**2).sum())
            self.out_noise += float(((reference - y.to(torch.float64)) ** 2).sum())
        if act.main.dialect is not None:
            book = get_format(act.main.format).formatbook
            counts = torch.bincount(act.main.dialect.reshape(-1).to(torch.int64), minlength=book.num_dialects)
            self.dialect_counts = counts if self.dialect_counts is None else self.dialect_counts + counts


@contextlib.contextmanager
def collect_stats(model: nn.Module):
    """Context manager yielding ``{layer name: LayerStats}`` filled while the block runs."""
    layers = quantized_layers(model)
    if not layers:
        from ..formats import FormatError

        raise FormatError("collect_stats needs a model quantized with quantize_ (it has no QuantizedLinear)")
    stats = {name: LayerStats(name=name) for name in layers}
    for name, layer in layers.items():
        layer.observers.append(stats[name].observe)
    try:
        yield stats
    finally:
        for name, layer in layers.items():
            layer.observers.remove(stats[name].observe)

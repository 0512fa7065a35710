"""W4A4 baselines from the video-DiT quantization literature, on the same layers ``quantize_`` replaces.

Implemented from the papers' descriptions (fake-quant: every quantized operand is dequantized and
multiplied in float32), as the evaluation's methods:

- **SVDQuant-style** (Li et al., ICLR 2025, "SVDQuant: absorbing outliers by low-rank components"):
  smoothing ``X' = X / s``, ``W' = W diag(s)`` with ``s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)``
  (SmoothQuant; alpha = 0.5 here), then a rank-``r`` branch ``L1 L2 = SVD_r(W')`` kept in bf16, and
  the residual ``R = W' - L1 L2`` quantized in 4 bits: ``Y = X' L2^T L1^T + Q(X') Q(R)^T``. The
  residual format is any ``golden.FORMATS`` name (mxfp4, nvfp4, fb32, ...) or ``"int4"`` (symmetric
  INT4 in groups of 64 with an fp16 scale, SVDQuant's INT4 layout). The branch's input is the
  16-bit activation (as in the paper's fused kernel).
- **ViDiT-Q-style INT4** (Zhao et al., ICLR 2025, "ViDiT-Q"): channel balancing (the same
  smoothing, folded into the weight), INT4 weights with one fp16 scale per output channel, INT4
  activations with one dynamic fp16 scale per token; symmetric, levels -8 .. 7, scale = amax / 7.

Smoothing needs the per-input-channel activation maximum: ``calibrate`` records it with forward
pre-hooks during one float forward pass that the caller runs (on calibration inputs).

Bits are counted per element and reported on both operands: the 4-bit codes plus their scales,
plus for SVDQuant the bf16 factors ``16 r (N + K) / (N K)`` per weight element and the bf16
intermediate ``X' L2^T`` (``16 r / K`` per activation element).
"""

from __future__ import annotations

import contextlib
import enum
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..formats import FormatError, Selection, get_format
from ..quantize import quantize
from .architectures import architecture_of
from .linear import fast_dequantize

__all__ = ["BaselineConfig", "BaselineKind", "BaselineLinear", "baseline_layers", "calibrate", "quantize_baseline_"]

#: Pseudo-format names this module quantizes itself (everything else is a golden.FORMATS name).
INT4_GROUP = "int4"  # symmetric INT4, groups of INT4_GROUP_SIZE along K, fp16 scale
INT4_GROUP_SIZE = 64
INT4_LEVELS = 7  # scale = amax / 7, codes clamped to -8 .. 7
SCALE_BITS = 16  # fp16 scales of the INT4 layouts
BRANCH_BITS = 16  # bf16 low-rank factors and intermediate


class BaselineKind(enum.Enum):
    SVDQUANT = "svdquant"
    VIDITQ = "vidit-q"


@dataclass(frozen=True, kw_only=True)
class BaselineConfig:
    """``kind``; ``residual``: the 4-bit format of the residual (SVDQuant) -- a golden.FORMATS name or
    ``"int4"``; ``rank``: the low-rank branch's rank (SVDQuant; 0 = no branch); ``alpha``: smoothing
    migration strength (0 = no smoothing)."""

    kind: BaselineKind
    residual: str = "int4"
    rank: int = 0
    alpha: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", BaselineKind(self.kind))
        if self.residual != INT4_GROUP:
            get_format(self.residual)  # FormatError for an unknown name
        if not isinstance(self.rank, int) or self.rank < 0:
            raise FormatError(f"baseline rank must be a non-negative integer, got {self.rank!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise FormatError(f"baseline smoothing alpha must lie in [0, 1], got {self.alpha!r}")
        if self.kind is BaselineKind.VIDITQ and (self.rank or self.residual != INT4_GROUP):
            raise FormatError("the ViDiT-Q baseline is INT4 per channel / per token without a low-rank branch")

    def to_json(self) -> dict:
        return {**asdict(self), "kind": self.kind.value}


def _int4(x: torch.Tensor, group: int | None) -> torch.Tensor:
    """Fake-quantize rows ``(M, K)`` to symmetric INT4: one scale per row (``group=None``) or per
    ``group`` consecutive values (zero-padded), scale = amax / 7 rounded to fp16."""
    rows, k = x.shape
    if group is None:
        blocks = x[:, None, :]
    else:
        pad = (-k) % group
        blocks = torch.nn.functional.pad(x, (0, pad)).reshape(rows, -1, group)
    scale = (blocks.abs().amax(-1, keepdim=True) / INT4_LEVELS).to(torch.float16).to(torch.float32)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.clamp(torch.round(blocks / scale), -INT4_LEVELS - 1, INT4_LEVELS)
    return (q * scale).reshape(rows, -1)[:, :k]


def _fake_quant(x: torch.Tensor, fmt: str, *, weight: bool, per_channel: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(dequantized float32, dialect ids or None) of ``x`` ``(M, K)`` in ``fmt``."""
    if fmt == INT4_GROUP:
        return _int4(x.to(torch.float32), None if per_channel else INT4_GROUP_SIZE), None
    spec = get_format(fmt)
    select = (Selection.MSE if weight else None) if spec.is_dialect else None
    q = quantize(x.to(torch.float32), spec.name, select=select, pad=True)
    return fast_dequantize(q), q.dialect


def _bits(fmt: str, k: int, *, per_channel: bool) -> float:
    if fmt == INT4_GROUP:
        return 4.0 + SCALE_BITS / (k if per_channel else INT4_GROUP_SIZE)
    return get_format(fmt).bits_per_element()


@dataclass(frozen=True)
class _Activation:
    """What ``golden.dit.LayerStats.observe`` reads of a quantized activation."""

    x_hat: torch.Tensor
    main: object
    salient_rows: None = None

    def dequantize(self) -> torch.Tensor:
        return self.x_hat


@dataclass(frozen=True)
class _Codes:
    dialect: torch.Tensor | None
    format: str


class BaselineLinear(nn.Module):
    """A linear quantized by a baseline; ``observers`` as ``QuantizedLinear``'s (``LayerStats.observe``)."""

    def __init__(self, linear: nn.Linear, *, name: str, config: BaselineConfig, act_amax: torch.Tensor) -> None:
        super().__init__()
        self.name = name
        self.config = config
        weight = linear.weight.detach().to(torch.float32)
        self.out_features, self.in_features = weight.shape
        if config.alpha > 0:
            w_amax = weight.abs().amax(dim=0).clamp_min(1e-5)
            smooth = (act_amax.to(weight).clamp_min(1e-5) ** config.alpha) / (w_amax ** (1 - config.alpha))
            smooth = smooth.clamp_min(1e-5)
        else:
            smooth = torch.ones(self.in_features, dtype=torch.float32, device=weight.device)
        self.register_buffer("smooth", smooth, persistent=False)
        w_smoothed = weight * smooth[None, :]
        rank = min(config.rank, *weight.shape)
        if rank:
            u, s, vh = torch.linalg.svd(w_smoothed.double(), full_matrices=False)
            l1 = (u[:, :rank] * s[:rank]).to(torch.bfloat16).to(torch.float32)
            l2 = vh[:rank].to(torch.bfloat16).to(torch.float32)
            residual = w_smoothed - l1 @ l2
        else:
            l1 = l2 = None
            residual = w_smoothed
        self.rank = rank
        self.register_buffer("l1", l1, persistent=False)
        self.register_buffer("l2", l2, persistent=False)
        per_channel = config.kind is BaselineKind.VIDITQ
        self.per_channel = per_channel
        self.register_buffer("weight_deq", _fake_quant(residual, config.residual, weight=True, per_channel=per_channel)[0], persistent=False)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        self.register_buffer("float_weight", weight.clone(), persistent=False)
        n, k = self.out_features, self.in_features
        self.weight_bits_per_element = _bits(config.residual, k, per_channel=per_channel) + (
            BRANCH_BITS * rank * (n + k) / (n * k)
        )
        self.activation_bits_per_element = _bits(config.residual, k, per_channel=per_channel) + BRANCH_BITS * rank / k
        self.observers: list = []

    def extra_repr(self) -> str:
        c = self.config
        return f"in_features={self.in_features}, out_features={self.out_features}, {c.kind.value}, residual={c.residual}, rank={self.rank}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).to(torch.float32)
        smoothed = rows / self.smooth
        x_deq, dialect = _fake_quant(smoothed, self.config.residual, weight=False, per_channel=self.per_channel)
        y = x_deq @ self.weight_deq.T
        if self.rank:
            branch = smoothed.to(torch.bfloat16).to(torch.float32) @ self.l2.T
            y = y + branch.to(torch.bfloat16).to(torch.float32) @ self.l1.T
        if self.bias is not None:
            y = y + self.bias.to(torch.float32)
        if self.observers:
            act = _Activation(x_hat=x_deq * self.smooth, main=_Codes(dialect=dialect, format=self.config.residual))
            for observer in self.observers:
                observer(self, rows, act, None, y)
        return y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)


def _targets(model: nn.Module) -> list[tuple[str, nn.Module, str, nn.Linear]]:
    """``(qualified name, parent block, relative name, linear)`` of the linears ``quantize_`` would replace."""
    arch = architecture_of(model)
    out = []
    for prefix, block in arch.blocks(model):
        for rel, module in list(block.named_modules()):
            if isinstance(module, nn.Linear) and not arch.keeps_high_precision(rel):
                out.append((f"{prefix}.{rel}", block, rel, module))
    return out


@contextlib.contextmanager
def calibrate(model: nn.Module):
    """Record ``{layer name: per-input-channel max |x|}`` (float32 ``(K,)``) over the forward calls
    the ``with`` block makes on the float ``model``."""
    amax: dict[str, torch.Tensor] = {}
    handles = []
    for name, _, _, linear in _targets(model):

        def hook(module, args, name=name):
            x = args[0].detach().reshape(-1, args[0].shape[-1]).abs().amax(dim=0).to(torch.float32)
            amax[name] = x if name not in amax else torch.maximum(amax[name], x)

        handles.append(linear.register_forward_pre_hook(hook))
    try:
        yield amax
    finally:
        for handle in handles:
            handle.remove()


def quantize_baseline_(model: nn.Module, config: BaselineConfig, act_amax: dict[str, torch.Tensor]) -> list[str]:
    """Replace the block linears of ``model`` (in place) by ``BaselineLinear``; returns their names."""
    names = []
    with torch.no_grad():
        for name, block, rel, linear in _targets(model):
            if name not in act_amax:
                raise FormatError(f"layer {name!r} was never called during calibration")
            layer = BaselineLinear(linear, name=name, config=config, act_amax=act_amax[name])
            parent_name, _, child = rel.rpartition(".")
            setattr(block.get_submodule(parent_name) if parent_name else block, child, layer)
            names.append(name)
    return names


def baseline_layers(model: nn.Module) -> dict[str, BaselineLinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, BaselineLinear)}

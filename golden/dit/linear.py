"""The quantized linear layer and its functional core (ALGORITHMS.md sections 1-3).

For an input of ``M`` rows ``X`` (float, ``(M, K)``), a quantized weight ``W`` (``(N, K)``), the
salient rows ``S`` (indices into the ``M`` rows) and an optional per-row candidate mask:

    Q1 = Q(X; mask)                       LUT selection restricted by the mask (SeDA), else the
                                          format's activation rule
    R  = X_S - deq(Q1_S)                  float32 residual of the salient rows
    Q2 = Q(R)                             same format, selection and row mask
    Y  = Q1 W  ;  Y[S] = Y[S] + Q2 W      one extra GEMM over |S| rows
    out = Y + bias                        float32, then cast to the input dtype

``Execution.INTEGER`` computes each ``Q W`` with ``golden.quantized_matmul`` (bit-exact, NUMERICS
section 4) and the additions in binary32 in the order written above. ``Execution.FAKE_QUANT``
computes ``deq(Q) @ deq(W).T`` in float32 (same additions); the two differ only by float32
rounding of the matmul (README.md, "Fake-quant vs integer tolerance").
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import torch
from torch import nn

from ..formats import FormatError, FormatKind, Scale, get_format
from ..matmul import quantized_matmul
from ..quantize import QuantizedTensor, fake_quantize, quantize
from ..select import device_table
from .config import Backend, Execution, QuantConfig
from .saliency import choose_families

__all__ = [
    "ActivationPlan",
    "DecomposedActivation",
    "FakeQuantActivation",
    "QUANTIZED_STATE_KEYS",
    "QuantizedLinear",
    "TokenRole",
    "decomposed_matmul",
    "fake_quantize_activation",
    "fast_dequantize",
    "quantize_activation",
    "quantize_weight",
]


class TokenRole(enum.Enum):
    """Which tokens a linear's input rows are."""

    #: ``(batch, L, K)`` with the video tokens at positions ``0 .. T - 1`` (text may follow).
    VIDEO = "video"
    #: Text (or other conditioning) tokens only: never salient, never grouped.
    TEXT = "text"


@dataclass(frozen=True)
class ActivationPlan:
    """Per-call decomposition inputs of one linear.

    ``salient_rows``: int64 ``(n,)`` ascending indices into the flattened ``M`` rows, or None.
    ``candidate_mask``: bool ``(M, D)`` allowed dialects per row (SeDA), or None for all.
    """

    salient_rows: torch.Tensor | None = None
    candidate_mask: torch.Tensor | None = None


def _signed_values(format_name: str, device) -> torch.Tensor:
    """float32 ``(D, 16)`` on ``device``: the value of element code ``c`` in dialect ``d``, in grid
    units, signed by bit 3 (so code 8 is -0.0)."""
    def build():
        magnitude = get_format(format_name).formatbook.units.to(torch.float32)
        return torch.cat((magnitude, -magnitude), dim=1)

    return device_table(format_name, "signed_values", device, build)


def fast_dequantize(q: QuantizedTensor) -> torch.Tensor:
    """``q.dequantize()`` bit for bit, by table lookup and one float32 power-of-two scaling.

    E8M0 dialect formats and MXFP4: ``value = h * 2^(e - g)`` with ``|h| <= 31`` and ``e - g`` in
    [-129, 126], so ``2^(e - g)`` and the product are exact in float32 (subnormals included; an
    overflow is inf in both). E4M3 scales (NVFP4 variants, E4M3 dialects) use ``q.dequantize()``.
    """
    spec = q.spec
    if spec.kind not in (FormatKind.DIALECT, FormatKind.MXFP4) or spec.scale is not Scale.E8M0:
        return q.dequantize()
    table = _signed_values(spec.name, q.codes.device)
    codes = q.codes.to(torch.int64).unflatten(-1, (q.num_blocks, q.block))
    if q.dialect is not None:
        codes = codes + (q.dialect.to(torch.int64) * table.shape[1])[..., None]
    values = table.reshape(-1)[codes]
    scale = torch.pow(2.0, (q.unbiased_exponent() - spec.grid.shift).to(torch.float32))  # exact powers of two
    return (values * scale[..., None]).flatten(-2)[..., : q.length]


@dataclass(frozen=True)
class DecomposedActivation:
    """``Q1`` of all rows and ``Q2`` of the salient rows' residual (None without decomposition)."""

    main: QuantizedTensor
    residual: QuantizedTensor | None = None
    salient_rows: torch.Tensor | None = None

    def dequantize(self) -> torch.Tensor:
        """float32 ``(M, K)``: ``deq(Q1)`` with ``deq(Q2)`` added to the salient rows."""
        x_hat = fast_dequantize(self.main)
        if self.residual is not None:
            x_hat[self.salient_rows] = x_hat[self.salient_rows] + fast_dequantize(self.residual)
        return x_hat


@dataclass(frozen=True)
class FakeQuantActivation:
    """``DecomposedActivation.main`` and ``.residual`` already dequantized (float32 ``(M, K)`` and
    ``(|S|, K)``): what the fake-quant matmul reads, formed without the codes."""

    main: torch.Tensor
    residual: torch.Tensor | None = None
    salient_rows: torch.Tensor | None = None


def fake_quantize_activation(x: torch.Tensor, config: QuantConfig, plan: ActivationPlan) -> FakeQuantActivation:
    """``quantize_activation`` followed by ``fast_dequantize`` of both parts, bit for bit, by
    ``golden.fake_quantize`` (the fake-quant forward's path)."""
    mask = None if plan.candidate_mask is None else plan.candidate_mask[:, None, :]
    select = config.activation_select
    main = fake_quantize(x, config.format, block=config.block, select=select, mask=mask, pad=True)
    rows = plan.salient_rows
    if rows is None or rows.numel() == 0:
        return FakeQuantActivation(main=main)
    residual = x[rows].to(torch.float32) - main[rows]
    residual_mask = None if mask is None else mask[rows]
    second = fake_quantize(residual, config.format, block=config.block, select=select, mask=residual_mask, pad=True)
    return FakeQuantActivation(main=main, residual=second, salient_rows=rows)


def quantize_weight(weight: torch.Tensor, config: QuantConfig) -> QuantizedTensor:
    """Quantize an ``(N, K)`` float weight once, offline, blocks along K (MSE for dialects)."""
    return quantize(weight.detach(), config.format, block=config.block, select=config.weight_select, pad=True)


def quantize_activation(x: torch.Tensor, config: QuantConfig, plan: ActivationPlan) -> DecomposedActivation:
    """Quantize activation rows ``x`` ``(M, K)`` per ``plan`` (see the module docstring)."""
    mask = None if plan.candidate_mask is None else plan.candidate_mask[:, None, :]
    main = quantize(
        x, config.format, block=config.block, select=config.activation_select, mask=mask, pad=True
    )
    rows = plan.salient_rows
    if rows is None or rows.numel() == 0:
        return DecomposedActivation(main=main)
    residual = x[rows].to(torch.float32) - fast_dequantize(main)[rows]
    residual_mask = None if mask is None else mask[rows]  # a salient row's residual keeps its row's mask
    second = quantize(
        residual,
        config.format,
        block=config.block,
        select=config.activation_select,
        mask=residual_mask,
        pad=True,
    )
    return DecomposedActivation(main=main, residual=second, salient_rows=rows)


def decomposed_matmul(
    act: DecomposedActivation | FakeQuantActivation,
    weight: QuantizedTensor,
    *,
    execution: Execution,
    weight_deq: torch.Tensor | None = None,
) -> torch.Tensor:
    """``Y = Q1 W ; Y[S] += Q2 W`` as float32 ``(M, N)`` (no bias). A ``FakeQuantActivation``
    (fake-quant only) gives the same result as the ``DecomposedActivation`` it dequantizes."""
    if isinstance(act, FakeQuantActivation):
        if execution is not Execution.FAKE_QUANT:
            raise FormatError("a FakeQuantActivation holds no codes; the integer path needs a DecomposedActivation")
        w = fast_dequantize(weight) if weight_deq is None else weight_deq
        y = act.main @ w.T
        if act.residual is not None:
            y[act.salient_rows] = y[act.salient_rows] + act.residual @ w.T
        return y
    if execution is Execution.INTEGER:
        y = quantized_matmul(act.main, weight)
        if act.residual is not None:
            y[act.salient_rows] = y[act.salient_rows] + quantized_matmul(act.residual, weight)
        return y
    w = fast_dequantize(weight) if weight_deq is None else weight_deq
    y = fast_dequantize(act.main) @ w.T
    if act.residual is not None:
        y[act.salient_rows] = y[act.salient_rows] + fast_dequantize(act.residual) @ w.T
    return y


@dataclass(frozen=True)
class _CacheKey:
    config: QuantConfig
    plan: ActivationPlan


def _same(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    if a is None or b is None:
        return a is b
    return a is b or (a.shape == b.shape and torch.equal(a, b))


#: ``QuantizedTensor`` fields a ``QuantizedLinear`` keeps as persistent buffers ``weight_<field>``.
WEIGHT_FIELDS = ("codes", "exponent", "dialect", "block_scale")
#: Every state-dict entry of a ``QuantizedLinear`` that holds its quantized weight (``bias`` aside).
QUANTIZED_STATE_KEYS = (*(f"weight_{f}" for f in WEIGHT_FIELDS), "weight_tensor_scale_bits", "weight_format")


def _format_tag(format_name: str, block: int) -> torch.Tensor:
    """uint8 bytes of ``"<format>/<block>"``: the ``weight_format`` buffer a state dict carries."""
    return torch.tensor(list(f"{format_name}/{block}".encode()), dtype=torch.uint8)


class QuantizedLinear(nn.Module):
    """Drop-in replacement of an ``nn.Linear`` with W4A4 block quantization.

    The quantized weight is ``weight_q`` (a ``golden.QuantizedTensor`` view of the layer's
    buffers ``weight_codes``, ``weight_exponent``, ``weight_dialect``, ``weight_block_scale`` and
    ``weight_tensor_scale_bits``, the float32 tensor scale as int32 bits so that converting the
    model's dtype cannot round it), so ``state_dict()`` / ``load_state_dict()`` / ``torch.save``
    carry it and ``.to(device)`` moves it; a ``weight_format`` buffer names the format and block,
    checked on load. ``bias`` stays float. With a ``block_state`` and ``TokenRole.VIDEO`` the layer
    applies the decomposition and SeDA state its transformer block's attention processor computed.
    """

    def __init__(
        self,
        *,
        name: str,
        weight_q: QuantizedTensor,
        bias: torch.Tensor | None,
        config: QuantConfig,
        role: TokenRole = TokenRole.VIDEO,
        block_state=None,
        float_weight: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if weight_q.format != config.format or weight_q.block != config.block or len(weight_q.shape) != 2:
            raise FormatError(
                f"layer {name!r}: weight is {weight_q.format}/{weight_q.block} of shape {weight_q.shape}, "
                f"expected a 2-D {config.format}/{config.block} weight"
            )
        self.name = name
        self.out_features, self.in_features = weight_q.shape
        self.config = config
        for field in WEIGHT_FIELDS:
            value = getattr(weight_q, field)
            self.register_buffer(f"weight_{field}", None if value is None else value.detach())
        scale = weight_q.tensor_scale
        bits = None if scale is None else scale.detach().to(torch.float32).reshape(()).clone().view(torch.int32)
        self.register_buffer("weight_tensor_scale_bits", bits)
        self.register_buffer("weight_format", _format_tag(config.format, config.block).to(weight_q.codes.device))
        self.role = TokenRole(role)
        self.block_state = block_state
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)
        self.register_buffer(
            "float_weight", None if float_weight is None else float_weight.detach().clone(), persistent=False
        )
        self._weight_deq: torch.Tensor | None = None
        self._families: dict[int, tuple[int, torch.Tensor]] = {}
        #: Observers set by ``collect_stats`` / ``capture``: called as ``observer(layer, x, act, y)``.
        self.observers: list = []

    @classmethod
    def from_linear(cls, linear: nn.Linear, *, name: str, config: QuantConfig, **kwargs) -> QuantizedLinear:
        float_weight = linear.weight if config.retain_float_weights else None
        return cls(
            name=name, weight_q=quantize_weight(linear.weight, config), bias=linear.bias,
            config=config, float_weight=float_weight, **kwargs,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, format={self.config.format}, "
            f"block={self.config.block}, role={self.role.value}"
        )

    @property
    def weight_q(self) -> QuantizedTensor:
        """The quantized weight, ``(out_features, in_features)``, a view of the layer's buffers."""
        bits = self.weight_tensor_scale_bits
        return QuantizedTensor(
            format=self.config.format, block=self.config.block, length=self.in_features,
            codes=self.weight_codes, exponent=self.weight_exponent, dialect=self.weight_dialect,
            block_scale=self.weight_block_scale, tensor_scale=None if bits is None else bits.view(torch.float32),
        )  # fmt: skip

    def _apply(self, fn, recurse=True):
        # .to() / .cuda() / .to_empty() move the buffers; what is derived from them follows: the
        # dequantized weight is rebuilt on first use, the SeDA families (int64) move with fn.
        super()._apply(fn, recurse)
        self._weight_deq = None
        self._families = {slot: (version, fn(families)) for slot, (version, families) in self._families.items()}
        return self

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        tag = state_dict.get(prefix + "weight_format")
        if tag is not None and not torch.equal(tag.cpu(), self.weight_format.cpu()):
            stored = bytes(tag.cpu().tolist()).decode(errors="replace")
            raise FormatError(
                f"layer {self.name!r}: the state dict holds a {stored} weight, the layer is "
                f"{self.config.format}/{self.config.block}; quantize the model with the checkpoint's config"
            )
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
        self._weight_deq = None
        self._families.clear()

    @property
    def weight_deq(self) -> torch.Tensor:
        """float32 ``(N, K)`` dequantized weight (derived from ``weight_q`` on first use)."""
        if self._weight_deq is None:
            self._weight_deq = fast_dequantize(self.weight_q)
        return self._weight_deq

    # -- decomposition and SeDA state ---------------------------------------------------------

    def plan(self, x: torch.Tensor) -> ActivationPlan:
        """Salient rows and candidate masks of this call's input ``x`` ``(batch, L, K)``."""
        state = self.block_state
        if state is None or self.role is TokenRole.TEXT or self.config.decomposition is None:
            return ActivationPlan()
        call = state.model.call
        slot = state.slot()
        if call is None or slot.salient is None:
            return ActivationPlan()
        if x.dim() != 3:
            raise FormatError(
                f"layer {self.name!r} expected (batch, tokens, features) input, got shape {tuple(x.shape)}"
            )
        batch, length, _ = x.shape
        tokens, offset = call.num_video_tokens, call.video_offset
        if length < offset + tokens or slot.salient.shape[0] != batch:
            raise FormatError(
                f"layer {self.name!r} got input {tuple(x.shape)}, expected batch "
                f"{slot.salient.shape[0]} and at "
                f"least the {tokens} video tokens of this call after {offset} leading tokens"
            )
        base = torch.arange(batch, device=x.device)[:, None] * length + offset
        rows = (base + slot.salient).reshape(-1)
        mask = None
        if slot.groups is not None:
            families = self._group_families(x[:, offset:], slot, call.slot)  # (batch, k)
            token_family = torch.where(
                slot.groups >= 0,
                torch.gather(families, 1, slot.groups.clamp(min=0)),
                torch.full_like(slot.groups, -1),
            )  # (batch, T)
            book = get_format(self.config.format).formatbook
            row_family = torch.full((batch, length), -1, dtype=torch.int64, device=x.device)
            row_family[:, offset : offset + tokens] = token_family
            row_family = row_family.reshape(-1)
            dialect_family = torch.arange(book.num_dialects, device=x.device) // book.family_size
            mask = (row_family[:, None] < 0) | (dialect_family[None, :] == row_family[:, None])
        # Without requantize the salient tokens only anchor SeDA's groups (no second quantization).
        salient = rows if self.config.decomposition.requantize else None
        return ActivationPlan(salient_rows=salient, candidate_mask=mask)

    def _group_families(self, x: torch.Tensor, slot, slot_index: int) -> torch.Tensor:
        """This layer's family per group; recomputed the first time it sees a new grouping."""
        cached = self._families.get(slot_index)
        if cached is None or cached[0] != slot.version:
            anchor_rows = torch.gather(x, 1, slot.anchors[:, :, None].expand(-1, -1, x.shape[-1]))
            cached = (slot.version, choose_families(anchor_rows, block=self.config.block, format=self.config.format))
            self._families[slot_index] = cached
        return cached[1]

    def reset_state(self) -> None:
        self._families.clear()

    # -- forward ------------------------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise FormatError(
                f"layer {self.name!r} expects {self.in_features} input features, got shape {tuple(x.shape)}"
            )
        plan = self.plan(x)
        rows = x.reshape(-1, self.in_features)
        triton = self.config.backend is Backend.TRITON
        act = self._activation(x, rows, plan) if not triton or self.observers else None
        if triton:
            y = self._triton(rows, plan)
        else:
            y = decomposed_matmul(
                act, self.weight_q, execution=self.config.execution,
                weight_deq=self.weight_deq if self.config.execution is Execution.FAKE_QUANT else None,
            )  # fmt: skip
        if self.bias is not None:
            y = y + self.bias.to(torch.float32)
        for observer in self.observers:
            observer(self, rows, act, plan, y)
        return y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)

    def _activation(
        self, x: torch.Tensor, rows: torch.Tensor, plan: ActivationPlan
    ) -> DecomposedActivation | FakeQuantActivation:
        """``quantize_activation`` (or, for a fake-quant forward on the torch backend that no
        observer watches, ``fake_quantize_activation``), reusing the previous layer's result when
        it quantized the very same input tensor (unmodified) under an equal plan (q/k/v of one
        attention)."""
        fake = (
            self.config.execution is Execution.FAKE_QUANT and self.config.backend is Backend.TORCH
            and not self.observers
        )  # fmt: skip
        kind = FakeQuantActivation if fake else DecomposedActivation
        model = None if self.block_state is None else self.block_state.model
        cached = None if model is None else model.last_activation
        if (
            cached is not None
            and isinstance(cached[3], kind)
            and cached[0] is x
            and cached[1] == x._version
            and cached[2].config == self.config
            and _same(cached[2].plan.salient_rows, plan.salient_rows)
            and _same(cached[2].plan.candidate_mask, plan.candidate_mask)
        ):
            return cached[3]
        act = (fake_quantize_activation if fake else quantize_activation)(rows, self.config, plan)
        if model is not None:
            model.last_activation = (x, x._version, _CacheKey(config=self.config, plan=plan), act)
        return act

    def _triton(self, rows: torch.Tensor, plan: ActivationPlan) -> torch.Tensor:
        try:
            from kernels import w4a4_linear
        except ImportError as err:
            raise FormatError(
                f"Backend.TRITON needs kernels.w4a4_linear, which is not importable ({err})"
            ) from None
        mask = None if plan.candidate_mask is None else plan.candidate_mask[:, None, :]
        return w4a4_linear(
            rows, self.weight_q, candidate_mask=mask, salient_rows=plan.salient_rows, mode="exact"
        )

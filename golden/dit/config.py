"""Typed configuration of model-level quantization (docs/ALGORITHMS.md sections 1-3).

Every number here is a default of a frozen dataclass; the evaluation sweeps them. Validation happens
in ``__post_init__`` with one sentence naming the bad value, so a bad configuration fails before any
model is touched.
"""

from __future__ import annotations

import enum
import math
from dataclasses import asdict, dataclass, field

from ..formats import FormatError, Selection, get_format

__all__ = [
    "Backend",
    "DecompositionConfig",
    "Execution",
    "QuantConfig",
    "QuantReport",
    "SedaConfig",
]


class Execution(enum.Enum):
    """How a quantized linear computes its output from the quantized operands."""

    #: Dequantize both operands, then a float32 matmul (fast; for evaluation).
    FAKE_QUANT = "fake-quant"
    #: The bit-exact integer matmul of NUMERICS.md section 4 (``golden.quantized_matmul``).
    INTEGER = "integer"


class Backend(enum.Enum):
    """Where the quantized matmul runs."""

    #: The golden PyTorch code (CPU or GPU tensors).
    TORCH = "torch"
    #: ``kernels.w4a4_linear`` (Triton, exact mode); needs the kernels package and a GPU or the
    #: Triton interpreter. Imported lazily on the first forward call.
    TRITON = "triton"


#: How ``DecompositionConfig.saliency`` may choose the salient tokens.
SALIENCY_SOURCES = ("attention", "norm", "random")

#: Default memory budget of one chunk of the saliency pass (bytes of one float32 probability tile).
DEFAULT_SALIENCY_CHUNK_BYTES = 8 << 20


@dataclass(frozen=True, kw_only=True)
class DecompositionConfig:
    """Attention-guided activation decomposition (ALGORITHMS.md section 2).

    Attributes:
        rho: fraction of video tokens that are salient; ``|S| = ceil(rho * T)``.
        profile_every: ``K_s``; saliency is profiled on the first denoising step and then every
            ``K_s`` steps (steps ``0, K_s, 2 K_s, ...``).
        max_queries: saliency averages the attention mass over at most this many video queries
            (a strided subset ``0, s, 2s, ...`` with ``s = ceil(T / max_queries)``).
        chunk_bytes: bytes of float32 probabilities one saliency chunk may hold
            (``batch * heads * chunk_queries * keys * 4``); the pass's peak extra memory is a small
            multiple of it (README.md, "Saliency memory bound").
        saliency: how the salient tokens are chosen (an ablation knob): ``"attention"`` (the
            attention mass they receive, the method), ``"norm"`` (largest L2 norm of the token's
            query vector) or ``"random"`` (seeded by step and block).
        requantize: re-quantize the salient rows' residual (AD). ``False`` keeps the salient tokens
            only as SeDA anchors ("SeDA without AD").
    """

    rho: float = 0.05
    profile_every: int = 5
    max_queries: int = 256
    chunk_bytes: int = DEFAULT_SALIENCY_CHUNK_BYTES
    saliency: str = "attention"
    requantize: bool = True

    def __post_init__(self) -> None:
        if not (isinstance(self.rho, (int, float)) and 0.0 <= self.rho <= 1.0):
            raise FormatError(f"decomposition rho must be a fraction in [0, 1], got {self.rho!r}")
        for name in ("profile_every", "max_queries", "chunk_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise FormatError(f"decomposition {name} must be a positive integer, got {value!r}")
        if self.saliency not in SALIENCY_SOURCES:
            raise FormatError(
                f"decomposition saliency must be one of {', '.join(SALIENCY_SOURCES)}, got {self.saliency!r}"
            )
        if not isinstance(self.requantize, bool):
            raise FormatError(f"decomposition requantize must be True or False, got {self.requantize!r}")

    def num_salient(self, num_video_tokens: int) -> int:
        """``ceil(rho * T)``, computed so that float noise never adds a token (rho * T exact ints)."""
        return min(num_video_tokens, math.ceil(round(self.rho * num_video_tokens, 9)))


@dataclass(frozen=True, kw_only=True)
class SedaConfig:
    """Semantic-aware dialect assignment with FB32 families (ALGORITHMS.md section 3).

    Attributes:
        k_c: tokens each anchor gathers (besides itself).
        window: ``(frames, rows, cols)`` half-widths of the spatio-temporal window around an anchor,
            in latent patch units (``|frame delta| <= window[0]`` and so on).
        regroup_every: ``K_g``; groups and families are recomputed on the first step and every
            ``K_g`` steps.
    """

    k_c: int = 8
    window: tuple[int, int, int] = (1, 4, 4)
    regroup_every: int = 10

    def __post_init__(self) -> None:
        for name in ("k_c", "regroup_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise FormatError(f"SeDA {name} must be a positive integer, got {value!r}")
        window = tuple(self.window)
        if len(window) != 3 or any(not isinstance(w, int) or w < 0 for w in window):
            raise FormatError(
                f"SeDA window must be three non-negative integers (frames, rows, cols), got {self.window!r}"
            )
        object.__setattr__(self, "window", window)


@dataclass(frozen=True, kw_only=True)
class QuantConfig:
    """What ``quantize_`` does to a diffusers video transformer.

    Attributes:
        format: a ``golden.FORMATS`` name (activations and weights share it).
        block: block size; ``None`` = the format's default.
        activation_select: dialect selection of activations; ``None`` = the format's default
            (LUT for fb32, two-stage for dialectfp4). Dialect formats only.
        weight_select: dialect selection of weights; ``None`` = MSE (``golden.weight_selection``).
        decomposition: attention-guided activation decomposition, or ``None`` for none.
        seda: semantic-aware dialect assignment (needs fb32 with LUT selection and
            ``decomposition``), or ``None``.
        execution: fake-quant or the bit-exact integer path.
        backend: golden torch code or the Triton kernels (``Execution.INTEGER`` semantics, exact mode).
        quantize_attention_products: also fake-quantize QK^T and PV of the self-attention
            (q, k along the head dimension; P along keys; V along tokens). Fake-quant only.
        retain_float_weights: keep each linear's float weight beside its quantized copy, so
            ``collect_stats`` can report output SQNR against the float layer (costs memory).
    """

    format: str = "fb32"
    block: int | None = None
    activation_select: Selection | None = None
    weight_select: Selection | None = None
    decomposition: DecompositionConfig | None = None
    seda: SedaConfig | None = None
    execution: Execution = Execution.FAKE_QUANT
    backend: Backend = Backend.TORCH
    quantize_attention_products: bool = False
    retain_float_weights: bool = False

    def __post_init__(self) -> None:
        spec = get_format(self.format)
        object.__setattr__(self, "format", spec.name)
        object.__setattr__(self, "block", spec.check_block(self.block))
        for name in ("activation_select", "weight_select"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Selection):
                try:
                    value = Selection(value)
                except ValueError:
                    raise FormatError(f"{name} must be a golden.Selection, got {value!r}") from None
                object.__setattr__(self, name, value)
        object.__setattr__(self, "activation_select", spec.check_select(self.activation_select))
        weight = (
            self.weight_select
            if self.weight_select is not None
            else (Selection.MSE if spec.is_dialect else None)
        )
        object.__setattr__(self, "weight_select", spec.check_select(weight))
        for name, kind in (("execution", Execution), ("backend", Backend)):
            value = getattr(self, name)
            if not isinstance(value, kind):
                try:
                    object.__setattr__(self, name, kind(value))
                except ValueError:
                    names = ", ".join(k.value for k in kind)
                    raise FormatError(f"{name} must be one of {names}, got {value!r}") from None
        if self.decomposition is not None and not isinstance(self.decomposition, DecompositionConfig):
            raise FormatError(
                f"decomposition must be a DecompositionConfig or None, got {self.decomposition!r}"
            )
        if self.seda is not None:
            if not isinstance(self.seda, SedaConfig):
                raise FormatError(f"seda must be a SedaConfig or None, got {self.seda!r}")
            if not spec.is_dialect or spec.formatbook.family_size is None or self.activation_select is not Selection.LUT:
                raise FormatError(
                    f"SeDA assigns formatbook families and needs a dialect format with families (fb32 or a "
                    f"fitted book) and LUT selection, got format {spec.name!r} with {self.activation_select}"
                )
            if self.decomposition is None:
                raise FormatError("SeDA anchors are the salient tokens, so it needs a DecompositionConfig")
        if self.quantize_attention_products and self.execution is not Execution.FAKE_QUANT:
            raise FormatError("quantize_attention_products is a fake-quant option; use Execution.FAKE_QUANT")

    @property
    def needs_saliency(self) -> bool:
        return self.decomposition is not None

    def profile_step(self, step: int) -> bool:
        """Whether denoising step ``step`` (0-based) runs the saliency pass."""
        if self.decomposition is None:
            return False
        if step % self.decomposition.profile_every == 0:
            return True
        return self.seda is not None and step % self.seda.regroup_every == 0

    def regroup_step(self, step: int) -> bool:
        return self.seda is not None and step % self.seda.regroup_every == 0

    def to_json(self) -> dict:
        """A JSON-ready dict (enums as their values) that ``from_json`` turns back into this config."""
        out = asdict(self)
        for name in ("activation_select", "weight_select", "execution", "backend"):
            value = getattr(self, name)
            out[name] = None if value is None else value.value
        if out["seda"] is not None:
            out["seda"]["window"] = list(out["seda"]["window"])
        return out

    @classmethod
    def from_json(cls, data: dict) -> QuantConfig:
        try:
            data = dict(data)
            if data.get("decomposition") is not None:
                data["decomposition"] = DecompositionConfig(**data["decomposition"])
            if data.get("seda") is not None:
                seda = dict(data["seda"])
                seda["window"] = tuple(seda["window"])
                data["seda"] = SedaConfig(**seda)
            return cls(**data)
        except TypeError as err:
            raise FormatError(f"quantization config {data!r} is malformed ({err})") from None


@dataclass(frozen=True, kw_only=True)
class QuantReport:
    """What ``quantize_`` did.

    Attributes:
        config: the configuration applied.
        architecture: the supported-architecture name (e.g. ``"hunyuan-video"``).
        quantized_layers: fully qualified names of the replaced ``nn.Linear`` modules, in model order.
        kept_layers: names of ``nn.Linear`` modules left in high precision.
        wall_time_s: seconds spent quantizing (weights and module replacement).
        peak_memory_bytes: the extra memory quantization needed (``golden.dit.memory``): the CUDA
            allocator's peak above its level at entry for a model on a GPU, else the resident set
            size sampled every 5 ms above its size at entry.
        weight_bits: total bits of the quantized weights (codes and per-block metadata).
    """

    config: QuantConfig
    architecture: str
    quantized_layers: tuple[str, ...]
    kept_layers: tuple[str, ...]
    wall_time_s: float
    peak_memory_bytes: int
    weight_bits: int = field(default=0)

"""Blocking, input validation and the dialect front-end (docs/NUMERICS.md sections 1 and 2.1 steps 1-3).

All arithmetic here is exact: inputs are widened to a float type that holds them exactly, scaling
by powers of two goes through ``exact_ldexp`` (which never forms an out-of-range power of two), and
``floor(log2 |x|)`` comes from ``frexp``.
"""

from __future__ import annotations

import torch

from .formats import EXPONENT_BIAS, EXPONENT_MAX, EXPONENT_MIN, FormatError, Grid

__all__ = [
    "SUPPORTED_DTYPES",
    "BlockedTensor",
    "InputError",
    "exact_ldexp",
    "floor_log2",
    "front_end",
]

SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


class InputError(ValueError):
    """A tensor the quantizer cannot take: wrong dtype or shape, or a NaN/Inf in a block."""


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The float type in which every rule is evaluated exactly for inputs of ``dtype``."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def exact_ldexp(x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """``x * 2**n`` exactly (up to overflow/underflow of the result); ``n`` broadcasts against ``x``.

    ``torch.ldexp`` forms ``2**n`` in the dtype of ``x``, which overflows for float32 and n >= 128;
    here the power is applied in steps of at most 2**100 (float32) / 2**1000 (float64).
    """
    n = torch.as_tensor(n, dtype=torch.int64)
    limit = 100 if x.dtype != torch.float64 else 1000
    two = torch.tensor(2.0, dtype=x.dtype)
    out = x
    while True:
        step = n.clamp(-limit, limit)
        out = out * torch.pow(two, step.to(x.dtype))  # powers are formed on n's (small) shape
        n = n - step
        if not n.any():
            return out


def floor_log2(mag: torch.Tensor) -> torch.Tensor:
    """floor(log2(mag)) as int64 for positive finite ``mag`` (exact, subnormals included)."""
    _, ex = torch.frexp(mag)  # mag = m * 2**ex, m in [0.5, 1)
    return ex.to(torch.int64) - 1


def check_finite(blocks: torch.Tensor, amax: torch.Tensor) -> None:
    """Raise InputError naming the first block that holds a NaN or an infinity.

    ``amax`` is the per-block max |x|; a NaN or an infinity anywhere in a block makes it non-finite.
    """
    bad = ~torch.isfinite(amax)
    if bad.any():
        flat = bad.reshape(-1).nonzero()[0].item()
        index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), bad.shape))
        kind = "a NaN" if torch.isnan(blocks.reshape(-1, blocks.shape[-1])[flat]).any() else "an infinity"
        raise InputError(f"block {index} contains {kind}; the quantizer needs finite values")


FLOAT32_MAX = torch.finfo(torch.float32).max


def check_float32_range(amax: torch.Tensor) -> None:
    """Raise InputError naming the first block of a float64 tensor beyond the float32 range.

    Every format dequantizes to float32 (NUMERICS.md section 1), so such a value could only come
    back as an infinity or a NaN.
    """
    bad = amax > FLOAT32_MAX
    if bad.any():
        flat = bad.reshape(-1).nonzero()[0].item()
        index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), bad.shape))
        raise InputError(
            f"block {index} holds {amax.reshape(-1)[flat].item():.4g}, beyond the float32 range "
            f"(+-{FLOAT32_MAX:.4g}) that every format dequantizes to"
        )


class BlockedTensor:
    """A tensor viewed as ``(..., nblocks, block)`` along its last axis, validated and widened.

    ``values`` is in the exact compute dtype (float32 for half/bfloat16/float32, float64 for
    float64); ``length`` is the original last-axis length (smaller than nblocks*block if padded).
    """

    def __init__(self, x: torch.Tensor, block: int, *, pad: bool = False) -> None:
        if not isinstance(x, torch.Tensor):
            raise InputError(f"expected a torch.Tensor, got {type(x).__name__}")
        if x.dtype not in SUPPORTED_DTYPES:
            names = ", ".join(str(d).removeprefix("torch.") for d in SUPPORTED_DTYPES)
            raise InputError(f"unsupported dtype {str(x.dtype).removeprefix('torch.')}; expected one of {names}")
        if x.dim() == 0 or x.numel() == 0:
            raise InputError(f"expected a tensor with at least one element and a last axis, got shape {tuple(x.shape)}")
        if block <= 0 or block % 2:
            raise FormatError(f"block size must be a positive even number, got {block}")
        length = x.shape[-1]
        if length % block:
            if not pad:
                raise InputError(
                    f"last axis of length {length} is not divisible by the block size {block}; "
                    f"pass pad=True (--pad) to zero-pad it"
                )
            x = torch.nn.functional.pad(x, (0, block - length % block))
        self.length = length
        self.block = block
        self.dtype = x.dtype
        self.values = x.detach().to(compute_dtype(x.dtype)).reshape(*x.shape[:-1], -1, block)
        self.amax = self.values.abs().amax(dim=-1)
        check_finite(self.values, self.amax)
        if x.dtype == torch.float64:
            check_float32_range(self.amax)

    @property
    def padded_shape(self) -> tuple[int, ...]:
        return (*self.values.shape[:-2], self.values.shape[-2] * self.block)

    @property
    def logical_shape(self) -> tuple[int, ...]:
        return (*self.values.shape[:-2], self.length)


def shared_exponent(blocks: torch.Tensor, amax: torch.Tensor | None = None) -> torch.Tensor:
    """Unbiased shared exponent e (int64, shape ``blocks.shape[:-1]``), NUMERICS 2.1 step 1.

    e = floor(log2 amax) - 2 clamped to [-127, 127]; an all-zero block gets e = -127 (byte 0).
    ``amax`` (the per-block max |x|) may be passed when the caller already has it.
    """
    if amax is None:
        amax = blocks.abs().amax(dim=-1)
    zero = amax == 0
    e = floor_log2(torch.where(zero, torch.ones_like(amax), amax)) - 2
    e = e.clamp(EXPONENT_MIN, EXPONENT_MAX)
    return torch.where(zero, torch.full_like(e, -EXPONENT_BIAS), e)


def front_end(
    blocks: torch.Tensor, amax: torch.Tensor | None = None, grid: Grid = Grid.HALF
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(e, u, sign) of each block: the hardware block front-end (NUMERICS 2.1 steps 1-3).

    ``e``: int64 ``(..., nblocks)``; ``u``: int64 5-bit codes min(31, floor(|x| 2^(2-e))) on the
    half grid, 6-bit codes min(63, floor(|x| 2^(3-e))) on the quarter grid;
    ``sign``: int64 0/1 from the sign bit (so -0.0 has sign 1).
    """
    e = shared_exponent(blocks, amax)
    scaled = exact_ldexp(blocks.abs(), (grid.shift + 1 - e)[..., None])
    # Clamp before the integer cast (float64 inputs beyond 2^130 exceed int64 once scaled);
    # scaled >= 0, so the cast's truncation toward zero is the floor.
    u = scaled.clamp(max=grid.num_ucodes - 1).to(torch.int64)
    sign = torch.signbit(blocks).to(torch.int64)
    return e, u, sign

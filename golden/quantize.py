"""Quantize and dequantize whole tensors in every registered format (docs/NUMERICS.md sections 2-3).

``quantize(x, "fb32")`` returns a ``QuantizedTensor`` holding unpacked 4-bit codes (one per uint8)
and the per-block metadata; ``QuantizedTensor.dequantize()`` gives float32 values.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .blocks import BlockedTensor, InputError, exact_ldexp, front_end, shared_exponent
from .formats import (
    CODE_BITS,
    E2M1_HALF_UNITS,
    EXPONENT_BIAS,
    FormatError,
    FormatKind,
    FormatSpec,
    Grid,
    Scale,
    Selection,
    get_format,
)
from .select import device_table, select_lut, select_mse, select_two_stage

__all__ = [
    "E4M3_MAX",
    "E4M3_MIN_NORMAL",
    "NVFP4_TENSOR_SCALE_MIN",
    "QuantizedTensor",
    "dialect_ucodes",
    "e2m1_encode",
    "e4m3_dialect_front_end",
    "fake_quantize",
    "quantize",
]

SIGN_BIT = 1 << (CODE_BITS - 1)
MAGNITUDE_MASK = SIGN_BIT - 1
#: Largest finite E4M3 value and its smallest normal, 2**-6 (the NVFP4 block-scale clamp).
E4M3_MAX = 448.0
E4M3_MIN_NORMAL = 2.0**-6
#: The E2M1 maximum (6.0) and the 4/6 alternative that fouroversix maps a block's max to.
E2M1_MAX = 6.0
FOUR_OVER_SIX_MAX = 4.0
#: Floor of the NVFP4 tensor scale (NUMERICS.md section 3.4): with s >= 2**-6 it keeps t * s a
#: normal float32 (>= 2**-126) and r = (1 / t) / s finite (<= 2**126), so a zero stays a zero.
NVFP4_TENSOR_SCALE_MIN = 2.0**-120


@dataclass(frozen=True)
class QuantizedTensor:
    """A tensor in one of the registry's formats, unpacked (one 4-bit code per uint8).

    Shapes: ``codes`` is the (padded) input shape ``(..., nblocks * block)``; every per-block field
    is ``(..., nblocks)``. ``length`` is the input's original last-axis length.
    """

    format: str
    block: int
    length: int
    codes: torch.Tensor  # uint8: bit 3 sign, bits 2..0 magnitude index
    exponent: torch.Tensor | None = None  # uint8 biased shared exponent (E8M0 scales: dialects, MXFP4)
    dialect: torch.Tensor | None = None  # uint8 dialect id (dialect formats)
    block_scale: torch.Tensor | None = None  # uint8 E4M3 bits (E4M3 scales: NVFP4 variants, E4M3 dialects)
    tensor_scale: torch.Tensor | None = None  # float32 scalar (E4M3 scales)

    @property
    def spec(self) -> FormatSpec:
        return get_format(self.format)

    @property
    def shape(self) -> tuple[int, ...]:
        return (*self.codes.shape[:-1], self.length)

    @property
    def num_blocks(self) -> int:
        return self.codes.shape[-1] // self.block

    def signed_units(self) -> torch.Tensor:
        """int64 ``(..., nblocks, block)``: each element as (-1)^s * magnitude in grid units
        (half units, or quarter units for a quarter-grid formatbook)."""
        book = self.spec.formatbook
        codes = self.codes.to(torch.int64).unflatten(-1, (self.num_blocks, self.block))
        index = codes & MAGNITUDE_MASK
        units = device_table(book, "units", codes.device, lambda: book.units)
        if self.dialect is not None:
            table = units[self.dialect.to(torch.int64)]  # (..., nblocks, 8)
            magnitude = torch.gather(table, -1, index)
        else:
            magnitude = units[0][index]
        return torch.where(codes & SIGN_BIT != 0, -magnitude, magnitude)

    def signed_half_units(self) -> torch.Tensor:
        """``signed_units()`` of a half-grid format (FormatError for a quarter grid)."""
        if self.spec.grid is not Grid.HALF:
            raise FormatError(f"format {self.format!r} is on the {self.spec.grid.value}-unit grid, not half units")
        return self.signed_units()

    def unbiased_exponent(self) -> torch.Tensor:
        """int64 ``(..., nblocks)``: e = E - 127 (dialect formats and MXFP4)."""
        if self.exponent is None:
            raise FormatError(f"format {self.format!r} has no shared exponent")
        return self.exponent.to(torch.int64) - EXPONENT_BIAS

    def block_scale_fp32(self) -> torch.Tensor:
        """float32 ``(..., nblocks)``: fl32(t * s), the NVFP4 dequantization multiplier."""
        if self.block_scale is None or self.tensor_scale is None:
            raise FormatError(f"format {self.format!r} has no E4M3 block scale")
        return self.tensor_scale * self.block_scale.view(torch.float8_e4m3fn).to(torch.float32)

    def dequantize(self) -> torch.Tensor:
        """float32 values, shape ``self.shape`` (padding removed)."""
        h = self.signed_units()
        g = self.spec.grid.shift  # one grid unit is 2^-g
        if self.spec.scale is Scale.E4M3:
            # torchao's order: fl32(value * fl32(t * s)); the element value h * 2^-g is exact.
            values = (h.to(torch.float32) * 2.0**-g) * self.block_scale_fp32()[..., None]
        else:
            # value = h * 2^(e - g), formed exactly in float64 and rounded once to float32.
            values = exact_ldexp(h.to(torch.float64), (self.unbiased_exponent() - g)[..., None])
            values = values.to(torch.float32)
        values = values.flatten(-2)
        # Negative zero codes keep their sign: (-1)^1 * 0 = -0.0.
        negative_zero = (self.codes & SIGN_BIT != 0) & (values == 0)
        values = torch.where(negative_zero, torch.tensor(-0.0), values)
        return values[..., : self.length]


# --------------------------------------------------------------------------------------------
# E2M1 and E4M3 element conversions
# --------------------------------------------------------------------------------------------

_E2M1_VALUES = torch.tensor(E2M1_HALF_UNITS, dtype=torch.float64) / 2
_E2M1_MIDPOINTS = (_E2M1_VALUES[:-1] + _E2M1_VALUES[1:]) / 2  # 0.25, 0.75, ..., 5.0 (exact)


def e2m1_encode(v: torch.Tensor) -> torch.Tensor:
    """Round each value to FP4 E2M1, round-half-to-even on the code, saturating at 6.

    Returns uint8 codes (bit 3 = the sign bit of ``v``). Exact for float32/float64 ``v``.
    """
    magnitude = v.abs()
    midpoints = device_table("e2m1", str(v.dtype), v.device, lambda: _E2M1_MIDPOINTS.to(v.dtype))
    index = torch.bucketize(magnitude, midpoints)  # number of midpoints strictly below
    # On a midpoint, bucketize picked the lower code; an odd lower code rounds up to the even one.
    at_tie = midpoints[index.clamp(max=len(midpoints) - 1)] == magnitude
    index = index + (at_tie & (index % 2 == 1)).to(index.dtype)
    return (index | (torch.signbit(v).to(torch.int64) << 3)).to(torch.uint8)


def e4m3_encode(v: torch.Tensor) -> torch.Tensor:
    """float32 -> E4M3 (fn) bits, round to nearest even; callers clamp to [2**-6, 448] first."""
    return v.to(torch.float8_e4m3fn).view(torch.uint8)


# --------------------------------------------------------------------------------------------
# Per-format quantizers
# --------------------------------------------------------------------------------------------


#: Blocks per chunk of the E8M0 dialect paths on a CPU: every block is quantized on its own, so
#: the work runs over rows of blocks in chunks whose temporaries (a few bytes per element) stay in
#: cache. Other devices take chunks ``ACCELERATOR_CHUNK_FACTOR`` times larger (fewer kernel launches).
CHUNK_BLOCKS = 1 << 12
ACCELERATOR_CHUNK_FACTOR = 64


def _row_chunks(num_rows: int, blocks_per_row: int, device: torch.device):
    """Slices of whole rows holding about ``CHUNK_BLOCKS`` blocks each (one row at least)."""
    target = CHUNK_BLOCKS if device.type == "cpu" else CHUNK_BLOCKS * ACCELERATOR_CHUNK_FACTOR
    step = max(1, target // max(1, blocks_per_row))
    for start in range(0, num_rows, step):
        yield slice(start, min(num_rows, start + step))


def _row_mask(mask: torch.Tensor | None, batch: tuple[int, ...], book, select: Selection) -> torch.Tensor | None:
    """The candidate mask validated and viewed as ``(rows, nblocks, D)`` (None without one)."""
    if mask is None:
        return None
    if select is Selection.TWO_STAGE:
        raise FormatError("a candidate mask needs LUT or MSE selection, not two-stage")
    from .select import check_candidate_mask

    return check_candidate_mask(mask, batch, book).reshape(-1, batch[-1], book.num_dialects)


def _select(select: Selection, blocks, e, u, book, mask):
    if select is Selection.LUT:
        return select_lut(u, book, mask)
    if select is Selection.MSE:
        return select_mse(blocks, e, u, book, mask)
    return select_two_stage(u, book)


def _quantize_dialect(
    blocked: BlockedTensor, spec: FormatSpec, select: Selection, mask: torch.Tensor | None
) -> dict[str, torch.Tensor]:
    book = spec.formatbook
    if spec.scale is Scale.E4M3:
        return _quantize_dialect_e4m3(blocked, spec, select, mask)
    batch, block = blocked.values.shape[:-1], blocked.block
    nblocks = batch[-1]
    rows = blocked.values.reshape(-1, nblocks, block)
    amax = blocked.amax.reshape(-1, nblocks)
    masks = _row_mask(mask, batch, book, select)
    codes = torch.empty(rows.shape, dtype=torch.uint8, device=rows.device)
    exponent = torch.empty(amax.shape, dtype=torch.uint8, device=rows.device)
    dialect = torch.empty(amax.shape, dtype=torch.uint8, device=rows.device)
    for r in _row_chunks(rows.shape[0], nblocks, rows.device):
        blocks = rows[r].reshape(-1, block)
        e, u = _front_end_int32(blocks, amax[r].reshape(-1), book.grid)
        chosen = _select(select, blocks, e, u, book, None if masks is None else masks[r].reshape(-1, book.num_dialects))
        codes[r] = _dialect_codes(book, chosen, u, torch.signbit(blocks)).view(-1, nblocks, block)
        exponent[r] = (e + EXPONENT_BIAS).to(torch.uint8).view(-1, nblocks)
        dialect[r] = chosen.to(torch.uint8).view(-1, nblocks)
    return {
        "codes": codes.reshape(*batch[:-1], nblocks * block),
        "exponent": exponent.reshape(batch),
        "dialect": dialect.reshape(batch),
    }


def _front_end_int32(blocks: torch.Tensor, amax: torch.Tensor, grid: Grid) -> tuple[torch.Tensor, torch.Tensor]:
    """``front_end``'s (e, u) of blocks ``(n, B)``, with u as int32 (the same steps; cheaper to
    index with than int64)."""
    e = shared_exponent(blocks, amax)
    scaled = exact_ldexp(blocks.abs(), (grid.shift + 1 - e)[:, None])
    return e, scaled.clamp_(max=grid.num_ucodes - 1).to(torch.int32)


def _dialect_codes(book, dialect: torch.Tensor, u: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """uint8 codes ``(..., nblocks * B)``: IDX[dialect][u] with the sign (0/1 or bool) in bit 3."""
    flat_idx = device_table(book, "flat_idx", u.device, lambda: book.idx_table.to(torch.uint8).reshape(-1))  # (D * U,)
    index = u + (dialect * book.num_ucodes).to(u.dtype)[..., None]  # (..., nblocks, B)
    codes = flat_idx.index_select(0, index.reshape(-1)).view(index.shape)
    return (codes | (sign.to(torch.uint8) << 3)).flatten(-2)


#: Smallest tensor scale of an E4M3 dialect format: NVFP4's floor (docs/NUMERICS.md section 3.4).
E4M3_DIALECT_MIN_TENSOR_SCALE = NVFP4_TENSOR_SCALE_MIN


def e4m3_dialect_front_end(
    x32: torch.Tensor, grid: Grid
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(t, s_bits, u, sign) of an E4M3-scaled dialect tensor, every step in binary32 (NUMERICS,
    "Extended dialect formats"); ``x32`` is float32 ``(..., nblocks, B)``, not all zero.

    ``top`` = the grid's largest value (7.5 or 7.75);  t = max(amax_tensor / (448 * top), 2^-120);
    s = E4M3(clamp((amax_block / top) / t, 2^-6, 448));  r = (1 / t) / s;
    u = min(U - 1, floor(fl32(|x| * r) * 2^(g + 1))).
    """
    top = grid.max_units * 2.0**-grid.shift
    t = torch.clamp_min(x32.abs().amax() / (E4M3_MAX * top), E4M3_DIALECT_MIN_TENSOR_SCALE)
    amax_block = x32.abs().amax(-1)
    s_bits = e4m3_encode(torch.clamp((amax_block / top) / t, E4M3_MIN_NORMAL, E4M3_MAX))
    r = (1.0 / t) / s_bits.view(torch.float8_e4m3fn).to(torch.float32)
    scaled = (x32.abs() * r[..., None]) * 2.0 ** (grid.shift + 1)  # the power of two is exact
    u = scaled.clamp(max=grid.num_ucodes - 1).to(torch.int64)  # >= 0, so truncation is the floor
    sign = torch.signbit(x32).to(torch.int64)
    return t, s_bits, u, sign


def _quantize_dialect_e4m3(
    blocked: BlockedTensor, spec: FormatSpec, select: Selection, mask: torch.Tensor | None
) -> dict[str, torch.Tensor]:
    book = spec.formatbook
    x32 = blocked.values.to(torch.float32)  # defined in float32, as NVFP4 (float64 input is rounded)
    if not (x32 != 0).any():  # all-zero tensor (as NVFP4): t = 0, scale bytes 0, dialect 0
        batch = x32.shape[:-1]
        if mask is not None:
            from .select import check_candidate_mask

            check_candidate_mask(mask, batch, book)
        sign = torch.signbit(x32).to(torch.int64)
        return {
            "codes": (sign << 3).flatten(-2).to(torch.uint8),
            "dialect": torch.zeros(batch, dtype=torch.uint8, device=x32.device),
            "block_scale": torch.zeros(batch, dtype=torch.uint8, device=x32.device),
            "tensor_scale": torch.tensor(0.0, device=x32.device),
        }
    t, s_bits, u, sign = e4m3_dialect_front_end(x32, book.grid)
    if select is Selection.LUT:
        dialect = select_lut(u, book, mask)
    else:
        step = (t * s_bits.view(torch.float8_e4m3fn).to(torch.float32)).to(torch.float64) * 2.0**-book.grid.shift
        dialect = select_mse(x32, None, u, book, mask, step=step)
    return {
        "codes": _dialect_codes(book, dialect, u, sign),
        "dialect": dialect.to(torch.uint8),
        "block_scale": s_bits,
        "tensor_scale": t,
    }


def _quantize_mxfp4(blocked: BlockedTensor) -> dict[str, torch.Tensor]:
    # OCP MX FLOOR rule: X = 2^(floor(log2 amax) - 2), the same exponent as a dialect block.
    # Elements are divided by the *stored* scale (2^-127 for byte 0; see NUMERICS.md section 3).
    e = shared_exponent(blocked.values, blocked.amax)
    scaled = exact_ldexp(blocked.values, -e[..., None])
    return {"codes": e2m1_encode(scaled).flatten(-2), "exponent": (e + EXPONENT_BIAS).to(torch.uint8)}


def _nvfp4_candidate(x32: torch.Tensor, amax_block: torch.Tensor, t: torch.Tensor, target: float):
    """One NVFP4 scaling candidate (block max mapped to ``target``): float32 ops in torchao's order."""
    s = torch.clamp((amax_block / target) / t, E4M3_MIN_NORMAL, E4M3_MAX)
    s_bits = e4m3_encode(s)
    r = (1.0 / t) / s_bits.view(torch.float8_e4m3fn).to(torch.float32)
    codes = e2m1_encode(torch.clamp(x32 * r[..., None], -E2M1_MAX, E2M1_MAX))
    return codes, s_bits


def _quantize_nvfp4(blocked: BlockedTensor, four_over_six: bool) -> dict[str, torch.Tensor]:
    x32 = blocked.values.to(torch.float32)  # NVFP4 is defined in float32 (float64 input is rounded)
    amax_tensor = x32.abs().amax()
    # The 4/6 variant divides by 448 * 4 so the max-to-4 candidate's scale also fits E4M3.
    largest_target = FOUR_OVER_SIX_MAX if four_over_six else E2M1_MAX
    shape = x32.shape
    if amax_tensor == 0:  # torchao gives NaN here; the contract says t = 0, bytes 0, codes 0
        zeros = torch.zeros(shape[:-1], dtype=torch.uint8, device=x32.device)
        return {
            "codes": torch.zeros(shape, dtype=torch.uint8, device=x32.device).flatten(-2),
            "block_scale": zeros,
            "tensor_scale": torch.tensor(0.0, device=x32.device),
        }
    # Floored so that a near-zero tensor's scale never underflows (NUMERICS.md section 3.4); a
    # no-op, and so torchao's result, for every tensor with amax >= 448 * target * 2**-120.
    t = torch.clamp(amax_tensor / (E4M3_MAX * largest_target), min=NVFP4_TENSOR_SCALE_MIN)
    amax_block = x32.abs().amax(-1)
    codes, s_bits = _nvfp4_candidate(x32, amax_block, t, E2M1_MAX)
    if four_over_six:
        codes4, s_bits4 = _nvfp4_candidate(x32, amax_block, t, FOUR_OVER_SIX_MAX)
        err6 = _nvfp4_block_sse(x32, codes, s_bits, t)
        err4 = _nvfp4_block_sse(x32, codes4, s_bits4, t)
        use4 = err4 < err6  # ties keep the standard max-to-6 candidate
        codes = torch.where(use4[..., None], codes4, codes)
        s_bits = torch.where(use4, s_bits4, s_bits)
    return {"codes": codes.flatten(-2), "block_scale": s_bits, "tensor_scale": t}


def _nvfp4_block_sse(x32, codes, s_bits, t) -> torch.Tensor:
    """float64 sum of squared errors per block of one NVFP4 candidate, dequantized as stored."""
    q = QuantizedTensor(
        format="nvfp4", block=x32.shape[-1], length=codes.shape[-1] * codes.shape[-2],
        codes=codes.flatten(-2), block_scale=s_bits, tensor_scale=t,
    )  # fmt: skip
    deq = q.dequantize().unflatten(-1, x32.shape[-2:]).to(torch.float64)
    return ((x32.to(torch.float64) - deq) ** 2).sum(-1)


def dialect_ucodes(
    x: torch.Tensor, format: str | FormatSpec, *, block: int | None = None, pad: bool = False
) -> torch.Tensor:
    """The truncated codes u (int64 ``(..., nblocks, B)``) a dialect format's selection sees:
    NUMERICS 2.1 steps 1-2 for an E8M0 scale, the E4M3 front end for an E4M3 scale."""
    spec = get_format(format)
    if not spec.is_dialect:
        raise FormatError(f"format {spec.name!r} is not a dialect format")
    blocked = BlockedTensor(x, spec.check_block(block), pad=pad)
    if spec.scale is Scale.E8M0:
        return front_end(blocked.values, blocked.amax, spec.grid)[1]
    x32 = blocked.values.to(torch.float32)
    if not (x32 != 0).any():
        return torch.zeros(x32.shape, dtype=torch.int64, device=x32.device)
    return e4m3_dialect_front_end(x32, spec.grid)[2]


def _dequantized_magnitudes(book, device) -> torch.Tensor:
    """float32 ``(D * U,)``: the magnitude, in grid units, that code u takes in dialect d."""
    return device_table(book, "dequantized_magnitudes", device,
                        lambda: book.units.gather(1, book.idx_table).to(torch.float32).reshape(-1))  # fmt: skip


def _lut_cost_rows(book, device) -> torch.Tensor:
    """float32 ``(U, D)``: ERR transposed, so that a block's LUT costs are the sum of its codes' rows."""
    return device_table(book, "err_rows", device, lambda: book.err_table.T.to(torch.float32).contiguous())


def _fake_quantize_blocks(
    v: torch.Tensor, book, select: Selection, mask: torch.Tensor | None, out: torch.Tensor | None = None
) -> torch.Tensor | None:
    """``dequantize(quantize(.))`` of float32 blocks ``(n, B)`` of an E8M0 dialect format with LUT or
    two-stage selection, into ``out`` if given (None if a block is not finite). The steps of
    ``front_end``, ``select_lut`` / ``select_two_stage`` and ``fast_dequantize``, without forming
    the codes, on int32 indices."""
    grid, device = book.grid, v.device
    magnitude = v.abs()
    amax = magnitude.amax(-1)
    if not bool(torch.isfinite(amax).all()):
        return None
    e = shared_exponent(v, amax)
    # front_end's u. Its clamp to U - 1 never acts on finite float32 data (amax < 2^(e+3), so
    # |x| 2^(g+1-e) < U), and the cast truncates a non-negative value: the floor.
    u = exact_ldexp(magnitude, (grid.shift + 1 - e)[:, None]).to(torch.int32)
    if select is Selection.LUT:
        # ERR sums are integers below 2^24 (select.lut_costs), exact in float32 whatever the order.
        cost = torch.nn.functional.embedding_bag(u, _lut_cost_rows(book, device), mode="sum").to(torch.int32)
        if mask is not None:
            cost = cost.masked_fill_(~mask, torch.iinfo(torch.int32).max)
        dialect = cost.argmin(-1)  # first minimum: ties to the lowest id
    else:
        dialect = select_two_stage(u.to(torch.int64), book)
    index = u.add_((dialect.to(torch.int32) * grid.num_ucodes)[:, None])
    values = _dequantized_magnitudes(book, device).index_select(0, index.view(-1)).view(v.shape)
    scale = torch.pow(2.0, (e - grid.shift).to(torch.float32))  # exact powers of two, as fast_dequantize
    return torch.copysign(values.mul_(scale[:, None]), v, out=out)


def fake_quantize(
    x: torch.Tensor,
    format: str | FormatSpec = "fb32",
    *,
    block: int | None = None,
    select: Selection | str | None = None,
    mask: torch.Tensor | None = None,
    pad: bool = False,
) -> torch.Tensor:
    """``quantize(x, ...).dequantize()`` bit for bit (float32, shape of ``x``), faster.

    E8M0 dialect formats with LUT or two-stage selection and float16/bfloat16/float32 input run
    block-parallel over chunks of rows that stay in cache, straight from ``x`` to the dequantized
    values (no codes are formed); everything else, and any input ``quantize`` would refuse (whose
    error it then raises), goes through ``quantize(...).dequantize()``.
    """
    spec = get_format(format)
    block = spec.check_block(block)
    select = spec.check_select(select)
    fast = (
        spec.kind is FormatKind.DIALECT and spec.scale is Scale.E8M0 and select is not Selection.MSE
        and isinstance(x, torch.Tensor) and x.dtype in (torch.float16, torch.bfloat16, torch.float32)
        and x.dim() > 0 and x.numel() > 0 and (pad or x.shape[-1] % block == 0)
    )  # fmt: skip
    if not fast:
        return quantize(x, spec, block=block, select=select, mask=mask, pad=pad).dequantize()
    book = spec.formatbook
    length = x.shape[-1]
    nblocks = -(-length // block)
    rows = x.detach().reshape(-1, length)
    masks = _row_mask(mask, (*x.shape[:-1], nblocks), book, select)
    out = torch.empty(rows.shape, dtype=torch.float32, device=x.device)
    for r in _row_chunks(rows.shape[0], nblocks, rows.device):
        chunk = rows[r].to(torch.float32)
        if length % block:
            chunk = torch.nn.functional.pad(chunk, (0, nblocks * block - length))
        target = None if length % block else out[r].view(-1, block)  # unpadded: write in place
        values = _fake_quantize_blocks(
            chunk.reshape(-1, block), book, select,
            None if masks is None else masks[r].reshape(-1, book.num_dialects), out=target,
        )  # fmt: skip
        if values is None:  # a NaN or an infinity: quantize names the block
            return quantize(x, spec, block=block, select=select, mask=mask, pad=pad).dequantize()
        if target is None:
            out[r] = values.view(-1, nblocks * block)[:, :length]
    return out.reshape(x.shape)


def quantize(
    x: torch.Tensor,
    format: str | FormatSpec = "fb32",
    *,
    block: int | None = None,
    select: Selection | str | None = None,
    mask: torch.Tensor | None = None,
    pad: bool = False,
) -> QuantizedTensor:
    """Quantize ``x`` along its last axis in blocks of ``block`` values.

    Args:
        x: float16/bfloat16/float32/float64 tensor, finite.
        format: a registry name (``golden.FORMATS``) or spec.
        block: block size; default the format's (32 for dialects and MXFP4, 16 for NVFP4).
        select: dialect selection rule (dialect formats only); default the format's.
        mask: optional boolean candidate mask, broadcastable to ``(..., nblocks, num_dialects)``.
        pad: zero-pad a last axis that is not a multiple of ``block`` (else an error).
    """
    spec = get_format(format)
    block = spec.check_block(block)
    select = spec.check_select(select)
    if mask is not None and not spec.is_dialect:
        raise FormatError(f"format {spec.name!r} has no dialects to mask")
    blocked = BlockedTensor(x, block, pad=pad)
    if spec.kind is FormatKind.DIALECT:
        fields = _quantize_dialect(blocked, spec, select, mask)  # E8M0 or E4M3 scale, half or quarter grid
    elif spec.kind is FormatKind.MXFP4:
        fields = _quantize_mxfp4(blocked)
    elif spec.kind in (FormatKind.NVFP4, FormatKind.NVFP4_46):
        fields = _quantize_nvfp4(blocked, four_over_six=spec.kind is FormatKind.NVFP4_46)
    else:  # pragma: no cover - the registry lists every kind above
        raise InputError(f"no quantizer for format kind {spec.kind}")
    return QuantizedTensor(format=spec.name, block=block, length=blocked.length, **fields)

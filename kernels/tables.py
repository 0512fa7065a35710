"""Kernel-side tables and constants, all derived from the golden format registry.

Nothing here is retyped: the decode, index, error and two-stage tables are the golden
``Formatbook`` tables converted to the integer dtypes the kernels read, and the MXFP4 rounding
table is produced by running ``golden.e2m1_encode`` on every 5-bit code.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass

import numpy
import torch

from golden.formats import (
    CODE_BITS,
    DIALECTFP4_16,
    EXPONENT_BIAS,
    EXPONENT_MAX,
    EXPONENT_MIN,
    MAGNITUDE_CODES,
    MAX_HALF_UNITS,
    NUM_UCODES,
    FormatError,
    FormatKind,
    FormatSpec,
    Grid,
    Scale,
    Selection,
    get_format,
)
from golden.quantize import e2m1_encode

__all__ = [
    "ALIGN_BITS",
    "ERR_SPLIT",
    "HISTOGRAM_BINS",
    "NUM_ALIGN_SHIFTS",
    "MAGNITUDE_BITS",
    "FLOAT32_BIAS",
    "FLOAT32_MANTISSA_BITS",
    "NUM_CODES",
    "ActivationRule",
    "FormatTables",
    "activation_rule",
    "fast_tables",
    "format_tables",
    "kernel_format",
    "moebius_transform",
    "require_half_e8m0",
]

#: 4-bit element codes: a sign bit and a 3-bit magnitude index.
NUM_CODES = 1 << CODE_BITS
#: Bits of one half-unit magnitude (0..15); a dialect's 8 magnitudes fill one 32-bit word.
MAGNITUDE_BITS = MAX_HALF_UNITS.bit_length()
assert MAGNITUDE_BITS * MAGNITUDE_CODES == 32
#: The quantizer's cost dot splits each LUT error e = ERR_SPLIT * hi + lo into two int8 parts.
ERR_SPLIT = 128
#: The bin (u) counted at each position of the quantizer's histogram: word ``u >> 3`` counts ``u``
#: in nibble ``u & 7``, and the even and odd nibbles of each word are widened to bytes separately,
#: so position ``8 w + 4 s + k`` holds bin ``8 w + 2 k + s``. ``err_split``'s columns follow it.
HISTOGRAM_BINS = tuple((p & ~7) | ((p & 3) << 1) | ((p >> 2) & 1) for p in range(NUM_UCODES))
assert sorted(HISTOGRAM_BINS) == list(range(NUM_UCODES))
#: binary32 layout, used by the kernels' integer front-end (value = M * 2^(F - bias - mantissa bits)).
FLOAT32_MANTISSA_BITS = int(numpy.finfo(numpy.float32).nmant)
FLOAT32_BIAS = int(numpy.finfo(numpy.float32).maxexp) - 1
#: Fast mode aligns a block's magnitudes to its tile's largest exponent on a grid ALIGN_BITS finer
#: than a half unit: MAX_HALF_UNITS << ALIGN_BITS must still fit a signed int8 (15 * 8 = 120).
ALIGN_BITS = (torch.iinfo(torch.int8).max // MAX_HALF_UNITS).bit_length() - 1
assert MAX_HALF_UNITS << ALIGN_BITS <= torch.iinfo(torch.int8).max
#: Alignment shifts 0 .. ALIGN_BITS + 5: from a shift of 8 on, round(h 2^(ALIGN_BITS - shift)) is 0
#: for every |h| <= 15 (|h| 2^ALIGN_BITS < 2^7), so larger shifts are clamped to 8.
NUM_ALIGN_SHIFTS = (MAX_HALF_UNITS << ALIGN_BITS).bit_length() + 2
assert NUM_ALIGN_SHIFTS == 9

# The golden exponent conventions the kernels rely on (NUMERICS 2.1 step 1).
assert (EXPONENT_MIN, EXPONENT_MAX) == (-EXPONENT_BIAS, EXPONENT_BIAS)


class ActivationRule(enum.IntEnum):
    """How the activation-quantization kernel encodes a block (a compile-time kernel switch)."""

    LUT = 0  # dialect format, LUT selection (NUMERICS 2.2), optional candidate mask
    TWO_STAGE = 1  # DialectFP4-16, BlockDialect's two-stage selection
    MXFP4 = 2  # E2M1 elements, round half to even on the code


def kernel_format(format: str | FormatSpec) -> FormatSpec:
    """The registry spec of ``format``, rejecting formats the kernels do not implement.

    Implemented: the dialect formats on the half grid with an E8M0 exponent (every kernel), the
    dialect formats with an E4M3 block scale and a float32 tensor scale on either grid (activation
    quantizer and exact GEMM; ``require_half_e8m0`` guards the rest), and MXFP4.
    """
    spec = get_format(format)
    if spec.kind not in (FormatKind.DIALECT, FormatKind.MXFP4):
        raise FormatError(f"the Triton kernels implement the dialect formats and mxfp4, not {spec.name!r}")
    if spec.scale is Scale.E8M0 and spec.formatbook.grid is not Grid.HALF:
        raise FormatError(
            f"the Triton kernels implement the {spec.formatbook.grid.value} grid with an E4M3 block scale only, "
            f"not with the E8M0 exponent of {spec.name!r}"
        )
    return spec


def require_half_e8m0(spec: FormatSpec, what: str) -> None:
    """Raise FormatError unless ``spec`` is on the half grid with an E8M0 exponent (``what`` names the
    kernel that needs it: fast mode, the fused linear, the residual rows, the scatter-add)."""
    if spec.formatbook.grid is not Grid.HALF or spec.scale is not Scale.E8M0:
        raise FormatError(
            f"{what} implements the half grid with an E8M0 exponent, not {spec.name!r} "
            f"({spec.formatbook.grid.value} grid, {spec.scale.value} scale): use quantize_activations and "
            f"w4a4_gemm(mode='exact') for it"
        )


def activation_rule(spec: FormatSpec, select: Selection | str | None = None) -> ActivationRule:
    """The kernel rule for ``select`` (default: the format's activation selection; MXFP4 has none)."""
    select = spec.check_select(select)
    if spec.kind is FormatKind.MXFP4:
        return ActivationRule.MXFP4
    if select is Selection.MSE:
        raise FormatError(
            "the activation kernel implements LUT and two-stage selection; MSE is an offline weight rule"
        )
    return ActivationRule.TWO_STAGE if select is Selection.TWO_STAGE else ActivationRule.LUT


@dataclass(frozen=True)
class FormatTables:
    """One format's tables on one device, in the dtypes the kernels read.

    ``decode``: int8 ``(D, 16)``, signed grid units (half or quarter) of each 4-bit code per dialect
    (D = 1 for MXFP4). ``words``: int32 ``(D,)``, the same dialects packed into one word each,
    magnitude ``k`` in bits ``4k .. 4k + 3`` (``MAGNITUDE_BITS`` each), so a kernel decodes a whole
    block from one load (half grid; None on the quarter grid, whose magnitudes need 5 bits).
    ``byte_words``: int32 ``(D, 2)``, magnitudes 0..3 and 4..7 one per byte (either grid; the
    E4M3 GEMM's decode). ``idx`` / ``err``: int32 ``(D, U)``, the NUMERICS 2.2 / 8.1 IDX and ERR
    tables (U = 32 codes u on the half grid, 64 on the quarter grid).
    ``err_split``: int8 ``(2, D', 32)``, ERR as ``ERR_SPLIT * [1] + [0]`` with D padded to a power of
    two of at least 16 (zeros) and the columns in ``HISTOGRAM_BINS`` order, the operands of the
    quantizer's histogram-form cost dot (U = 64: columns 0..31 then 32 + those, two dots).
    ``subset_split``: int8 ``(2, D', 32)`` or None, the Moebius transform ``W`` of ERR over the 5
    bits of u (``ERR[d][u] = sum of W[d][s] over the subsets s of u's bits``) split the same way,
    ``W = ERR_SPLIT * [1] + [0]`` with ``[0]`` in 0..127: the operands of the quantizer's
    subset-count cost dot (None when some ``|W|`` needs more than a signed int8 high part).
    ``two_stage``: int32 ``(P, 2, 2)`` half-open u ranges (DialectFP4-16; empty otherwise).
    ``mx_round``: int32 ``(2, 32)``, the E2M1 magnitude code of a value in quarter units: row 0 for
    a value strictly inside ``(u, u + 1)``, row 1 for a value exactly ``u``.
    """

    num_dialects: int
    decode: torch.Tensor
    words: torch.Tensor | None
    byte_words: torch.Tensor
    idx: torch.Tensor
    err: torch.Tensor
    err_split: torch.Tensor
    subset_split: torch.Tensor | None
    two_stage: torch.Tensor
    mx_round: torch.Tensor
    #: Two-stage stage 1: pair p = pair_top - clamp(max(u) >> 1, pair_top - P + 1, pair_top).
    pair_top: int
    num_pairs: int
    #: Codes u (32 or 64), the grid shift g (unit 2^-g) and the grid's largest value 2^-g (2^(3+g) - 1).
    num_ucodes: int = NUM_UCODES
    grid_shift: int = 1
    grid_top: float = MAX_HALF_UNITS / 2


@functools.cache
def format_tables(format_name: str, device: torch.device | str) -> FormatTables:
    """The kernel tables of a registry format on ``device`` (cached per format and device)."""
    book = kernel_format(format_name).formatbook
    magnitudes = book.units  # (D, 8), in grid units
    num_ucodes = book.num_ucodes
    signed = torch.cat((magnitudes, -magnitudes), dim=1)  # code c: sign = bit 3, index = c & 7
    u = torch.arange(NUM_UCODES, dtype=torch.float64)
    mx_round = torch.stack((e2m1_encode((u + 0.5) / 4), e2m1_encode(u / 4)))
    pair_ranges = DIALECTFP4_16.two_stage_ranges if book is DIALECTFP4_16 else torch.zeros(0, 2, 2)
    shifts = MAGNITUDE_BITS * torch.arange(MAGNITUDE_CODES)
    words = None
    if int(magnitudes.max()) < 1 << MAGNITUDE_BITS:
        words = (magnitudes << shifts).sum(-1)  # < 2^32; the cast below keeps the low 32 bits
        words = words.to(torch.int32).to(device)
    byte_words = (magnitudes.reshape(-1, 2, 4) << (8 * torch.arange(4))).sum(-1)  # each < 2^29
    err = book.err_table
    if err.max() >= ERR_SPLIT * 128:
        raise FormatError(f"formatbook {book.name!r} has LUT errors of {int(err.max())}, too large for the kernels")
    padded = max(16, 1 << (book.num_dialects - 1).bit_length())
    err_split = torch.zeros(2, padded, num_ucodes, dtype=torch.int64)
    bins = [half * NUM_UCODES + b for half in range(num_ucodes // NUM_UCODES) for b in HISTOGRAM_BINS]
    in_bin_order = err[:, bins]
    err_split[:, : book.num_dialects] = torch.stack((in_bin_order % ERR_SPLIT, in_bin_order // ERR_SPLIT))
    subset_split = None
    if num_ucodes == NUM_UCODES:
        moebius = moebius_transform(err)
        if moebius.abs().max() < ERR_SPLIT * 128:
            subset_split = torch.zeros(2, padded, NUM_UCODES, dtype=torch.int64)
            low = moebius % ERR_SPLIT
            subset_split[:, : book.num_dialects] = torch.stack((low, (moebius - low) // ERR_SPLIT))
            subset_split = subset_split.to(torch.int8).to(device)
    return FormatTables(
        num_dialects=book.num_dialects,
        decode=signed.to(torch.int8).to(device),
        words=words,
        byte_words=byte_words.to(torch.int32).to(device),
        idx=book.idx_table.to(torch.int32).to(device),
        err=book.err_table.to(torch.int32).to(device),
        err_split=err_split.to(torch.int8).to(device),
        subset_split=subset_split,
        two_stage=pair_ranges.to(torch.int32).to(device),
        mx_round=mx_round.to(torch.int32).to(device),
        pair_top=DIALECTFP4_16.dialects[0][-1],
        num_pairs=DIALECTFP4_16.num_dialects // 2,
        num_ucodes=num_ucodes,
        grid_shift=book.grid.shift,
        grid_top=book.grid.max_units * 2.0**-book.grid.shift,
    )


def moebius_transform(err: torch.Tensor) -> torch.Tensor:
    """int64 ``(D, 32)`` ``W`` with ``err[d][u] = sum of W[d][s] over the subsets s of u's bits``."""
    w = err.long().clone()
    for bit in range(NUM_UCODES.bit_length() - 1):
        has = (torch.arange(NUM_UCODES) >> bit) & 1 == 1
        w[:, has] -= w[:, torch.arange(NUM_UCODES)[has] ^ (1 << bit)]
    return w


def align_half_units(h: torch.Tensor, shift: torch.Tensor | int) -> torch.Tensor:
    """Fast-mode alignment ``round(h 2^(ALIGN_BITS - shift))``, ties up (toward +inf), on integers."""
    return ((h << ALIGN_BITS) + ((1 << shift) >> 1)) >> shift


@functools.cache
def fast_tables(format_name: str, device: torch.device | str) -> torch.Tensor:
    """int32 ``(D * NUM_ALIGN_SHIFTS, 4)`` aligned decode tables of the fast GEMM, from the registry.

    Row ``d * NUM_ALIGN_SHIFTS + s`` holds, as little-endian int8 bytes, the aligned values
    ``align_half_units(+h, s)`` of dialect ``d``'s magnitudes 0..3 and 4..7, then those of ``-h``
    (negative codes; ``-h`` is aligned itself because ties round up, not away from zero).
    """
    spec = kernel_format(format_name)
    require_half_e8m0(spec, "the fast GEMM")
    book = spec.formatbook
    magnitudes = book.half_units.long()  # (D, 8)
    shifts = torch.arange(NUM_ALIGN_SHIFTS)
    signed = torch.stack((magnitudes, -magnitudes), dim=1)  # (D, 2, 8)
    aligned = align_half_units(signed[:, None], shifts[None, :, None, None])  # (D, S, 2, 8)
    assert aligned.abs().max() <= torch.iinfo(torch.int8).max
    octets = (aligned & 0xFF).reshape(-1, 4, 4)  # (D * S, [pos lo, pos hi, neg lo, neg hi], byte)
    words = (octets << (8 * torch.arange(4))).sum(-1)
    words = torch.where(words >= 1 << 31, words - (1 << 32), words)
    return words.to(torch.int32).to(device)

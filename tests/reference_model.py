"""A deliberately simple, per-block reference of NUMERICS.md, used only by tests.

Plain Python on one block at a time, exact rationals (``fractions.Fraction``) for every real-valued
rule and numpy float32 scalars where the contract is defined in binary32 (NVFP4). It shares no code
with ``golden`` except the formatbook *data* (the dialect tables), and it derives nearest values by
brute-force search instead of the IDX lookup table.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

E2M1_GRID = (0, 1, 2, 3, 4, 6, 8, 12)  # half units


def shared_exponent(block: list[float]) -> int:
    amax = max(abs(v) for v in block)
    if amax == 0:
        return -127
    _, ex = math.frexp(amax)  # amax = m * 2**ex, m in [0.5, 1)
    return max(-127, min(127, ex - 1 - 2))


def ucode(v: float, e: int) -> int:
    return min(31, math.floor(abs(Fraction(v)) * Fraction(2) ** (2 - e)))


def sign_bit(v: float) -> int:
    return 1 if math.copysign(1.0, v) < 0 else 0


def nearest_index_ties_up(value_half_units: Fraction, dialect: tuple[int, ...]) -> int:
    """Index of the dialect value nearest to a magnitude in half units; ties to the larger."""
    best = 0
    for k, h in enumerate(dialect):
        if abs(value_half_units - h) <= abs(value_half_units - dialect[best]):
            best = k
    return best


def bin_centre_error(u: int, dialect: tuple[int, ...]) -> int:
    """Squared error, in 1/64, of the centre of code u's bin against its nearest dialect value."""
    return min((2 * u + 1 - 4 * h) ** 2 for h in dialect)


def lut_select(us: list[int], book: tuple[tuple[int, ...], ...], allowed=None) -> int:
    best, best_cost = None, None
    for d, dialect in enumerate(book):
        if allowed is not None and not allowed[d]:
            continue
        cost = sum(bin_centre_error(u, dialect) for u in us)
        if best_cost is None or cost < best_cost:
            best, best_cost = d, cost
    return best


#: BlockDialect stage-2 beneficial ranges as listed in NUMERICS.md 2.2, half-open in u, p = 0..7.
SPEC_TWO_STAGE_RANGES = (
    ((20, 26), (15, 20)), ((20, 25), (15, 20)), ((18, 23), (14, 18)), ((18, 22), (14, 18)),
    ((16, 20), (13, 16)), ((16, 19), (13, 16)), ((15, 17), (13, 15)), ((13, 15), (9, 11)),
)  # fmt: skip


def two_stage_select(us: list[int]) -> int:
    if max(us) == 0:
        return 0
    m = min(15, max(8, max(us) >> 1))
    p = 15 - m
    (a_lo, a_hi), (b_lo, b_hi) = SPEC_TWO_STAGE_RANGES[p]
    count_a = sum(a_lo <= u < a_hi for u in us)
    count_b = sum(b_lo <= u < b_hi for u in us)
    return 2 * p if count_a >= count_b else 2 * p + 1


def dialect_dequant(h: int, s: int, e: int) -> Fraction:
    return (-1) ** s * h * Fraction(2) ** (e - 1)


def mse_select(block: list[float], e: int, book, allowed=None) -> int:
    best, best_err = None, None
    for d, dialect in enumerate(book):
        if allowed is not None and not allowed[d]:
            continue
        err = 0.0
        for v in block:
            h = dialect[nearest_index_ties_up(Fraction(ucode(v, e), 2), dialect)]
            err += (abs(v) - float(h * Fraction(2) ** (e - 1))) ** 2
        if best_err is None or err < best_err:
            best, best_err = d, err
    return best


def quantize_dialect_block(block: list[float], book, select: str, allowed=None) -> tuple[int, int, list[int]]:
    """(biased exponent byte, dialect id, 4-bit codes) of one block."""
    e = shared_exponent(block)
    us = [ucode(v, e) for v in block]
    if select == "lut":
        d = lut_select(us, book, allowed)
    elif select == "two-stage":
        d = two_stage_select(us)
    else:
        d = mse_select(block, e, book, allowed)
    codes = [
        (sign_bit(v) << 3) | nearest_index_ties_up(Fraction(u, 2), book[d]) for v, u in zip(block, us)
    ]
    return e + 127, d, codes


def e2m1_code(value: Fraction | float, negative: bool) -> int:
    """Round a real value to E2M1: nearest grid value, ties to the even code, saturate at 6."""
    v = abs(Fraction(value)) * 2  # in half units
    best = 0
    for k, g in enumerate(E2M1_GRID):
        gap, best_gap = abs(v - g), abs(v - E2M1_GRID[best])
        if gap < best_gap or (gap == best_gap and k % 2 == 0):
            best = k
    return (8 if negative else 0) | best


def quantize_mxfp4_block(block: list[float]) -> tuple[int, list[int]]:
    e = shared_exponent(block)
    scale = Fraction(2) ** e
    return e + 127, [e2m1_code(Fraction(v) / scale, sign_bit(v) == 1) for v in block]


def quantize_nvfp4_block(block: list[float], tensor_scale: np.float32, target: float = 6.0) -> tuple[int, list[int]]:
    """NVFP4 in binary32 scalar steps: s = E4M3(clamp(amax/target/t)), r = (1/t)/s, E2M1(clamp(x*r))."""
    f32 = np.float32
    xs = [f32(v) for v in block]
    amax = max(abs(v) for v in xs)
    s = np.clip(f32(amax / f32(target)) / tensor_scale, f32(2.0**-6), f32(448.0))
    s_bits = e4m3_round(float(s))
    s_value = f32(e4m3_value(s_bits))
    r = f32(f32(1.0) / tensor_scale) / s_value
    codes = [e2m1_code(Fraction(float(np.clip(v * r, f32(-6), f32(6)))), bool(np.signbit(v))) for v in xs]
    return s_bits, codes


def e4m3_round(v: float) -> int:
    """Bits of the E4M3 value nearest to v >= 0 (ties to an even mantissa), by exhaustive search."""
    best = 0
    for bits in range(0x7F):  # every finite non-negative E4M3 code
        gap, best_gap = abs(e4m3_value(bits) - v), abs(e4m3_value(best) - v)
        if gap < best_gap or (gap == best_gap and bits % 2 == 0):
            best = bits
    return best


def e4m3_value(bits: int) -> float:
    """Decode E4M3 (fn) bits by the format's definition (bias 7, subnormals, no infinities)."""
    sign = -1.0 if bits & 0x80 else 1.0
    exp, man = (bits >> 3) & 0xF, bits & 0x7
    if exp == 0xF and man == 0x7:
        return math.nan
    if exp == 0:
        return sign * man / 8 * 2.0**-6
    return sign * (1 + man / 8) * 2.0 ** (exp - 7)


def nvfp4_dequant(s_bits: int, codes: list[int], tensor_scale: np.float32) -> list[float]:
    """fl32(value * fl32(t * s)), torchao's dequantization order."""
    scale = np.float32(tensor_scale * np.float32(e4m3_value(s_bits)))
    return [float(np.float32(np.float32((-1) ** (c >> 3) * E2M1_GRID[c & 7] / 2) * scale)) for c in codes]


def quantize_nvfp4_46_block(block: list[float], tensor_scale: np.float32) -> tuple[int, list[int]]:
    """4/6 scaling: the max-to-4 candidate wins only with a strictly lower float64 squared error."""
    candidates = [quantize_nvfp4_block(block, tensor_scale, target) for target in (6.0, 4.0)]
    errors = [sum((float(np.float32(v)) - d) ** 2 for v, d in zip(block, nvfp4_dequant(s, c, tensor_scale)))
              for s, c in candidates]  # fmt: skip
    return candidates[1] if errors[1] < errors[0] else candidates[0]


# ------------------------------------------------------------------------------------------------
# Extended dialect formats: half or quarter grid (g = 1 or 2), E8M0 or E4M3 block scale
# ------------------------------------------------------------------------------------------------


def grid_top(g: int) -> int:
    """Largest magnitude in grid units: 15 half units or 31 quarter units."""
    return (8 << g) - 1


def ucode_grid(v: float, e: int, g: int) -> int:
    """min(U - 1, floor(|v| * 2^(g + 1 - e))): u counts halves of a grid unit of 2^(e - g)."""
    return min(2 ** (4 + g) - 1, math.floor(abs(Fraction(v)) * Fraction(2) ** (g + 1 - e)))


def e4m3_tensor_scale(values: list[float], g: int) -> np.float32:
    """t = max(fl32(amax / fl32(448 * top)), 2^-120), top = the grid's largest value."""
    f32 = np.float32
    amax = max(abs(f32(v)) for v in values)
    top = f32(grid_top(g) / 2**g)
    return max(f32(amax / f32(f32(448.0) * top)), f32(2.0**-120))


def e4m3_dialect_codes(block: list[float], t: np.float32, g: int) -> tuple[int, list[int]]:
    """(E4M3 scale bits, u codes) of one block: s = E4M3(clamp(fl32(amax/top)/t)), r = (1/t)/s,
    u = min(U - 1, floor(fl32(|x| r) * 2^(g + 1))), in binary32 scalar steps."""
    f32 = np.float32
    xs = [f32(v) for v in block]
    top = f32(grid_top(g) / 2**g)
    amax = max(abs(v) for v in xs)
    s = np.clip(f32(f32(amax / top) / t), f32(2.0**-6), f32(448.0))
    s_bits = e4m3_round(float(s))
    r = f32(f32(f32(1.0) / t) / f32(e4m3_value(s_bits)))
    us = [min(2 ** (4 + g) - 1, math.floor(Fraction(float(f32(abs(v) * r))) * 2 ** (g + 1))) for v in xs]
    return s_bits, us


def quantize_extended_block(
    block: list[float], book, g: int, scale: str, select: str, tensor_scale=None, allowed=None
) -> dict:
    """One block of an extended dialect format: {exponent | block_scale, dialect, codes}.

    ``tensor_scale`` is the E4M3 format's t (from ``e4m3_tensor_scale`` over the whole tensor).
    MSE selection compares float64 squared errors of the dequantized values (float32 values for
    E4M3, as stored; exact values for E8M0).
    """
    out = {}
    if scale == "e8m0":
        e = shared_exponent(block)
        us = [ucode_grid(v, e, g) for v in block]
        out["exponent"] = e + 127
        unit = Fraction(2) ** (e - g)
        deq = lambda h: float(h * unit)  # noqa: E731
        xs = block
    else:
        s_bits, us = e4m3_dialect_codes(block, tensor_scale, g)
        out["block_scale"] = s_bits
        ts = np.float32(tensor_scale * np.float32(e4m3_value(s_bits)))
        deq = lambda h: float(np.float32(np.float32(h / 2**g) * ts))  # noqa: E731
        xs = [float(np.float32(v)) for v in block]
    if select == "lut":
        d = lut_select(us, book, allowed)
    else:
        best, best_err = None, None
        for k, dialect in enumerate(book):
            if allowed is not None and not allowed[k]:
                continue
            err = sum((abs(x) - deq(dialect[nearest_index_ties_up(Fraction(u, 2), dialect)])) ** 2
                      for x, u in zip(xs, us))  # fmt: skip
            if best_err is None or err < best_err:
                best, best_err = k, err
        d = best
    out["dialect"] = d
    out["codes"] = [(sign_bit(v) << 3) | nearest_index_ties_up(Fraction(u, 2), book[d]) for v, u in zip(block, us)]
    return out


def extended_dequant(code: int, dialect: tuple[int, ...], g: int, exponent=None, scale_bits=None, tensor_scale=None) -> float:
    """float32 value of one element: exact h * 2^(e - g) rounded once (E8M0), or
    fl32(fl32(h * 2^-g) * fl32(t * s)) (E4M3); negative zero kept."""
    h = dialect[code & 7]
    sign = -1.0 if code & 8 else 1.0
    if exponent is not None:
        return sign * float(np.float32(float(h * Fraction(2) ** (exponent - 127 - g))))
    ts = np.float32(tensor_scale * np.float32(e4m3_value(scale_bits)))
    return sign * float(np.float32(np.float32(h / 2**g) * ts))

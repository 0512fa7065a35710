"""Combinational IEEE binary32 logic for the MAC array: exact-term conversion and an RNE adder.

Both functions add logic to a module and return the 32-bit result; they implement NUMERICS section 4:

- ``term_to_binary32``: ``fl32(acc * 2^shift)`` for an integer ``acc`` and a signed ``shift``, rounded
  once to nearest even (exact for normal results; subnormal results round; overflow gives +-inf);
- ``add_binary32``: ``fl(a + b)``, round to nearest even, subnormals in and out, overflow to +-inf,
  ``inf - inf`` and NaN operands give the canonical quiet NaN ``0x7fc00000`` (x86 hardware returns
  another NaN bit pattern; the scoreboards compare NaNs as a class).

Exact zero sums follow IEEE: ``x + (-x) = +0``, ``-0 + -0 = -0``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed

__all__ = ["CANONICAL_NAN", "add_binary32", "term_to_binary32"]

FRACTION_BITS = 23
EXPONENT_BITS = 8
BIAS = (1 << (EXPONENT_BITS - 1)) - 1
EXPONENT_ALL_ONES = (1 << EXPONENT_BITS) - 1
SIGNIFICAND_BITS = FRACTION_BITS + 1
#: Exponent of the smallest subnormal: 2^(1 - BIAS - FRACTION_BITS) = 2^-149.
MIN_SUBNORMAL_EXPONENT = 1 - BIAS - FRACTION_BITS
CANONICAL_NAN = (EXPONENT_ALL_ONES << FRACTION_BITS) | (1 << (FRACTION_BITS - 1))
#: Guard, round and sticky bits kept below the significand while adding.
EXTRA_BITS = 3


def _msb_index(m: Module, value, name: str) -> Signal:
    """Index of the most significant set bit of ``value`` (0 when ``value`` is 0)."""
    index = Signal(range(max(2, len(value))), name=name)
    for k in range(len(value)):
        with m.If(value[k]):
            m.d.comb += index.eq(k)  # later (higher) bits override
    return index


def term_to_binary32(m: Module, acc, shift, prefix: str) -> Signal:
    """binary32 bits of ``acc * 2^shift`` (``acc`` signed integer, ``shift`` signed), one RNE rounding."""
    width = len(acc)
    negative = acc[-1]
    magnitude = Signal(width, name=f"{prefix}_magnitude")
    m.d.comb += magnitude.eq(Mux(negative, -acc, acc))
    top = _msb_index(m, magnitude, f"{prefix}_top")
    biased = Signal(signed(len(shift) + 2), name=f"{prefix}_biased")
    m.d.comb += biased.eq(top + shift + BIAS)

    # Normal result: the significand is exact (width <= 24 bits), shifted so its top bit is hidden.
    normal_fraction = Signal(FRACTION_BITS, name=f"{prefix}_normal_fraction")
    m.d.comb += normal_fraction.eq(((magnitude << FRACTION_BITS) >> top)[:FRACTION_BITS])

    # Subnormal result: the value in units of 2^-149 is magnitude * 2^(shift + 149), rounded.
    units_shift = Signal(signed(len(shift) + 2), name=f"{prefix}_units_shift")
    m.d.comb += units_shift.eq(shift - MIN_SUBNORMAL_EXPONENT)
    # Right shifts of width + 1 or more leave less than half a unit: the result is 0.
    right = Signal(range(width + 2), name=f"{prefix}_right")
    m.d.comb += right.eq(Mux(units_shift < -(width + 1), width + 1, -units_shift))
    wide = Cat(Const(0, width + 1), magnitude) >> right  # fraction bits below, integer bits above
    kept = wide[width + 1 :]
    half = wide[width]
    sticky = wide[:width] != 0
    rounded = Signal(FRACTION_BITS + 1, name=f"{prefix}_subnormal_rounded")
    m.d.comb += rounded.eq(kept + (half & (sticky | kept[0])))
    left = Signal(FRACTION_BITS + 1, name=f"{prefix}_subnormal_exact")
    m.d.comb += left.eq(magnitude << units_shift.as_unsigned()[: (FRACTION_BITS).bit_length()])
    subnormal = Mux(units_shift < 0, rounded, left)  # a carry into bit 23 makes the smallest normal

    result = Signal(32, name=f"{prefix}_bits")
    with m.If(magnitude == 0):
        m.d.comb += result.eq(0)
    with m.Elif(biased >= EXPONENT_ALL_ONES):
        m.d.comb += result.eq(Cat(Const(0, FRACTION_BITS), Const(EXPONENT_ALL_ONES, EXPONENT_BITS), negative))
    with m.Elif(biased >= 1):
        m.d.comb += result.eq(Cat(normal_fraction, biased[:EXPONENT_BITS], negative))
    with m.Else():
        m.d.comb += result.eq(Cat(subnormal, Const(0, EXPONENT_BITS - 1), negative))
    return result


def add_binary32(m: Module, a, b, prefix: str) -> Signal:
    """binary32 bits of ``fl(a + b)``, round to nearest even, with subnormals, infinities and NaN."""
    magnitude_bits = EXPONENT_BITS + FRACTION_BITS
    swap = b[:magnitude_bits] > a[:magnitude_bits]
    x = Signal(32, name=f"{prefix}_x")  # the operand of larger magnitude
    y = Signal(32, name=f"{prefix}_y")
    m.d.comb += [x.eq(Mux(swap, b, a)), y.eq(Mux(swap, a, b))]

    def unpack(v, tag):
        field = v[FRACTION_BITS:magnitude_bits]
        normal = field != 0
        exp = Signal(EXPONENT_BITS, name=f"{prefix}_{tag}_exp")
        m.d.comb += exp.eq(Mux(normal, field, 1))
        significand = Cat(v[:FRACTION_BITS], normal)
        return field, exp, significand, v[-1]

    x_field, x_exp, x_sig, x_sign = unpack(x, "x")
    y_field, y_exp, y_sig, y_sign = unpack(y, "y")
    subtract = x_sign ^ y_sign

    work = SIGNIFICAND_BITS + EXTRA_BITS  # significand, guard, round, sticky
    distance = Signal(range(work + 1), name=f"{prefix}_distance")
    difference = x_exp - y_exp
    m.d.comb += distance.eq(Mux(difference > work, work, difference))
    shifted = Cat(Const(0, work), Const(0, EXTRA_BITS), y_sig) >> distance  # lost bits below bit `work`
    y_aligned = Signal(work, name=f"{prefix}_y_aligned")
    m.d.comb += y_aligned.eq(Cat(shifted[work] | (shifted[:work] != 0), shifted[work + 1 : 2 * work]))
    x_work = Cat(Const(0, EXTRA_BITS), x_sig)

    total = Signal(work + 1, name=f"{prefix}_sum")
    m.d.comb += total.eq(Mux(subtract, x_work - y_aligned, x_work + y_aligned))

    # Normalize so the leading one sits at bit work - 1 (the hidden bit), never below exponent 1.
    top = _msb_index(m, total, f"{prefix}_sum_top")
    normalized = Signal(work, name=f"{prefix}_normalized")
    exponent = Signal(signed(EXPONENT_BITS + 3), name=f"{prefix}_exponent")
    with m.If(total[work]):  # carry out: shift right by one, folding the lost bit into sticky
        m.d.comb += [normalized.eq(Cat(total[0] | total[1], total[2 : work + 1])), exponent.eq(x_exp + 1)]
    with m.Else():
        lead = Signal(range(work + 1), name=f"{prefix}_lead")
        m.d.comb += lead.eq((work - 1) - top)
        room = x_exp - 1  # left shifts allowed before the exponent reaches the subnormal range
        amount = Signal(range(work + 1), name=f"{prefix}_left")
        m.d.comb += amount.eq(Mux(lead > room, room, lead))
        m.d.comb += [normalized.eq(total << amount), exponent.eq(x_exp - amount)]

    significand = normalized[EXTRA_BITS:]
    guard = normalized[EXTRA_BITS - 1]
    rest = normalized[: EXTRA_BITS - 1] != 0
    round_up = guard & (rest | significand[0])
    rounded = Signal(SIGNIFICAND_BITS + 1, name=f"{prefix}_rounded")
    m.d.comb += rounded.eq(significand + round_up)
    final_exp = Signal(signed(EXPONENT_BITS + 3), name=f"{prefix}_final_exp")
    final_sig = Signal(SIGNIFICAND_BITS, name=f"{prefix}_final_sig")
    with m.If(rounded[SIGNIFICAND_BITS]):
        m.d.comb += [final_exp.eq(exponent + 1), final_sig.eq(rounded[1:])]
    with m.Else():
        m.d.comb += [final_exp.eq(exponent), final_sig.eq(rounded[:SIGNIFICAND_BITS])]
    # A result without its hidden bit is subnormal (exponent field 0); a zero sum is +0 unless
    # both operands were -0 (then subtract is 0 and x_sign is 1).
    is_zero = total == 0
    sign = Mux(is_zero & subtract, 0, x_sign)
    field = Mux(final_sig[FRACTION_BITS], final_exp[:EXPONENT_BITS], 0)

    x_special = x_field == EXPONENT_ALL_ONES
    y_special = y_field == EXPONENT_ALL_ONES
    x_nan = x_special & (x[:FRACTION_BITS] != 0)
    infinity = Cat(Const(0, FRACTION_BITS), Const(EXPONENT_ALL_ONES, EXPONENT_BITS))

    result = Signal(32, name=f"{prefix}_bits")
    with m.If(x_nan | (x_special & y_special & subtract)):
        m.d.comb += result.eq(CANONICAL_NAN)
    with m.Elif(x_special):
        m.d.comb += result.eq(x)
    with m.Elif(final_exp >= EXPONENT_ALL_ONES):
        m.d.comb += result.eq(Cat(infinity, sign))
    with m.Else():
        m.d.comb += result.eq(Cat(final_sig[:FRACTION_BITS], field, sign))
    return result

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
    """Index of the most significant set bit of ``value`` (0 when ``value`` is 0): a balanced tree of
    ``log2(width)`` 2:1 multiplexer levels, not a priority chain."""

    def tree(bits):  # -> (any bit set, index of the top set bit within `bits`)
        if len(bits) == 1:
            return bits[0], Const(0, 0)
        half = 1 << ((len(bits) - 1).bit_length() - 1)  # the largest power of two below len(bits)
        low_any, low_index = tree(bits[:half])
        high_any, high_index = tree(bits[half:])
        width = (half - 1).bit_length()
        high_index = Cat(high_index, Const(0, width - len(high_index)))
        low_index = Cat(low_index, Const(0, width - len(low_index)))
        return low_any | high_any, Mux(high_any, Cat(high_index, Const(1, 1)), Cat(low_index, Const(0, 1)))

    index = Signal(range(max(2, len(value))), name=name)
    _, found = tree([value[k] for k in range(len(value))])
    m.d.comb += index.eq(found)
    return index


def _lost_bits(value, amount, offset: int):
    """Whether ``value`` has a set bit ``i`` with ``amount >= i + offset``: the bits a right shift by
    ``amount`` drops below the kept ones (``offset`` places them), tested beside the shifter on its
    input (an OR over the shifter's low outputs would follow the shifter's multiplexer levels)."""
    return Cat(*(value[i] & (amount >= i + offset) for i in range(len(value)))) != 0


def _no_cut(values: dict) -> dict:
    return values


#: Register hooks of ``term_to_binary32`` (between its four steps).
TERM_HOOKS = 3


def term_to_binary32(m: Module, acc, shift, prefix: str, cuts=(_no_cut,) * TERM_HOOKS) -> Signal:
    """binary32 bits of ``acc * 2^shift`` (``acc`` signed integer, ``shift`` signed), one RNE rounding.

    ``cuts`` are three ``cut(values) -> values`` hooks between the four steps (sign and magnitude |
    leading-one detection and the shift amounts | the shifts | rounding and packing), so a pipelined
    caller can register the values there; the default keeps it combinational.
    """
    width = len(acc)
    negative = Signal(name=f"{prefix}_negative")
    m.d.comb += negative.eq(acc[-1])
    magnitude = Signal(width, name=f"{prefix}_magnitude")
    m.d.comb += magnitude.eq(Mux(negative, -acc, acc))
    # Beside the magnitude: the biased shift and the shift in subnormal units (the value in units of
    # 2^-149 is magnitude * 2^(shift + 149)); the leading-one index is added to the biased shift one step
    # after its search, beside the shifts.
    live = cuts[0]({"negative": negative, "magnitude": magnitude, "shift_biased": shift + BIAS,
                    "units_shift": shift - MIN_SUBNORMAL_EXPONENT})  # fmt: skip
    negative, magnitude, units_shift = live["negative"], live["magnitude"], live["units_shift"]
    top = _msb_index(m, magnitude, f"{prefix}_top")
    shift_biased = live["shift_biased"]
    # Right shifts of width + 1 or more leave less than half a unit: the result is 0.
    right = Signal(range(width + 2), name=f"{prefix}_right")
    m.d.comb += right.eq(Mux(units_shift < -(width + 1), width + 1, -units_shift))
    left_amount = Signal(FRACTION_BITS.bit_length(), name=f"{prefix}_left_amount")
    m.d.comb += left_amount.eq(units_shift.as_unsigned()[: FRACTION_BITS.bit_length()])
    below = Signal(name=f"{prefix}_below_units")
    m.d.comb += below.eq(units_shift < 0)
    # The exponent's range tests as compares of the index with thresholds formed here (top + biased
    # shift >= 255 <=> top >= 255 - biased shift), beside the index add, not after it.
    names = ("negative", "magnitude", "top", "shift_biased", "right", "left_amount", "below")
    live = cuts[1]({**dict(zip(names, (negative, magnitude, top, shift_biased, right, left_amount, below))),
                    "overflow_at": EXPONENT_ALL_ONES - shift_biased, "normal_at": 1 - shift_biased})  # fmt: skip
    negative, magnitude, top, shift_biased, right, left_amount, below = (live[k] for k in names)

    # Normal result: the significand is exact (width <= 24 bits), shifted so its top bit is hidden.
    normal_fraction = Signal(FRACTION_BITS, name=f"{prefix}_normal_fraction")
    m.d.comb += normal_fraction.eq(((magnitude << FRACTION_BITS) >> top)[:FRACTION_BITS])
    wide = Cat(Const(0, width + 1), magnitude) >> right  # fraction bits below, integer bits above
    kept = Signal(FRACTION_BITS + 1, name=f"{prefix}_kept")
    half = Signal(name=f"{prefix}_half")
    sticky = Signal(name=f"{prefix}_sticky")
    m.d.comb += [kept.eq(wide[width + 1 :]), half.eq(wide[width]), sticky.eq(_lost_bits(magnitude, right, 2))]
    left = Signal(FRACTION_BITS + 1, name=f"{prefix}_subnormal_exact")
    m.d.comb += left.eq(magnitude << left_amount)
    zero = Signal(name=f"{prefix}_zero")
    overflow = Signal(name=f"{prefix}_overflow")
    normal = Signal(name=f"{prefix}_normal")
    m.d.comb += [zero.eq(magnitude == 0), overflow.eq(top >= live["overflow_at"]), normal.eq(top >= live["normal_at"])]
    exponent_field = Signal(EXPONENT_BITS, name=f"{prefix}_exponent_field")
    m.d.comb += exponent_field.eq(top + shift_biased)  # the field of a normal, finite result
    names = ("negative", "normal_fraction", "kept", "half", "sticky", "left", "below", "zero", "overflow", "normal",
             "exponent_field")  # fmt: skip
    live = cuts[2](dict(zip(names, (negative, normal_fraction, kept, half, sticky, left, below, zero, overflow, normal,
                                    exponent_field))))  # fmt: skip
    negative, normal_fraction, kept, half, sticky, left, below, zero, overflow, normal, exponent_field = (
        live[k] for k in names)

    rounded = Signal(FRACTION_BITS + 1, name=f"{prefix}_subnormal_rounded")
    m.d.comb += rounded.eq(kept + (half & (sticky | kept[0])))
    subnormal = Mux(below, rounded, left)  # a carry into bit 23 makes the smallest normal

    result = Signal(32, name=f"{prefix}_bits")
    with m.If(zero):
        m.d.comb += result.eq(0)
    with m.Elif(overflow):
        m.d.comb += result.eq(Cat(Const(0, FRACTION_BITS), Const(EXPONENT_ALL_ONES, EXPONENT_BITS), negative))
    with m.Elif(normal):
        m.d.comb += result.eq(Cat(normal_fraction, exponent_field, negative))
    with m.Else():
        m.d.comb += result.eq(Cat(subnormal, Const(0, EXPONENT_BITS - 1), negative))
    return result


#: Register hooks of ``add_binary32`` (between its eight steps).
ADDER_HOOKS = 7


def add_binary32(m: Module, a, b, prefix: str, cuts=(_no_cut,) * ADDER_HOOKS) -> Signal:
    """binary32 bits of ``fl(a + b)``, round to nearest even, with subnormals, infinities and NaN.

    ``cuts`` are seven ``cut(values) -> values`` hooks between the adder's eight steps (swap compare
    and exponent differences | operand swap, special cases and the clamped alignment distance |
    alignment shift | add | leading-one
    detection and shift amount | normalizing shift | rounding increment | packing and special
    cases), so a pipelined caller can register the values there.
    """
    magnitude_bits = EXPONENT_BITS + FRACTION_BITS
    work = SIGNIFICAND_BITS + EXTRA_BITS  # significand, guard, round, sticky
    # Step 1: the swap compare and both exponent differences, side by side (the operands stay raw:
    # the swap multiplexers follow the first hook, off the compare's carry chain).
    swap = Signal(name=f"{prefix}_swap")
    m.d.comb += swap.eq(b[:magnitude_bits] > a[:magnitude_bits])
    a_exp, b_exp = (Mux(v[FRACTION_BITS:magnitude_bits] != 0, v[FRACTION_BITS:magnitude_bits], 1) for v in (a, b))
    differences = []
    for tag, difference in (("ab", a_exp - b_exp), ("ba", b_exp - a_exp)):
        d = Signal(signed(EXPONENT_BITS + 2), name=f"{prefix}_difference_{tag}")
        m.d.comb += d.eq(difference)
        differences.append(d)
    # The special cases do not depend on the swap (x, the larger magnitude, is special when either
    # operand is, and a NaN when either is): formed beside the compare.
    specials = [v[FRACTION_BITS:magnitude_bits] == EXPONENT_ALL_ONES for v in (a, b)]
    subtract = Signal(name=f"{prefix}_subtract")
    x_special = Signal(name=f"{prefix}_x_special")
    nan_out = Signal(name=f"{prefix}_nan_out")
    any_nan = (specials[0] & (a[:FRACTION_BITS] != 0)) | (specials[1] & (b[:FRACTION_BITS] != 0))
    m.d.comb += [
        subtract.eq(a[-1] ^ b[-1]),
        x_special.eq(specials[0] | specials[1]),
        nan_out.eq(any_nan | (specials[0] & specials[1] & subtract)),  # a NaN operand, or inf - inf
    ]
    live = cuts[0]({"a": a, "b": b, "swap": swap, "difference_ab": differences[0], "difference_ba": differences[1],
                    "subtract": subtract, "x_special": x_special, "nan_out": nan_out})  # fmt: skip
    a, b, swap, subtract, x_special, nan_out = (live[k] for k in ("a", "b", "swap", "subtract", "x_special", "nan_out"))

    # Step 2: the operand of larger magnitude x, the clamped alignment distance.
    x = Signal(32, name=f"{prefix}_x")
    y = Signal(magnitude_bits, name=f"{prefix}_y")  # its sign is in `subtract`
    m.d.comb += [x.eq(Mux(swap, b, a)), y.eq(Mux(swap, a[:magnitude_bits], b[:magnitude_bits]))]

    def unpack(v, tag):
        field = v[FRACTION_BITS:magnitude_bits]
        normal = field != 0
        exp = Signal(EXPONENT_BITS, name=f"{prefix}_{tag}_exp")
        m.d.comb += exp.eq(Mux(normal, field, 1))
        significand = Cat(v[:FRACTION_BITS], normal)
        return exp, significand

    x_exp, x_sig = unpack(x, "x")
    _, y_sig = unpack(y, "y")
    keep = ("x", "x_exp", "subtract", "nan_out", "x_special")
    clamped = []
    for tag in ("ab", "ba"):
        d = live[f"difference_{tag}"]
        c = Signal(range(work + 1), name=f"{prefix}_distance_{tag}")
        m.d.comb += c.eq(Mux(d > work, work, d))
        clamped.append(c)
    distance = Signal(range(work + 1), name=f"{prefix}_distance")
    m.d.comb += distance.eq(Mux(swap, clamped[1], clamped[0]))
    y_sig_bits = Signal(SIGNIFICAND_BITS, name=f"{prefix}_y_sig")
    m.d.comb += y_sig_bits.eq(y_sig)
    live = cuts[1]({"x": x, "x_exp": x_exp, "subtract": subtract, "nan_out": nan_out, "x_special": x_special,
                    "distance": distance, "y_sig": y_sig_bits})  # fmt: skip
    x, x_exp, subtract, nan_out, x_special = (live[k] for k in keep)

    shifted = Cat(Const(0, work), Const(0, EXTRA_BITS), live["y_sig"]) >> live["distance"]  # lost bits below bit `work`
    y_aligned = Signal(work, name=f"{prefix}_y_aligned")
    sticky = _lost_bits(live["y_sig"], live["distance"], EXTRA_BITS)  # the bits that land at or below bit `work`
    m.d.comb += y_aligned.eq(Cat(sticky, shifted[work + 1 : 2 * work]))
    live = cuts[2]({"x": x, "x_exp": x_exp, "subtract": subtract, "nan_out": nan_out, "x_special": x_special,
                    "y_aligned": y_aligned})  # fmt: skip
    x, x_exp, subtract, nan_out, x_special = (live[k] for k in keep)
    y_aligned = live["y_aligned"]
    x_sig = Cat(x[:FRACTION_BITS], x[FRACTION_BITS:magnitude_bits] != 0)
    x_work = Cat(Const(0, EXTRA_BITS), x_sig)

    total = Signal(work + 1, name=f"{prefix}_sum")
    m.d.comb += total.eq(Mux(subtract, x_work - y_aligned, x_work + y_aligned))
    # The subnormal barrier, beside the add: a one at bit work - x_exp, so the leading-one search below
    # stops after at most x_exp - 1 left shifts (the exponent never goes below 1) with no compare and
    # clamp after the search; none when x_exp > work (the search stops at the sum's own leading one).
    barrier = (Const(1 << work, work + 1) >> x_exp)[:work]
    live = cuts[3]({"x": x, "x_exp": x_exp, "subtract": subtract, "nan_out": nan_out, "x_special": x_special,
                    "total": total, "barrier": barrier})  # fmt: skip
    x, x_exp, subtract, nan_out, x_special = (live[k] for k in keep)
    total = live["total"]

    # Normalize so the leading one sits at bit work - 1 (the hidden bit), never below exponent 1:
    # shift left by min(leading zeros of the sum, x_exp - 1) = the leading zeros of sum | barrier. The
    # search runs over 32 bits (the sum's low `work` bits on top), so the count is the complement of the
    # top index. (A zero sum counts 31: it normalizes to 0 and packs as a zero whatever the exponent.)
    search = Cat(Const(0, 32 - work), total[:work] | live["barrier"])
    top = _msb_index(m, search, f"{prefix}_sum_top")
    amount = Signal(5, name=f"{prefix}_left")
    m.d.comb += amount.eq(~top)
    is_zero = Signal(name=f"{prefix}_is_zero")
    m.d.comb += is_zero.eq(total == 0)
    live = cuts[4]({"x": x, "x_exp": x_exp, "subtract": subtract, "nan_out": nan_out, "x_special": x_special,
                    "total": total, "amount": amount, "is_zero": is_zero})  # fmt: skip
    x, x_exp, subtract, nan_out, x_special = (live[k] for k in keep)
    total, amount, is_zero = live["total"], live["amount"], live["is_zero"]
    normalized = Signal(work, name=f"{prefix}_normalized")
    exponent = Signal(signed(EXPONENT_BITS + 3), name=f"{prefix}_exponent")
    with m.If(total[work]):  # carry out: shift right by one, folding the lost bit into sticky
        m.d.comb += [normalized.eq(Cat(total[0] | total[1], total[2 : work + 1])), exponent.eq(x_exp + 1)]
    with m.Else():
        m.d.comb += [normalized.eq(total << amount), exponent.eq(x_exp - amount)]
    live = cuts[5]({"x": x, "x_exp": x_exp, "subtract": subtract, "nan_out": nan_out, "x_special": x_special,
                    "normalized": normalized, "exponent": exponent, "is_zero": is_zero})  # fmt: skip
    x, x_exp, subtract, nan_out, x_special = (live[k] for k in keep)
    normalized, exponent, is_zero = live["normalized"], live["exponent"], live["is_zero"]
    x_sign = x[-1]

    significand = normalized[EXTRA_BITS:]
    guard = normalized[EXTRA_BITS - 1]
    rest = normalized[: EXTRA_BITS - 1] != 0
    round_up = guard & (rest | significand[0])
    rounded = Signal(SIGNIFICAND_BITS + 1, name=f"{prefix}_rounded")
    m.d.comb += rounded.eq(significand + round_up)
    # Beside the increment: both candidate exponents (a carry out of the rounding adds one) and their
    # overflow tests, and the sign (a zero sum is +0 unless both operands were -0: then subtract is 0
    # and x_sign is 1), so the last step is selections only.
    exponent_up = exponent + 1
    sign = Signal(name=f"{prefix}_sign")
    m.d.comb += sign.eq(Mux(is_zero & subtract, 0, x_sign))
    live = cuts[6]({"x": x, "nan_out": nan_out, "x_special": x_special, "rounded": rounded, "sign": sign,
                    "exponent": exponent, "exponent_up": exponent_up, "overflow": exponent >= EXPONENT_ALL_ONES,
                    "overflow_up": exponent >= EXPONENT_ALL_ONES - 1})  # fmt: skip
    x, nan_out, x_special, rounded, sign = (live[k] for k in ("x", "nan_out", "x_special", "rounded", "sign"))
    carry = rounded[SIGNIFICAND_BITS]
    fraction = Signal(FRACTION_BITS, name=f"{prefix}_fraction")
    m.d.comb += fraction.eq(Mux(carry, rounded[1:SIGNIFICAND_BITS], rounded[:FRACTION_BITS]))
    # A result without its hidden bit is subnormal (exponent field 0).
    field = Mux(carry, live["exponent_up"][:EXPONENT_BITS], Mux(rounded[FRACTION_BITS], live["exponent"][:EXPONENT_BITS], 0))
    overflow = Mux(carry, live["overflow_up"], live["overflow"])
    infinity = Cat(Const(0, FRACTION_BITS), Const(EXPONENT_ALL_ONES, EXPONENT_BITS))

    result = Signal(32, name=f"{prefix}_bits")
    with m.If(nan_out):
        m.d.comb += result.eq(CANONICAL_NAN)
    with m.Elif(x_special):
        m.d.comb += result.eq(x)
    with m.Elif(overflow):
        m.d.comb += result.eq(Cat(infinity, sign))
    with m.Else():
        m.d.comb += result.eq(Cat(fraction, field, sign))
    return result


#: Register hooks of ``round_to_binary32`` (between its five steps).
ROUND_HOOKS = 4


def round_to_binary32(m: Module, magnitude, exponent, negative, prefix: str, cuts=(_no_cut,) * ROUND_HOOKS) -> Signal:
    """binary32 bits of ``(-1)^negative * magnitude * 2^exponent`` (``magnitude`` unsigned of any width,
    ``exponent`` signed), one RNE rounding: subnormal results round, overflow gives +-inf, a zero
    magnitude gives +0. ``cuts``: four hooks between leading- and trailing-one detection | the bits to
    drop | the shift amount, exponent fields and sticky bit | the shift | rounding.

    One shifter serves both cases: the bits to drop are ``d = max(top - 23, -149 - exponent)`` (the
    normal and the subnormal precision); ``magnitude * 2^24`` shifted right by ``d + 24 >= 1`` leaves the
    kept significand above a half bit. The sticky bit (a set bit below the half bit: the lowest set bit
    ``low <= d - 2``), both candidate exponent fields and their overflow tests are formed from ``d``
    beside the shift amount, so the shift step is the shifter alone and the last step the increment
    and selections.
    """
    width = len(magnitude)
    wide = signed(len(exponent) + 3)
    top = _msb_index(m, magnitude, f"{prefix}_top")
    # The lowest set bit: the top set bit of the reversed magnitude, counted from the other end.
    reversed_top = _msb_index(m, Cat(*(magnitude[width - 1 - k] for k in range(width))), f"{prefix}_reversed_top")
    zero = Signal(name=f"{prefix}_zero")
    m.d.comb += zero.eq(magnitude == 0)
    drop_subnormal = Signal(wide, name=f"{prefix}_drop_subnormal")
    m.d.comb += drop_subnormal.eq(MIN_SUBNORMAL_EXPONENT - exponent)
    # value = rounded * 2^(exponent + d): bit 23 set -> biased field exponent + d + 150; a carry into
    # bit 24 -> + 151.
    # (The normal precision wins when top - 23 > drop_subnormal: top is compared with drop_subnormal + 23.)
    names = ("magnitude", "top", "reversed_top", "field_base", "drop_subnormal", "negative", "zero")
    live = cuts[0]({**dict(zip(names, (magnitude, top, reversed_top, exponent + 150, drop_subnormal, negative, zero))),
                    "normal_limit": drop_subnormal + FRACTION_BITS})  # fmt: skip
    magnitude, top, drop_subnormal, negative, zero = (live[k] for k in ("magnitude", "top", "drop_subnormal", "negative", "zero"))
    field_base = live["field_base"]
    drop = Signal(wide, name=f"{prefix}_drop")
    m.d.comb += drop.eq(Mux(top > live["normal_limit"], top - FRACTION_BITS, drop_subnormal))
    # Beside the drop: the overflow thresholds (field_base + c + d >= 255 <=> d >= 255 - c - field_base)
    # and the lowest set bit's index + 2 (its bit is dropped below the half bit when d >= low + 2).
    names = ("magnitude", "drop", "field_base", "negative", "zero")
    live = cuts[1]({**dict(zip(names, (magnitude, drop, field_base, negative, zero))),
                    "threshold_0": EXPONENT_ALL_ONES - field_base, "threshold_1": EXPONENT_ALL_ONES - 1 - field_base,
                    "low_plus_2": (width + 1) - live["reversed_top"]})  # fmt: skip
    magnitude, drop, field_base, negative, zero = (live[k] for k in names)
    limit = width + 1  # dropping more leaves less than half a unit
    amount = Signal(range(limit + SIGNIFICAND_BITS + 1), name=f"{prefix}_amount")
    m.d.comb += amount.eq(Mux(drop > limit, limit + SIGNIFICAND_BITS, drop + SIGNIFICAND_BITS))  # add beside the compare
    sticky = Signal(name=f"{prefix}_sticky")
    m.d.comb += sticky.eq(~zero & (drop >= live["low_plus_2"]))
    names = ("magnitude", "amount", "sticky", "negative", "zero")
    live = cuts[2]({**dict(zip(names, (magnitude, amount, sticky, negative, zero))),
                    "field_0": field_base + drop, "field_1": field_base + 1 + drop,
                    "overflow_0": drop >= live["threshold_0"], "overflow_1": drop >= live["threshold_1"]})  # fmt: skip
    magnitude, amount, sticky, negative, zero = (live[k] for k in names)

    shifted_width = width + SIGNIFICAND_BITS
    shifted = Cat(Const(0, shifted_width + 1), Const(0, SIGNIFICAND_BITS), magnitude) >> amount
    kept = Signal(SIGNIFICAND_BITS + 1, name=f"{prefix}_kept")
    half = Signal(name=f"{prefix}_half")
    m.d.comb += [kept.eq(shifted[shifted_width + 1 :]), half.eq(shifted[shifted_width])]
    names = ("kept", "half", "sticky", "field_0", "field_1", "overflow_0", "overflow_1", "negative", "zero")
    live = cuts[3](dict(zip(names, (kept, half, sticky, *(live[k] for k in names[3:7]), negative, zero))))
    kept, half, sticky, negative, zero = (live[k] for k in ("kept", "half", "sticky", "negative", "zero"))

    round_up = half & (sticky | kept[0])  # to nearest, ties to even
    rounded = Signal(SIGNIFICAND_BITS + 1, name=f"{prefix}_rounded")
    m.d.comb += rounded.eq(kept + round_up)
    carry = rounded[SIGNIFICAND_BITS]
    field = Signal(EXPONENT_BITS, name=f"{prefix}_field")
    m.d.comb += field.eq(Mux(carry, live["field_1"], Mux(rounded[FRACTION_BITS], live["field_0"], 0)))
    overflow = Mux(carry, live["overflow_1"], rounded[FRACTION_BITS] & live["overflow_0"])
    result = Signal(32, name=f"{prefix}_bits")
    with m.If(zero):
        m.d.comb += result.eq(0)
    with m.Elif(overflow):
        m.d.comb += result.eq(Cat(Const(0, FRACTION_BITS), Const(EXPONENT_ALL_ONES, EXPONENT_BITS), negative))
    with m.Else():
        m.d.comb += result.eq(Cat(rounded[:FRACTION_BITS], field, negative))
    return result


def unpack_binary32(m: Module, bits, prefix: str):
    """(significand with the hidden bit, exponent of its unit, negative, is-inf, is-nan) of binary32 ``bits``."""
    field = bits[FRACTION_BITS : FRACTION_BITS + EXPONENT_BITS]
    normal = field != 0
    significand = Signal(SIGNIFICAND_BITS, name=f"{prefix}_significand")
    exponent = Signal(signed(EXPONENT_BITS + 2), name=f"{prefix}_exponent")
    m.d.comb += [
        significand.eq(Cat(bits[:FRACTION_BITS], normal)),
        exponent.eq(Mux(normal, field, 1) - BIAS - FRACTION_BITS),
    ]
    special = field == EXPONENT_ALL_ONES
    return significand, exponent, bits[-1], special & (bits[:FRACTION_BITS] == 0), special & (bits[:FRACTION_BITS] != 0)


def multiply_binary32(m: Module, a, b, prefix: str) -> Signal:
    """binary32 bits of ``fl(a * b)`` (RNE, subnormals, +-inf; NaN or 0 * inf give the canonical NaN)."""
    sig_a, exp_a, neg_a, inf_a, nan_a = unpack_binary32(m, a, f"{prefix}_a")
    sig_b, exp_b, neg_b, inf_b, nan_b = unpack_binary32(m, b, f"{prefix}_b")
    product = Signal(2 * SIGNIFICAND_BITS, name=f"{prefix}_product")
    m.d.comb += product.eq(sig_a * sig_b)
    negative = neg_a ^ neg_b
    rounded = round_to_binary32(m, product, exp_a + exp_b, negative, f"{prefix}_round")
    zero_a, zero_b = sig_a == 0, sig_b == 0
    result = Signal(32, name=f"{prefix}_bits")
    with m.If(nan_a | nan_b | (inf_a & zero_b) | (inf_b & zero_a)):
        m.d.comb += result.eq(CANONICAL_NAN)
    with m.Elif(inf_a | inf_b):
        m.d.comb += result.eq(Cat(Const(0, FRACTION_BITS), Const(EXPONENT_ALL_ONES, EXPONENT_BITS), negative))
    with m.Elif(zero_a | zero_b):
        m.d.comb += result.eq(Cat(Const(0, 31), negative))
    with m.Else():
        m.d.comb += result.eq(rounded)
    return result

"""The MAC array's binary32 blocks against numpy, directly: the RNE adder and the term conversion.

Operands cover every binade class: zeros of both signs, subnormals, normals, the largest finite
values (overflow to inf), infinities and NaNs; plus exact ties and exact cancellation.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from hw.float32 import add_binary32, term_to_binary32

SPECIALS = np.array(
    [0x00000000, 0x80000000, 0x00000001, 0x80000001, 0x007FFFFF, 0x00800000, 0x80800000, 0x3F800000,
     0xBF800000, 0x4B800000, 0x4B800001, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F800000, 0xFF800000, 0x7FC00000,
     0x33800000, 0x34000000, 0x00400000],
    dtype=np.uint32,
)  # fmt: skip


def _operand_pairs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    a = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
    b = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
    # Close exponents (alignment, cancellation, ties) in half of the pairs.
    close = rng.random(n) < 0.5
    shift = rng.integers(-3, 4, n).astype(np.int64) << 23
    b = np.where(close, ((a.astype(np.int64) + shift + rng.integers(-4, 5, n)) & 0xFFFFFFFF).astype(np.uint32), b)
    # Small exponents (subnormal sums) in a quarter.
    tiny = rng.random(n) < 0.25
    a = np.where(tiny, a & 0x80FFFFFF, a)
    b = np.where(tiny, b & 0x80FFFFFF, b)
    grid = np.array(np.meshgrid(SPECIALS, SPECIALS)).reshape(2, -1)
    return np.concatenate([grid[0], a]), np.concatenate([grid[1], b])


def _evaluate(build, inputs: list[tuple[int, ...]], widths) -> list[int]:
    m = Module()
    ports = [Signal(w) for w in widths]
    out = build(m, *ports)
    results = []

    async def bench(ctx):
        for values in inputs:
            for port, value in zip(ports, values):
                ctx.set(port, value)
            results.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return results


def test_adder_matches_numpy_round_to_nearest_even():
    a, b = _operand_pairs(np.random.default_rng(3), 1500)
    got = np.array(_evaluate(lambda m, x, y: add_binary32(m, x, y, "t"), list(zip(a.tolist(), b.tolist())), (32, 32)),
                   dtype=np.uint32)
    with np.errstate(all="ignore"):
        expected = (a.view(np.float32) + b.view(np.float32)).view(np.uint32)
    nan = np.isnan(expected.view(np.float32))
    assert (np.isnan(got.view(np.float32)) == nan).all()
    bad = np.flatnonzero((got != expected) & ~nan)
    assert not len(bad), [(hex(a[j]), hex(b[j]), hex(expected[j]), hex(got[j])) for j in bad[:8]]


@pytest.mark.parametrize("acc_bits", [14, 16])
def test_term_conversion_is_one_rne_rounding(acc_bits):
    rng = np.random.default_rng(acc_bits)
    limit = 1 << (acc_bits - 2)
    acc = np.concatenate([[0, 1, -1, limit - 1, -(limit - 1), 3, 5, 7], rng.integers(-limit, limit, 1200)])
    shift = np.concatenate([[-256, -150, -149, 0, 120, -151, -152, -160], rng.integers(-262, 256, 1200)])
    shift[-400:] = rng.integers(-170, -120, 400)  # the subnormal boundary
    inputs = [(int(x) & ((1 << acc_bits) - 1), int(s) & 0x3FF) for x, s in zip(acc, shift)]

    def build(m, x, s):
        return term_to_binary32(m, x.as_signed(), s.as_signed(), "t")

    got = np.array(_evaluate(build, inputs, (acc_bits, 10)), dtype=np.uint32)
    exact = torch.from_numpy(acc.astype(np.float64)) * torch.pow(2.0, torch.from_numpy(shift.astype(np.float64)))
    expected = exact.to(torch.float32).numpy().view(np.uint32)
    expected = np.where(acc == 0, 0, expected)  # the unit forms +0 for a zero sum
    bad = np.flatnonzero(got != expected)
    assert not len(bad), [(int(acc[j]), int(shift[j]), hex(expected[j]), hex(got[j])) for j in bad[:8]]


def test_adder_cancellation_near_the_subnormal_range():
    """Close operands of opposite sign with exponent fields 0..40: the normalizing shift is capped by the
    subnormal barrier (``add_binary32`` step 5) instead of the sum's leading one."""
    rng = np.random.default_rng(11)
    n = 1000
    a = (rng.integers(0, 40, n).astype(np.uint32) << 23) | rng.integers(0, 1 << 23, n).astype(np.uint32)
    b = np.clip(a.astype(np.int64) + rng.integers(-(1 << 24), 1 << 24, n), 0, None).astype(np.uint32) | 0x80000000
    got = np.array(_evaluate(lambda m, x, y: add_binary32(m, x, y, "t"), list(zip(a.tolist(), b.tolist())), (32, 32)),
                   dtype=np.uint32)  # fmt: skip
    expected = (a.view(np.float32) + b.view(np.float32)).view(np.uint32)
    bad = np.flatnonzero(got != expected)
    assert not len(bad), [(hex(a[j]), hex(b[j]), hex(expected[j]), hex(got[j])) for j in bad[:8]]

"""The NVFP4 scale path's binary32 pieces against numpy: a general one-rounding conversion of a wide
integer times a power of two, and the binary32 multiplier (tensor-scale product)."""

from __future__ import annotations

import numpy as np
import torch
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from hw.float32 import multiply_binary32, round_to_binary32
from tests.test_hw_float32 import SPECIALS, _operand_pairs


def _evaluate(build, inputs, widths):
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


def test_round_to_binary32_is_one_rne_rounding_of_a_wide_integer():
    rng = np.random.default_rng(5)
    n = 1500
    bits = rng.integers(1, 46, n)
    magnitude = np.array([int(rng.integers(0, 1 << int(b), dtype=np.uint64)) for b in bits], dtype=object)
    magnitude[:6] = [0, 1, (1 << 45) - 1, (1 << 25) + 1, 3 << 23, (1 << 24) - 1]
    exponent = rng.integers(-220, 150, n)
    exponent[-500:] = rng.integers(-200, -150, 500)  # subnormal results and their rounding
    negative = rng.integers(0, 2, n)
    inputs = [(int(x), int(e) & 0x3FF, int(s)) for x, e, s in zip(magnitude, exponent, negative)]
    got = np.array(_evaluate(lambda m, x, e, s: round_to_binary32(m, x, e.as_signed(), s, "r"), inputs, (45, 10, 1)),
                   dtype=np.uint32)  # fmt: skip
    exact = torch.tensor([float(x) for x in magnitude], dtype=torch.float64) * torch.pow(2.0, torch.from_numpy(exponent.astype(np.float64)))
    exact = torch.where(torch.from_numpy(negative.astype(bool)), -exact, exact)
    expected = exact.to(torch.float32).numpy().view(np.uint32)
    expected = np.where(magnitude == 0, 0, expected)  # a zero magnitude gives +0
    bad = np.flatnonzero(got != expected)
    assert not len(bad), [(int(magnitude[j]), int(exponent[j]), hex(expected[j]), hex(got[j])) for j in bad[:8]]


def test_binary32_multiplier_matches_numpy():
    a, b = _operand_pairs(np.random.default_rng(9), 1500)
    # Products near the subnormal and overflow edges too.
    a = np.concatenate([a, (SPECIALS & 0x80FFFFFF) | 0x20000000])
    b = np.concatenate([b, SPECIALS])
    got = np.array(_evaluate(lambda m, x, y: multiply_binary32(m, x, y, "t"), list(zip(a.tolist(), b.tolist())), (32, 32)),
                   dtype=np.uint32)  # fmt: skip
    with np.errstate(all="ignore"):
        expected = (a.view(np.float32) * b.view(np.float32)).view(np.uint32)
    nan = np.isnan(expected.view(np.float32))
    assert (np.isnan(got.view(np.float32)) == nan).all()
    bad = np.flatnonzero((got != expected) & ~nan)
    assert not len(bad), [(hex(a[j]), hex(b[j]), hex(expected[j]), hex(got[j])) for j in bad[:8]]

"""The integer matmul path against an independent block-by-block float64 reference (NUMERICS s.4)."""

import numpy as np
import pytest
import torch

import golden
from tests.block_distributions import random_blocks


@np.errstate(over="ignore")  # overflow to inf is one of the cases under test
def reference_matmul(a: golden.QuantizedTensor, w: golden.QuantizedTensor) -> np.ndarray:
    """Each K block's dot product of the *dequantized* values in float64 (exact: the products share
    one power of two per block pair), rounded once to binary32, then summed in increasing K order
    in numpy float32 from +0.0."""
    if a.spec.scale is golden.Scale.E4M3:
        raise AssertionError("E4M3 scales (NVFP4, E4M3 dialects) have their own reference below")
    da = a.dequantize().double().numpy().reshape(-1, a.num_blocks, a.block)
    dw = w.dequantize().double().numpy().reshape(-1, w.num_blocks, w.block)
    y = np.zeros((da.shape[0], dw.shape[0]), dtype=np.float32)
    for m in range(da.shape[0]):
        for n in range(dw.shape[0]):
            acc = np.float32(0.0)
            for b in range(a.num_blocks):
                acc = np.float32(acc + np.float32(float(np.dot(da[m, b], dw[n, b]))))
            y[m, n] = acc
    return y


def reference_nvfp4_matmul(a, w) -> np.ndarray:
    """term = fl32(fl32(acc 2^-2g * fl32(s_a s_w)) * fl32(t_a t_w)), accumulated in K order
    (g = 1: half units, NVFP4's acc/4; g = 2: quarter units)."""
    ha = a.signed_units().numpy().reshape(-1, a.num_blocks, a.block)
    hw = w.signed_units().numpy()
    unit2 = 2.0 ** (-2 * a.spec.grid.shift)
    sa = a.block_scale.view(torch.float8_e4m3fn).float().numpy().reshape(-1, a.num_blocks)
    sw = w.block_scale.view(torch.float8_e4m3fn).float().numpy()
    t = np.float32(a.tensor_scale.item()) * np.float32(w.tensor_scale.item())
    y = np.zeros((ha.shape[0], hw.shape[0]), dtype=np.float32)
    for m in range(ha.shape[0]):
        for n in range(hw.shape[0]):
            acc = np.float32(0.0)
            for b in range(a.num_blocks):
                dot = int(np.dot(ha[m, b].astype(np.int64), hw[n, b].astype(np.int64)))
                term = np.float32(np.float32(np.float32(dot * unit2) * np.float32(sa[m, b] * sw[n, b])) * t)
                acc = np.float32(acc + term)
            y[m, n] = acc
    return y


def operands(fmt, m=6, n=5, k=256, seed=0, kind="normal"):
    block = golden.get_format(fmt).default_block
    x = random_blocks(kind, m * k // block, block, seed=seed).reshape(m, k)
    wt = random_blocks(kind, n * k // block, block, seed=seed + 1).reshape(n, k)
    a = golden.quantize(x, fmt)
    w = golden.quantize(wt, fmt, select=golden.weight_selection(fmt))
    return a, w


@pytest.mark.parametrize("fmt", list(golden.FORMATS))
@pytest.mark.parametrize("kind", ["normal", "student-t", "log-uniform", "sparse"])
def test_quantized_matmul_equals_block_reference(fmt, kind):
    a, w = operands(fmt, kind=kind, seed=len(kind))
    y = golden.quantized_matmul(a, w).numpy()
    e4m3 = golden.get_format(fmt).scale is golden.Scale.E4M3
    expected = reference_nvfp4_matmul(a, w) if e4m3 else reference_matmul(a, w)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.view(np.uint32), expected.view(np.uint32))


def _handmade(fmt_rows_a, fmt_rows_w, exps_a, exps_w):
    """Dialect-format operands from explicit codes (dialect 7 of DialectFP4 = E2M1 magnitudes)."""
    k = len(fmt_rows_a[0])
    mk = lambda rows, exps: golden.QuantizedTensor(  # noqa: E731
        format="dialectfp4", block=32, length=k, codes=torch.tensor(rows, dtype=torch.uint8),
        exponent=torch.tensor(exps, dtype=torch.uint8), dialect=torch.full((len(rows), k // 32), 7, dtype=torch.uint8),
    )  # fmt: skip
    return mk(fmt_rows_a, exps_a), mk(fmt_rows_w, exps_w)


def test_binary32_rounding_ties_cancellation_and_subnormals():
    """Hand-built blocks hitting the accumulation corner cases, checked against the reference."""
    one = [0x2] + [0] * 31  # E2M1 code 2: +2 half units (1.0 * 2^e); acc of a pair = +-4
    neg = [0xA] + [0] * 31
    rows_a = [one * 3, one + neg + one, one * 3]
    # Terms per row (w = +, -, - at e = 0): cancellation of huge terms; 1 + 2^-24 (a tie that
    # rounds to even, so the later -1 leaves exactly 0); subnormal terms (2^-127); overflow.
    exps_a = [[127 + 30, 127 + 6, 127 + 30], [127 + 0, 127 - 24, 127 + 0],
              [0, 0, 0]]  # fmt: skip
    rows_w = [one + neg + neg]
    exps_w = [[127, 127, 127]]
    a, w = _handmade(rows_a, rows_w, exps_a, exps_w)
    y = golden.quantized_matmul(a, w)
    np.testing.assert_array_equal(y.numpy().view(np.uint32), reference_matmul(a, w).view(np.uint32))
    assert y[0, 0].item() == -(2.0**6)  # 2^28 - 2^28 cancels exactly; -2^6 survives
    assert y[1, 0].item() == 0.0  # fl(1 + 2^-24) = 1 (tie to even), then 1 - 1
    assert y[2, 0].item() == -(2.0**-127)  # subnormal result kept, not flushed
    # Exponent sums beyond binary32 overflow to inf in the term's single rounding.
    a, w = _handmade([one * 3], rows_w, [[254, 254, 254]], [[254, 0, 0]])
    y = golden.quantized_matmul(a, w)
    assert y.item() == float("inf")
    np.testing.assert_array_equal(y.numpy(), reference_matmul(a, w))


def test_quantized_linear_keeps_leading_dimensions():
    x = torch.randn(2, 3, 64)
    w = torch.randn(7, 64)
    y = golden.quantized_linear(x, w, "fb32")
    assert y.shape == (2, 3, 7) and y.dtype == torch.float32
    flat = golden.quantized_linear(x.reshape(6, 64), w, "fb32")
    assert torch.equal(y.reshape(6, 7), flat)


def test_mismatched_operands_are_rejected():
    a, w = operands("fb32")
    with pytest.raises(golden.FormatError, match="must share format"):
        golden.quantized_matmul(a, golden.quantize(torch.randn(5, 256), "mxfp4"))
    with pytest.raises(golden.FormatError, match="reduction lengths differ"):
        golden.quantized_matmul(a, golden.quantize(torch.randn(5, 128), "fb32"))

"""Kernels for the wider format space (NUMERICS section 8): E4M3 block scale + float32 tensor scale
on the quarter (and half) grid. The activation quantizer and the exact GEMM are bit-identical to
their twins and to golden; the E8M0-only kernels refuse these formats with one sentence."""

from tests import kernels_interpret

import pytest
import torch

import golden
from golden.blocks import InputError
from golden.formats import FB32, FormatError, dialect_format, get_format, register_format
from golden.quantize import E4M3_MAX, E4M3_MIN_NORMAL, e4m3_encode
from kernels import (
    PackedOperand,
    QuantizeConfig,
    TritonW4A4Linear,
    quantize_activations,
    quantize_activations_torch,
    w4a4_gemm,
    w4a4_gemm_scatter_add,
    w4a4_gemm_torch,
    w4a4_linear,
    w4a4_linear_torch,
)
from kernels.quantize_act import E4M3_BIAS, E4M3_FRACTION_BITS
from kernels.tables import format_tables, kernel_format

CONFIG = kernels_interpret.SMALL.quantize
GEMM_CONFIG = kernels_interpret.SMALL.gemm
#: The FB32 table with an E4M3 scale (half grid), and a quarter-grid book with an E8M0 exponent.
HALF_E4M3 = register_format(dialect_format("test-kernels-fb32-e4m3", FB32, "e4m3")).name
QUARTER_E8M0 = register_format(dialect_format("test-kernels-q-e8m0", get_format("tdit-q-e4m3").formatbook)).name
FIELDS = ("codes", "exponent", "dialect", "block_scale", "tensor_scale")
CASES = [("tdit-q-e4m3", 16), ("tdit-q-e4m3", 32), ("tdit-q-e4m3", 64), ("tdit64-q-e4m3", 32), (HALF_E4M3, 32)]


def check_quantize(x, format, block=None, mask=None, config=CONFIG):
    """Kernel, twin and golden agree on every packed field."""
    kernel = quantize_activations(x, format, block=block, candidate_mask=mask, config=config)
    twin = quantize_activations_torch(x, format, block=block, candidate_mask=mask)
    gold = PackedOperand.from_quantized(golden.quantize(x, format, block=block, mask=mask))
    for name in FIELDS:
        k, t, g = getattr(kernel, name), getattr(twin, name), getattr(gold, name)
        if g is None:
            assert k is None and t is None, name
            continue
        assert torch.equal(k, g), f"{name}: kernel differs from golden in {(k != g).sum()} places"
        assert torch.equal(t, g), f"{name}: twin differs from golden in {(t != g).sum()} places"
    return kernel


def spread_rows(rows, k, seed, binades=12):
    """Rows whose 16-value groups span ``binades`` binades around 1."""
    g = torch.Generator().manual_seed(seed)
    exponent = torch.randint(-binades // 2, binades // 2, (rows, k // 16), generator=g).float()
    return torch.randn(rows, k, generator=g) * torch.pow(2.0, exponent).repeat_interleave(16, 1)


@pytest.mark.parametrize(("format", "block"), CASES)
def test_quantizer_matches_golden(format, block):
    check_quantize(spread_rows(21, 128, seed=block), format, block)


@pytest.mark.parametrize(
    "scale", [0.0, 2.0**-135, 2.0**-100, 1.0, 3e38], ids=["zero", "subnormal", "tensor-floor", "unit", "huge"]
)
def test_corner_tensors(scale):
    """The all-zero tensor (t = 0, scale bytes 0, signed zero codes), tensors so small that the 2^-120
    floor of t applies (subnormal values included), the largest floats, and blocks far below the
    tensor maximum (scale clamped to 2^-6), exact grid points and ties."""
    x = spread_rows(9, 64, seed=5, binades=40).double()
    x = (x / x.abs().max() * scale).float()  # the tensor maximum is ``scale``
    x[0] = -0.0 * x[0].abs()
    x[1] = (torch.arange(64) / 64.0 * scale).float()  # grid points and midpoints (scaled)
    x[2, :32] = 0.0
    check_quantize(x, "tdit-q-e4m3", 32)


def test_half_precision_and_production_launch_shape():
    """bfloat16 input with the default QuantizeConfig: more than one program, the last one partial."""
    block = 32
    x = spread_rows(QuantizeConfig().rows_for(block, 64) + 37, 2 * block, seed=8)
    check_quantize(x.to(torch.bfloat16), "tdit-q-e4m3", block, config=QuantizeConfig())


def test_family_mask():
    """SeDA candidate masks restrict the LUT selection as in golden."""
    x = spread_rows(6, 64, seed=2)
    mask = torch.zeros(6, 2, get_format("tdit-q-e4m3").formatbook.num_dialects, dtype=torch.bool)
    mask[:, :, ::3] = True
    check_quantize(x, "tdit-q-e4m3", 32, mask=mask)


def test_e4m3_rounding_formula_matches_golden_on_every_tie():
    """The kernels' E4M3 rounding on the bit pattern equals golden's e4m3_encode for every E4M3
    value in [2^-6, 448], every midpoint between neighbours and one binary32 step on either side."""
    codes = torch.arange(8, 127, dtype=torch.uint8)  # 2^-6 .. 448
    values = codes.view(torch.float8_e4m3fn).to(torch.float32)
    mids = (values[:-1].double() + values[1:].double()) / 2
    candidates = torch.cat((values, mids.float(), torch.nextafter(mids.float(), torch.tensor(0.0)),
                            torch.nextafter(mids.float(), torch.tensor(1e9))))  # fmt: skip
    candidates = candidates.clamp(E4M3_MIN_NORMAL, E4M3_MAX)
    bits = candidates.view(torch.int32)
    dropped = 23 - E4M3_FRACTION_BITS
    rounded = (bits + ((1 << (dropped - 1)) - 1) + ((bits >> dropped) & 1)) >> dropped
    ours = rounded - ((127 - E4M3_BIAS) << E4M3_FRACTION_BITS)
    assert torch.equal(ours.to(torch.uint8), e4m3_encode(candidates))


def test_quarter_tables_come_from_the_registry():
    spec = kernel_format("tdit64-q-e4m3")
    tables = format_tables(spec.name, "cpu")
    book = spec.formatbook
    assert tables.num_ucodes == 64 and tables.grid_shift == 2 and tables.grid_top == 7.75
    assert tables.words is None and tables.subset_split is None
    unpacked = (tables.byte_words[:, :, None] >> (8 * torch.arange(4))) & 0xFF
    assert torch.equal(unpacked.reshape(-1, 8).long(), book.units)
    assert torch.equal(tables.decode[:, :8].long(), book.units)
    split = tables.err_split.long()
    err = split[1] * 128 + split[0]
    from kernels.tables import HISTOGRAM_BINS

    order = list(HISTOGRAM_BINS) + [32 + b for b in HISTOGRAM_BINS]
    assert torch.equal(err[: book.num_dialects][:, torch.argsort(torch.tensor(order))], book.err_table)


def operands(format, block, m=21, n=19, k=128, a_scale=1.0, w_scale=1.0, seed=0):
    x = spread_rows(m, k, seed=seed) * a_scale
    w = torch.randn(n, k, generator=torch.Generator().manual_seed(seed + 1)) * w_scale
    qa = golden.quantize(x, format, block=block)
    qw = golden.quantize(w, format, block=block, select="mse")
    return x, qa, qw


@pytest.mark.parametrize(("format", "block"), CASES)
def test_exact_gemm_matches_golden(format, block):
    x, qa, qw = operands(format, block, seed=block)
    reference = golden.quantized_matmul(qa, qw)
    a = quantize_activations(x, format, block=block, config=CONFIG)
    w = PackedOperand.from_quantized(qw)
    for config in (GEMM_CONFIG, None):  # small tiles (several, ragged) and the production tiles
        assert torch.equal(w4a4_gemm(a, w, config=config), reference)
    assert torch.equal(w4a4_gemm_torch(a, w), reference)


@pytest.mark.parametrize(
    ("a_scale", "w_scale"), [(1e-30, 1e-30), (1e30, 1e30), (1e-20, 1e20)], ids=["underflow", "overflow", "mixed"]
)
def test_exact_gemm_extreme_tensor_scales(a_scale, w_scale):
    """fl32(t_a t_w) underflowing to subnormals or zero, or the terms overflowing to infinity."""
    x, qa, qw = operands("tdit-q-e4m3", 32, a_scale=a_scale, w_scale=w_scale)
    reference = golden.quantized_matmul(qa, qw)
    y = w4a4_gemm(PackedOperand.from_quantized(qa), PackedOperand.from_quantized(qw), config=GEMM_CONFIG)
    assert torch.equal(y.nan_to_num(nan=7.0), reference.nan_to_num(nan=7.0))


def test_bias_output_dtype_and_linear():
    x, qa, qw = operands("tdit-q-e4m3", 32)
    bias = torch.randn(qw.shape[0])
    a, w = PackedOperand.from_quantized(qa), PackedOperand.from_quantized(qw)
    expected = (golden.quantized_matmul(qa, qw) + bias).to(torch.bfloat16)
    assert torch.equal(w4a4_gemm(a, w, bias=bias, out_dtype=torch.bfloat16, config=GEMM_CONFIG), expected)
    assert torch.equal(w4a4_gemm_torch(a, w, bias=bias, out_dtype=torch.bfloat16), expected)
    assert torch.equal(w4a4_linear(x, qw, config=kernels_interpret.SMALL), golden.quantized_matmul(qa, qw))


def golden_decomposed(x, qw, rows, mask):
    """The golden integer path with activation decomposition (ALGORITHMS.md 2.3): the residual
    rows are quantized as a tensor of their own (their own tensor scale)."""
    q1 = golden.quantize(x, qw.format, block=qw.block, mask=mask)
    y = golden.quantized_matmul(q1, qw)
    residual = x[rows].float() - q1.dequantize()[rows]
    q2 = golden.quantize(residual, qw.format, block=qw.block, mask=mask[rows])
    y[rows] = y[rows] + golden.quantized_matmul(q2, qw)
    return y


@pytest.mark.parametrize("format", ["tdit-q-e4m3", HALF_E4M3])
def test_linear_with_decomposition_and_family_mask(format):
    """w4a4_linear with salient rows and a SeDA mask: residual kernel (E4M3 dequantization), second
    quantization, residual GEMM and the fused residual + bias epilogue, bit-identical to golden."""
    x, _, qw = operands(format, 32, m=23, n=19, k=96)
    rows = torch.tensor([0, 3, 7, 22])
    mask = torch.zeros(23, 3, qw.spec.formatbook.num_dialects, dtype=torch.bool)
    mask[::2, :, ::2] = True
    mask[1::2, :, 1::4] = True
    bias = torch.randn(19)
    expected = golden_decomposed(x, qw, rows, mask) + bias
    for linear in (w4a4_linear, w4a4_linear_torch):
        y = linear(x, qw, candidate_mask=mask, salient_rows=rows, bias=bias, config=kernels_interpret.SMALL)
        assert torch.equal(y, expected), linear.__name__


def test_module_from_float_and_its_state_dict():
    """TritonW4A4Linear holds the E4M3 weight's block and tensor scales as buffers; a state_dict
    round trip keeps them, and its forward is golden's integer linear plus the bias."""
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 24)
    module = TritonW4A4Linear.from_float(linear, format="tdit-q-e4m3", config=kernels_interpret.SMALL)
    x = spread_rows(5, 64, seed=4)
    expected = golden.quantized_linear(x, linear.weight.detach(), "tdit-q-e4m3") + linear.bias.detach()
    assert torch.equal(module(x), expected)
    clone = TritonW4A4Linear.from_float(torch.nn.Linear(64, 24), format="tdit-q-e4m3", config=kernels_interpret.SMALL)
    clone.load_state_dict(module.state_dict())
    assert torch.equal(clone(x), expected) and clone.tensor_scale.dim() == 0


def test_unsupported_paths_are_refused_in_one_sentence():
    x, qa, qw = operands("tdit-q-e4m3", 32, m=4, n=4, k=64)
    a, w = PackedOperand.from_quantized(qa), PackedOperand.from_quantized(qw)
    half_e8m0 = r"implements the half grid with an E8M0 exponent, not 'tdit-q-e4m3' \(quarter grid, e4m3 scale\)"
    with pytest.raises(FormatError, match=r"^fast mode " + half_e8m0):
        w4a4_gemm(a, w, mode="fast")
    with pytest.raises(FormatError, match=r"^fast mode " + half_e8m0):
        w4a4_gemm_torch(a, w, mode="fast")
    with pytest.raises(FormatError, match=r"^the scatter-add GEMM " + half_e8m0):
        w4a4_gemm_scatter_add(a, w, torch.zeros(4, 4), torch.arange(4))
    with pytest.raises(FormatError, match=r"^the Triton kernels implement the quarter grid with an E4M3 block scale only"):
        quantize_activations(x, QUARTER_E8M0)
    with pytest.raises(FormatError, match=r"needs block_scale and tensor_scale, no exponent"):
        PackedOperand(format="tdit-q-e4m3", block=32, codes=a.codes, exponent=a.block_scale, dialect=a.dialect)


@pytest.mark.parametrize("quantizer", [quantize_activations, quantize_activations_torch])
def test_non_finite_blocks_are_named(quantizer):
    x = torch.ones(2, 3, 64)
    x[1, 2, 40] = float("inf")
    with pytest.raises(InputError, match=r"^block \(1, 2, 1\) contains an infinity; "):
        quantizer(x, "tdit-q-e4m3", config=CONFIG)

"""The vectorized golden quantizer against the per-block reference, for every format and dtype."""

import numpy as np
import pytest
import torch

import golden
from golden.formats import DIALECTFP4_16, FB32
from tests import reference_model as ref
from tests.block_distributions import corner_blocks, random_blocks

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


def sample_rows(block: int, dtype: torch.dtype, n: int = 48) -> torch.Tensor:
    rows = [random_blocks(kind, n // 4, block, seed=i) for i, kind in
            enumerate(["normal", "student-t", "grid", "sparse"])]  # fmt: skip
    rows += [x for x in corner_blocks(block).values()]
    x = torch.cat(rows).to(dtype)
    return x[torch.isfinite(x).all(-1)]  # 'huge' overflows float16/bfloat16


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("block", [16, 32, 64])
@pytest.mark.parametrize(
    "format, book, select",
    [("fb32", FB32, "lut"), ("dialectfp4", DIALECTFP4_16, "two-stage"), ("fb32", FB32, "mse"),
     ("dialectfp4", DIALECTFP4_16, "lut")],
)  # fmt: skip
def test_dialect_quantizer_equals_reference(dtype, block, format, book, select):
    x = sample_rows(block, dtype, n=16 if select == "mse" else 48)  # the MSE reference is slow
    q = golden.quantize(x, format, block=block, select=select)
    for i, row in enumerate(x.to(torch.float64).tolist()):
        exponent, dialect, codes = ref.quantize_dialect_block(row, book.dialects, select)
        assert q.exponent[i, 0].item() == exponent
        assert q.dialect[i, 0].item() == dialect
        assert q.codes[i].tolist() == codes, (i, row)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32, torch.float64], ids=str)
def test_dialect_dequantization_equals_reference(dtype):
    x = sample_rows(32, dtype)
    q = golden.quantize(x, "fb32")
    deq = q.dequantize()
    half_units = torch.tensor(FB32.dialects)[q.dialect.long()[:, 0]]
    for i in range(x.shape[0]):
        e = q.exponent[i, 0].item() - 127
        expected = [float(ref.dialect_dequant(half_units[i, c & 7].item(), c >> 3, e))
                    for c in q.codes[i].tolist()]  # fmt: skip
        assert deq[i].tolist() == [float(np.float32(v)) for v in expected]
        assert torch.equal(torch.signbit(deq[i]), q.codes[i] >= 8)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32], ids=str)
def test_mxfp4_equals_reference(dtype):
    x = sample_rows(32, dtype)
    q = golden.quantize(x, "mxfp4")
    for i, row in enumerate(x.to(torch.float64).tolist()):
        exponent, codes = ref.quantize_mxfp4_block(row)
        assert q.exponent[i, 0].item() == exponent
        assert q.codes[i].tolist() == codes, (i, row)


def test_nvfp4_equals_reference():
    x = torch.cat([random_blocks(k, 8, 16, seed=2) for k in ["normal", "student-t", "grid", "log-uniform"]])
    q = golden.quantize(x, "nvfp4")
    t = np.float32(x.abs().max().item()) / np.float32(448 * 6)
    assert q.tensor_scale.item() == t
    for i, row in enumerate(x.tolist()):
        s_bits, codes = ref.quantize_nvfp4_block(row, t)
        assert q.block_scale[i, 0].item() == s_bits
        assert q.codes[i].tolist() == codes


def test_nvfp4_four_over_six_equals_reference():
    x = torch.cat([random_blocks(k, 16, 16, seed=4) for k in ["normal", "student-t", "grid", "uniform"]])
    q = golden.quantize(x, "nvfp4-46")
    t = np.float32(x.abs().max().item()) / np.float32(448 * 4)  # both candidates fit E4M3
    assert q.tensor_scale.item() == t
    chose_four = 0
    for i, row in enumerate(x.tolist()):
        s_bits, codes = ref.quantize_nvfp4_46_block(row, t)
        assert q.block_scale[i, 0].item() == s_bits
        assert q.codes[i].tolist() == codes
        chose_four += s_bits != ref.quantize_nvfp4_block(row, t, 6.0)[0]
    assert 0 < chose_four < x.shape[0]  # the data exercises both candidates


def test_float64_beyond_the_float32_range_is_refused():
    """The front-end clamps e at 127 (u saturates at 31), but every format dequantizes to float32,
    so quantize refuses float64 values beyond float32's range (docs/NUMERICS.md section 1)."""
    x = torch.tensor([[1e300, -1e200, 2.0**131, 1.0] * 8], dtype=torch.float64)
    e, u, _ = golden.front_end(x)
    assert e.item() == 127 and u[0, :3].tolist() == [31, 31, 31] and u[0, 3].item() == 0
    for name in golden.FORMATS:
        with pytest.raises(golden.InputError, match="beyond the float32 range"):
            golden.quantize(x, name)


def test_float64_at_the_float32_limit_is_accepted():
    limit = float(torch.finfo(torch.float32).max)
    x = torch.tensor([[limit, -limit / 3, 1.0, 0.0] * 8], dtype=torch.float64)
    q = golden.quantize(x, "fb32")
    exponent, dialect, codes = ref.quantize_dialect_block(x[0].tolist(), FB32.dialects, "lut")
    assert (q.exponent.item(), q.dialect.item(), q.codes[0].tolist()) == (exponent, dialect, codes)
    with pytest.raises(golden.InputError, match="beyond the float32 range"):
        golden.quantize(torch.nextafter(x, torch.tensor(float("inf"), dtype=torch.float64)), "fb32")
    for name in golden.FORMATS:
        assert torch.isfinite(golden.quantize(x, name).dequantize()).all()


def test_all_zero_tensor_in_every_format():
    x = torch.zeros(2, 64)
    for name in golden.FORMATS:
        q = golden.quantize(x, name)
        assert (q.codes == 0).all() and torch.equal(q.dequantize(), x)
        for field in ("exponent", "block_scale"):
            if getattr(q, field) is not None:
                assert (getattr(q, field) == 0).all()
        if q.tensor_scale is not None:
            assert q.tensor_scale.item() == 0


def test_padding_is_explicit():
    x = torch.randn(3, 40)
    with pytest.raises(golden.InputError, match="not divisible by the block size 32.*pad=True"):
        golden.quantize(x, "fb32")
    q = golden.quantize(x, "fb32", pad=True)
    assert q.codes.shape == (3, 64) and q.shape == (3, 40) and q.dequantize().shape == (3, 40)
    assert torch.equal(q.dequantize(), golden.quantize(torch.nn.functional.pad(x, (0, 24)), "fb32").dequantize()[:, :40])


@pytest.mark.parametrize("bad, problem", [(float("nan"), "block \\(1, 1\\) contains a NaN"),
                                          (float("inf"), "block \\(1, 1\\) contains an infinity")])  # fmt: skip
def test_non_finite_input_names_the_block(bad, problem):
    x = torch.randn(2, 64)
    x[1, 40] = bad
    with pytest.raises(golden.InputError, match=problem):
        golden.quantize(x, "fb32")


@pytest.mark.parametrize("x, problem", [
    (torch.ones(4, 32, dtype=torch.int32), "unsupported dtype int32"),
    (torch.tensor(1.0), "at least one element and a last axis"),
    (torch.zeros(0, 32), "at least one element"),
    (torch.ones(4, 32, dtype=torch.complex64), "unsupported dtype complex64"),
])  # fmt: skip
def test_bad_tensors_are_rejected(x, problem):
    with pytest.raises(golden.InputError, match=problem):
        golden.quantize(x, "fb32")


def test_bad_options_are_rejected():
    x = torch.randn(2, 64)
    with pytest.raises(golden.FormatError, match="block sizes \\[32\\], got 16"):
        golden.quantize(x, "mxfp4", block=16)
    with pytest.raises(golden.FormatError, match="two-stage selection is defined for dialectfp4 only"):
        golden.quantize(x, "fb32", select="two-stage")
    with pytest.raises(golden.FormatError, match="no dialect selection"):
        golden.quantize(x, "nvfp4", select="lut")
    with pytest.raises(golden.FormatError, match="unknown selection 'best'"):
        golden.quantize(x, "fb32", select="best")

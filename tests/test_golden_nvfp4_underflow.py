"""The NVFP4 tensor-scale floor (docs/NUMERICS.md section 3.4), tested at its boundary.

Below ``amax = 448 * M * 2**-120`` the float32 tensor scale would underflow (torchao then gives NaN
block scales and turns zeros into NaN codes); the floor keeps every step finite and every zero a zero.
"""

import numpy as np
import pytest
import torch

import golden
from golden.quantize import NVFP4_TENSOR_SCALE_MIN

#: format -> M, the value the tensor scale maps the tensor's max to (t = amax / (448 * M)).
TARGETS = {"nvfp4": 6.0, "nvfp4-46": 4.0}
E4M3_NAN_BYTES = (0x7F, 0xFF)


def boundary(fmt: str) -> np.float32:
    """The smallest float32 amax whose unfloored tensor scale is already >= 2^-120 (exact)."""
    return np.float32(448 * TARGETS[fmt] * 2.0**-120)


def tensor_with_amax(amax: float, signs_of_zero=True) -> torch.Tensor:
    """Two 16-blocks: amax, smaller values, +0.0 and -0.0 at known positions."""
    row = torch.tensor([amax, -amax / 3, amax / 7, 0.0, -0.0] + [amax / 2**k for k in range(1, 12)],
                       dtype=torch.float32)
    return torch.stack([row, -row])


def check_no_nan_and_zeros_kept(q, x):
    assert not np.isin(q.block_scale.numpy(), E4M3_NAN_BYTES).any(), "an E4M3 NaN block scale"
    deq = q.dequantize()
    assert torch.isfinite(deq).all(), "a NaN or infinite dequantized value"
    zero = x == 0
    assert (deq[zero] == 0).all(), "a zero came back nonzero"
    assert torch.equal(torch.signbit(deq[zero]), torch.signbit(x[zero])), "a zero lost its sign"


@pytest.mark.parametrize("fmt", TARGETS)
@pytest.mark.parametrize("log2_amax", [-149, -140, -130, -126, -120, -115, -113, -112, -110, -100, 0])
def test_every_small_magnitude_quantizes_finitely_and_keeps_zeros(fmt, log2_amax):
    x = tensor_with_amax(2.0**log2_amax)
    q = golden.quantize(x, fmt)
    assert q.tensor_scale.item() >= NVFP4_TENSOR_SCALE_MIN
    check_no_nan_and_zeros_kept(q, x)


@pytest.mark.parametrize("fmt", TARGETS)
def test_tensor_scale_is_floored_exactly_below_the_boundary(fmt):
    edge = boundary(fmt)
    below = np.nextafter(edge, np.float32(0))
    above = np.float32(edge * np.float32(1 + 2.0**-10))
    divisor = np.float32(448 * TARGETS[fmt])
    assert np.float32(edge / divisor) == np.float32(2.0**-120)  # the boundary is exact
    assert np.float32(below / divisor) < np.float32(2.0**-120)
    for amax, want in ((below, 2.0**-120), (edge, 2.0**-120), (above, np.float32(above / divisor))):
        x = tensor_with_amax(float(amax))
        assert x.abs().max().item() == amax
        q = golden.quantize(x, fmt)
        assert q.tensor_scale.item() == want
        check_no_nan_and_zeros_kept(q, x)


def test_the_issue_cases():
    """Both cases of the bug report: all-subnormal input, and zeros beside one tiny value."""
    q = golden.quantize(torch.from_numpy(np.full((2, 32), 1e-45, "f4")), "nvfp4")
    assert not np.isin(q.block_scale.numpy(), E4M3_NAN_BYTES).any()
    assert torch.isfinite(q.dequantize()).all()
    x = torch.zeros(1, 16)
    x[0, 0] = 1e-37
    deq = golden.quantize(x, "nvfp4").dequantize()
    assert (deq[0, 1:] == 0).all() and not torch.signbit(deq[0, 1:]).any()
    assert deq[0, 0] > 0


def test_floor_matches_torchao_at_and_above_the_boundary():
    nvfp4_tensor = pytest.importorskip("torchao.prototype.mx_formats.nvfp4_tensor")
    for amax in (float(boundary("nvfp4")), float(boundary("nvfp4")) * 3.7, 1e-30):
        x = tensor_with_amax(amax)
        t = nvfp4_tensor.per_tensor_amax_to_scale(x.abs().max())
        scales, packed = nvfp4_tensor.nvfp4_quantize(x, 16, per_tensor_scale=t)
        q = golden.quantize(x, "nvfp4")
        assert q.tensor_scale.item() == t.item()
        assert torch.equal(q.block_scale, scales.view(torch.uint8).reshape(q.block_scale.shape))


def test_quantized_matmul_stays_finite_on_floored_scales():
    x = tensor_with_amax(2.0**-140)
    w = torch.randn(3, 16)
    y = golden.quantized_linear(x, w, "nvfp4")
    assert torch.isfinite(y).all()

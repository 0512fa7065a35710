"""MXFP4 and NVFP4 are bit-identical to torchao's `to_mx` / `nvfp4_quantize` (torchao as the oracle)."""

import pytest
import torch

import golden

mx_tensor = pytest.importorskip("torchao.prototype.mx_formats.mx_tensor")
nvfp4_tensor = pytest.importorskip("torchao.prototype.mx_formats.nvfp4_tensor")
from torchao.prototype.mx_formats.kernels import unpack_uint4  # noqa: E402

from tests.block_distributions import random_blocks  # noqa: E402


def unpack(packed: torch.Tensor, shape) -> torch.Tensor:
    return unpack_uint4(packed.contiguous().view(torch.uint8)).reshape(shape)


def edge_tensor() -> torch.Tensor:
    """Rows of named edge cases: zeros, -0.0, E2M1 ties at many scales, extremes, subnormals."""
    ties = torch.tensor([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 6.0] * 4)
    rows = [
        torch.zeros(32),
        torch.full((32,), -0.0),
        ties, -ties, ties * 2.0**-20, ties * 2.0**20,
        torch.linspace(-6, 6, 32),
        torch.full((32,), 3.4e38) * torch.linspace(-1, 1, 32),
        torch.full((32,), 2.0**-126) * torch.linspace(0.5, 8, 32),  # around the smallest normal
        torch.full((32,), 1e-42) * torch.arange(32),  # subnormals
        torch.where(torch.arange(32) == 0, torch.tensor(8.0), torch.tensor(1e-39)),
        torch.cat([torch.full((16,), 2.0**-121), torch.full((16,), -(2.0**-124))]),
    ]  # fmt: skip
    return torch.stack(rows)


CASES = {
    "normal": lambda: random_blocks("normal", 512, 64, seed=1),
    "heavy-tailed": lambda: random_blocks("student-t", 512, 64, seed=2),
    "log-uniform": lambda: random_blocks("log-uniform", 512, 64, seed=3),
    "grid-ties": lambda: random_blocks("grid", 512, 64, seed=4),
    "edges": edge_tensor,
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", CASES)
def test_mxfp4_is_bit_identical_to_torchao_to_mx(case, dtype):
    x = CASES[case]().to(dtype)
    x = x[torch.isfinite(x).all(-1)].contiguous()
    scale, packed = mx_tensor.to_mx(x, torch.float4_e2m1fn_x2, 32)
    q = golden.quantize(x, "mxfp4")
    scale = scale.view(torch.uint8).reshape(q.exponent.shape)
    assert torch.equal(q.exponent, scale)
    codes = unpack(packed, x.shape)
    # The one documented difference: for scale byte 0 torchao divides by 2^-126 while storing 2^-127.
    ours_differ = (scale == 0).repeat_interleave(32, dim=-1)
    assert torch.equal(q.codes[~ours_differ], codes[~ours_differ])


def test_mxfp4_scale_byte_zero_divides_by_the_stored_scale():
    """torchao's known exception (NUMERICS.md s.3): pinned here so a change on either side shows."""
    x = torch.full((1, 32), 2.0**-127) * torch.linspace(0.25, 3, 32)
    scale, packed = mx_tensor.to_mx(x, torch.float4_e2m1fn_x2, 32)
    q = golden.quantize(x, "mxfp4")
    assert scale.view(torch.uint8).item() == 0 == q.exponent.item()
    assert torch.equal(q.codes, golden.e2m1_encode(x.double() * 2.0**127))
    theirs = unpack(packed, x.shape)
    assert not torch.equal(q.codes, theirs)  # torchao's codes are those of x / 2^-126
    assert torch.equal(theirs, golden.e2m1_encode(x.double() * 2.0**126))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", CASES)
def test_nvfp4_is_bit_identical_to_torchao(case, dtype):
    x = CASES[case]().to(dtype)
    x = x[torch.isfinite(x).all(-1)].contiguous()
    if x.abs().max() == 0:
        pytest.skip("all-zero tensors are covered by test_nvfp4_all_zero_tensor")
    t = nvfp4_tensor.per_tensor_amax_to_scale(x.abs().max())
    scales, packed = nvfp4_tensor.nvfp4_quantize(x, 16, per_tensor_scale=t)
    q = golden.quantize(x, "nvfp4")
    assert q.tensor_scale.item() == t.item()
    assert torch.equal(q.block_scale, scales.view(torch.uint8).reshape(q.block_scale.shape))
    assert torch.equal(q.codes, unpack(packed, x.shape))


def test_nvfp4_dequantization_matches_torchao():
    x = random_blocks("student-t", 64, 64, seed=8)
    t = nvfp4_tensor.per_tensor_amax_to_scale(x.abs().max())
    nv = nvfp4_tensor.NVFP4Tensor.to_nvfp4(x, per_tensor_scale=t)
    assert torch.equal(golden.quantize(x, "nvfp4").dequantize(), nv.dequantize(torch.float32))


def test_nvfp4_all_zero_tensor():
    """torchao produces NaN scales here; the contract says t = 0, scale bytes 0, codes 0."""
    q = golden.quantize(torch.zeros(4, 32), "nvfp4")
    assert q.tensor_scale.item() == 0 and (q.block_scale == 0).all() and (q.codes == 0).all()
    assert (q.dequantize() == 0).all()

"""W4A4 GEMM kernel: exact mode bit-identical to golden.quantized_matmul, fast mode within its bound."""

from tests import kernels_interpret

import pytest
import torch

import golden
from golden.blocks import InputError
from golden.formats import FormatError
from kernels import (
    GemmConfig,
    GemmMode,
    PackedOperand,
    fast_mode_error_bound,
    w4a4_gemm,
    w4a4_gemm_scatter_add,
    w4a4_gemm_scatter_add_torch,
    w4a4_gemm_torch,
)

CONFIG = kernels_interpret.SMALL.gemm
CASES = [("fb32", 32), ("fb32", 64), ("dialectfp4", 16), ("dialectfp4", 32), ("mxfp4", 32)]


def bits(y: torch.Tensor) -> torch.Tensor:
    """The binary32 bit patterns, with every NaN (an inf - inf sum) mapped to one pattern: a NaN's
    payload is the platform's, not part of the contract."""
    return torch.where(torch.isnan(y), torch.tensor(float("nan")), y).view(torch.int32)


def operands(format, block, m, n, k, *, spread, seed):
    """Golden-quantized A (M x K, activation rule) and W (N x K, weight rule).

    Every 16 values share a random scale 2^[-spread, spread]."""
    g = torch.Generator().manual_seed(seed)

    def rows(r):
        scale = torch.pow(2.0, torch.randint(-spread, spread + 1, (r, k // 16), generator=g).float())
        return torch.randn(r, k, generator=g) * scale.repeat_interleave(16, 1)

    a = golden.quantize(rows(m), format, block=block)
    w = golden.quantize(rows(n), format, block=block, select=golden.weight_selection(format))
    return a, w


def check_exact(a_q, w_q, config=CONFIG):
    a, w = PackedOperand.from_quantized(a_q), PackedOperand.from_quantized(w_q)
    gold = golden.quantized_matmul(a_q, w_q)
    assert torch.equal(bits(w4a4_gemm(a, w, config=config)), bits(gold))
    assert torch.equal(bits(w4a4_gemm_torch(a, w, config=config)), bits(gold))


@pytest.mark.parametrize(("format", "block"), CASES)
def test_exact_mode_is_bit_identical_on_ragged_tiles(format, block):
    """M = 37 and N = 21 leave partial 16 x 16 tiles in both directions."""
    check_exact(*operands(format, block, 37, 21, 128, spread=4, seed=block))


@pytest.mark.filterwarnings(
    "ignore:overflow encountered:RuntimeWarning", "ignore:invalid value:RuntimeWarning"
)
@pytest.mark.parametrize(
    ("k", "a_top", "block"),
    [(32, 254, 32), (96, 254, 32), (32, 235, 32), (32, 254, 16), (32, 232, 16)],
    ids=["one-block", "three-blocks", "two-multiply-path", "per-block-kernel", "per-block-two-multiply"],
)
def test_exact_mode_extreme_exponents(k, a_top, block):
    """Random exponent bytes: terms round to subnormals, to zero and to infinity.

    Blocks of 32 run on the tiled kernel: with every activation byte of a program <= 235 (a grid
    step of at most 2^104) it takes the two-multiply path, subnormal powers included; larger bytes
    force the general split. Blocks of 16 run on the per-block kernel, whose two-multiply path
    holds up to byte 232 (a half unit of at most 2^104).
    """
    a_q, w_q = operands("fb32", block, 33, 33, k, spread=2, seed=7)
    g = torch.Generator().manual_seed(k + a_top)
    a_exponent = torch.randint(0, a_top + 1, a_q.exponent.shape, generator=g).to(torch.uint8)
    w_exponent = torch.randint(0, 255, w_q.exponent.shape, generator=g).to(torch.uint8)
    a_q = golden.QuantizedTensor(**{**a_q.__dict__, "exponent": a_exponent})
    w_q = golden.QuantizedTensor(**{**w_q.__dict__, "exponent": w_exponent})
    gold = golden.quantized_matmul(a_q, w_q)
    assert torch.isinf(gold).any()
    if k == 32:  # one term per output: some round to zero, some to subnormals
        assert (gold == 0).any()
        assert ((gold != 0) & (gold.abs() < torch.finfo(torch.float32).smallest_normal)).any()
    check_exact(a_q, w_q)


def test_exact_mode_single_and_many_k_blocks():
    check_exact(*operands("mxfp4", 32, 16, 16, 32, spread=3, seed=8))
    check_exact(*operands("fb32", 32, 5, 3, 512, spread=3, seed=9), config=GemmConfig(block_m=16, block_n=16))


@pytest.mark.parametrize(("format", "block"), CASES)
def test_fast_mode_matches_twin_and_stays_within_bound(format, block):
    """Wide per-block exponent spreads make the fast mode's alignment lossy; the bound must hold."""
    config = GemmConfig(block_m=16, block_n=16, fast_tile_k=max(64, 2 * block))  # >= 2 blocks per tile
    a_q, w_q = operands(format, block, 37, 21, 256, spread=6, seed=block + 1)
    a, w = PackedOperand.from_quantized(a_q), PackedOperand.from_quantized(w_q)
    fast = w4a4_gemm(a, w, mode=GemmMode.FAST, config=config)
    assert torch.equal(bits(fast), bits(w4a4_gemm_torch(a, w, mode="fast", config=config)))
    exact = golden.quantized_matmul(a_q, w_q).double()
    bound = fast_mode_error_bound(a, w, config=config)
    error = (fast.double() - exact).abs()
    assert (error <= bound).all(), f"worst excess {(error - bound).max()}"
    assert (error > 0).any(), "the case should exercise a lossy alignment"
    # The bound is tight enough to mean something: a fraction of the output scale even on these
    # blocks, whose scales vary by up to 2^12 within a tile (real activations vary far less).
    assert bound.mean() < 0.25 * exact.abs().mean()


def test_fast_mode_is_exact_sum_when_exponents_are_close():
    """With every block exponent within ALIGN_BITS of its tile's maximum the alignment is lossless."""
    a_q, w_q = operands("fb32", 32, 20, 20, 128, spread=0, seed=10)
    a_q = golden.QuantizedTensor(**{**a_q.__dict__, "exponent": torch.full_like(a_q.exponent, 130)})
    w_q = golden.QuantizedTensor(**{**w_q.__dict__, "exponent": torch.full_like(w_q.exponent, 120)})
    a, w = PackedOperand.from_quantized(a_q), PackedOperand.from_quantized(w_q)
    assert (
        fast_mode_error_bound(a, w, config=CONFIG).max()
        < 1e-5 * golden.quantized_matmul(a_q, w_q).abs().max()
    )
    exact_sum = (a_q.dequantize().double() @ w_q.dequantize().double().T).float()
    assert torch.equal(
        w4a4_gemm(a, w, mode="fast", config=GemmConfig(block_m=16, block_n=16, fast_tile_k=128)), exact_sum
    )


@pytest.mark.parametrize("mode", list(GemmMode))
def test_scatter_add_adds_into_the_given_rows(mode):
    a_q, w_q = operands("dialectfp4", 32, 5, 19, 64, spread=3, seed=11)
    a, w = PackedOperand.from_quantized(a_q), PackedOperand.from_quantized(w_q)
    rows = torch.tensor([6, 0, 17, 3, 12])
    base = torch.randn(18, 19)
    out, twin = base.clone(), base.clone()
    w4a4_gemm_scatter_add(a, w, out, rows, mode=mode, config=CONFIG)
    w4a4_gemm_scatter_add_torch(a, w, twin, rows, mode=mode, config=CONFIG)
    assert torch.equal(bits(out), bits(twin))
    untouched = torch.ones(18, dtype=torch.bool)
    untouched[rows] = False
    assert torch.equal(out[untouched], base[untouched])
    if mode is GemmMode.EXACT:
        assert torch.equal(bits(out[rows]), bits(base[rows] + golden.quantized_matmul(a_q, w_q)))


def test_errors_are_one_sentence():
    a_q, w_q = operands("fb32", 32, 4, 4, 64, spread=1, seed=12)
    a, w = PackedOperand.from_quantized(a_q), PackedOperand.from_quantized(w_q)
    mx = PackedOperand.from_quantized(golden.quantize(torch.ones(4, 64), "mxfp4"))
    short = PackedOperand.from_quantized(golden.quantize(torch.ones(4, 32), "fb32"))
    with pytest.raises(FormatError, match="share format"):
        w4a4_gemm(a, mx)
    with pytest.raises(InputError, match="reduction lengths"):
        w4a4_gemm(a, short)
    with pytest.raises(InputError, match="unknown GEMM mode"):
        w4a4_gemm(a, w, mode="fastest")
    with pytest.raises(InputError, match="unique"):
        w4a4_gemm_scatter_add(a, w, torch.zeros(8, 4), torch.tensor([1, 1, 2, 3]))
    with pytest.raises(InputError, match="must lie in"):
        w4a4_gemm_scatter_add(a, w, torch.zeros(8, 4), torch.tensor([1, 9, 2, 3]))
    with pytest.raises(InputError, match="power of two"):
        GemmConfig(block_m=24)


def test_autotune_set_starts_with_production_and_falls_back_without_a_gpu():
    """Each mode's autotuning set leads with its production configuration and every candidate fits
    blocks of 32; without a GPU tuned_config returns the production configuration untimed."""
    from kernels.gemm import AUTOTUNE_CONFIGS, DEFAULT_CONFIGS, tuned_config

    for mode, candidates in AUTOTUNE_CONFIGS.items():
        assert candidates[0] == DEFAULT_CONFIGS[mode] and len(set(candidates)) == len(candidates) >= 3
        for config in candidates:
            config.tile_blocks(mode, 32)
    a, w = (PackedOperand.from_quantized(q) for q in operands("fb32", 32, 8, 8, 64, spread=1, seed=1))
    for mode in GemmMode:
        assert tuned_config(a, w, mode) == DEFAULT_CONFIGS[mode]

"""w4a4_linear (quantize + GEMM + residual rows) and the module wrapper against the golden integer path."""

from tests import kernels_interpret

import contextlib

import pytest
import torch

import golden
from golden.blocks import InputError
from kernels import (
    GemmMode,
    PackedOperand,
    TritonW4A4Linear,
    quantize_activations,
    residual_rows,
    residual_rows_torch,
    w4a4_linear,
    w4a4_linear_torch,
)

CONFIG = kernels_interpret.SMALL


def golden_linear(x, w_q, *, mask=None, rows=None):
    """The golden integer path with activation decomposition (ALGORITHMS.md 2.3)."""
    x2 = x.reshape(-1, x.shape[-1])
    nblocks = w_q.num_blocks
    m2 = (
        None
        if mask is None
        else torch.broadcast_to(mask, (*x.shape[:-1], nblocks, mask.shape[-1])).reshape(
            -1, nblocks, mask.shape[-1]
        )
    )
    q1 = golden.quantize(x2, w_q.format, block=w_q.block, mask=m2, pad=True)
    y = golden.quantized_matmul(q1, w_q)
    if rows is not None:
        residual = x2[rows].float() - q1.dequantize()[rows]
        q2 = golden.quantize(
            residual, w_q.format, block=w_q.block, mask=None if m2 is None else m2[rows], pad=True
        )
        y[rows] = y[rows] + golden.quantized_matmul(q2, w_q)
    return y.reshape(*x.shape[:-1], -1)


def weight(format, n, k, seed):
    g = torch.Generator().manual_seed(seed)
    return golden.quantize(
        torch.randn(n, k, generator=g), format, select=golden.weight_selection(format), pad=True
    )


@pytest.mark.parametrize("format", ["fb32", "dialectfp4", "mxfp4"])
def test_exact_linear_with_salient_rows_is_bit_identical(format):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 13, 96, generator=g) * torch.logspace(-2, 2, 96)
    w_q = weight(format, 35, 96, seed=2)
    rows = torch.tensor([38, 0, 7, 21, 22])
    mask = golden.FB32.family_mask(2) if format == "fb32" else None
    gold = golden_linear(x, w_q, mask=mask, rows=rows)
    y = w4a4_linear(x, w_q, candidate_mask=mask, salient_rows=rows, config=CONFIG)
    assert torch.equal(y, gold)
    assert torch.equal(w4a4_linear_torch(x, w_q, candidate_mask=mask, salient_rows=rows, config=CONFIG), gold)


def test_zero_padded_weight_pads_the_activations_like_golden():
    """K = 80 is not a multiple of 32: golden.quantize(pad=True) semantics, as the model quantizer uses."""
    g = torch.Generator().manual_seed(11)
    x = torch.randn(9, 80, generator=g)
    w_q = weight("fb32", 20, 80, seed=12)
    rows = torch.tensor([1, 4, 8])
    mask = golden.FB32.family_mask(0)[None, None, :].expand(9, 1, 32)
    gold = golden_linear(x, w_q, mask=mask, rows=rows)
    assert torch.equal(w4a4_linear(x, w_q, candidate_mask=mask, salient_rows=rows, config=CONFIG), gold)
    module = TritonW4A4Linear(w_q, config=CONFIG)
    assert module.in_features == 80 and torch.equal(module(x), golden_linear(x, w_q))


def test_empty_salient_rows_change_nothing():
    g = torch.Generator().manual_seed(13)
    x = torch.randn(6, 64, generator=g)
    w_q = weight("mxfp4", 16, 64, seed=14)
    plain = w4a4_linear(x, w_q, config=CONFIG)
    assert torch.equal(
        w4a4_linear(x, w_q, salient_rows=torch.zeros(0, dtype=torch.int64), config=CONFIG), plain
    )


def test_salient_rows_reduce_the_error_of_those_rows():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(20, 64, generator=g)
    w_q = weight("fb32", 24, 64, seed=4)
    reference = x.double() @ w_q.dequantize().double().T
    rows = torch.arange(0, 20, 4)
    plain = w4a4_linear(x, w_q, config=CONFIG)
    decomposed = w4a4_linear(x, w_q, salient_rows=rows, config=CONFIG)
    plain_error = (plain.double() - reference)[rows].abs().mean()
    assert (decomposed.double() - reference)[rows].abs().mean() < plain_error / 4
    others = torch.ones(20, dtype=torch.bool)
    others[rows] = False
    assert torch.equal(plain[others], decomposed[others])


def test_fast_linear_is_close_to_exact():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(17, 128, generator=g)
    w_q = weight("dialectfp4", 19, 128, seed=6)
    exact = w4a4_linear(x, w_q, config=CONFIG)
    fast = w4a4_linear(x, w_q, mode=GemmMode.FAST, config=CONFIG)
    assert torch.equal(fast, w4a4_linear_torch(x, w_q, mode="fast", config=CONFIG))
    assert ((fast - exact).abs() <= 1e-2 * exact.abs().mean()).all()


@pytest.mark.parametrize("format", ["fb32", "mxfp4"])
def test_residual_rows_kernel_matches_twin(format):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(11, 64, generator=g).to(torch.bfloat16)
    x[2, :32] = -0.0  # negative-zero codes dequantize to -0.0: the residual keeps x's zero sign
    q1 = quantize_activations(x, format, config=CONFIG.quantize)
    rows = torch.tensor([2, 10, 0, 5, 6])
    kernel = residual_rows(x, q1, rows, config=CONFIG.residual)
    assert torch.equal(kernel.view(torch.int32), residual_rows_torch(x, q1, rows).view(torch.int32))


@pytest.mark.parametrize("format", ["fb32", "dialectfp4", "mxfp4"])
def test_module_wrapper_runs_a_linear_on_the_kernels(format):
    torch.manual_seed(8)
    linear = torch.nn.Linear(64, 40)
    module = TritonW4A4Linear.from_float(linear, format=format, config=CONFIG)
    x = torch.randn(2, 9, 64)
    w_q = golden.quantize(linear.weight.detach(), format, select=golden.weight_selection(format))
    assert torch.equal(module(x), golden_linear(x, w_q) + linear.bias.detach())
    assert module(x.to(torch.bfloat16)).dtype == torch.bfloat16
    assert f"format={format}" in repr(module)
    state = module.state_dict()
    assert state["codes"].shape == (40, 32) and state["codes"].dtype == torch.uint8


def test_weight_operand_round_trips_through_the_module():
    w_q = weight("fb32", 16, 64, seed=9)
    module = TritonW4A4Linear(w_q)
    assert torch.equal(module.weight_operand.to_quantized().codes, w_q.codes)
    assert module.bias is None


def test_errors_are_one_sentence():
    w_q = weight("fb32", 8, 64, seed=10)
    with pytest.raises(InputError, match="K=64"):
        w4a4_linear(torch.ones(3, 32), w_q)
    with pytest.raises(InputError, match="int64"):
        w4a4_linear(torch.ones(3, 64), w_q, salient_rows=torch.tensor([0.5]))
    with pytest.raises(InputError, match="must lie in"):
        w4a4_linear(torch.ones(3, 64), w_q, salient_rows=torch.tensor([3]), config=CONFIG, validate=True)
    with pytest.raises(InputError, match="unique"):
        w4a4_linear(torch.ones(3, 64), w_q, salient_rows=torch.tensor([1, 1]), config=CONFIG, validate=True)
    with pytest.raises(InputError, match="QuantizedTensor or a PackedOperand"):
        w4a4_linear(torch.ones(3, 64), torch.ones(8, 64))
    zeros = w_q.exponent.new_zeros(2, 2)
    with pytest.raises(InputError, match="does not zero-pad"):
        PackedOperand(
            format="fb32",
            block=32,
            codes=zeros.new_zeros(2, 32),
            exponent=zeros,
            dialect=zeros,
            logical_length=20,
        )
    with pytest.raises(InputError, match="nn.Linear"):
        TritonW4A4Linear.from_float(torch.nn.Conv1d(1, 1, 1), format="fb32")


class _HostSync(AssertionError):
    pass


@contextlib.contextmanager
def forbid_host_reads():
    """Make every tensor -> Python value conversion (what synchronises with a GPU) raise."""

    def refuse(*args, **kwargs):
        raise _HostSync("a device value was read on the host")

    names = ("item", "tolist", "__bool__", "__int__", "__float__", "nonzero", "unique", "any", "all")
    with pytest.MonkeyPatch.context() as patch:
        for name in names:
            patch.setattr(torch.Tensor, name, refuse)
        yield


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_hot_path_never_reads_device_values(mode):
    """No .item()/bool()/nonzero/unique on the hot path (CUDA-graph capturable), residual rows and
    candidate mask included; the validating path does read them."""
    g = torch.Generator().manual_seed(15)
    x = torch.randn(2, 9, 64, generator=g)
    w_q = weight("fb32", 24, 64, seed=16)
    w = PackedOperand.from_quantized(w_q)
    bias = torch.randn(24, generator=g)
    rows = torch.tensor([3, 0, 11])
    mask = golden.FB32.family_mask(1)
    call = dict(candidate_mask=mask, salient_rows=rows, mode=mode, config=CONFIG, bias=bias, out_dtype=torch.bfloat16)
    first = w4a4_linear(x, w, **call)  # builds the cached tables and the prepared weight (host side, once)
    with forbid_host_reads():
        again = w4a4_linear(x, w, **call)
    assert torch.equal(first, again)
    with forbid_host_reads(), pytest.raises(_HostSync):
        w4a4_linear(x, w, salient_rows=rows, mode=mode, config=CONFIG, validate=True)


def test_fused_epilogue_matches_golden_with_bias_and_residual_rows():
    g = torch.Generator().manual_seed(17)
    x = torch.randn(21, 96, generator=g).to(torch.bfloat16)
    w_q = weight("fb32", 33, 96, seed=18)
    bias = torch.randn(33, generator=g)
    rows = torch.tensor([20, 2, 9])
    gold = (golden_linear(x, w_q, rows=rows) + bias).to(torch.bfloat16)
    got = w4a4_linear(x, w_q, salient_rows=rows, bias=bias, out_dtype=torch.bfloat16, config=CONFIG)
    assert got.dtype == torch.bfloat16 and torch.equal(got, gold)
    assert torch.equal(w4a4_linear(x, w_q, salient_rows=rows, bias=bias, out_dtype=torch.bfloat16), gold)


def test_module_compiles_as_one_graph():
    """torch.compile traces the module's forward as one graph: the kernels are one custom operator."""
    torch.manual_seed(19)
    module = TritonW4A4Linear.from_float(torch.nn.Linear(64, 24), format="fb32", mode="fast")
    x = torch.randn(3, 5, 64)
    explanation = torch._dynamo.explain(module)(x)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1
    compiled = torch.compile(module, backend="eager", fullgraph=True)
    assert torch.equal(compiled(x), module(x))


@pytest.mark.skipif(
    not torch.cuda.is_available() or kernels_interpret.kernels.launch.interpreting(),
    reason="CUDA-graph capture needs a CUDA GPU and compiled kernels (TRITON_INTERPRET=0)",
)
@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_linear_replays_in_a_cuda_graph(mode):
    """The hot path never synchronises, so a whole linear (quantizer, GEMM, fused epilogue) is
    captured in a CUDA graph; replays on new inputs give the eager results bit for bit."""
    linear = torch.nn.Linear(256, 96, bias=True).cuda()
    layer = kernels_interpret.kernels.TritonW4A4Linear.from_float(linear, format="fb32", mode=mode)
    x = torch.randn(64, 256, device="cuda", dtype=torch.bfloat16)
    static = x.clone()
    layer(static)  # compile and cache the prepared weight before capturing
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        y = layer(static)
    for seed in range(3):
        g = torch.Generator("cuda").manual_seed(seed)
        fresh = torch.randn(64, 256, device="cuda", dtype=torch.bfloat16, generator=g)
        static.copy_(fresh)
        graph.replay()
        assert torch.equal(y, layer(fresh))

"""Layer-level contract of golden.dit: configuration, the decomposed activation, both execution paths."""

import math
import os

import pytest
import torch

from golden import FB32, FORMATS, FormatError, Selection, front_end, get_format, quantized_linear, select_lut
from golden.blocks import BlockedTensor
from golden.dit import (
    ActivationPlan,
    DecompositionConfig,
    Execution,
    QuantConfig,
    QuantizedLinear,
    SedaConfig,
    decomposed_matmul,
    quantize_activation,
    quantize_weight,
)


def _data(rows, k, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, k, generator=g) * torch.logspace(-2, 1, k)[torch.randperm(k, generator=g)]
    w = torch.randn(n, k, generator=g) / math.sqrt(k)
    return x, w


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"format": "fp8"}, "unknown format"),
        ({"format": "mxfp4", "block": 16}, "block sizes"),
        ({"format": "fb32", "activation_select": "two-stage"}, "two-stage"),
        ({"format": "dialectfp4", "seda": SedaConfig(), "decomposition": DecompositionConfig()}, "fb32"),
        ({"format": "fb32", "seda": SedaConfig()}, "DecompositionConfig"),
        ({"format": "fb32", "execution": "float"}, "execution"),
        (
            {"format": "fb32", "execution": Execution.INTEGER, "quantize_attention_products": True},
            "fake-quant",
        ),
    ],
)
def test_config_rejects(kwargs, message):
    with pytest.raises(FormatError, match=message):
        QuantConfig(**kwargs)


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: DecompositionConfig(rho=1.5), "rho"),
        (lambda: DecompositionConfig(profile_every=0), "profile_every"),
        (lambda: SedaConfig(k_c=0), "k_c"),
        (lambda: SedaConfig(window=(1, 4)), "window"),
    ],
)
def test_sub_configs_reject(factory, message):
    with pytest.raises(FormatError, match=message):
        factory()


def test_config_defaults_and_json_round_trip():
    cfg = QuantConfig(format="fb32", decomposition=DecompositionConfig(), seda=SedaConfig())
    assert cfg.activation_select is Selection.LUT and cfg.weight_select is Selection.MSE and cfg.block == 32
    assert QuantConfig(format="dialectfp4").activation_select is Selection.TWO_STAGE
    assert QuantConfig(format="nvfp4").weight_select is None
    assert QuantConfig.from_json(cfg.to_json()) == cfg
    assert [cfg.profile_step(s) for s in range(11)] == [s % 5 == 0 for s in range(11)]
    assert (
        DecompositionConfig(rho=0.05).num_salient(100) == 5
        and DecompositionConfig(rho=0.05).num_salient(101) == 6
    )


# -- paths ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_integer_path_is_golden_quantized_linear(fmt):
    cfg = QuantConfig(format=fmt)
    x, w = _data(12, 128, 24)
    act = quantize_activation(x, cfg, ActivationPlan())
    y = decomposed_matmul(act, quantize_weight(w, cfg), execution=Execution.INTEGER)
    assert torch.equal(y, quantized_linear(x, w, fmt))


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_fake_quant_agrees_with_integer_within_bound(fmt):
    # Long K and a wide dynamic range so float32 rounding actually happens.
    cfg = QuantConfig(format=fmt, decomposition=DecompositionConfig(rho=0.25))
    x, w = _data(16, 2048, 8, seed=1)
    wq = quantize_weight(w, cfg)
    act = quantize_activation(x, cfg, ActivationPlan(salient_rows=torch.tensor([1, 5, 9, 13])))
    y_int = decomposed_matmul(act, wq, execution=Execution.INTEGER)
    y_fake = decomposed_matmul(act, wq, execution=Execution.FAKE_QUANT)
    magnitude = act.dequantize().abs().double() @ wq.dequantize().abs().double().T
    bound = 2 * 2048 * 2.0**-24 * magnitude  # README.md, "Fake-quant vs integer tolerance"
    assert ((y_fake.double() - y_int.double()).abs() <= bound).all()


def test_decomposition_with_no_salient_rows_is_plain_quantization():
    cfg = QuantConfig(format="fb32", decomposition=DecompositionConfig(rho=0.0))
    plain = QuantConfig(format="fb32")
    x, w = _data(8, 64, 16)
    wq = quantize_weight(w, cfg)
    a = quantize_activation(x, cfg, ActivationPlan(salient_rows=torch.empty(0, dtype=torch.int64)))
    b = quantize_activation(x, plain, ActivationPlan())
    assert a.residual is None and torch.equal(a.main.codes, b.main.codes)
    for execution in Execution:
        assert torch.equal(
            decomposed_matmul(a, wq, execution=execution), decomposed_matmul(b, wq, execution=execution)
        )


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_decomposition_strictly_lowers_salient_row_error(fmt):
    cfg = QuantConfig(format=fmt, decomposition=DecompositionConfig(rho=0.5))
    x, _ = _data(10, 128, 1, seed=2)
    rows = torch.tensor([0, 3, 4, 8])
    plain = quantize_activation(x, cfg, ActivationPlan())
    decomposed = quantize_activation(x, cfg, ActivationPlan(salient_rows=rows))
    err_plain = ((x - plain.dequantize()) ** 2).sum(-1)
    err_dec = ((x - decomposed.dequantize()) ** 2).sum(-1)
    assert (err_dec[rows] < err_plain[rows]).all()
    others = torch.ones(10, dtype=torch.bool).scatter_(0, rows, False)
    assert torch.equal(err_dec[others], err_plain[others])


def test_candidate_mask_is_lut_selection_under_the_family_mask():
    cfg = QuantConfig(format="fb32")
    x, _ = _data(8, 96, 1, seed=3)
    families = torch.tensor([-1, 0, 1, 2, 3, 3, -1, 1])
    mask = torch.ones(8, FB32.num_dialects, dtype=torch.bool)
    for row, f in enumerate(families.tolist()):
        if f >= 0:
            mask[row] = FB32.family_mask(f)
    act = quantize_activation(x, cfg, ActivationPlan(candidate_mask=mask))
    _, u, _ = front_end(BlockedTensor(x, 32).values)
    assert torch.equal(act.main.dialect.long(), select_lut(u, FB32, mask[:, None, :]))
    assert torch.equal(act.main.dialect[families < 0].long(), select_lut(u[families < 0], FB32))
    chosen_family = act.main.dialect.long() // FB32.family_size
    assert torch.equal(chosen_family[families >= 0], families[families >= 0, None].expand(-1, 3))


def test_quantized_linear_module_matches_functional_core_and_rejects_bad_input():
    cfg = QuantConfig(format="fb32", execution=Execution.INTEGER)
    linear = torch.nn.Linear(64, 16)
    layer = QuantizedLinear.from_linear(linear, name="probe", config=cfg)
    x = torch.randn(2, 5, 64)
    expected = quantized_linear(x.reshape(-1, 64), linear.weight.detach(), "fb32") + linear.bias.detach()
    assert torch.equal(layer(x), expected.reshape(2, 5, 16))
    with pytest.raises(FormatError, match="64 input features"):
        layer(torch.randn(3, 32))


_TRITON_SCRIPT = """
import os
os.environ.setdefault("TRITON_INTERPRET", "1")
import torch
from golden import FB32
from golden.dit import Backend, DecompositionConfig, Execution, QuantConfig, QuantizedLinear
from golden.dit.linear import ActivationPlan

torch.manual_seed(0)
linear = torch.nn.Linear(64, 16)
x = torch.randn(1, 8, 64)
mask = torch.ones(8, FB32.num_dialects, dtype=torch.bool)
mask[2], mask[5] = FB32.family_mask(2), FB32.family_mask(1)
plan = ActivationPlan(salient_rows=torch.tensor([2, 6]), candidate_mask=mask)
outputs = []
for backend in (Backend.TRITON, Backend.TORCH):
    cfg = QuantConfig(
        format="fb32", backend=backend, execution=Execution.INTEGER, decomposition=DecompositionConfig()
    )
    layer = QuantizedLinear.from_linear(linear, name="probe", config=cfg)
    layer.plan = lambda x: plan
    outputs.append(layer(x))
assert torch.equal(outputs[0], outputs[1]), (outputs[0] - outputs[1]).abs().max()
print("bit-exact")
"""


def test_triton_backend_is_bit_exact_with_the_integer_path():
    """Backend.TRITON (kernels.w4a4_linear, exact mode; the Triton interpreter on CPU) with a SeDA
    mask and salient rows equals Execution.INTEGER on the golden path."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("kernels") is None:
        pytest.skip("the kernels package is not installed")
    kernels = pytest.importorskip("kernels.linear", reason="kernels.w4a4_linear (issue 7) is not importable")
    if not hasattr(kernels, "w4a4_linear"):
        pytest.skip("kernels.w4a4_linear (issue 7) is not available yet")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", _TRITON_SCRIPT], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0 and "bit-exact" in result.stdout, (
        result.stdout[-1000:] + result.stderr[-3000:]
    )


def test_weight_selection_defaults_to_mse_for_dialects():
    cfg = QuantConfig(format="fb32")
    _, w = _data(1, 64, 8)
    wq = quantize_weight(w, cfg)
    from golden import quantize

    assert torch.equal(wq.dialect, quantize(w, "fb32", select="mse").dialect)
    assert get_format(cfg.format).formatbook is FB32


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_fast_dequantize_is_golden_dequantize_bit_for_bit(fmt):
    from golden import quantize
    from golden.dit import fast_dequantize

    g = torch.Generator().manual_seed(4)
    scales = torch.tensor([2.0**-140, 2.0**-126, 2.0**-60, 1.0, 2.0**60, 2.0**124])
    x = torch.randn(6, 8, 64, generator=g) * scales[:, None, None]
    x[0, 0] = 0.0  # an all-zero block (exponent byte 0)
    x[1, 1, :5] = -0.0
    if get_format(fmt).kind.value.startswith("nvfp4"):
        x = x[2:4]  # one tensor scale: keep the range NVFP4 can hold
    q = quantize(x, fmt, pad=True)
    assert torch.equal(fast_dequantize(q).view(torch.int32), q.dequantize().view(torch.int32))


@pytest.mark.parametrize("fmt", ["fb32", "dialectfp4", "mxfp4", "nvfp4"])
def test_fake_quant_forward_without_codes_is_the_decomposed_path_bit_for_bit(fmt):
    """A fake-quant forward on the torch backend with no observer quantizes activations with
    golden.fake_quantize (no codes); it equals decomposed_matmul over quantize_activation exactly,
    salient rows and (fb32) SeDA masks included, in bfloat16 as in a real model."""
    from golden.dit.linear import FakeQuantActivation, fake_quantize_activation

    cfg = QuantConfig(format=fmt, decomposition=DecompositionConfig())
    linear = torch.nn.Linear(96, 24).to(torch.bfloat16)
    layer = QuantizedLinear.from_linear(linear, name="probe", config=cfg)
    x, _ = _data(10, 96, 1, seed=8)
    x = x.to(torch.bfloat16)
    mask = None
    if fmt == "fb32":
        mask = torch.ones(10, FB32.num_dialects, dtype=torch.bool)
        mask[2], mask[5] = FB32.family_mask(2), FB32.family_mask(1)
    plan = ActivationPlan(salient_rows=torch.tensor([2, 6]), candidate_mask=mask)
    layer.plan = lambda x: plan
    fake = fake_quantize_activation(x, cfg, plan)
    assert isinstance(fake, FakeQuantActivation)
    reference = decomposed_matmul(quantize_activation(x, cfg, plan), layer.weight_q, execution=Execution.FAKE_QUANT)
    expected = (reference + linear.bias.detach().float()).to(torch.bfloat16)
    assert torch.equal(layer(x[None])[0].view(torch.int16), expected.view(torch.int16))
    seen = []
    layer.observers.append(lambda layer, rows, act, plan, y: seen.append(type(act)))
    assert torch.equal(layer(x[None])[0].view(torch.int16), expected.view(torch.int16))
    assert seen == [type(quantize_activation(x, cfg, plan))]  # observers still get the codes

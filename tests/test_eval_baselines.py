"""The literature baselines of golden.dit.baselines (SVDQuant-style, ViDiT-Q-style), checked against
their definitions on single layers and on a tiny diffusers transformer; and the ablation knobs
they and the evaluation's methods use."""

import pytest
import torch
from torch import nn

from evaluation.methods import Group, ablation_methods, headline_methods
from golden.dit.baselines import (
    INT4_GROUP_SIZE,
    BaselineConfig,
    BaselineLinear,
    _int4,
    baseline_layers,
    calibrate,
    quantize_baseline_,
)
from golden.formats import FormatError


def layer_with_outliers(n=96, k=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    linear = nn.Linear(k, n)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(n, k, generator=g) * 0.05)
    x = torch.randn(64, k, generator=g)
    x[:, :4] *= 30.0  # a few outlier channels, as in DiT activations
    return linear, x


def relative_error(layer, linear, x):
    with torch.no_grad():
        ref = linear(x)
        return float((layer(x) - ref).square().sum() / ref.square().sum())


def test_int4_is_symmetric_with_amax_over_seven_scales():
    x = torch.tensor([[7.0, -3.5, 1.0, 0.2]])
    q = _int4(x, None)
    assert torch.equal(q, torch.tensor([[7.0, -4.0, 1.0, 0.0]]))  # scale 1, round half to even at -3.5
    groups = _int4(torch.arange(2 * INT4_GROUP_SIZE, dtype=torch.float32)[None], INT4_GROUP_SIZE)
    assert groups[0, INT4_GROUP_SIZE - 1] == pytest.approx(INT4_GROUP_SIZE - 1, rel=1e-3)


@pytest.mark.parametrize("residual", ["nvfp4", "mxfp4", "int4", "fb32"])
def test_low_rank_branch_and_smoothing_reduce_the_error(residual):
    linear, x = layer_with_outliers()
    amax = x.abs().amax(0)
    plain = BaselineLinear(linear, name="l", config=BaselineConfig(kind="svdquant", residual=residual, rank=0, alpha=0.0), act_amax=amax)
    full = BaselineLinear(linear, name="l", config=BaselineConfig(kind="svdquant", residual=residual, rank=16), act_amax=amax)
    assert relative_error(full, linear, x) < relative_error(plain, linear, x)


def test_svdquant_counts_the_branch_bits():
    linear, x = layer_with_outliers(n=96, k=128)
    layer = BaselineLinear(linear, name="l", config=BaselineConfig(kind="svdquant", residual="nvfp4", rank=8), act_amax=x.abs().amax(0))
    assert layer.weight_bits_per_element == pytest.approx(4.5 + 16 * 8 * (96 + 128) / (96 * 128))
    assert layer.activation_bits_per_element == pytest.approx(4.5 + 16 * 8 / 128)


def test_vidit_q_is_per_channel_and_per_token_int4():
    linear, x = layer_with_outliers()
    layer = BaselineLinear(linear, name="l", config=BaselineConfig(kind="vidit-q"), act_amax=x.abs().amax(0))
    assert layer.rank == 0 and layer.weight_bits_per_element == pytest.approx(4 + 16 / 128)
    # Each output channel's weights take at most 16 distinct values (after undoing the smoothing).
    w = layer.weight_deq / layer.smooth[None, :]
    for row in (layer.weight_deq[0], layer.weight_deq[5]):
        assert torch.unique(row).numel() <= 16
    assert w.shape == linear.weight.shape
    with pytest.raises(FormatError):
        BaselineConfig(kind="vidit-q", rank=4)


def test_calibrate_and_quantize_a_tiny_transformer():
    from golden.dit import tiny_inputs, tiny_transformer

    model = tiny_transformer("hunyuan-video")
    inputs = {**tiny_inputs("hunyuan-video", batch=1), "timestep": torch.full((1,), 900.0)}
    with torch.no_grad():
        ref = model(**inputs, return_dict=False)[0]
        with calibrate(model) as amax:
            model(**inputs, return_dict=False)
        names = quantize_baseline_(model, BaselineConfig(kind="svdquant", residual="nvfp4", rank=2), amax)
        out = model(**inputs, return_dict=False)[0]
    assert names and set(names) == set(baseline_layers(model)) and set(names) == set(amax)
    assert not any("norm" in n.split(".")[-2] for n in names)  # adaLN modulation stays float
    err = float((out - ref).square().sum() / ref.square().sum())
    assert 0 < err < 0.1


def test_method_lists_are_data_driven_and_ablations_name_their_default():
    headline = {m.key: m for m in headline_methods()}
    assert {m.group for m in headline.values()} == {Group.BASELINE, Group.LITERATURE, Group.PROPOSED}
    for m in ablation_methods():
        assert m.against in headline, m.key
        assert m.group is Group.ABLATION
        config = m.config_json()  # every ablation builds a valid configuration
        assert config
    keys = [m.key for m in ablation_methods()]
    assert len(keys) == len(set(keys))
    assert {"fb32+seda-no-ad", "fb32+ad+seda-saliency-random", "fb32+ad+seda-saliency-norm", "fb32+ad-rho0"} <= set(keys)


def test_saliency_sources_and_seda_without_ad_run_on_a_tiny_transformer():
    from golden.dit import DecompositionConfig, LayerStats, QuantConfig, SedaConfig, quantize_, quantized_layers, tiny_inputs, tiny_transformer

    inputs = {**tiny_inputs("hunyuan-video", batch=1), "timestep": torch.full((1,), 900.0)}
    salient = {}
    for source, requantize in (("attention", True), ("random", True), ("norm", True), ("attention", False)):
        model = tiny_transformer("hunyuan-video")
        config = QuantConfig(format="fb32", decomposition=DecompositionConfig(rho=0.25, saliency=source, requantize=requantize),
                             seda=SedaConfig())  # fmt: skip
        quantize_(model, config)
        layers = quantized_layers(model)
        stats = {n: LayerStats(name=n) for n in layers}
        for n, layer in layers.items():
            layer.observers.append(stats[n].observe)
        with torch.no_grad():
            model(**inputs, return_dict=False)
        rows = sum(s.salient_rows for s in stats.values())
        state = model._sdialect_state
        salient[(source, requantize)] = torch.cat([b.slots[0].salient.flatten() for b in state.blocks.values() if 0 in b.slots])
        assert (rows > 0) == requantize, (source, requantize)
    assert not torch.equal(salient[("attention", True)], salient[("random", True)])
    assert torch.equal(salient[("attention", True)], salient[("attention", False)])
    with pytest.raises(FormatError):
        DecompositionConfig(saliency="magic")

"""quantize_ on tiny random-weight diffusers video transformers (ALGORITHMS.md sections 1-3)."""

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from golden import FormatError
from golden.dit import (
    TINY_ARCHITECTURES,
    DecompositionConfig,
    Execution,
    QuantConfig,
    QuantizedLinear,
    SedaConfig,
    TokenRole,
    architecture_of,
    collect_stats,
    quantize_,
    reset_schedule,
    tiny_inputs,
    tiny_transformer,
)


AD = DecompositionConfig(rho=0.1, profile_every=2)
SEDA = SedaConfig(k_c=4, window=(1, 2, 2), regroup_every=2)
TIMESTEPS = (900.0, 700.0)


def _run(name, config, *, batch=2, timesteps=TIMESTEPS):
    model = tiny_transformer(name)
    report = quantize_(model, config) if config is not None else None
    inputs = tiny_inputs(name, batch=batch)
    with torch.no_grad():
        outs = [model(**inputs, timestep=torch.full((batch,), t), return_dict=False)[0] for t in timesteps]
    return model, report, outs


@pytest.mark.parametrize("name", TINY_ARCHITECTURES)
def test_quantize_replaces_exactly_the_block_linears(name):
    model, report, outs = _run(name, QuantConfig(format="fb32"), timesteps=TIMESTEPS[:1])
    arch = architecture_of(model)
    assert report.architecture == arch.name and report.wall_time_s > 0 and report.weight_bits > 0
    blocks = [prefix for prefix, _ in arch.blocks(model)]
    layers = {n: m for n, m in model.named_modules() if isinstance(m, QuantizedLinear)}
    assert list(layers) == list(report.quantized_layers)
    assert all(any(n.startswith(p + ".") for p in blocks) for n in layers)
    assert all(".norm" not in n for n in layers)  # adaLN modulation stays float
    for n in report.kept_layers:  # everything kept is outside the blocks or an adaLN linear
        assert not any(n.startswith(p + ".") for p in blocks) or ".norm" in n
    for prefix in blocks:  # every block's self-attention q/k/v is quantized, as video rows
        q = layers[f"{prefix}.{arch.self_attention}.to_q"]
        assert q.role is TokenRole.VIDEO
    assert torch.isfinite(outs[0]).all()


@pytest.mark.parametrize("name", TINY_ARCHITECTURES)
def test_fake_quant_and_integer_models_agree(name):
    fake = _run(name, QuantConfig(format="fb32", decomposition=AD, seda=SEDA))[2]
    integer = _run(
        name, QuantConfig(format="fb32", decomposition=AD, seda=SEDA, execution=Execution.INTEGER)
    )[2]
    for a, b in zip(fake, integer):
        assert ((a - b).norm() / b.norm()) < 1e-4  # README.md, "Fake-quant vs integer tolerance"


@pytest.mark.parametrize("name", TINY_ARCHITECTURES)
def test_rho_zero_decomposition_is_plain_fb32_bit_for_bit(name):
    plain = _run(name, QuantConfig(format="fb32"))[2]
    rho0 = _run(
        name, QuantConfig(format="fb32", decomposition=DecompositionConfig(rho=0.0, profile_every=1))
    )[2]
    assert all(torch.equal(a, b) for a, b in zip(plain, rho0))


@pytest.mark.parametrize("name", TINY_ARCHITECTURES)
def test_seda_off_is_fb32_with_decomposition_bit_for_bit(name):
    ad = _run(name, QuantConfig(format="fb32", decomposition=AD))[2]
    seda_off = _run(name, QuantConfig(format="fb32", decomposition=AD, seda=None))[2]
    seda_on = _run(name, QuantConfig(format="fb32", decomposition=AD, seda=SEDA))[2]
    plain = _run(name, QuantConfig(format="fb32"))[2]
    assert all(torch.equal(a, b) for a, b in zip(ad, seda_off))
    assert not torch.equal(ad[-1], seda_on[-1]), "SeDA must change the later steps"
    assert not torch.equal(ad[-1], plain[-1]), "decomposition must change the later steps"


def test_decomposition_lowers_activation_error_in_the_model():
    def act_sqnr(config):
        model = tiny_transformer("hunyuan-video")
        quantize_(model, config)
        inputs = tiny_inputs("hunyuan-video", batch=1)
        with torch.no_grad(), collect_stats(model) as stats:
            for t in TIMESTEPS:
                model(**inputs, timestep=torch.tensor([t]), return_dict=False)
        return stats

    plain, ad = act_sqnr(QuantConfig(format="fb32")), act_sqnr(QuantConfig(format="fb32", decomposition=AD))
    video = [n for n, s in ad.items() if s.salient_rows > 0]
    assert video, "some layers must see salient rows"
    for n in video:
        assert ad[n].act_noise < plain[n].act_noise, n
        assert ad[n].dialect_counts.sum() == plain[n].dialect_counts.sum()


@pytest.mark.parametrize("fmt", ["dialectfp4", "mxfp4", "nvfp4", "nvfp4-46"])
def test_every_format_quantizes_a_model(fmt):
    outs = _run("wan", QuantConfig(format=fmt, decomposition=AD), timesteps=TIMESTEPS[:1])[2]
    assert torch.isfinite(outs[0]).all()


def test_quantized_attention_products_change_the_output_a_little():
    reference = _run("hunyuan-video", QuantConfig(format="fb32"), timesteps=TIMESTEPS[:1])[2][0]
    products = _run(
        "hunyuan-video", QuantConfig(format="fb32", quantize_attention_products=True), timesteps=TIMESTEPS[:1]
    )[2][0]
    assert not torch.equal(reference, products)
    assert ((reference - products).norm() / reference.norm()) < 0.5


def test_unsupported_models_and_double_quantization_are_rejected():
    with pytest.raises(FormatError, match="unsupported model class Linear"):
        quantize_(torch.nn.Linear(4, 4), QuantConfig())
    model = tiny_transformer("wan")
    quantize_(model, QuantConfig())
    with pytest.raises(FormatError, match="already quantized"):
        quantize_(model, QuantConfig())


# -- the step schedule follows an unmodified denoising loop --------------------------------------


class _Recorder:
    def __init__(self, model, monkeypatch):
        import golden.dit.processors as processors

        self.calls, self.profiled = [], []
        state = model._sdialect_state
        original = processors.attention_saliency

        def counting(*args, **kwargs):
            self.profiled.append(state.call.step)
            return original(*args, **kwargs)

        monkeypatch.setattr(processors, "attention_saliency", counting)
        model.register_forward_hook(lambda *_: self.calls.append((state.call.step, state.call.slot)))


def _denoise(model, name, steps, *, batch, cfg_as_two_calls=False, seed=0):
    """A plain diffusers scheduler loop: nothing in it knows about quantization."""
    scheduler = FlowMatchEulerDiscreteScheduler()
    scheduler.set_timesteps(steps)
    inputs = tiny_inputs(name, batch=batch, seed=seed)
    latents = inputs.pop("hidden_states")
    with torch.no_grad():
        for t in scheduler.timesteps:
            timestep = t.expand(latents.shape[0])
            noise = model(hidden_states=latents, timestep=timestep, **inputs, return_dict=False)[0]
            if cfg_as_two_calls:
                uncond = model(hidden_states=latents, timestep=timestep, **inputs, return_dict=False)[0]
                noise = uncond + 2.0 * (noise - uncond)
            latents = scheduler.step(noise, t, latents, return_dict=False)[0]
    return latents


def test_profiling_follows_the_scheduler_loop(monkeypatch):
    model = tiny_transformer("wan")
    quantize_(model, QuantConfig(format="fb32", decomposition=DecompositionConfig(rho=0.1, profile_every=3)))
    recorder = _Recorder(model, monkeypatch)
    _denoise(model, "wan", 7, batch=2)  # batched CFG: one call per step
    blocks = len(model.blocks)
    assert recorder.calls == [(s, 0) for s in range(7)]
    assert recorder.profiled == [s for s in (0, 3, 6) for _ in range(blocks)]
    _denoise(model, "wan", 4, batch=2)  # a new generation starts over at step 0
    assert recorder.calls[7:] == [(s, 0) for s in range(4)]


@pytest.mark.parametrize("name", TINY_ARCHITECTURES)
def test_a_second_generation_reproduces_the_first(name):
    """State of one generation (salient sets, SeDA groups, per-layer families) never leaks into
    the next: the same loop run twice on one quantized model gives the same outputs."""
    used, fresh = tiny_transformer(name), tiny_transformer(name)
    for model in (used, fresh):
        quantize_(model, QuantConfig(format="fb32", decomposition=AD, seda=SEDA))
    _denoise(used, name, 3, batch=2, seed=1)
    assert torch.equal(_denoise(used, name, 3, batch=2, seed=2), _denoise(fresh, name, 3, batch=2, seed=2))


def test_cfg_as_two_calls_keeps_separate_state_per_call(monkeypatch):
    model = tiny_transformer("hunyuan-video")
    quantize_(model, QuantConfig(format="fb32", decomposition=DecompositionConfig(rho=0.1, profile_every=2)))
    recorder = _Recorder(model, monkeypatch)
    _denoise(model, "hunyuan-video", 3, batch=1, cfg_as_two_calls=True)
    assert recorder.calls == [(s, slot) for s in range(3) for slot in (0, 1)]
    block = model._sdialect_state.blocks["transformer_blocks.0"]
    assert set(block.slots) == {0, 1} and all(s.salient.shape == (1, 5) for s in block.slots.values())
    reset_schedule(model)
    assert model._sdialect_state.call is None and not block.slots


def test_a_bfloat16_model_runs_and_keeps_its_dtype():
    model = tiny_transformer("hunyuan-video").to(torch.bfloat16)
    quantize_(model, QuantConfig(format="fb32", decomposition=AD, seda=SEDA))
    inputs = {
        k: v.to(torch.bfloat16) if torch.is_tensor(v) and v.is_floating_point() else v
        for k, v in tiny_inputs("hunyuan-video", batch=2).items()
    }
    with torch.no_grad():
        out = model(**inputs, timestep=torch.tensor([900.0, 900.0]), return_dict=False)[0]
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()

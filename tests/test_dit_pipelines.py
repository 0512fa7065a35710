"""quantize_ under diffusers' own video pipelines (tiny random components, precomputed prompts).

Each test runs an unmodified pipeline twice on a quantized transformer and checks the step schedule
the quantizer saw: which denoising step and CFG slot every transformer call was, on which steps the
saliency pass and SeDA regrouping ran, that self-attention q/k/v got salient rows after the first
profiling step, and that per-slot state stays bounded across generations.
"""

import pytest
import torch

from dit_pipelines import cogvideox, ltx_condition, ltx_image_to_video, mochi, skyreels_v2, wan22_two_experts, wan_ti2v
from golden import FormatError
from golden.dit import DecompositionConfig, Execution, QuantConfig, SedaConfig, collect_stats, quantize_
from golden.dit.schedule import MAX_SLOTS

STEPS = 5
CONFIG = QuantConfig(
    format="fb32",
    decomposition=DecompositionConfig(rho=0.1, profile_every=2),
    seda=SedaConfig(k_c=4, window=(1, 2, 2), regroup_every=3),
)
PROFILED = [0, 2, 3, 4]  # steps 0, 2, 4 (K_s = 2) and the regroup step 3 (K_g = 3)
REGROUPED = [0, 3]


class Recorder:
    """Every forward call of one quantized transformer as ``(step, slot)``, and the steps on which
    its blocks ran the saliency pass and SeDA regrouping (once per block per call)."""

    def __init__(self, model, monkeypatch):
        import golden.dit.processors as processors

        self.model = model
        self.calls, self.profiled, self.regrouped = [], [], []
        state = model._sdialect_state
        for name, target in (("attention_saliency", self.profiled), ("seda_groups", self.regrouped)):
            monkeypatch.setattr(processors, name, _counting(getattr(processors, name), state, target))
        model.register_forward_hook(lambda *_: self.calls.append((state.call.step, state.call.slot)))

    @property
    def blocks(self) -> int:
        return len(self.model._sdialect_state.blocks)

    def per_block(self, steps) -> list[int]:
        return [s for s in steps for _ in range(self.blocks)]

    def max_slots(self) -> int:
        return max(len(b.slots) for b in self.model._sdialect_state.blocks.values())


def _counting(function, state, target):
    """Wrap a saliency function so that a call counts for ``state`` only while one of ``state``'s
    blocks runs it (two experts share the module-level functions)."""

    def counting(*args, **kwargs):
        if _running_state() is state:
            target.append(state.call.step)
        return function(*args, **kwargs)

    return counting


def _running_state():
    import inspect

    frame = inspect.currentframe()
    while frame is not None:
        processor = frame.f_locals.get("self")
        frame = frame.f_back
        block_state = getattr(processor, "block_state", None)
        if block_state is not None:
            return block_state.model
    return None


def _qkv_salient_rows(stats) -> int:
    return sum(s.salient_rows for name, s in stats.items() if name.endswith(".to_q"))


def _generate(pipe, make_kwargs):
    with torch.no_grad():
        return pipe(**make_kwargs()).frames


PIPELINES = {
    # per-token timesteps: the conditioning frame's timestep is 0, the call's step is still the scheduler's
    "LTXImageToVideoPipeline": (ltx_image_to_video, 1),
    "WanImageToVideoPipeline-expand_timesteps": (wan_ti2v, 2),  # also CFG as two calls
    "LTXConditionPipeline": (ltx_condition, 1),  # video_coords instead of latent sizes
    "CogVideoXPipeline": (cogvideox, 1),  # text-first joint attention, DDIM scheduler
    "MochiPipeline-invert_sigmas": (mochi, 1),  # timesteps count up; padded prompt tokens
    "SkyReelsV2Pipeline": (skyreels_v2, 2),  # Wan-like blocks, UniPC scheduler, CFG as two calls
}


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_pipeline_steps_follow_the_scheduler(pipeline, monkeypatch):
    build, cfg_calls = PIPELINES[pipeline]
    pipe, kwargs = build(STEPS)
    quantize_(pipe.transformer, CONFIG)
    recorder = Recorder(pipe.transformer, monkeypatch)
    slots = range(cfg_calls)
    for generation in range(2):
        kwargs["generator"] = torch.Generator().manual_seed(generation)
        with collect_stats(pipe.transformer) as stats:
            _generate(pipe, lambda: kwargs)
        start = generation * STEPS * cfg_calls
        assert recorder.calls[start:] == [(s, slot) for s in range(STEPS) for slot in slots]
        assert recorder.max_slots() == cfg_calls  # bounded: one state per CFG call, not per call
        assert _qkv_salient_rows(stats) > 0, "q/k/v must use the salient set of earlier profiling steps"
    assert recorder.profiled == recorder.per_block(sorted(PROFILED * cfg_calls)) * 2
    assert recorder.regrouped == recorder.per_block(sorted(REGROUPED * cfg_calls)) * 2


def test_two_experts_each_follow_their_own_steps(monkeypatch):
    """Wan 2.2: the high-noise expert runs the first steps, the low-noise one the rest; each counts
    its own steps from 0 (so each profiles and groups on its first call) and CFG is two calls."""
    pipe, kwargs = wan22_two_experts(STEPS)
    quantize_(pipe.transformer, CONFIG)
    quantize_(pipe.transformer_2, CONFIG)
    high, low = Recorder(pipe.transformer, monkeypatch), Recorder(pipe.transformer_2, monkeypatch)
    _generate(pipe, lambda: kwargs)
    boundary = pipe.config.boundary_ratio * pipe.scheduler.config.num_train_timesteps
    first = int((pipe.scheduler.timesteps >= boundary).sum())
    assert 0 < first < STEPS
    for recorder, steps in ((high, first), (low, STEPS - first)):
        assert recorder.calls == [(s, slot) for s in range(steps) for slot in (0, 1)]
        profiled = [s for s in PROFILED if s < steps]
        assert recorder.profiled == recorder.per_block(sorted(profiled * 2))
        assert recorder.regrouped == recorder.per_block(sorted([s for s in REGROUPED if s < steps] * 2))
        assert recorder.max_slots() == 2


def test_calls_at_one_timestep_are_bounded():
    from golden.dit import tiny_inputs, tiny_transformer

    model = tiny_transformer("wan")
    quantize_(model, CONFIG)
    inputs = tiny_inputs("wan", batch=1)
    with torch.no_grad():
        for _ in range(MAX_SLOTS):
            model(**inputs, timestep=torch.tensor([500.0]), return_dict=False)
        with pytest.raises(FormatError, match="reset_schedule"):
            model(**inputs, timestep=torch.tensor([500.0]), return_dict=False)
    assert max(len(b.slots) for b in model._sdialect_state.blocks.values()) == MAX_SLOTS


def test_save_pretrained_of_a_quantized_transformer_is_refused(tmp_path):
    """diffusers' save_pretrained would write a checkpoint its from_pretrained cannot load."""
    pipe, _ = wan_ti2v(1)
    quantize_(pipe.transformer, QuantConfig(format="fb32"))
    with pytest.raises(FormatError, match="save_quantized_model"):
        pipe.transformer.save_pretrained(tmp_path / "transformer")
    assert not (tmp_path / "transformer").exists()
    with pytest.raises(FormatError, match="save_quantized_model"):
        pipe.save_pretrained(tmp_path / "pipe")
    # The pipeline saves its components in order (the VAE may be written first); the transformer never is.
    assert not list((tmp_path / "pipe" / "transformer").rglob("*"))


@pytest.mark.parametrize(
    "pipeline", ["LTXConditionPipeline", "CogVideoXPipeline", "MochiPipeline-invert_sigmas", "SkyReelsV2Pipeline"]
)
def test_integer_path_matches_fake_quant_through_the_pipeline(pipeline):
    build = PIPELINES[pipeline][0]
    latents = {}
    for execution in (Execution.FAKE_QUANT, Execution.INTEGER):
        pipe, kwargs = build(2)
        quantize_(pipe.transformer, QuantConfig(format="fb32", decomposition=CONFIG.decomposition, seda=CONFIG.seda,
                                                execution=execution))  # fmt: skip
        latents[execution] = _generate(pipe, lambda: kwargs)
    fake, integer = latents[Execution.FAKE_QUANT], latents[Execution.INTEGER]
    assert torch.isfinite(fake).all() and ((fake - integer).norm() / integer.norm()) < 1e-4

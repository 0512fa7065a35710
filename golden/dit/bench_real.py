"""`sdialect bench model --config wan-1.3b`: quantize_ and forward cost at a real model size.

Builds ``WanTransformer3DModel`` with the Wan 2.1 T2V 1.3B configuration (30 blocks, width 1536,
12 heads, FFN 8960, text width 4096) and seeded random **bfloat16** weights (normal, std 0.02;
nothing downloaded), then in one process:

1. the float forward at ``--tokens`` video tokens (batch 1), in bfloat16 (as the model ships) and
   in float32 (the model converted; the compute dtype of the fake-quant GEMMs);
2. ``quantize_`` of the bfloat16 model (FB32, default MSE weight selection), timed;
3. the fake-quant forward of the quantized model on the same inputs (the one-time dequantization of
   the weights for the fake-quant GEMMs is timed separately, before it).

``quantize_``'s dialect choices for a few seeded rows of every linear are re-derived with
``select_mse_reference`` (the definition of MSE selection) and the mismatches counted.

Every timed forward runs once (at this size one call is seconds to minutes on a CPU), after an
untimed warm-up call of the same variant at ``WARMUP_TOKENS`` tokens. The JSON reports
the wall times, their ratios and the machine's load average at start and end, because the numbers
depend on what else runs on the machine.
"""

from __future__ import annotations

import math
import os
import platform
import time

#: diffusers' config of Wan-AI/Wan2.1-T2V-1.3B-Diffusers (transformer/config.json).
WAN_1_3B = {
    "patch_size": (1, 2, 2), "num_attention_heads": 12, "attention_head_dim": 128, "in_channels": 16,
    "out_channels": 16, "text_dim": 4096, "freq_dim": 256, "ffn_dim": 8960, "num_layers": 30,
    "cross_attn_norm": True, "qk_norm": "rms_norm_across_heads", "eps": 1e-6, "rope_max_seq_len": 1024,
}  # fmt: skip
TEXT_TOKENS = 512
#: Video tokens of the untimed warm-up forward each variant runs before its timed one.
WARMUP_TOKENS = 32


def random_wan(seed: int = 0, config: dict | None = None):
    """A Wan transformer with seeded random bfloat16 weights (built on the meta device, then filled)."""
    import torch
    from diffusers import WanTransformer3DModel

    with torch.device("meta"):
        model = WanTransformer3DModel(**(config or WAN_1_3B))
    model = model.to_empty(device="cpu").to(torch.bfloat16)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
            elif name.endswith("weight"):  # norms
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    # The rotary tables are buffers computed in __init__ (empty after the meta device): rebuild them.
    model.rope = type(model.rope)(model.rope.attention_head_dim, model.rope.patch_size, model.rope.max_seq_len)
    buffers = [name for name, _ in model.named_buffers() if not name.startswith("rope.")]
    if buffers:
        raise RuntimeError(f"random_wan does not know how to initialise buffers {buffers}")
    return model.eval()


#: Weight rows per linear whose MSE dialects the benchmark re-derives with the reference rule.
SAMPLE_ROWS = 4


def _sample_weight_rows(model, seed: int) -> dict:
    """A few seeded rows of every linear's weight, kept (small) to check ``quantize_``'s dialects."""
    import torch

    g = torch.Generator().manual_seed(seed + 2)
    samples = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            rows = torch.randperm(module.out_features, generator=g)[:SAMPLE_ROWS]
            samples[name] = (rows, module.weight.detach()[rows].clone())
    return samples


def _check_against_reference(layers: dict, samples: dict, config) -> dict:
    """The dialect ids ``quantize_`` chose for the sampled rows against ``select_mse_reference``
    (the one-dialect-at-a-time definition), block by block."""
    from ..blocks import BlockedTensor, front_end
    from ..formats import Scale, Selection, get_format
    from ..select import select_mse_reference

    spec = get_format(config.format)
    if not spec.is_dialect or config.weight_select is not Selection.MSE or spec.scale is not Scale.E8M0:
        return {"checked": False, "reason": f"{spec.name} weights are not E8M0 dialects with MSE selection"}
    blocks = mismatches = 0
    for name, layer in layers.items():
        rows, weight = samples[name]
        blocked = BlockedTensor(weight, config.block, pad=True)
        e, u, _ = front_end(blocked.values, blocked.amax, spec.grid)
        reference = select_mse_reference(blocked.values, e, u, spec.formatbook)
        mismatches += int((layer.weight_q.dialect[rows].to(reference.dtype) != reference).sum())
        blocks += reference.numel()
    return {"checked": True, "sampled_blocks": blocks, "layers": len(layers), "mismatches": mismatches}


def _latent(tokens: int, patch=(1, 2, 2)) -> tuple[int, int, int]:
    """(frames, height, width) of a latent with ``tokens`` patch tokens: 8 frames of a square grid."""
    frames = 8 if tokens % 8 == 0 else 1
    side = math.isqrt(tokens // frames)
    if frames * side * side != tokens:
        raise ValueError(f"{tokens} tokens is not 8 or 1 frames of a square token grid")
    return frames, side * patch[1], side * patch[2]


def _timed_forward(model, inputs: dict, dtype) -> float:
    import torch

    cast = {k: v.to(dtype) if torch.is_tensor(v) and v.is_floating_point() else v for k, v in inputs.items()}
    start, cpu = time.perf_counter(), time.process_time()
    with torch.no_grad():
        model(**cast, return_dict=False)
    return time.perf_counter() - start, time.process_time() - cpu


def run(tokens: int, *, seed: int = 0, config: dict | None = None, format: str = "fb32") -> dict:
    import torch

    from . import QuantConfig, quantize_, quantized_layers

    load_start = os.getloadavg()
    config = dict(config or WAN_1_3B)
    build_start = time.perf_counter()
    model = random_wan(seed, config)
    build_s = time.perf_counter() - build_start
    frames, height, width = _latent(tokens, config["patch_size"])
    g = torch.Generator().manual_seed(seed + 1)
    inputs = {
        "hidden_states": torch.randn(1, config["in_channels"], frames, height, width, generator=g),
        "encoder_hidden_states": torch.randn(1, TEXT_TOKENS, config["text_dim"], generator=g),
        "timestep": torch.tensor([500.0]),
    }
    # Each variant first runs once at WARMUP_TOKENS (untimed), so that no timed forward pays for
    # first-call set-up (kernel selection, thread pools) of its dtype's code paths.
    warm_frames, warm_height, warm_width = _latent(WARMUP_TOKENS, config["patch_size"])
    warm = dict(inputs, hidden_states=torch.randn(1, config["in_channels"], warm_frames, warm_height, warm_width, generator=g))
    parameters = sum(p.numel() for p in model.parameters())
    _timed_forward(model, warm, torch.bfloat16)
    float_bf16 = _timed_forward(model, inputs, torch.bfloat16)
    model.float()
    _timed_forward(model, warm, torch.float32)
    float_fp32 = _timed_forward(model, inputs, torch.float32)
    model.to(torch.bfloat16)

    quant_config = QuantConfig(format=format)
    samples = _sample_weight_rows(model, seed)
    cpu = time.process_time()
    report = quantize_(model, quant_config)
    quantize_cpu = time.process_time() - cpu
    layers = quantized_layers(model)
    identity = _check_against_reference(layers, samples, quant_config)
    start = time.perf_counter()
    for layer in layers.values():
        layer.weight_deq  # noqa: B018  (builds the cached dequantized weight)
    dequantize_s = time.perf_counter() - start
    _timed_forward(model, warm, torch.bfloat16)
    fake_bf16 = _timed_forward(model, inputs, torch.bfloat16)
    quantized_elements = sum(layer.in_features * layer.out_features for layer in layers.values())
    return {
        "benchmark": "model-real",
        "model": "WanTransformer3DModel, Wan 2.1 T2V 1.3B configuration, random bfloat16 weights",
        "model_config": {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()},
        "parameters": parameters,
        "quant_config": quant_config.to_json(),
        "video_tokens": tokens,
        "warmup_tokens": WARMUP_TOKENS,
        "text_tokens": TEXT_TOKENS,
        "latent": [frames, height, width],
        "build_s": build_s,
        "quantize": {
            "wall_time_s": report.wall_time_s,
            "peak_memory_bytes": report.peak_memory_bytes,
            "quantized_layers": len(report.quantized_layers),
            "quantized_weight_elements": quantized_elements,
            "us_per_weight_element": report.wall_time_s / quantized_elements * 1e6,
            "process_cpu_s": quantize_cpu,
            "target_s": 300.0,
            "bit_identical_to_reference_selection": identity,
        },
        "forward_s": {
            "float_bf16": float_bf16[0],
            "float_fp32": float_fp32[0],
            "fake_quant": fake_bf16[0],
            "dequantize_weights_once": dequantize_s,
        },
        "forward_process_cpu_s": {"float_bf16": float_bf16[1], "float_fp32": float_fp32[1], "fake_quant": fake_bf16[1]},
        "ratio_fake_quant_over_float_fp32": fake_bf16[0] / float_fp32[0],
        "ratio_fake_quant_over_float_bf16": fake_bf16[0] / float_bf16[0],
        "ratio_target": 1.5,
        "notes": (
            "fake-quant runs its GEMMs in float32 on dequantized operands (README 'Fake-quant vs integer "
            "tolerance'); the bfloat16 float forward uses bfloat16 GEMMs. One forward each, same process, "
            "same inputs; the machine is shared, see load_average."
        ),
        "load_average": {"start": list(load_start), "end": list(os.getloadavg())},
        "environment": {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
        },
    }

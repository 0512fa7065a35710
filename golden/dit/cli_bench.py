"""`sdialect bench model`: quantization cost and per-step cost of a quantized video DiT.

Builds a seeded tiny random-weight model of a supported architecture at the requested latent size,
keeps a float copy, quantizes with FB32 + AD + SeDA (fake-quant) and reports:
``quantize_``'s wall time and peak memory, the weight storage before and after, and the wall time
of every step of the same denoising loop (a diffusers FlowMatchEulerDiscreteScheduler, same latent
and conditioning) for the float and the quantized model, with their ratio. JSON goes to
``build/bench/model.json`` (atomically).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

DEFAULT_OUT = Path("build/bench/model.json")
REAL_OUT = Path("build/bench/model-wan-1.3b.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--arch", default="hunyuan-video", help="tiny architecture: hunyuan-video, wan, skyreels-v2, ltx-video, cogvideox or mochi"
    )
    parser.add_argument("--steps", type=int, default=4, help="denoising steps per model (default 4)")
    parser.add_argument("--batch", type=int, default=2, help="batch (2 = batched CFG; default 2)")
    parser.add_argument(
        "--latent", type=int, nargs=3, default=(4, 16, 16), metavar=("F", "H", "W"),
        help="latent frames, height, width (default 4 16 16)",
    )  # fmt: skip
    parser.add_argument("--format", default="fb32", help="format (default fb32; SeDA needs fb32)")
    parser.add_argument("--rho", type=float, default=0.05, help="salient fraction (default 0.05)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument(
        "--config", choices=("tiny", "wan-1.3b"), default="tiny",
        help="tiny: the seeded tiny model of --arch, a scheduler loop with FB32 + AD + SeDA (default); "
        "wan-1.3b: Wan 2.1 1.3B configuration with random bf16 weights: quantize_ time, float and "
        "fake-quant forward at --tokens (writes build/bench/model-wan-1.3b.json by default)",
    )  # fmt: skip
    parser.add_argument("--tokens", type=int, default=2048, help="video tokens of the wan-1.3b forward (default 2048)")
    parser.add_argument(
        "--layers", type=int, default=None, help="wan-1.3b: number of blocks (default 30, the real model)"
    )
    parser.add_argument("-o", "--out", default=None, help=f"output JSON (default {DEFAULT_OUT})")


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _timed_loop(model, inputs: dict, steps: int) -> list[float]:
    """Seconds per denoising step of a plain scheduler loop (the transformer call and the update)."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler()
    scheduler.set_timesteps(steps)
    inputs = dict(inputs)
    latents = inputs.pop("hidden_states")
    times = []
    with torch.no_grad():
        for t in scheduler.timesteps:
            start = time.perf_counter()
            noise = model(
                hidden_states=latents, timestep=t.expand(latents.shape[0]), **inputs, return_dict=False
            )[0]
            latents = scheduler.step(noise, t, latents, return_dict=False)[0]
            times.append(time.perf_counter() - start)
    return times


def _real(args: argparse.Namespace, out: Path) -> int:
    from ..errors import UsageError
    from . import bench_real

    layers = bench_real.WAN_1_3B["num_layers"] if args.layers is None else args.layers
    if layers < 1:
        raise UsageError(f"--layers must be positive, got {layers}")
    try:
        bench_real._latent(args.tokens)
    except ValueError as err:
        raise UsageError(f"--tokens: {err}") from None
    result = bench_real.run(args.tokens, config=dict(bench_real.WAN_1_3B, num_layers=layers), format=args.format)
    _write_json(out, result)
    q, f = result["quantize"], result["forward_s"]
    print(
        f"{out}: Wan 1.3B config ({layers} blocks) quantize_ {q['wall_time_s']:.1f} s "
        f"({q['us_per_weight_element']:.3f} us/weight); forward at {args.tokens} tokens: float bf16 "
        f"{f['float_bf16']:.1f} s, float fp32 {f['float_fp32']:.1f} s, fake-quant {f['fake_quant']:.1f} s "
        f"(x{result['ratio_fake_quant_over_float_fp32']:.2f} of fp32, "
        f"x{result['ratio_fake_quant_over_float_bf16']:.2f} of bf16); load {result['load_average']['start'][0]:.1f}"
    )
    return 0


def main(args: argparse.Namespace) -> int:
    import copy
    import platform

    import torch

    from ..errors import UsageError

    from . import DecompositionConfig, QuantConfig, SedaConfig, quantize_
    from .tiny import TINY_ARCHITECTURES, tiny_inputs, tiny_transformer

    if args.steps < 1 or args.batch < 1 or min(args.latent) < 1:
        raise UsageError(
            f"steps, batch and latent sizes must be positive, got {args.steps}, {args.batch}, {args.latent}"
        )
    out = Path(args.out or (REAL_OUT if args.config == "wan-1.3b" else DEFAULT_OUT))
    if out.suffix != ".json":
        raise UsageError(f"output {out} must end in .json")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.config == "wan-1.3b":
        return _real(args, out)
    if args.arch not in TINY_ARCHITECTURES:
        raise UsageError(
            f"unknown architecture {args.arch!r}; expected one of {', '.join(TINY_ARCHITECTURES)}"
        )
    arch = args.arch
    model = tiny_transformer(arch)
    inputs = tiny_inputs(arch, batch=args.batch, latent=tuple(args.latent))

    float_model = copy.deepcopy(model)
    config = QuantConfig(
        format=args.format,
        decomposition=DecompositionConfig(rho=args.rho),
        seda=SedaConfig() if args.format == "fb32" else None,
    )
    report = quantize_(model, config)
    float_times = _timed_loop(float_model, inputs, args.steps)
    quant_times = _timed_loop(model, inputs, args.steps)
    float_mean, quant_mean = statistics.fmean(float_times), statistics.fmean(quant_times)
    result = {
        "benchmark": "model",
        "architecture": arch,
        "config": config.to_json(),
        "latent": list(args.latent),
        "batch": args.batch,
        "video_tokens": model._sdialect_state.call.num_video_tokens,
        "quantize": {
            "wall_time_s": report.wall_time_s,
            "peak_memory_bytes": report.peak_memory_bytes,
            "quantized_layers": len(report.quantized_layers),
            "kept_layers": len(report.kept_layers),
            "float_weight_bytes": sum(
                float_model.get_submodule(name).weight.nbytes for name in report.quantized_layers
            ),
            "quantized_weight_bytes": report.weight_bits // 8,
        },
        "per_step_s": {"float": float_times, "quantized": quant_times},
        "mean_step_s": {"float": float_mean, "quantized": quant_mean},
        "ratio_quantized_over_float": quant_mean / float_mean,
        "execution": "fake-quant on the golden torch path (CPU), FB32 + AD + SeDA",
        "environment": {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "machine": platform.machine(),
            "cuda": torch.cuda.is_available(),
        },
    }
    _write_json(out, result)
    print(
        f"{out}: {arch} quantize {report.wall_time_s:.2f} s, "
        f"peak {report.peak_memory_bytes / 2**20:.1f} MiB; "
        f"step float {float_mean * 1e3:.1f} ms, quantized {quant_mean * 1e3:.1f} ms "
        f"(x{quant_mean / float_mean:.1f})"
    )
    return 0

"""Activation captures for the tile regression: from a file (``golden.dit`` capture schema), or made on the
fly from a tiny random-weight diffusers model (CPU, seconds) with the decomposition (AD) and, for FB32,
SeDA on, on the integer path. ``golden.dit`` is the only producer; nothing here re-implements it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from hw.tile import TileConfig, TileFormat

__all__ = ["EMBEDDED_LAYERS", "TINY_ARCHITECTURE", "TINY_TIMESTEPS", "embedded_capture", "tiny_capture", "tiny_quant_config"]

#: The tiny model used by `make test` (random weights; golden.dit.tiny).
TINY_ARCHITECTURE = "wan"
#: Three denoising steps (each a new timestep value), one call per step.
TINY_TIMESTEPS = (900.0, 700.0, 500.0)


def tiny_quant_config(config: TileConfig):
    """The golden.dit configuration whose activations ``config``'s tile reproduces: the tile's format and
    block, integer execution, AD on (profiled every step) except for the E4M3-scaled formats (NVFP4: the
    tile takes one activation tensor scale per pass, the residual rows would need a second), SeDA on
    for FB32 (it needs LUT selection)."""
    from golden.dit import DecompositionConfig, Execution, QuantConfig, SedaConfig

    seda = SedaConfig(k_c=4, window=(1, 2, 2), regroup_every=1) if config.format is TileFormat.FB32 else None
    return QuantConfig(
        format=config.format.value,
        block=config.block,
        decomposition=None if config.format.scaled else DecompositionConfig(rho=0.1, profile_every=1),
        seda=seda,
        execution=Execution.INTEGER,
    )


def tiny_capture(
    config: TileConfig, path: str | os.PathLike, *, layers: tuple[str, ...] = ("blocks.1.attn1.to_q", "blocks.1.attn1.to_out.0"),
    steps: tuple[int, ...] = (1, 2), seed: int = 0,
) -> Path:
    """Run the tiny model for ``TINY_TIMESTEPS`` under ``tiny_quant_config(config)`` and capture ``layers`` at
    ``steps`` into ``path`` (a ``golden.dit`` capture directory). Returns ``path``."""
    from golden.dit import CaptureConfig, capture, quantize_, tiny_inputs, tiny_transformer

    model = tiny_transformer(TINY_ARCHITECTURE, seed=seed)
    quantize_(model, tiny_quant_config(config))
    inputs = tiny_inputs(TINY_ARCHITECTURE, batch=1, seed=seed)
    with capture(model, path, CaptureConfig(layers=layers, steps=steps)), torch.no_grad():
        for t in TINY_TIMESTEPS:
            model(**inputs, timestep=torch.full((1,), t), return_dict=False)
    return Path(path)


#: Layers of the embedded model (hunyuan-video, width 128) replayed by the acceptance run: a
#: double-stream attention input and output projection and a single-stream (video + condition tokens)
#: attention input, in three different blocks; 128 x 128 weights keep the Verilator run to minutes.
EMBEDDED_LAYERS = (
    "transformer_blocks.0.attn.to_q",
    "transformer_blocks.1.attn.to_out.0",
    "single_transformer_blocks.0.attn.to_v",
)
#: Denoising steps captured (of ``EMBEDDED_STEPS`` Euler steps).
EMBEDDED_CAPTURED_STEPS = (1, 3)
EMBEDDED_STEPS = 4


def embedded_capture(
    config: TileConfig, path: str | os.PathLike, *, layers: tuple[str, ...] = EMBEDDED_LAYERS,
    steps: tuple[int, ...] = EMBEDDED_CAPTURED_STEPS, seed: int = 0,
) -> Path:
    """Sample one clip of the embedded model (``evaluation/assets``) in ``EMBEDDED_STEPS`` Euler steps under
    ``tiny_quant_config(config)`` and capture ``layers`` at ``steps`` into ``path``. Returns ``path``."""
    from golden.dit import CaptureConfig, capture, quantize_
    from evaluation.sampling import generate
    from evaluation.workload import embedded

    work = embedded(samples=1, seed=seed, device=torch.device("cpu"))
    quantize_(work.transformer, tiny_quant_config(config))
    with capture(work.transformer, path, CaptureConfig(layers=layers, steps=steps)):
        generate(work.transformer, work.cond, work.noise, steps=EMBEDDED_STEPS, denoiser=work.denoiser)
    return Path(path)

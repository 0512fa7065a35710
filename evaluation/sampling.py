"""Generation: the standard diffusers flow-matching Euler loop over a video transformer.

At ``x_t = (1 - sigma) x0 + sigma noise`` with ``timestep = 1000 sigma`` (the convention of diffusers'
flow-matching pipelines), a denoiser returns the rectified-flow velocity ``v = noise - x0`` and
``FlowMatchEulerDiscreteScheduler.step`` integrates from pure noise (sigma = 1) to the sample.
Diffusers video transformers predict ``v`` directly (:func:`velocity`); the embedded pixel-space
model predicts ``x0`` and is converted (:func:`velocity_from_sample`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

#: The scheduler's training horizon; timesteps passed to the transformer are ``sigma * TIMESTEP_SCALE``.
TIMESTEP_SCALE = 1000
#: Smallest sigma used when turning a clean-sample prediction into a velocity, ``(x_t - x0) / sigma``
#: (keeps the division bounded near the end of sampling; as in JiT, Li and He 2025).
SIGMA_FLOOR = 0.05


@dataclass(frozen=True, kw_only=True)
class Condition:
    """What the transformer is conditioned on: ``tokens`` float32 (B, L, text_dim), ``mask`` int64
    (B, L) with 1 for real tokens, ``pooled`` float32 (B, pooled_dim) or None for models without one."""

    tokens: torch.Tensor
    mask: torch.Tensor
    pooled: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> Condition:
        pooled = None if self.pooled is None else self.pooled.to(device)
        return Condition(tokens=self.tokens.to(device), mask=self.mask.to(device), pooled=pooled)

    def select(self, index: torch.Tensor) -> Condition:
        """The conditions of the samples ``index`` (int64 (n,))."""
        pooled = None if self.pooled is None else self.pooled[index]
        return Condition(tokens=self.tokens[index], mask=self.mask[index], pooled=pooled)


def make_scheduler():
    """The flow-matching Euler scheduler used for training-time sigmas and for sampling (shift 1)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=TIMESTEP_SCALE, shift=1.0)


def velocity(transformer: torch.nn.Module, latents: torch.Tensor, timestep: torch.Tensor, cond: Condition):
    """One transformer call: ``latents`` (B, C, F, H, W), ``timestep`` (B,) in [0, 1000] -> velocity."""
    return transformer(
        hidden_states=latents,
        timestep=timestep,
        encoder_hidden_states=cond.tokens,
        encoder_attention_mask=cond.mask,
        pooled_projections=cond.pooled,
        return_dict=False,
    )[0]


def velocity_from_sample(transformer: torch.nn.Module, latents: torch.Tensor, timestep: torch.Tensor, cond: Condition):
    """One call of a model that predicts the clean sample ``x0`` (the embedded model, see
    ``model.Prediction``), turned into the rectified-flow velocity ``(x_t - x0) / sigma``."""
    x0 = velocity(transformer, latents, timestep, cond)
    sigma = (timestep / TIMESTEP_SCALE).clamp_min(SIGMA_FLOOR).view(-1, *([1] * (latents.dim() - 1)))
    return (latents - x0) / sigma


def denoiser_for(prediction) -> Callable:
    """The denoiser of a model whose output is ``prediction`` (a ``model.Prediction``)."""
    return velocity_from_sample if prediction.value == "sample" else velocity


@torch.no_grad()
def generate(
    transformer: torch.nn.Module,
    cond: Condition,
    noise: torch.Tensor,
    *,
    steps: int,
    on_step: Callable[[int, torch.Tensor], None] | None = None,
    denoiser: Callable[[torch.nn.Module, torch.Tensor, torch.Tensor, Condition], torch.Tensor] = velocity,
) -> torch.Tensor:
    """Denoise ``noise`` (B, C, F, H, W) float32 in ``steps`` Euler steps; returns the final sample.

    ``on_step(i, latents)`` is called after step ``i`` (0-based) with the updated latents, so callers
    can record per-step latents (for the per-step SQNR) without keeping them all here.
    ``denoiser(transformer, latents, timestep, cond)`` is one model call (default: HunyuanVideo's
    signature, :func:`velocity`).
    """
    scheduler = make_scheduler()
    scheduler.set_timesteps(steps, device=noise.device)
    latents = noise.clone()
    for i, t in enumerate(scheduler.timesteps):
        v = denoiser(transformer, latents, t.expand(latents.shape[0]).to(latents.dtype), cond)
        latents = scheduler.step(v, t, latents, return_dict=False)[0]
        if on_step is not None:
            on_step(i, latents)
    return latents

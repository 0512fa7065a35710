"""Tiny random-weight configurations of the supported architectures (tests, benchmarks, examples).

``tiny_transformer(name)`` builds a seeded model small enough for CPU tests; ``tiny_inputs`` builds
matching forward keyword arguments (latent, text embeddings, masks) for a batch, so a test can run
a diffusers-style denoising loop with nothing downloaded. Hidden sizes are multiples of 32, so every
format's block size divides them.
"""

from __future__ import annotations

import torch
from torch import nn

from ..formats import FormatError

__all__ = ["TINY_ARCHITECTURES", "tiny_inputs", "tiny_transformer"]

#: Latent video of the tiny inputs: (frames, height, width) before patchification.
TINY_LATENT = (3, 8, 8)
TINY_TEXT_TOKENS = 6


def _hunyuan() -> nn.Module:
    from diffusers import HunyuanVideoTransformer3DModel

    return HunyuanVideoTransformer3DModel(
        in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=32, num_layers=1,
        num_single_layers=1, num_refiner_layers=1, mlp_ratio=2.0, patch_size=2, patch_size_t=1,
        text_embed_dim=32, pooled_projection_dim=16, rope_axes_dim=(8, 12, 12), guidance_embeds=False,
    )  # fmt: skip


def _wan() -> nn.Module:
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=32, in_channels=4, out_channels=4,
        text_dim=32, freq_dim=32, ffn_dim=128, num_layers=2, rope_max_seq_len=64,
    )  # fmt: skip


def _skyreels_v2() -> nn.Module:
    from diffusers import SkyReelsV2Transformer3DModel

    return SkyReelsV2Transformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=32, in_channels=4, out_channels=4,
        text_dim=32, freq_dim=32, ffn_dim=128, num_layers=2, rope_max_seq_len=64,
    )  # fmt: skip


def _ltx() -> nn.Module:
    from diffusers import LTXVideoTransformer3DModel

    return LTXVideoTransformer3DModel(
        in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=32, cross_attention_dim=64,
        num_layers=2, caption_channels=32,
    )  # fmt: skip


def _cogvideox() -> nn.Module:
    from diffusers import CogVideoXTransformer3DModel

    return CogVideoXTransformer3DModel(
        num_attention_heads=2, attention_head_dim=16, in_channels=4, out_channels=4, time_embed_dim=32,
        text_embed_dim=32, num_layers=2, sample_width=8, sample_height=8, sample_frames=9, patch_size=2,
        temporal_compression_ratio=4, max_text_seq_length=TINY_TEXT_TOKENS,
    )  # fmt: skip


def _mochi() -> nn.Module:
    from diffusers import MochiTransformer3DModel

    return MochiTransformer3DModel(
        patch_size=2, num_attention_heads=2, attention_head_dim=16, num_layers=2, pooled_projection_dim=48,
        in_channels=4, text_embed_dim=32, time_embed_dim=16, max_sequence_length=TINY_TEXT_TOKENS,
    )  # fmt: skip


_BUILDERS = {
    "hunyuan-video": _hunyuan, "wan": _wan, "skyreels-v2": _skyreels_v2, "ltx-video": _ltx,
    "cogvideox": _cogvideox, "mochi": _mochi,
}  # fmt: skip
#: Names accepted by ``tiny_transformer`` (the ``Architecture.name`` of each supported class).
TINY_ARCHITECTURES = tuple(_BUILDERS)


def tiny_transformer(name: str, *, seed: int = 0) -> nn.Module:
    """A seeded random-weight tiny model of architecture ``name``, float32, eval mode."""
    if name not in _BUILDERS:
        raise FormatError(f"unknown tiny architecture {name!r}; expected one of {', '.join(_BUILDERS)}")
    torch.manual_seed(seed)
    return _BUILDERS[name]().eval()


def tiny_inputs(
    name: str, *, batch: int = 1, seed: int = 0, latent: tuple[int, int, int] = TINY_LATENT
) -> dict:
    """Forward keyword arguments (all but ``timestep``) for ``tiny_transformer(name)``.

    ``hidden_states`` is the latent (``(batch, 4, frames, height, width)``, or packed tokens for
    LTX-Video); text embeddings are random, and the last sample's last two text tokens are padding.
    """
    if name not in _BUILDERS:
        raise FormatError(f"unknown tiny architecture {name!r}; expected one of {', '.join(_BUILDERS)}")
    g = torch.Generator().manual_seed(seed)
    frames, height, width = latent
    text = torch.randn(batch, TINY_TEXT_TOKENS, 32, generator=g)
    mask = torch.ones(batch, TINY_TEXT_TOKENS, dtype=torch.long)
    mask[-1, -2:] = 0
    if name == "hunyuan-video":
        return {
            "hidden_states": torch.randn(batch, 4, frames, height, width, generator=g),
            "encoder_hidden_states": text, "encoder_attention_mask": mask,
            "pooled_projections": torch.randn(batch, 16, generator=g),
        }  # fmt: skip
    if name == "cogvideox":  # (batch, frames, channels, height, width); no text mask
        return {
            "hidden_states": torch.randn(batch, frames, 4, height, width, generator=g),
            "encoder_hidden_states": text,
        }
    if name == "mochi":
        return {
            "hidden_states": torch.randn(batch, 4, frames, height, width, generator=g),
            "encoder_hidden_states": text, "encoder_attention_mask": mask,
        }  # fmt: skip
    if name in ("wan", "skyreels-v2"):
        return {
            "hidden_states": torch.randn(batch, 4, frames, height, width, generator=g),
            "encoder_hidden_states": text,
        }
    return {
        "hidden_states": torch.randn(batch, frames * height * width, 4, generator=g),
        "encoder_hidden_states": text, "encoder_attention_mask": mask,
        "num_frames": frames, "height": height, "width": width,
    }  # fmt: skip

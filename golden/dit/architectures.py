"""The supported diffusers video transformers: where their blocks are and how their tokens are laid out.

An ``Architecture`` is data: the block lists to quantize, the self-attention module of a block and
its saliency processor, which linears of a block read text tokens, and how to get the video token
grid ``(frames, rows, cols)`` from a forward call's arguments. Adding a model class is adding a row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatch

import torch
from torch import nn

from ..formats import FormatError
from .processors import (
    CogVideoXSaliencyProcessor,
    HunyuanVideoSaliencyProcessor,
    LTXVideoSaliencyProcessor,
    MochiSaliencyProcessor,
    WanSaliencyProcessor,
)

__all__ = ["ARCHITECTURES", "Architecture", "architecture_of"]


def _patched_grid(hidden_states, patch_t: int, patch_h: int, patch_w: int) -> tuple[int, int, int]:
    """Token grid of a ``(batch, channels, frames, height, width)`` latent after patchification."""
    if hidden_states is None or hidden_states.dim() != 5:
        shape = None if hidden_states is None else tuple(hidden_states.shape)
        raise FormatError(f"expected a (batch, channels, frames, height, width) latent, got shape {shape}")
    _, _, frames, height, width = hidden_states.shape
    return frames // patch_t, height // patch_h, width // patch_w


def _hunyuan_grid(model: nn.Module, args: dict) -> tuple[int, int, int]:
    p, pt = model.config.patch_size, model.config.patch_size_t
    return _patched_grid(args.get("hidden_states"), pt, p, p)


def _wan_grid(model: nn.Module, args: dict) -> tuple[int, int, int]:
    return _patched_grid(args.get("hidden_states"), *model.config.patch_size)


def _cogvideox_grid(model: nn.Module, args: dict) -> tuple[int, int, int]:
    # CogVideoX latents are (batch, frames, channels, height, width).
    hidden_states = args.get("hidden_states")
    if hidden_states is None or hidden_states.dim() != 5:
        shape = None if hidden_states is None else tuple(hidden_states.shape)
        raise FormatError(f"expected a (batch, frames, channels, height, width) latent, got shape {shape}")
    p, pt = model.config.patch_size, model.config.patch_size_t or 1
    return _patched_grid(hidden_states.transpose(1, 2), pt, p, p)


def _mochi_grid(model: nn.Module, args: dict) -> tuple[int, int, int]:
    p = model.config.patch_size
    return _patched_grid(args.get("hidden_states"), 1, p, p)


def _text_length(args: dict) -> int:
    """CogVideoX's blocks see ``[text, video]``: the video starts after the text tokens."""
    text = args.get("encoder_hidden_states")
    return 0 if text is None else int(text.shape[1])


def _no_offset(args: dict) -> int:
    return 0


def _ltx_grid(model: nn.Module, args: dict) -> tuple[int, int, int]:
    # LTX-Video takes packed tokens (batch, T, channels) and either the latent sizes as arguments
    # (LTXPipeline, LTXImageToVideoPipeline) or each token's (frame, row, col) coordinates
    # (LTXConditionPipeline: video_coords, with conditioning frames packed before the video's).
    grid = tuple(args.get(name) for name in ("num_frames", "height", "width"))
    if all(g is not None for g in grid):
        return tuple(int(g) for g in grid)
    coords = args.get("video_coords")
    if coords is None:
        raise FormatError(
            "LTX-Video calls must pass num_frames, height and width, or video_coords, to locate the video tokens"
        )
    return _grid_from_coords(coords, args.get("hidden_states"))


def _grid_from_coords(coords, hidden_states) -> tuple[int, int, int]:
    """``(frames, rows, cols)`` of tokens laid out frame by frame, row-major, from their coordinates
    ``(batch, 3, T)``: rows and cols are the numbers of distinct row and column coordinates."""
    tokens = None if hidden_states is None else hidden_states.shape[1]
    if coords.dim() != 3 or coords.shape[1] != 3 or (tokens is not None and coords.shape[2] != tokens):
        raise FormatError(
            f"video_coords must have shape (batch, 3, {tokens}) for {tokens} tokens, got {tuple(coords.shape)}"
        )
    rows, cols = (int(torch.unique(coords[0, axis]).numel()) for axis in (1, 2))
    if coords.shape[2] % (rows * cols):
        raise FormatError(
            f"video_coords of {coords.shape[2]} tokens do not form whole frames of {rows} x {cols} tokens"
        )
    return coords.shape[2] // (rows * cols), rows, cols


@dataclass(frozen=True)
class Architecture:
    """One supported model class.

    Attributes:
        name: short name used in reports and checkpoints.
        class_name: the diffusers class.
        block_lists: attribute names of the ``nn.ModuleList``s of transformer blocks.
        self_attention: attribute of a block holding its self-attention module.
        processor: the saliency processor class for that module.
        text_linears: ``fnmatch`` patterns (relative to a block) of linears whose input is text only.
        grid: ``(model, bound forward arguments) -> (frames, rows, cols)`` of video tokens.
        video_offset: ``(bound forward arguments) -> position of the first video token`` in the
            rows of the blocks' video-role linears (0: video first).
        attention_products: whether ``quantize_attention_products`` is supported.
    """

    name: str
    class_name: str
    block_lists: tuple[str, ...]
    self_attention: str
    processor: type
    text_linears: tuple[str, ...]
    grid: Callable[[nn.Module, dict], tuple[int, int, int]]
    video_offset: Callable[[dict], int] = _no_offset
    attention_products: bool = True

    def blocks(self, model: nn.Module) -> list[tuple[str, nn.Module]]:
        """``(qualified name, block)`` of every transformer block, in model order."""
        out = []
        for attr in self.block_lists:
            for index, block in enumerate(getattr(model, attr, None) or []):
                out.append((f"{attr}.{index}", block))
        return out

    def is_text_linear(self, relative_name: str) -> bool:
        return any(fnmatch(relative_name, pattern) for pattern in self.text_linears)

    @staticmethod
    def keeps_high_precision(relative_name: str) -> bool:
        """adaLN modulation linears live in the block's norm modules (``norm1.linear``, ``norm.linear``)."""
        return any(part.startswith("norm") for part in relative_name.split("."))


ARCHITECTURES: dict[str, Architecture] = {
    arch.class_name: arch
    for arch in (
        Architecture(
            name="hunyuan-video",
            class_name="HunyuanVideoTransformer3DModel",
            block_lists=("transformer_blocks", "single_transformer_blocks"),
            self_attention="attn",
            processor=HunyuanVideoSaliencyProcessor,
            text_linears=(
                "attn.add_q_proj",
                "attn.add_k_proj",
                "attn.add_v_proj",
                "attn.to_add_out",
                "ff_context.*",
            ),
            grid=_hunyuan_grid,
        ),
        Architecture(
            name="wan",
            class_name="WanTransformer3DModel",
            block_lists=("blocks",),
            self_attention="attn1",
            processor=WanSaliencyProcessor,
            text_linears=(
                "attn2.to_k",
                "attn2.to_v",
                "attn2.to_kv",
                "attn2.add_k_proj",
                "attn2.add_v_proj",
                "attn2.to_added_kv",
            ),
            grid=_wan_grid,
        ),
        Architecture(
            # Wan's blocks, attention and token layout; its own attention class takes the Wan
            # processor unchanged. Diffusion forcing with num_frame_per_block > 1 passes a causal
            # (query-dependent) mask, which the saliency pass refuses with a sentence.
            name="skyreels-v2",
            class_name="SkyReelsV2Transformer3DModel",
            block_lists=("blocks",),
            self_attention="attn1",
            processor=WanSaliencyProcessor,
            text_linears=("attn2.to_k", "attn2.to_v", "attn2.to_kv", "attn2.add_k_proj", "attn2.add_v_proj", "attn2.to_added_kv"),
            grid=_wan_grid,
        ),
        Architecture(
            name="ltx-video",
            class_name="LTXVideoTransformer3DModel",
            block_lists=("transformer_blocks",),
            self_attention="attn1",
            processor=LTXVideoSaliencyProcessor,
            text_linears=("attn2.to_k", "attn2.to_v"),
            grid=_ltx_grid,
        ),
        Architecture(
            name="cogvideox",
            class_name="CogVideoXTransformer3DModel",
            block_lists=("transformer_blocks",),
            self_attention="attn1",
            processor=CogVideoXSaliencyProcessor,
            text_linears=(),  # every block linear sees [text, video]
            grid=_cogvideox_grid,
            video_offset=_text_length,
        ),
        Architecture(
            name="mochi",
            class_name="MochiTransformer3DModel",
            block_lists=("transformer_blocks",),
            self_attention="attn1",
            processor=MochiSaliencyProcessor,
            text_linears=("attn1.add_q_proj", "attn1.add_k_proj", "attn1.add_v_proj", "attn1.to_add_out", "ff_context.*"),
            grid=_mochi_grid,
            attention_products=False,
        ),
    )
}


def architecture_of(model: nn.Module) -> Architecture:
    """The ``Architecture`` of a diffusers transformer instance (by class, subclasses included)."""
    for cls in type(model).__mro__:
        if cls.__name__ in ARCHITECTURES:
            return ARCHITECTURES[cls.__name__]
    names = ", ".join(ARCHITECTURES)
    raise FormatError(f"unsupported model class {type(model).__name__}; supported: {names}")

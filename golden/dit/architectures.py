"""The supported diffusers video transformers: where their blocks are and how their tokens are laid out.

An ``Architecture`` is data: the block lists to quantize, the self-attention module of a block and
its saliency processor, which linears of a block read text tokens, and how to get the video token
grid ``(frames, rows, cols)`` from a forward call's arguments. Adding a model class is adding a row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatch

from torch import nn

from ..formats import FormatError
from .processors import HunyuanVideoSaliencyProcessor, LTXVideoSaliencyProcessor, WanSaliencyProcessor

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


def _ltx_grid(model: nn.Module, args: dict) -> tuple[int, int, int]:
    # LTX-Video takes packed tokens (batch, T, channels) and the latent sizes as arguments.
    grid = tuple(args.get(name) for name in ("num_frames", "height", "width"))
    if any(g is None for g in grid):
        raise FormatError("LTX-Video calls must pass num_frames, height and width to locate the video tokens")
    return tuple(int(g) for g in grid)


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
    """

    name: str
    class_name: str
    block_lists: tuple[str, ...]
    self_attention: str
    processor: type
    text_linears: tuple[str, ...]
    grid: Callable[[nn.Module, dict], tuple[int, int, int]]

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
            name="ltx-video",
            class_name="LTXVideoTransformer3DModel",
            block_lists=("transformer_blocks",),
            self_attention="attn1",
            processor=LTXVideoSaliencyProcessor,
            text_linears=("attn2.to_k", "attn2.to_v"),
            grid=_ltx_grid,
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

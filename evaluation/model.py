"""The embedded default model: a tiny MMDiT-style video DiT plus learned clip tokens.

The transformer is diffusers' ``HunyuanVideoTransformer3DModel`` (double-stream blocks with joint
text-video attention, then single-stream blocks) at a tiny size, working directly in pixel space on
RGB clips of ``frames x size x size``. Text is replaced by a learned condition per training clip:
``tokens`` (L, text_dim) fed as ``encoder_hidden_states`` and ``pooled`` (pooled_dim,) fed as
``pooled_projections``. Guidance embedding is off (no guidance distillation).

On disk the model is a diffusers-format directory, so ``sdialect eval --model`` reads the same layout::

    <dir>/transformer/config.json
    <dir>/transformer/diffusion_pytorch_model.safetensors
    <dir>/conditioning.safetensors      tokens (N, L, text_dim), pooled (N, pooled_dim) float32
    <dir>/recipe.json                   the ClipRecipe, the ModelShape, the Prediction and the clip list
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .data import ClipRecipe

TRANSFORMER_SUBDIR = "transformer"
CONDITIONING_FILE = "conditioning.safetensors"
RECIPE_FILE = "recipe.json"


class ModelError(ValueError):
    """A model directory or shape is invalid."""


class Prediction(enum.Enum):
    """What the transformer's output means."""

    #: The rectified-flow velocity ``noise - x0`` (diffusers' flow-matching video models).
    VELOCITY = "velocity"
    #: The clean sample ``x0``. Pixel-space patches (96 values per token here) are high-dimensional
    #: next to the hidden width, and predicting the clean sample learns far faster there than
    #: predicting noise-like targets (JiT: Li and He, "Back to Basics", 2025).
    SAMPLE = "sample"


@dataclass(frozen=True, kw_only=True)
class ModelShape:
    """Size of the tiny video DiT.

    ``heads * head_dim`` is the hidden width; ``rope_axes`` splits ``head_dim`` over (frame, row,
    column) and must sum to it. ``patch`` is the spatial patch side, ``patch_t`` the temporal one.
    ``text_tokens`` clip tokens of ``text_dim`` channels stand in for a prompt.
    """

    channels: int = 3
    patch: int = 4
    patch_t: int = 2
    heads: int = 4
    head_dim: int = 32
    double_layers: int = 2
    single_layers: int = 2
    refiner_layers: int = 1
    mlp_ratio: float = 4.0
    text_dim: int = 64
    pooled_dim: int = 64
    text_tokens: int = 4
    rope_axes: tuple[int, int, int] = (8, 12, 12)

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in ("mlp_ratio", "rope_axes"):
                continue
            if not isinstance(value, int) or value < (0 if field.name.endswith("layers") else 1):
                raise ModelError(f"ModelShape.{field.name} must be a positive integer, got {value!r}.")
        if sum(self.rope_axes) != self.head_dim or any(a % 2 for a in self.rope_axes):
            raise ModelError(
                f"ModelShape.rope_axes {self.rope_axes} must be even and sum to head_dim {self.head_dim}."
            )

    def transformer_config(self) -> dict:
        """Keyword arguments of ``HunyuanVideoTransformer3DModel``."""
        return dict(
            in_channels=self.channels,
            out_channels=self.channels,
            num_attention_heads=self.heads,
            attention_head_dim=self.head_dim,
            num_layers=self.double_layers,
            num_single_layers=self.single_layers,
            num_refiner_layers=self.refiner_layers,
            mlp_ratio=self.mlp_ratio,
            patch_size=self.patch,
            patch_size_t=self.patch_t,
            qk_norm="rms_norm",
            guidance_embeds=False,
            text_embed_dim=self.text_dim,
            pooled_projection_dim=self.pooled_dim,
            rope_axes_dim=self.rope_axes,
        )


class ClipConditioning(nn.Module):
    """Learned stand-in for text: one token sequence and one pooled vector per training clip.

    ``forward(ids)`` with ``ids`` int64 (B,) returns ``tokens`` float32 (B, L, text_dim), an all-ones
    int64 mask (B, L) and ``pooled`` float32 (B, pooled_dim).
    """

    def __init__(self, *, num_clips: int, text_tokens: int, text_dim: int, pooled_dim: int) -> None:
        super().__init__()
        self.tokens = nn.Parameter(torch.randn(num_clips, text_tokens, text_dim) / math.sqrt(text_dim))
        self.pooled = nn.Parameter(torch.randn(num_clips, pooled_dim) / math.sqrt(pooled_dim))

    @property
    def num_clips(self) -> int:
        return self.tokens.shape[0]

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        tokens = self.tokens[ids]
        mask = torch.ones(tokens.shape[:2], dtype=torch.int64, device=tokens.device)
        return tokens, mask, self.pooled[ids]


@dataclass(frozen=True, kw_only=True)
class EmbeddedModel:
    """A loaded model directory: the transformer, its conditioning and what it was trained on.

    ``recipe`` and ``clips`` are None for a foreign checkpoint; then ``conditioning`` holds seeded
    random stand-in tokens of the checkpoint's text width.
    """

    transformer: nn.Module
    conditioning: ClipConditioning
    recipe: ClipRecipe | None
    shape: ModelShape | None
    prediction: Prediction
    clips: tuple[dict, ...] | None
    frames: int
    size: int


def build(shape: ModelShape, num_clips: int, *, seed: int) -> tuple[nn.Module, ClipConditioning]:
    """A freshly initialized transformer and conditioning (float32, deterministic for ``seed``)."""
    from diffusers import HunyuanVideoTransformer3DModel

    torch.manual_seed(seed)
    transformer = HunyuanVideoTransformer3DModel(**shape.transformer_config())
    conditioning = ClipConditioning(
        num_clips=num_clips, text_tokens=shape.text_tokens, text_dim=shape.text_dim, pooled_dim=shape.pooled_dim
    )
    return transformer, conditioning


def save(
    directory: Path,
    transformer: nn.Module,
    conditioning: ClipConditioning,
    *,
    recipe: ClipRecipe,
    shape: ModelShape,
    prediction: Prediction,
    clips: list[dict],
) -> None:
    """Write the model directory; each file is written to a temporary name and renamed into place."""
    from safetensors.torch import save_file

    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    transformer.save_pretrained(str(tmp / TRANSFORMER_SUBDIR), safe_serialization=True)
    save_file(
        {"tokens": conditioning.tokens.detach().contiguous(), "pooled": conditioning.pooled.detach().contiguous()},
        str(tmp / CONDITIONING_FILE),
    )
    meta = {
        "recipe": dataclasses.asdict(recipe),
        "shape": dataclasses.asdict(shape),
        "prediction": prediction.value,
        "clips": clips,
    }
    (tmp / RECIPE_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    if directory.exists():
        import shutil

        old = directory.with_name(directory.name + ".old")
        os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old)
    else:
        directory.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, directory)


def load(directory: Path) -> EmbeddedModel:
    """Load a model directory written by :func:`save` (the embedded model's layout)."""
    from diffusers import HunyuanVideoTransformer3DModel
    from safetensors.torch import load_file

    directory = Path(directory)
    meta = json.loads((directory / RECIPE_FILE).read_text())
    recipe = ClipRecipe(**meta["recipe"])
    shape = ModelShape(**{**meta["shape"], "rope_axes": tuple(meta["shape"]["rope_axes"])})
    transformer = HunyuanVideoTransformer3DModel.from_pretrained(str(directory / TRANSFORMER_SUBDIR))
    transformer.eval().requires_grad_(False)
    tensors = load_file(str(directory / CONDITIONING_FILE))
    conditioning = ClipConditioning(
        num_clips=tensors["tokens"].shape[0],
        text_tokens=shape.text_tokens,
        text_dim=shape.text_dim,
        pooled_dim=shape.pooled_dim,
    )
    conditioning.load_state_dict(tensors)
    conditioning.eval().requires_grad_(False)
    return EmbeddedModel(
        transformer=transformer,
        conditioning=conditioning,
        recipe=recipe,
        shape=shape,
        prediction=Prediction(meta.get("prediction", Prediction.VELOCITY.value)),
        clips=tuple(meta["clips"]),
        frames=recipe.frames,
        size=recipe.size,
    )

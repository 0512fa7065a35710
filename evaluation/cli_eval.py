"""`sdialect eval --model DIR`: the demo's evaluation on a local diffusers-format video transformer.

DIR holds ``config.json`` and diffusers weights (or has them under ``DIR/transformer``); nothing is
downloaded. Supported classes: every class ``quantize_`` supports (``golden.dit.ARCHITECTURES``:
HunyuanVideo, Wan, SkyReels-V2, LTX-Video, CogVideoX, Mochi transformers). Without a text encoder, seeded random embeddings of the model's text
width stand in for prompts. ``--size`` must be at least 11 (SSIM's window, computed on the latents);
it and ``--frames`` are checked before anything is generated.
"""

from __future__ import annotations

from pathlib import Path

from .app import add_common_arguments


def add_arguments(parser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="local diffusers model directory")
    parser.add_argument("--frames", type=int, default=None, help="latent frames (default: 4 latent frames after patching)")
    parser.add_argument("--size", type=int, default=None, help="latent height and width (default: 8 patches, at least 11)")
    add_common_arguments(parser, default_out=None)


def main(args) -> int:
    from .app import run
    from .workload import local_directory

    if args.out is None:
        args.out = Path("build/eval") / (args.model.resolve().name or "model")

    def make(*, samples, seed, device):
        return local_directory(args.model, samples=samples, seed=seed, device=device, frames=args.frames, size=args.size)

    return run(args, make, model_info={"directory": str(args.model), "embedded": False})

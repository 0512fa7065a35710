"""`sdialect quantize IN.npy --format F [--block B] [--select S] -o OUT.npz` (docs/NUMERICS.md section 6).

The .npz holds unpacked arrays any tool can read: ``codes`` (uint8, the input's shape), per-block
``exponent`` / ``dialect`` (uint8, ``input.shape[:-1] + (nblocks,)``) or ``block_scale`` (uint8 E4M3
bits) and ``tensor_scale`` (float32 scalar), and ``dequant`` (float32, the input's shape).
"""

from __future__ import annotations

import argparse

from golden.formats import Selection

from ._io import check_output_file, format_argument, load_float_array, write_atomically


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="input .npy (float16/float32/float64), blocks along the last axis")
    parser.add_argument("--format", required=True, type=format_argument, metavar="FORMAT",
                        help="registry format (sdialect formats) or formatbook file (.json)")
    parser.add_argument("--block", type=int, default=None, help="block size (default: the format's)")
    parser.add_argument("--select", choices=[s.value for s in Selection], default=None,
                        help="dialect selection (dialect formats; default lut for fb32, two-stage for dialectfp4)")
    parser.add_argument("--pad", action="store_true", help="zero-pad a last axis not divisible by the block")
    parser.add_argument("-o", "--output", required=True, help="output .npz")


def quantized_arrays(q) -> dict:
    """The section-6 arrays of a QuantizedTensor, padding removed from codes."""
    arrays = {"codes": q.codes[..., : q.length].numpy()}
    for field in ("exponent", "dialect", "block_scale", "tensor_scale"):
        value = getattr(q, field)
        if value is not None:
            arrays[field] = value.numpy()
    arrays["dequant"] = q.dequantize().numpy()
    return arrays


def main(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from golden.quantize import quantize

    check_output_file(args.output, ".npz", inputs=[args.input])
    x = torch.from_numpy(load_float_array(args.input, "input"))
    q = quantize(x, args.format, block=args.block, select=args.select, pad=args.pad)
    arrays = quantized_arrays(q)
    write_atomically(args.output, lambda tmp: np.savez(tmp, **arrays))
    print(f"{args.input}: {tuple(x.shape)} -> {args.output} ({q.format}, block {q.block}, "
          f"{q.spec.bits_per_element(q.block):.4f} bits/element)")
    return 0

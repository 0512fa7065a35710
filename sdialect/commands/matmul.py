"""`sdialect matmul A.npy W.npy --format F -o Y.npy`: the bit-exact quantized matmul.

Rows of ``A`` (..., K) are quantized with the format's activation rule, rows of ``W`` (N, K) with
MSE selection (dialect formats); ``Y = A W^T`` follows docs/NUMERICS.md section 4 and is float32.
"""

from __future__ import annotations

import argparse

from golden.formats import get_format

from ..errors import UsageError
from ._io import check_output_file, format_argument, load_float_array, write_atomically


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("activations", help="A.npy, shape (..., K)")
    parser.add_argument("weight", help="W.npy, shape (N, K)")
    parser.add_argument("--format", required=True, type=format_argument, metavar="FORMAT",
                        help="registry format (sdialect formats) or formatbook file (.json)")
    parser.add_argument("--block", type=int, default=None, help="block size (default: the format's)")
    parser.add_argument("-o", "--output", required=True, help="output .npy (float32)")


def main(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from golden.matmul import quantized_linear

    check_output_file(args.output, ".npy", inputs=[args.activations, args.weight])
    block = get_format(args.format).check_block(args.block)
    a = load_float_array(args.activations, "activation")
    w = load_float_array(args.weight, "weight")
    if w.ndim != 2:
        raise UsageError(f"weight {args.weight} has shape {w.shape}; expected (N, K)")
    if a.shape[-1] != w.shape[1]:
        raise UsageError(f"activation K = {a.shape[-1]} does not match weight K = {w.shape[1]}")
    if a.shape[-1] % block:
        raise UsageError(
            f"K = {a.shape[-1]} is not a multiple of the block size {block}; matmul does not pad, so "
            f"append zero columns to both A and W (K a multiple of {block}) or choose another --block"
        )
    y = quantized_linear(torch.from_numpy(a), torch.from_numpy(w), args.format, block=block).numpy()
    write_atomically(args.output, lambda tmp: np.save(tmp, y))
    print(f"{args.output}: {y.shape} float32 ({args.format})")
    return 0

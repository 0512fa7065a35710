"""`sdialect bench golden`: golden-model quantization speed against torchao's MXFP4 `to_mx`.

Times quantization of one float32 tensor (default 4096 x 4096, seeded normal) for every format and
torchao's `to_mx(x, float4_e2m1fn_x2, 32)` in the same process, interleaved round-robin so machine
noise hits all of them alike; reports the median of the repeats and each median's ratio to torchao's.
Writes ``build/bench/golden.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

from ..errors import UsageError
from ._io import check_output_dir, check_output_file, write_atomically


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--cols", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per case (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--out", default="build/bench/golden.json")


def _cases():
    from golden.formats import FORMATS, Selection
    from golden.quantize import quantize

    cases = {f"{name}": (lambda x, n=name: quantize(x, n)) for name in FORMATS}
    cases["fb32-mse"] = lambda x: quantize(x, "fb32", select=Selection.MSE)
    try:
        import torch
        from torchao.prototype.mx_formats.mx_tensor import to_mx
    except ImportError:
        return cases, None
    cases["torchao-mxfp4"] = lambda x: to_mx(x, torch.float4_e2m1fn_x2, 32)
    return cases, "torchao-mxfp4"


def main(args: argparse.Namespace) -> int:
    import torch

    if args.rows <= 0 or args.cols <= 0 or args.cols % 64:
        raise UsageError(f"--rows must be positive and --cols a positive multiple of 64, got {args.rows} x {args.cols}")
    if args.repeats < 1:
        raise UsageError(f"--repeats must be at least 1, got {args.repeats}")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}")
    check_output_dir(Path(args.out).parent, "benchmark output directory")
    out = check_output_file(args.out, ".json")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    x = torch.randn(args.rows, args.cols, generator=torch.Generator().manual_seed(0))
    cases, oracle = _cases()
    times = {name: [] for name in cases}
    for fn in cases.values():  # warm-up (lazy tables, allocator)
        fn(x[:64])
    for _ in range(args.repeats):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn(x)
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) for name, t in times.items()}
    result = {
        "benchmark": "golden quantization",
        "shape": [args.rows, args.cols],
        "dtype": "float32",
        "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(),
        "machine": {"platform": platform.platform(), "processor": platform.processor()},
        "median_s": medians,
        "all_s": times,
        "ratio_to_torchao_mxfp4": (
            {name: medians[name] / medians[oracle] for name in medians} if oracle else None
        ),
    }
    write_atomically(out, lambda tmp: tmp.write_text(json.dumps(result, indent=2)))
    print(f"quantization of a {args.rows} x {args.cols} float32 tensor, median of {args.repeats}:")
    for name, t in medians.items():
        ratio = f"  {t / medians[oracle]:5.2f}x torchao" if oracle else ""
        print(f"  {name:<14} {t * 1e3:9.1f} ms{ratio}")
    if not oracle:
        print("  (torchao not installed: no MXFP4 reference timing; install the test extra)")
    print(f"wrote {out}")
    return 0

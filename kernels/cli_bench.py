"""``sdialect bench kernels``: W4A4 kernel throughput on a GPU against bf16, fp8 and MXFP4 weight-only.

Shapes are video-DiT linears (kernels/README.md, "Benchmark (GPU)"): tokens M x hidden K -> N. For every shape the
benchmark times torch bf16 ``F.linear``, fp8 ``torch._scaled_mm``, an MXFP4 weight-only
dequantize-then-``F.linear``, and the Triton W4A4 GEMM (pre-quantized operands) and full linear
(activation quantization included) per format and mode. It reports milliseconds, TFLOP/s
(2 M N K / time), the fraction of the device's dense peak for the operand type, the bytes each method
must move at least, and the peak memory the call allocates, into JSON under ``build/bench/``.
Before timing it checks on a small shape that the exact mode is bit-identical to ``golden``.

On a machine without a CUDA GPU it says so and exits 0 without writing anything.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from functools import partial
from pathlib import Path

from golden.errors import UsageError

DEFAULT_TOKENS = (4096, 8192, 16384, 32768)
DEFAULT_SHAPES = ("1536x1536", "3072x3072", "5120x5120", "3072x5120")
DEFAULT_FORMATS = ("fb32", "dialectfp4", "mxfp4")
DEFAULT_OUT = Path("build/bench/kernels.json")

#: Dense (no sparsity) tensor-core peaks in FLOP/s from NVIDIA's datasheets, by operand type; the
#: W4A4 kernels run int8 tensor-core dots. Matched against the device name, most specific first.
DEVICE_PEAKS = (
    ("H100 PCIe", {"bf16": 756e12, "fp8": 1513e12, "int8": 1513e12}),
    ("H100", {"bf16": 989e12, "fp8": 1979e12, "int8": 1979e12}),
    ("H200", {"bf16": 989e12, "fp8": 1979e12, "int8": 1979e12}),
    ("A100", {"bf16": 312e12, "fp8": None, "int8": 624e12}),
)

NO_GPU_MESSAGE = (
    "sdialect bench kernels: no CUDA GPU on this machine, so nothing was measured (the benchmark needs one)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tokens", type=int, nargs="+", default=list(DEFAULT_TOKENS), metavar="M",
                        help="token counts M (default: %(default)s)")  # fmt: skip
    parser.add_argument("--shapes", nargs="+", default=list(DEFAULT_SHAPES), metavar="KxN",
                        help="linear shapes as KxN (default: %(default)s)")  # fmt: skip
    parser.add_argument("--formats", nargs="+", default=list(DEFAULT_FORMATS), metavar="FORMAT",
                        help="W4A4 formats (default: %(default)s)")  # fmt: skip
    parser.add_argument("--modes", nargs="+", default=["exact", "fast"], choices=["exact", "fast"],
                        help="GEMM modes (default: %(default)s)")  # fmt: skip
    parser.add_argument("--rep-ms", type=int, default=100,
                        help="timing window per measurement in ms (default: %(default)s)")  # fmt: skip
    parser.add_argument(
        "-o", "--out", type=Path, default=DEFAULT_OUT, help="JSON output (default: %(default)s)"
    )


def _parse_shapes(shapes: list[str]) -> list[tuple[int, int]]:
    parsed = []
    for text in shapes:
        k, sep, n = text.lower().partition("x")
        if not sep or not k.isdigit() or not n.isdigit() or int(k) == 0 or int(n) == 0:
            raise UsageError(f"shape {text!r} is not of the form KxN with positive integers, e.g. 3072x3072")
        if int(k) % 64 or int(n) % 16:
            raise UsageError(f"shape {text!r} needs K divisible by 64 and N divisible by 16")
        parsed.append((int(k), int(n)))
    return parsed


def _check_args(args: argparse.Namespace) -> list[tuple[int, int]]:
    from kernels.tables import kernel_format  # light: golden and torch only

    if any(m <= 0 for m in args.tokens):
        raise UsageError(f"token counts must be positive, got {args.tokens}")
    for name in args.formats:
        spec = kernel_format(name)
        if "fast" in args.modes and (spec.grid.value != "half" or spec.scale.value != "e8m0"):
            raise UsageError(
                f"format {spec.name!r} ({spec.grid.value} grid, {spec.scale.value} scale) runs in exact mode only "
                f"on the kernels; pass --modes exact"
            )
    if args.rep_ms <= 0:
        raise UsageError(f"--rep-ms must be positive, got {args.rep_ms}")
    return _parse_shapes(args.shapes)


def _write_json(path: Path, payload: dict) -> None:
    """Write atomically: a temporary file in the target folder, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=2)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(args: argparse.Namespace) -> int:
    shapes = _check_args(args)
    import torch

    if not torch.cuda.is_available():
        print(NO_GPU_MESSAGE)
        return 0
    payload = _run(args, shapes)
    _write_json(args.out, payload)
    print(f"wrote {len(payload['results'])} measurements to {args.out}")
    return 0


# --------------------------------------------------------------------------------------------
# GPU side
# --------------------------------------------------------------------------------------------


def _peaks(name: str) -> dict:
    for key, peaks in DEVICE_PEAKS:
        if key in name:
            return peaks
    return {"bf16": None, "fp8": None, "int8": None}


def _measure(fn, rep_ms: int) -> tuple[float, int]:
    """(median milliseconds, peak bytes allocated by one call beyond what was live before)."""
    import torch
    import triton.testing

    fn()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - before
    ms = triton.testing.do_bench(fn, warmup=max(1, rep_ms // 4), rep=rep_ms, return_mode="median")
    return float(ms), int(peak)


def _mxfp4_dequantize_bf16(w):
    """Weight-only baseline: packed MXFP4 (N, K) -> bf16, in plain torch ops on the GPU."""
    import torch

    from .tables import format_tables

    decode = format_tables("mxfp4", w.device).decode.to(torch.float32) * 0.5  # E2M1 values of each code
    codes = torch.stack((w.codes & 0xF, w.codes >> 4), dim=-1).flatten(-2).long()
    scale = torch.exp2(w.exponent.to(torch.float32) - 127.0).repeat_interleave(w.block, dim=1)
    return (decode[0][codes] * scale).to(torch.bfloat16)


def _weight_only_linear(x, w_mx):
    import torch.nn.functional as F

    return F.linear(x, _mxfp4_dequantize_bf16(w_mx))


def _golden_check(device) -> bool:
    """Exact mode on the GPU is bit-identical to golden on a small ragged shape, every format."""
    import torch

    import golden
    from kernels import w4a4_linear

    generator = torch.Generator().manual_seed(0)
    for name in DEFAULT_FORMATS:
        x = torch.randn(77, 256, generator=generator)
        w_q = golden.quantize(
            torch.randn(45, 256, generator=generator), name, select=golden.weight_selection(name)
        )
        expected = golden.quantized_matmul(golden.quantize(x, name), w_q)
        fields = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in w_q.__dict__.items()}
        w_gpu = golden.QuantizedTensor(**fields)
        got = w4a4_linear(x.to(device), w_gpu).cpu()
        if not torch.equal(got, expected):
            return False
    return True


def _run(args: argparse.Namespace, shapes: list[tuple[int, int]]) -> dict:
    import torch
    import torch.nn.functional as F
    import triton

    from kernels import GemmMode, quantize_activations, tuned_config, w4a4_gemm, w4a4_linear
    from kernels.fast import fast_weight, launch_fast, prepare_activations
    from kernels.gemm import DEFAULT_CONFIGS

    device = torch.device("cuda")
    name = torch.cuda.get_device_name(device)
    peaks = _peaks(name)
    results = []

    def record(m, k, n, method, ms, memory, moved, peak_kind, **extra):
        flops = 2.0 * m * n * k
        peak = peaks.get(peak_kind)
        tflops = flops / (ms * 1e-3) / 1e12
        results.append({
            "M": m, "K": k, "N": n, "method": method, **extra, "ms": ms, "tflops": tflops,
            "peak_kind": peak_kind, "fraction_of_peak": None if peak is None else tflops * 1e12 / peak,
            "bytes_moved": moved, "gbytes_per_s": moved / (ms * 1e-3) / 1e9, "peak_memory_bytes": memory,
        })  # fmt: skip
        print(f"M={m:6d} K={k:5d} N={n:5d} {method:32s} {ms:8.3f} ms {tflops:7.1f} TFLOP/s")

    for k, n in shapes:
        w_float = torch.randn(n, k, device=device, dtype=torch.bfloat16)
        w_fp8 = w_float.to(torch.float8_e4m3fn)
        w_mx = quantize_activations(w_float, "mxfp4")
        # Weights take the (fast, on-GPU) activation rule here: timing does not depend on which
        # dialects the blocks select, only on the format's layout.
        weights = {name: quantize_activations(w_float, name) for name in args.formats}
        for m in args.tokens:
            x = torch.randn(m, k, device=device, dtype=torch.bfloat16)
            ms, mem = _measure(partial(F.linear, x, w_float), args.rep_ms)
            record(m, k, n, "bf16_linear", ms, mem, 2 * (m * k + n * k + m * n), "bf16")
            try:
                one = torch.ones((), device=device)
                scaled_mm = partial(torch._scaled_mm, x.to(torch.float8_e4m3fn), w_fp8.t(), scale_a=one,
                                    scale_b=one, out_dtype=torch.bfloat16)  # fmt: skip
                ms, mem = _measure(scaled_mm, args.rep_ms)
                record(m, k, n, "fp8_scaled_mm", ms, mem, m * k + n * k + 2 * m * n, "fp8")
            except (RuntimeError, TypeError) as err:
                print(f"fp8 _scaled_mm unavailable on {name}: {err}")
            ms, mem = _measure(partial(_weight_only_linear, x, w_mx), args.rep_ms)
            moved = 2 * m * k + n * k // 2 + n * k // w_mx.block + 2 * m * n
            record(m, k, n, "mxfp4_weight_only_dequant_linear", ms, mem, moved, "bf16")
            bias = torch.randn(n, device=device)
            for format_name, w_q in weights.items():
                a_q = quantize_activations(x, format_name)
                row_bytes = k // 2 + (2 if w_q.dialect is not None else 1) * (k // w_q.block)
                ms, mem = _measure(partial(quantize_activations, x, format_name, validate=False), args.rep_ms)
                record(m, k, n, "quantize_activations", ms, mem, 2 * m * k + m * row_bytes, "int8",
                       format=format_name)  # fmt: skip
                for mode in args.modes:
                    gemm_mode = GemmMode(mode)
                    ms, mem = _measure(partial(w4a4_gemm, a_q, w_q, mode=gemm_mode), args.rep_ms)
                    moved = (m + n) * row_bytes + 4 * m * n
                    record(m, k, n, "w4a4_gemm", ms, mem, moved, "int8", format=format_name, mode=mode)
                    tuned = tuned_config(a_q, w_q, gemm_mode, out_dtype=torch.float32)
                    ms, mem = _measure(partial(w4a4_gemm, a_q, w_q, mode=gemm_mode, config=tuned), args.rep_ms)
                    record(m, k, n, "w4a4_gemm_autotuned", ms, mem, moved, "int8", format=format_name, mode=mode,
                           config=repr(tuned))  # fmt: skip
                    if gemm_mode is GemmMode.FAST:
                        # The main kernel alone, on operands prepared once (int8 activations, fast weight).
                        config = DEFAULT_CONFIGS[gemm_mode]
                        a_fast = prepare_activations(a_q, config.fast_tile_k, config.block_m)
                        w_fast = fast_weight(w_q, config.fast_tile_k, config.block_n)
                        out = torch.empty(m, n, dtype=torch.bfloat16, device=device)
                        ms, mem = _measure(partial(launch_fast, a_fast, w_fast, config, out, bias, None, None),
                                           args.rep_ms)  # fmt: skip
                        moved = m * a_fast.values.shape[1] + n * row_bytes + 2 * m * n
                        record(m, k, n, "w4a4_gemm_fast_prepared_bf16_bias", ms, mem, moved, "int8",
                               format=format_name, mode=mode)  # fmt: skip
                    linear = partial(w4a4_linear, x, w_q, mode=gemm_mode, bias=bias, out_dtype=torch.bfloat16)
                    ms, mem = _measure(linear, args.rep_ms)
                    # bf16 rows in, packed activations written and read back, packed weights, bf16 out.
                    moved = 2 * m * k + 2 * m * row_bytes + n * row_bytes + 2 * m * n
                    record(m, k, n, "w4a4_linear_bf16_bias", ms, mem, moved, "int8", format=format_name, mode=mode)
    return {
        "device": name,
        "capability": list(torch.cuda.get_device_capability(device)),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "peak_flops": peaks,
        "exact_matches_golden": _golden_check(device),
        "results": results,
    }

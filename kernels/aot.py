"""Ahead-of-time compilation of every kernel specialization for a GPU target, without a GPU.

``triton.compile(ASTSource(...), target=GPUTarget("cuda", 90, 32))`` runs the real compiler down to a
cubin on the CPU, which catches what the interpreter accepts but the compiler rejects. The
interpreter replaces ``@triton.jit`` functions, so this module must be imported without
``TRITON_INTERPRET`` (the tests run it in a subprocess): ``python -m kernels.aot``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from golden.formats import DIALECTFP4_16, FB32

from .gemm import MIN_DOT_K, _w4a4_gemm_kernel
from .launch import LAUNCH_OPTIONS, interpreting
from .quantize_act import _quantize_rows_kernel
from .residual import _residual_rows_kernel
from .tables import ActivationRule

__all__ = ["HOPPER", "Specialization", "compile_all", "specializations"]

HOPPER = GPUTarget("cuda", 90, 32)


@dataclass(frozen=True)
class Specialization:
    """One compiled variant: a kernel, the dtypes of its runtime arguments and its constexprs."""

    name: str
    kernel: object
    signature: dict[str, str]
    constexprs: dict[str, object] = field(default_factory=dict)


def _quantize(name, x_dtype, block, rule: ActivationRule, dialects, has_mask):
    signature = {
        "x_ptr": f"*{x_dtype}", "stride_x": "i32", "codes_ptr": "*u8", "stride_codes": "i32",
        "exponent_ptr": "*u8", "dialect_ptr": "*u8", "stride_meta": "i32",
        "mask_ptr": "*u8", "stride_mask_row": "i32", "stride_mask_block": "i32",
        "err_ptr": "*i32", "idx_ptr": "*i32", "ranges_ptr": "*i32", "mx_round_ptr": "*i32", "num_rows": "i32",
    }  # fmt: skip
    constexprs = {
        "BLOCK": block, "ROWS": 32, "NUM_DIALECTS": dialects, "RULE": int(rule), "HAS_MASK": has_mask,
        "PAIR_TOP": DIALECTFP4_16.dialects[0][-1], "NUM_PAIRS": DIALECTFP4_16.num_dialects // 2,
    }  # fmt: skip
    return Specialization(name, _quantize_rows_kernel, signature, constexprs)


def _gemm(name, block, tile_blocks, fast, has_dialect, scatter):
    signature = {
        "a_codes_ptr": "*u8", "a_exponent_ptr": "*u8", "a_dialect_ptr": "*u8", "stride_a_codes": "i32",
        "stride_a_meta": "i32", "w_codes_ptr": "*u8", "w_exponent_ptr": "*u8", "w_dialect_ptr": "*u8",
        "stride_w_codes": "i32", "stride_w_meta": "i32", "words_ptr": "*i32", "out_ptr": "*fp32",
        "stride_out": "i32", "out_rows_ptr": "*i64",
        "num_rows": "i32", "num_cols": "i32", "num_blocks": "i32",
    }  # fmt: skip
    constexprs = {
        "BLOCK": block, "BLOCK_M": 64, "BLOCK_N": 64, "TILE_BLOCKS": tile_blocks,
        "DOT_PAD": max(1, MIN_DOT_K // (tile_blocks * block)), "FAST": fast, "HAS_DIALECT": has_dialect,
        "SCATTER": scatter,
    }  # fmt: skip
    return Specialization(name, _w4a4_gemm_kernel, signature, constexprs)


def _residual(name, block, has_dialect):
    signature = {
        "x_ptr": "*bf16", "stride_x": "i32", "rows_ptr": "*i64", "codes_ptr": "*u8", "exponent_ptr": "*u8",
        "dialect_ptr": "*u8", "stride_codes": "i32", "stride_meta": "i32", "decode_ptr": "*i8",
        "out_ptr": "*fp32", "stride_out": "i32", "num_salient": "i32",
    }  # fmt: skip
    constexprs = {"BLOCK": block, "ROWS": 16, "HAS_DIALECT": has_dialect}
    return Specialization(name, _residual_rows_kernel, signature, constexprs)


def specializations() -> list[Specialization]:
    """The variants the public wrappers launch: every rule, mode and operand layout at least once."""
    return [
        _quantize("quantize_fb32_lut_mask_b32", "fp32", 32, ActivationRule.LUT, FB32.num_dialects, True),
        _quantize("quantize_fb32_lut_b16_bf16", "bf16", 16, ActivationRule.LUT, FB32.num_dialects, False),
        _quantize("quantize_dialectfp4_two_stage_b64", "fp16", 64, ActivationRule.TWO_STAGE, 16, False),
        _quantize("quantize_mxfp4_b32", "fp32", 32, ActivationRule.MXFP4, 1, False),
        _gemm("gemm_exact_dialect_b32", 32, 1, False, True, False),
        _gemm("gemm_exact_dialect_b16_padded", 16, 1, False, True, False),
        _gemm("gemm_exact_mxfp4_scatter", 32, 1, False, False, True),
        _gemm("gemm_fast_dialect_b32", 32, 4, True, True, False),
        _gemm("gemm_fast_mxfp4_scatter", 32, 4, True, False, True),
        _residual("residual_dialect_b32", 32, True),
        _residual("residual_mxfp4_b32", 32, False),
    ]


def compile_all(target: GPUTarget = HOPPER) -> dict[str, object]:
    """Compile every specialization for ``target``; returns name -> CompiledKernel."""
    if interpreting():
        raise RuntimeError("ahead-of-time compilation needs the real compiler; unset TRITON_INTERPRET")
    compiled = {}
    for spec in specializations():
        signature = {**spec.signature, **dict.fromkeys(spec.constexprs, "constexpr")}
        source = ASTSource(fn=spec.kernel, signature=signature,
                           constexprs=spec.constexprs)  # fmt: skip
        compiled[spec.name] = triton.compile(source, target=target, options=dict(LAUNCH_OPTIONS))
    return compiled


if __name__ == "__main__":
    for name, kernel in compile_all().items():
        print(f"{name}: {len(kernel.asm['cubin'])} bytes of cubin")
    sys.exit(0)

"""Ahead-of-time compilation of every kernel specialization for Hopper, and SASS evidence, without a GPU.

``triton.compile(ASTSource(...), target=GPUTarget("cuda", 90, 32))`` runs the real compiler down to
a cubin on the CPU, which catches what the interpreter accepts but the compiler rejects. The cubin is
then disassembled with the ``cuobjdump`` that ships in the triton wheel: registers and spills come
from its resource usage, and the GEMMs' main loop (the backward branch around the tensor-core
instructions) is counted instruction by instruction. ``issue_rate_ceiling`` turns those counts
into a TFLOP/s ceiling (model in kernels/README.md). The interpreter replaces ``@triton.jit``
functions, so this module must be imported without ``TRITON_INTERPRET`` (the tests run it in a
subprocess): ``python -m kernels.aot`` prints the report.
"""

from __future__ import annotations

import collections
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from golden.formats import DIALECTFP4_16, FB32

from .fast import _prepare_activations_kernel, _w4a4_fast_kernel
from .gemm import (
    AUTOTUNE_CONFIGS,
    DEFAULT_CONFIGS,
    MIN_DOT_K,
    PER_BLOCK_CONFIG,
    GemmMode,
    _w4a4_gemm_e4m3_kernel,
    _w4a4_gemm_kernel,
)
from .launch import LAUNCH_OPTIONS, interpreting
from .quantize_act import QuantizeConfig, _quantize_rows_kernel, vector_width
from .residual import _residual_rows_kernel
from .tables import ActivationRule, format_tables

__all__ = ["HOPPER", "Specialization", "compile_all", "issue_rate_ceiling", "main_loop", "report", "specializations"]

HOPPER = GPUTarget("cuda", 90, 32)  # compute capability 9.0, warp size 32

#: The issue-rate model's machines: SMs, and dense tensor-core peaks (datasheets) in TOPS/TFLOP/s.
#: The clock is the one at which the int8 peak is 8192 int8 operations per SM and cycle (H100 SXM
#: and H200: 1.83 GHz); each SM issues at most 4 warp instructions per cycle (one per scheduler).
MACHINES = {
    "H100 SXM": {"sms": 132, "int8": 1979.0, "bf16": 989.0, "hbm_tb_s": 3.35},
    "H200": {"sms": 132, "int8": 1979.0, "bf16": 989.0, "hbm_tb_s": 4.8},
}
INT8_OPS_PER_SM_CYCLE = 8192
SCHEDULERS_PER_SM = 4
#: What bf16 F.linear reaches on an H100 at these shapes (the issue's figure; not measured here).
BF16_LINEAR_TFLOPS = 700.0


@dataclass(frozen=True)
class Specialization:
    """One compiled variant: a kernel, the dtypes of its runtime arguments and its constexprs.

    ``num_warps``/``num_stages`` are the launch options; ``macs_per_iteration`` the multiply-adds
    one main-loop iteration of a CTA performs (GEMMs only, for the issue-rate model).
    """

    name: str
    kernel: object
    signature: dict[str, str]
    constexprs: dict[str, object] = field(default_factory=dict)
    num_warps: int = 4
    num_stages: int = 3
    macs_per_iteration: int = 0
    #: Largest issued instructions per tensor-core instruction allowed in the main loop (CI budget).
    budget_per_mma: float | None = None
    #: Bandwidth-bound kernels: elements per program and bytes moved per element.
    elements_per_program: int = 0
    bytes_per_element: float = 0.0
    #: Which tensor-core loop is the main loop (``main_loop``'s ``pick``).
    main_loop_pick: str = "largest"


_TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _quantize(name, x_dtype, block, rule: ActivationRule, dialects, has_mask, histogram=False, format=None):
    """``format``: an E4M3-scaled dialect format (its grid's codes u, histogram LUT cost), else E8M0."""
    signature = {
        "x_ptr": f"*{x_dtype}", "stride_x": "i32", "codes_ptr": "*u8", "stride_codes": "i32",
        "exponent_ptr": "*u8", "dialect_ptr": "*u8", "stride_meta": "i32",
        "mask_ptr": "*u8", "stride_mask_row": "i32", "stride_mask_block": "i32",
        "err_ptr": "*i8", "idx_ptr": "*i32", "ranges_ptr": "*i32", "mx_round_ptr": "*i32", "num_rows": "i32",
        "tensor_amax_ptr": "*fp32", "tensor_scale_ptr": "*fp32",
    }  # fmt: skip
    e4m3 = {"E4M3": False, "NUM_U": 32, "GRID_SHIFT": 1, "TOP": 7.5}
    if format is not None:
        tables = format_tables(format, "cpu")
        e4m3 = {"E4M3": True, "NUM_U": tables.num_ucodes, "GRID_SHIFT": tables.grid_shift, "TOP": tables.grid_top}
        histogram = histogram or tables.subset_split is None
    constexprs = {
        "BLOCK": block, "ROWS": QuantizeConfig().rows_for(block, e4m3["NUM_U"]), "VEC": vector_width(_TORCH_DTYPES[x_dtype], block),
        "NUM_DIALECTS": dialects,
        "DIALECTS_PAD": max(16, 1 << (dialects - 1).bit_length()), "RULE": int(rule), "HAS_MASK": has_mask,
        "PAIR_TOP": DIALECTFP4_16.dialects[0][-1], "NUM_PAIRS": DIALECTFP4_16.num_dialects // 2,
        "SUBSETS": rule is ActivationRule.LUT and not histogram, "USE_PTX": True, **e4m3,
    }  # fmt: skip
    size = {"fp32": 4, "bf16": 2, "fp16": 2}[x_dtype]
    # Bytes per element: the input, half a byte of codes, and the exponent (and dialect) bytes.
    moved = size + 0.5 + (1 if rule is ActivationRule.MXFP4 else 2) / block
    if format is not None:  # E4M3: the tensor maximum is one more read of the input, before the kernel
        moved += size
    return Specialization(name, _quantize_rows_kernel, signature, constexprs, QuantizeConfig().num_warps,
                          elements_per_program=QuantizeConfig().rows_for(block, e4m3["NUM_U"]) * block,
                          bytes_per_element=moved)


def _exact(name, block, has_dialect, scatter, out="fp32", bias=False, residual=False, budget=None):
    config = PER_BLOCK_CONFIG
    signature = {
        "a_codes_ptr": "*u8", "a_exponent_ptr": "*u8", "a_dialect_ptr": "*u8", "stride_a_codes": "i32",
        "stride_a_meta": "i32", "w_codes_ptr": "*u8", "w_exponent_ptr": "*u8", "w_dialect_ptr": "*u8",
        "stride_w_codes": "i32", "stride_w_meta": "i32", "words_ptr": "*i32", "out_ptr": f"*{out}",
        "stride_out": "i32", "out_rows_ptr": "*i64", "bias_ptr": "*fp32", "residual_ptr": "*fp32",
        "stride_residual": "i32", "slot_ptr": "*i32",
        "num_rows": "i32", "num_cols": "i32", "num_blocks": "i32",
    }  # fmt: skip
    constexprs = {
        "BLOCK": block, "BLOCK_M": config.block_m, "BLOCK_N": config.block_n,
        "DOT_PAD": max(1, MIN_DOT_K // block), "HAS_DIALECT": has_dialect, "SCATTER": scatter,
        "HAS_BIAS": bias, "HAS_RESIDUAL": residual,
    }  # fmt: skip
    macs = config.block_m * config.block_n * block
    return Specialization(name, _w4a4_gemm_kernel, signature, constexprs, config.num_warps, config.num_stages,
                          macs, budget)  # fmt: skip


def _exact_e4m3(name, format, block, out="bf16", bias=True, budget=None, residual=False):
    """The E4M3-scaled dialect formats' exact GEMM (per-block kernel, its production tiles)."""
    config = PER_BLOCK_CONFIG
    signature = {
        "a_codes_ptr": "*u8", "a_scale_ptr": "*u8", "a_dialect_ptr": "*u8", "stride_a_codes": "i32",
        "stride_a_meta": "i32", "a_tensor_scale_ptr": "*fp32", "w_codes_ptr": "*u8", "w_scale_ptr": "*u8",
        "w_dialect_ptr": "*u8", "stride_w_codes": "i32", "stride_w_meta": "i32", "w_tensor_scale_ptr": "*fp32",
        "byte_words_ptr": "*i32", "out_ptr": f"*{out}", "stride_out": "i32", "bias_ptr": "*fp32",
        "residual_ptr": "*fp32", "stride_residual": "i32", "slot_ptr": "*i32",
        "num_rows": "i32", "num_cols": "i32", "num_blocks": "i32",
    }  # fmt: skip
    constexprs = {
        "BLOCK": block, "BLOCK_M": config.block_m, "BLOCK_N": config.block_n,
        "DOT_PAD": max(1, MIN_DOT_K // block), "GRID_SHIFT": format_tables(format, "cpu").grid_shift, "HAS_BIAS": bias,
        "HAS_RESIDUAL": residual,
    }  # fmt: skip
    macs = config.block_m * config.block_n * block
    return Specialization(name, _w4a4_gemm_e4m3_kernel, signature, constexprs, config.num_warps, config.num_stages,
                          macs, budget)  # fmt: skip


def _fast(name, block, tile_k, out="bf16", bias=True, residual=False, budget=None, exact=False, config=None):
    config = DEFAULT_CONFIGS[GemmMode.EXACT if exact else GemmMode.FAST] if config is None else config
    signature = {
        "a_ptr": "*i8", "a_scale_ptr": "*fp32", "stride_a": "i32", "stride_a_scale": "i32",
        "w_codes_ptr": "*i32", "w_table_ptr": "*i16", "w_scale_ptr": "*fp32", "stride_w_codes": "i32",
        "stride_w_table": "i32", "stride_w_scale": "i32", "tables_ptr": "*i32", "bias_ptr": "*fp32",
        "residual_ptr": "*fp32", "stride_residual": "i32", "slot_ptr": "*i32", "out_ptr": f"*{out}",
        "stride_out": "i32", "num_rows": "i32", "num_cols": "i32", "num_blocks": "i32", "num_words": "i32",
        "num_tiles": "i32",
    }  # fmt: skip
    constexprs = {
        "BLOCK": block, "BLOCK_M": config.block_m, "BLOCK_N": config.block_n, "TILE_BLOCKS": tile_k // block,
        "GROUP_M": config.group_m, "NUM_STAGES": config.num_stages, "HAS_BIAS": bias, "HAS_RESIDUAL": residual,
        "USE_PTX": True, "EXACT": exact,
    }  # fmt: skip
    macs = config.block_m * config.block_n * tile_k
    return Specialization(name, _w4a4_fast_kernel, signature, constexprs, config.num_warps, config.num_stages,
                          macs, budget, main_loop_pick="smallest" if exact else "largest")  # fmt: skip


def _prepare(name, block, tile_k, has_dialect):
    signature = {
        "codes_ptr": "*u8", "exponent_ptr": "*u8", "dialect_ptr": "*u8", "stride_codes": "i32",
        "stride_meta": "i32", "words_ptr": "*i32", "values_ptr": "*i8", "stride_values": "i32",
        "ref_ptr": "*u8", "stride_ref": "i32", "scale_ptr": "*fp32", "stride_scale": "i32",
        "num_rows": "i32", "padded_rows": "i32", "num_blocks": "i32", "padded_length": "i32",
    }  # fmt: skip
    constexprs = {"BLOCK": block, "ROWS": 16, "TILE_BLOCKS": tile_k // block, "HAS_DIALECT": has_dialect}
    return Specialization(name, _prepare_activations_kernel, signature, constexprs)


def _residual(name, block, has_dialect, format=None):
    """``format``: an E4M3-scaled dialect format (block scale bytes, tensor scale), else E8M0."""
    signature = {
        "x_ptr": "*bf16", "stride_x": "i32", "rows_ptr": "*i64", "codes_ptr": "*u8", "exponent_ptr": "*u8",
        "dialect_ptr": "*u8", "stride_codes": "i32", "stride_meta": "i32", "decode_ptr": "*i8",
        "out_ptr": "*fp32", "stride_out": "i32", "num_salient": "i32", "tensor_scale_ptr": "*fp32",
    }  # fmt: skip
    shift = 1 if format is None else format_tables(format, "cpu").grid_shift
    constexprs = {"BLOCK": block, "ROWS": 16, "HAS_DIALECT": has_dialect, "E4M3": format is not None,
                  "GRID_SHIFT": shift}  # fmt: skip
    return Specialization(name, _residual_rows_kernel, signature, constexprs)


def specializations() -> list[Specialization]:
    """The variants the public wrappers launch: every rule, mode and operand layout at least once."""
    return [
        _quantize("quantize_fb32_lut_mask_b32", "fp32", 32, ActivationRule.LUT, FB32.num_dialects, True),
        _quantize("quantize_fb32_lut_b16_bf16", "bf16", 16, ActivationRule.LUT, FB32.num_dialects, False),
        _quantize("quantize_fb32_lut_b32_bf16", "bf16", 32, ActivationRule.LUT, FB32.num_dialects, False),
        _quantize("quantize_dialectfp4_two_stage_b32_bf16", "bf16", 32, ActivationRule.TWO_STAGE, 16, False),
        _quantize("quantize_fb32_lut_b64_bf16", "bf16", 64, ActivationRule.LUT, FB32.num_dialects, False),
        _quantize("quantize_fb32_lut_b32_bf16_histogram", "bf16", 32, ActivationRule.LUT, FB32.num_dialects, False,
                  histogram=True),
        _quantize("quantize_dialectfp4_two_stage_b64", "fp16", 64, ActivationRule.TWO_STAGE, 16, False),
        _quantize("quantize_mxfp4_b32", "fp32", 32, ActivationRule.MXFP4, 1, False),
        _quantize("quantize_tdit_q_e4m3_lut_b32_bf16", "bf16", 32, ActivationRule.LUT, 32, False, format="tdit-q-e4m3"),
        _quantize("quantize_tdit64_q_e4m3_lut_b32_bf16", "bf16", 32, ActivationRule.LUT, 64, False,
                  format="tdit64-q-e4m3"),
        _exact_e4m3("gemm_exact_e4m3_q_b32_bf16_bias", "tdit-q-e4m3", 32, budget=EXACT_BUDGET),
        _exact_e4m3("gemm_exact_e4m3_q_b16_fp32_residual", "tdit-q-e4m3", 16, "fp32", False, residual=True),
        _fast("gemm_exact_tiled_b32_bf16_bias", 32, 32, budget=EXACT_TILED_BUDGET, exact=True),
        _fast("gemm_exact_tiled_b32_fp32_residual", 32, 32, "fp32", False, True, budget=EXACT_TILED_BUDGET,
              exact=True),
        _exact("gemm_exact_dialect_b32", 32, True, False, budget=EXACT_BUDGET),
        _exact("gemm_exact_dialect_b32_bf16_bias_residual", 32, True, False, "bf16", True, True),
        _exact("gemm_exact_dialect_b16_padded", 16, True, False),
        _exact("gemm_exact_mxfp4_scatter", 32, False, True),
        _fast("gemm_fast_b32_t256_bf16_bias", 32, 256, budget=FAST_BUDGET),
        _fast("gemm_fast_b16_t256_bf16_bias", 16, 256, budget=FAST_BUDGET),
        _fast("gemm_fast_b32_t128_bf16_bias", 32, 128, budget=FAST_BUDGET),
        _fast("gemm_fast_b32_t256_fp32_residual", 32, 256, "fp32", False, True, budget=FAST_BUDGET),
        *_autotune_set(),
        _prepare("prepare_fast_dialect_b32_t256", 32, 256, True),
        _prepare("prepare_fast_mxfp4_b32_t256", 32, 256, False),
        _residual("residual_dialect_b32", 32, True),
        _residual("residual_mxfp4_b32", 32, False),
        _residual("residual_e4m3_q_b32", 32, True, format="tdit-q-e4m3"),
    ]


def _autotune_set() -> list[Specialization]:
    """The autotuning candidates beyond the production ones (``AUTOTUNE_CONFIGS[mode][1:]``), B = 32:
    held to no spills and int8 wgmma; their instructions per MMA are reported, not budgeted."""
    out = []
    for i, config in enumerate(AUTOTUNE_CONFIGS[GemmMode.FAST][1:], 1):
        out.append(_fast(f"gemm_fast_autotune_{i}_{config.block_m}x{config.block_n}_t{config.fast_tile_k}"
                         f"_s{config.num_stages}", 32, config.fast_tile_k, config=config))  # fmt: skip
    for i, config in enumerate(AUTOTUNE_CONFIGS[GemmMode.EXACT][1:], 1):
        out.append(_fast(f"gemm_exact_autotune_{i}_{config.block_m}x{config.block_n}_s{config.num_stages}", 32, 32,
                         exact=True, config=config))  # fmt: skip
    return out


#: CI budgets of issued instructions per tensor-core instruction in the main loop (per warp). Fast
#: mode: one IGMMA.64x128x32 per 32 values of K and warp; measured 82.8 at K tiles of 256 (B = 32),
#: 92.9 (B = 16) and 117.5 at 128. Exact mode, tiled kernel: one IGMMA.64x128x32 per block and
#: warp, measured 469 (its contract's floor is 256, kernels/README.md); per-block kernel: one
#: IGMMA.64x64x32 per block, measured 1034 (1136 before issue 12).
FAST_BUDGET = 150.0
EXACT_BUDGET = 1100.0
EXACT_TILED_BUDGET = 520.0


def _attrs(signature: dict[str, str]) -> dict:
    """Divisibility by 16 of every pointer and stride, as the JIT specializes production launches."""
    names = list(signature)
    return {
        (i,): [["tt.divisibility", 16]]
        for i, name in enumerate(names)
        if signature[name].startswith("*") or name.startswith("stride")
    }


def compile_all(target: GPUTarget = HOPPER) -> dict[str, object]:
    """Compile every specialization for ``target``; returns name -> CompiledKernel."""
    if interpreting():
        raise RuntimeError("ahead-of-time compilation needs the real compiler; unset TRITON_INTERPRET")
    compiled = {}
    for spec in specializations():
        signature = {**spec.signature, **dict.fromkeys(spec.constexprs, "constexpr")}
        source = ASTSource(fn=spec.kernel, signature=signature, constexprs=spec.constexprs,
                           attrs=_attrs(spec.signature))  # fmt: skip
        options = dict(LAUNCH_OPTIONS, num_warps=spec.num_warps, num_stages=spec.num_stages)
        compiled[spec.name] = triton.compile(source, target=target, options=options)
    return compiled


def _cuobjdump(cubin: bytes, *flags: str) -> str:
    with tempfile.NamedTemporaryFile(suffix=".cubin") as handle:
        handle.write(cubin)
        handle.flush()
        return subprocess.check_output([triton.knobs.nvidia.cuobjdump.path, *flags, handle.name], text=True)


def resource_usage(cubin: bytes) -> dict[str, int]:
    """Registers, stack and local memory per thread, and shared memory, from cuobjdump -res-usage."""
    text = _cuobjdump(cubin, "-res-usage")
    found = dict(re.findall(r"(REG|STACK|SHARED|LOCAL):(\d+)", text))
    return {key.lower(): int(value) for key, value in found.items()}


def _instructions(sass: str) -> list[tuple[int, str]]:
    out = []
    for line in sass.splitlines():
        match = re.match(r"\s*/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;", line)
        if match:
            out.append((int(match.group(1), 16), match.group(2)))
    return out


def _opcode(text: str) -> str:
    words = text.split()
    return words[1] if words[0].startswith("@") else words[0]


def main_loop(sass: str, pick: str = "largest") -> dict:
    """The loop that issues the tensor-core instructions: its instruction count and opcode histogram.

    Loops are found as backward branches; the main loop is the one whose body holds GMMA (wgmma) or
    MMA instructions (the largest such body if several do, or with ``pick="smallest"`` the smallest:
    the exact tiled kernel's common path, next to its general-split loop). ``others`` lists the
    instruction counts of the other tensor-core loops.
    """
    code = _instructions(sass)
    index = {address: i for i, (address, _) in enumerate(code)}
    loops = []
    for i, (address, text) in enumerate(code):
        match = re.search(r"\bBRA\b.*?0x([0-9a-f]+)", text)
        if not match or int(match.group(1), 16) > address or int(match.group(1), 16) not in index:
            continue
        body = [t for _, t in code[index[int(match.group(1), 16)] : i + 1]]
        mmas = sum(1 for t in body if re.match(r"[IH]GMMA|HMMA|IMMA", _opcode(t)))
        if mmas:
            opcodes = collections.Counter(_opcode(t) for t in body)
            kinds = sorted({_opcode(t) for t in body if re.match(r"[IH]GMMA|HMMA|IMMA", _opcode(t))})
            loops.append({"instructions": len(body), "mma": mmas, "mma_kinds": kinds,
                          "histogram": dict(opcodes.most_common())})  # fmt: skip
    if not loops:
        raise ValueError("no loop with tensor-core instructions in this SASS")
    loops.sort(key=lambda loop: loop["instructions"], reverse=pick == "largest")
    best = loops[0]
    best["others"] = [loop["instructions"] for loop in loops[1:]]
    best["per_mma"] = best["instructions"] / best["mma"]
    return best


def decode_words_per_thread(ttgir: str) -> list[int]:
    """sizePerThread of the layout of the code words fed to the PTX decode (``pack=4``).

    The decode takes each call's 4 words to be consecutive words of one row; that holds when the
    innermost sizePerThread is a multiple of 4 with order [1, 0] (checked by the AOT test).
    """
    line = next(line for line in ttgir.splitlines() if "tt.elementwise_inline_asm" in line)
    layout = re.search(r"tensor<\d+x\d+xi32, (#\w+)>", line.split("pure = true}", 1)[1]).group(1)
    definition = re.search(rf"^{layout} = .*$", ttgir, re.MULTILINE).group(0)
    size = [int(v) for v in re.search(r"sizePerThread = \[([\d, ]+)\]", definition).group(1).split(",")]
    order = [int(v) for v in re.search(r"order = \[([\d, ]+)\]", definition).group(1).split(",")]
    return size if order == [1, 0] else []


def issue_rate_ceiling(instructions: int, warps: int, macs: int, machine: str = "H100 SXM") -> dict:
    """TOPS ceiling of a main loop of ``instructions`` per warp and iteration, ``macs`` per CTA iteration.

    An SM issues at most SCHEDULERS_PER_SM warp instructions per cycle, so an iteration of a CTA
    takes at least ``instructions * warps / 4`` cycles; the tensor cores need ``2 macs / 8192``.
    The ceiling is ``2 macs / max(both)`` per SM and cycle, times SMs and clock.
    """
    spec = MACHINES[machine]
    clock = spec["int8"] * 1e12 / (spec["sms"] * INT8_OPS_PER_SM_CYCLE)
    issue_cycles = instructions * warps / SCHEDULERS_PER_SM
    mma_cycles = 2 * macs / INT8_OPS_PER_SM_CYCLE
    issue_bound = 2 * macs / issue_cycles * spec["sms"] * clock / 1e12
    ceiling = min(issue_bound, spec["int8"])
    return {
        "machine": machine, "clock_ghz": clock / 1e9, "issue_cycles": issue_cycles, "mma_cycles": mma_cycles,
        "issue_bound_tops": issue_bound, "ceiling_tops": ceiling, "fraction_of_int8_peak": ceiling / spec["int8"],
        "vs_bf16_peak": ceiling / spec["bf16"], "vs_bf16_linear": ceiling / BF16_LINEAR_TFLOPS,
    }  # fmt: skip


def bandwidth_ceiling(instructions: int, warps: int, elements: int, bytes_per_element: float,
                      machine: str = "H100 SXM") -> dict:  # fmt: skip
    """Issue-rate bound of a straight-line kernel as a fraction of HBM bandwidth.

    A program of ``warps`` warps issues ``instructions`` each (no loops: every instruction once) for
    ``elements`` elements; at 4 warp instructions per SM and cycle that is the rate below, and
    ``bytes_per_element`` turns it into bytes per second against the HBM bandwidth.
    """
    spec = MACHINES[machine]
    clock = spec["int8"] * 1e12 / (spec["sms"] * INT8_OPS_PER_SM_CYCLE)
    elements_per_s = elements / (instructions * warps / SCHEDULERS_PER_SM) * spec["sms"] * clock
    fraction = elements_per_s * bytes_per_element / (spec["hbm_tb_s"] * 1e12)
    return {"machine": machine, "instructions_per_element": instructions * warps * 32 / elements / 32,
            "issue_bound_gb_s": elements_per_s * bytes_per_element / 1e9, "fraction_of_hbm": min(1.0, fraction),
            "issue_over_hbm": fraction}  # fmt: skip


def straight_line(sass: str) -> int:
    """Instruction count of a kernel without loops (raises if it has a backward branch)."""
    code = _instructions(sass)
    for address, text in code:
        match = re.search(r"\bBRA\b.*?0x([0-9a-f]+)", text)
        if match and int(match.group(1), 16) <= address and not text.endswith("BRA 0x%x" % address):
            if int(match.group(1), 16) != address:
                raise ValueError(f"backward branch at {address:#x}: not a straight-line kernel")
    return sum(1 for _, text in code if _opcode(text) not in ("NOP", "BRA") or "BRA" not in text)


def report(target: GPUTarget = HOPPER) -> dict[str, dict]:
    """Per specialization: cubin size, resource usage, PTX facts and (GEMMs) the main-loop model."""
    specs = {spec.name: spec for spec in specializations()}
    out = {}
    for name, kernel in compile_all(target).items():
        spec = specs[name]
        ptx = kernel.asm["ptx"]
        facts = {
            "cubin_bytes": len(kernel.asm["cubin"]),
            "target": ptx.split(".target", 1)[1].split()[0],
            "num_warps": spec.num_warps,
            **resource_usage(kernel.asm["cubin"]),
            "fma_f32": len(re.findall(r"\bfma\.[a-z.]*f32", ptx)),
            "ftz_f32": len(re.findall(r"\.ftz\.f32", ptx)),
            "int8_mma": bool(re.search(r"mma[a-z0-9_.]*s32\.s8\.s8", ptx)),
            "budget_per_mma": spec.budget_per_mma,
        }
        if spec.elements_per_program:
            sass = _cuobjdump(kernel.asm["cubin"], "-sass")
            count = straight_line(sass)
            facts["elements_per_program"] = spec.elements_per_program
            facts["opcodes"] = dict(collections.Counter(_opcode(t).split(".")[0] for _, t in _instructions(sass)))
            facts["instructions"] = count
            facts["bandwidth"] = {m: bandwidth_ceiling(count, spec.num_warps, spec.elements_per_program,
                                                       spec.bytes_per_element, m) for m in MACHINES}  # fmt: skip
        if spec.kernel is _w4a4_fast_kernel:
            facts["decode_words_per_thread"] = decode_words_per_thread(kernel.asm["ttgir"])
        if spec.macs_per_iteration:
            loop = main_loop(_cuobjdump(kernel.asm["cubin"], "-sass"), spec.main_loop_pick)
            facts["main_loop"] = {k: v for k, v in loop.items() if k != "histogram"}
            facts["main_loop"]["top_opcodes"] = dict(list(loop["histogram"].items())[:12])
            facts["model"] = {m: issue_rate_ceiling(loop["instructions"], spec.num_warps, spec.macs_per_iteration, m)
                              for m in MACHINES}  # fmt: skip
        out[name] = facts
    return out


def _summary(name: str, facts: dict) -> str:
    line = f"{name}: {facts['reg']} registers, stack {facts['stack']} B, local {facts['local']} B"
    if "bandwidth" in facts:
        band = facts["bandwidth"]["H100 SXM"]
        line += (f"; {facts['instructions']} instructions per warp, {band['instructions_per_element']:.1f} per"
                 f" element; issue-rate bound {band['issue_over_hbm']:.2f} x H100 HBM")  # fmt: skip
    if "main_loop" in facts:
        loop, model = facts["main_loop"], facts["model"]["H100 SXM"]
        line += (
            f"; main loop {loop['instructions']} instructions / {loop['mma']} x {','.join(loop['mma_kinds'])}"
            f" = {loop['per_mma']:.1f} per MMA; issue-rate ceiling {model['ceiling_tops']:.0f} TOPS"
            f" ({model['fraction_of_int8_peak']:.2f} of int8 peak, {model['vs_bf16_peak']:.2f}x bf16 peak,"
            f" {model['vs_bf16_linear']:.2f}x bf16 F.linear at {BF16_LINEAR_TFLOPS:.0f})"
        )
    return line


if __name__ == "__main__":
    facts = report()
    if "--json" in sys.argv:
        print(json.dumps(facts, indent=2))
    else:
        for name, value in facts.items():
            print(_summary(name, value))
    sys.exit(0)

"""Fast-mode pieces: the PTX byte-permute decode (by an evaluator of its instructions), the aligned
tables, the prepared operands, and the production tile configuration run in the interpreter."""

from tests import kernels_interpret  # noqa: F401  (interpreter check)

import re

import numpy
import pytest
import torch

import golden
from golden.formats import FORMATS, FormatError
from kernels import GemmMode, PackedOperand, fast_mode_error_bound, w4a4_gemm, w4a4_gemm_torch
from kernels.fast import (
    DECODE_PTX,
    FastWeight,
    prepare_activations,
    prepare_activations_torch,
)
from kernels.gemm import DEFAULT_CONFIGS, _aligned, _signed_half_units
from kernels.tables import NUM_ALIGN_SHIFTS, align_half_units, fast_tables, kernel_format, require_half_e8m0

def _kernel_formats():
    """The registry formats fast mode implements (a new registry row gets these tests for free)."""
    names = []
    for name in FORMATS:
        try:
            require_half_e8m0(kernel_format(name), "fast mode")
        except FormatError:
            continue
        names.append(name)
    return names


KERNEL_FORMATS = _kernel_formats()
FAST = DEFAULT_CONFIGS[GemmMode.FAST]


def prmt(a, b, selector):
    """PTX prmt.b32 (default mode) on uint32 arrays: byte k of the result is byte c_k & 7 of
    {b, a} (a = bytes 0..3), or, when bit 3 of selector nibble k is set, that byte's sign bit
    replicated."""
    source = (b.astype(numpy.uint64) << 32) | a.astype(numpy.uint64)
    out = numpy.zeros_like(a, dtype=numpy.uint32)
    for k in range(4):
        nibble = (selector >> (4 * k)) & 0xF
        byte = ((source >> (8 * (nibble & 7)).astype(numpy.uint64)) & 0xFF).astype(numpy.uint32)
        byte = numpy.where(nibble & 8, numpy.where(byte & 0x80, 0xFF, 0), byte)
        out |= byte.astype(numpy.uint32) << (8 * k)
    return out


def run_ptx(text, operands):
    """Evaluate the decode's PTX (and/or/shr/prmt on .b32/.u32 registers) on numpy uint32 arrays."""
    regs = dict(operands)

    def value(token):
        token = token.strip()
        return numpy.uint32(int(token, 16)) if token.startswith("0x") else (
            numpy.uint32(int(token)) if token.isdigit() else regs[token]
        )

    for line in text.splitlines():
        line = line.strip().rstrip(";")
        if not line or line in "{}" or line.startswith(".reg"):
            continue
        op, args = line.split(None, 1)
        dst, *src = [t.strip() for t in args.split(",")]
        x = [value(t) for t in src]
        if op == "and.b32":
            regs[dst] = x[0] & x[1]
        elif op == "or.b32":
            regs[dst] = x[0] | x[1]
        elif op == "shr.u32":
            regs[dst] = (x[0] >> x[1]).astype(numpy.uint32)
        elif op == "prmt.b32":
            regs[dst] = prmt(numpy.asarray(x[0], numpy.uint32), numpy.asarray(x[1], numpy.uint32), x[2])
        else:
            raise AssertionError(f"unexpected PTX instruction {op}")
    return regs


def test_decode_ptx_uses_only_the_evaluated_instructions():
    ops = {line.split()[0] for line in DECODE_PTX.splitlines() if re.match(r"\s*[a-z]", line)}
    assert ops == {"and.b32", "or.b32", "shr.u32", "prmt.b32"}


@pytest.mark.parametrize("format", KERNEL_FORMATS)
def test_decode_ptx_looks_up_every_code_of_every_aligned_table(format):
    """All D x 9 tables, all 16 codes in every nibble position: the PTX yields the aligned value."""
    tables = fast_tables(format, "cpu").numpy().astype(numpy.uint32)  # (T, 4)
    magnitudes = golden.get_format(format).formatbook.half_units.long()
    rng = numpy.random.default_rng(0)
    count = tables.shape[0]
    for trial in range(4):
        words = rng.integers(0, 1 << 32, size=(count, 4), dtype=numpy.uint64).astype(numpy.uint32)
        if trial == 0:  # every code in every nibble of word 0
            words[:, 0] = numpy.uint32(0x76543210)
            words[:, 1] = numpy.uint32(0xFEDCBA98)
        operands = {f"${8 + j}": words[:, j] for j in range(4)}
        for part in range(4):
            for j in range(4):
                operands[f"${12 + 4 * part + j}"] = tables[:, part]
        regs = run_ptx(DECODE_PTX, operands)
        for j in range(4):
            for h in range(2):
                out = regs[f"${2 * j + h}"]
                for i in range(4):
                    code = (words[:, j] >> (4 * (4 * h + i))) & 0xF
                    got = ((out >> (8 * i)) & 0xFF).astype(numpy.int64)
                    got = got - ((got & 0x80) << 1)
                    dialect, shift = numpy.divmod(numpy.arange(count), NUM_ALIGN_SHIFTS)
                    sign = numpy.where(code & 8, -1, 1)
                    h_value = sign * magnitudes[dialect, code & 7].numpy()
                    expected = align_half_units(torch.from_numpy(h_value), torch.from_numpy(shift)).numpy()
                    assert numpy.array_equal(got, expected), (format, j, h, i)


def operands(format, block, m, n, k, *, spread, seed):
    g = torch.Generator().manual_seed(seed)

    def rows(r):
        scale = torch.pow(2.0, torch.randint(-spread, spread + 1, (r, k // 16), generator=g).float())
        return torch.randn(r, k, generator=g) * scale.repeat_interleave(16, 1)

    a = golden.quantize(rows(m), format, block=block)
    w = golden.quantize(rows(n), format, block=block, select=golden.weight_selection(format))
    return PackedOperand.from_quantized(a), PackedOperand.from_quantized(w), a, w


@pytest.mark.parametrize(("format", "block", "k"), [("fb32", 32, 288), ("dialectfp4", 16, 272), ("mxfp4", 32, 96)])
def test_prepared_operands_match_the_arithmetic_alignment(format, block, k):
    a, w, _, _ = operands(format, block, 19, 13, k, spread=6, seed=k)
    tile_blocks = FAST.fast_tile_k // block
    aligned, ref = _aligned(_signed_half_units(w), w.exponent, tile_blocks, block)
    prepared = FastWeight.from_packed(w, FAST.fast_tile_k)
    assert torch.equal(prepared.aligned_values(), aligned.reshape(w.rows, -1)[:, :k])
    assert torch.equal(prepared.ref.long(), ref)
    kernel, twin = prepare_activations(a, FAST.fast_tile_k), prepare_activations_torch(a, FAST.fast_tile_k)
    assert torch.equal(kernel.values, twin.values) and torch.equal(kernel.ref, twin.ref)
    assert torch.equal(kernel.scale, twin.scale)
    assert kernel.values.shape[1] % FAST.fast_tile_k == 0 and not kernel.values[:, k:].any()


def bits(y):
    return torch.where(torch.isnan(y), torch.tensor(float("nan")), y).view(torch.int32)


@pytest.mark.parametrize(("format", "block", "k"), [("fb32", 32, 288), ("dialectfp4", 16, 272), ("mxfp4", 32, 512)])
def test_production_fast_tiles_match_the_twin(format, block, k):
    """DEFAULT_CONFIGS (128 x 128 tiles, K tiles of 256) on ragged shapes: one partial tile each way."""
    a, w, a_q, w_q = operands(format, block, 133, 150, k, spread=5, seed=block + k)
    fast = w4a4_gemm(a, w, mode="fast")
    assert torch.equal(bits(fast), bits(w4a4_gemm_torch(a, w, mode="fast")))
    error = (fast.double() - golden.quantized_matmul(a_q, w_q).double()).abs()
    assert (error <= fast_mode_error_bound(a, w)).all() and (error > 0).any()


@pytest.mark.parametrize(("format", "block"), [("fb32", 32), ("dialectfp4", 16)], ids=["tiled", "per-block"])
def test_production_exact_tiles_are_bit_identical_with_bias_in_bf16(format, block):
    """DEFAULT_CONFIGS' exact tiles: 128 x 128 on the tiled kernel (blocks of 32), PER_BLOCK_CONFIG's
    64 x 64 on the per-block kernel (blocks of 16); M = 70 and N = 66 leave partial tiles."""
    a, w, a_q, w_q = operands(format, block, 70, 66, 128, spread=3, seed=3)
    bias = torch.randn(66)
    gold = (golden.quantized_matmul(a_q, w_q) + bias).to(torch.bfloat16)
    assert torch.equal(w4a4_gemm(a, w, bias=bias, out_dtype=torch.bfloat16), gold)
    assert torch.equal(w4a4_gemm_torch(a, w, bias=bias, out_dtype=torch.bfloat16), gold)


def test_fast_epilogue_adds_bias_before_the_single_rounding():
    a, w, _, _ = operands("dialectfp4", 32, 40, 24, 256, spread=2, seed=4)
    bias = torch.randn(24)
    y32 = w4a4_gemm(a, w, mode="fast")
    y16 = w4a4_gemm(a, w, mode="fast", bias=bias, out_dtype=torch.bfloat16)
    assert torch.equal(y16, (y32 + bias).to(torch.bfloat16))
    assert torch.equal(y16, w4a4_gemm_torch(a, w, mode="fast", bias=bias, out_dtype=torch.bfloat16))

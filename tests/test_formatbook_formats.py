"""The extended dialect formats (half/quarter grid x E8M0/E4M3 scale) against the independent
per-block reference (tests/reference_model.py), exhaustively where the space is small."""

import random
from fractions import Fraction

import numpy as np
import pytest
import torch

import golden
from golden.formats import FB32, Formatbook, FormatError, Grid, Scale, dialect_format, register_format
from tests import reference_model as ref
from tests.block_distributions import corner_blocks, random_blocks


def random_book(name: str, grid: Grid, dialects: int, seed: int) -> Formatbook:
    rng = random.Random(seed)
    rows = [tuple([0] + sorted(rng.sample(range(1, grid.max_units + 1), 7))) for _ in range(dialects)]
    return Formatbook(name=name, dialects=tuple(rows), family_size=dialects // 4, grid=grid)


QUARTER_BOOK = random_book("test-quarter", Grid.QUARTER, 16, seed=1)
HALF_BOOK = random_book("test-half", Grid.HALF, 16, seed=2)

#: Every grid x scale combination under test names, registered only while a test of this module
#: runs (so other modules' registry-wide parametrizations never see them).
COMBOS = {
    f"test-{grid}-{scale}": dialect_format(f"test-{grid}-{scale}", book, scale)
    for grid, book in (("half", HALF_BOOK), ("quarter", QUARTER_BOOK))
    for scale in ("e8m0", "e4m3")
}


@pytest.fixture(autouse=True)
def _test_formats():
    before = dict(golden.FORMATS)
    for spec in COMBOS.values():
        register_format(spec)
    yield
    golden.FORMATS.clear()
    golden.FORMATS.update(before)
G = {Grid.HALF: 1, Grid.QUARTER: 2}


def sample(block: int, dtype=torch.float32, n: int = 32) -> torch.Tensor:
    rows = [random_blocks(kind, n // 4, block, seed=i) for i, kind in
            enumerate(["normal", "student-t", "log-uniform", "sparse"])]  # fmt: skip
    rows += [x for x in corner_blocks(block).values()]
    x = torch.cat(rows).to(dtype)
    return x[torch.isfinite(x).all(-1)]


@pytest.mark.parametrize("book", [QUARTER_BOOK, HALF_BOOK] + [s.formatbook for s in golden.FORMATS.values()
                                                             if s.is_dialect], ids=lambda b: b.name)  # fmt: skip
def test_idx_and_err_tables_are_brute_force_nearest_for_every_code(book):
    """Exhaustive over dialects x codes: IDX is nearest-ties-up of every point of u's bin."""
    for d, dialect in enumerate(book.dialects):
        for u in range(book.num_ucodes):
            for value in (Fraction(u, 2), Fraction(2 * u + 1, 4), Fraction(u + 1, 2) - Fraction(1, 4096)):
                assert book.idx_table[d, u] == ref.nearest_index_ties_up(value, dialect), (d, u, value)
            assert book.err_table[d, u] == ref.bin_centre_error(u, dialect)
    assert book.err_table.shape == (book.num_dialects, 32 if book.grid is Grid.HALF else 64)


@pytest.mark.parametrize("select", ["lut", "mse"])
@pytest.mark.parametrize("block", [16, 32, 64])
@pytest.mark.parametrize("name", list(COMBOS))
def test_extended_quantizer_equals_reference(name, block, select):
    spec = COMBOS[name]
    x = sample(block, n=16 if select == "mse" else 32)
    q = golden.quantize(x, name, block=block, select=select)
    g = G[spec.grid]
    t = ref.e4m3_tensor_scale(x.flatten().tolist(), g) if spec.scale is Scale.E4M3 else None
    if t is not None:
        assert q.tensor_scale.item() == t
    deq = q.dequantize()
    for i, row in enumerate(x.to(torch.float64).tolist()):
        want = ref.quantize_extended_block(row, spec.formatbook.dialects, g, spec.scale.value, select, t)
        got = {"dialect": q.dialect[i, 0].item(), "codes": q.codes[i].tolist()}
        if "exponent" in want:
            got["exponent"] = q.exponent[i, 0].item()
        else:
            got["block_scale"] = q.block_scale[i, 0].item()
        assert got == want, (i, row)
        dialect = spec.formatbook.dialects[want["dialect"]]
        expected = [ref.extended_dequant(c, dialect, g, want.get("exponent"), want.get("block_scale"), t)
                    for c in want["codes"]]  # fmt: skip
        assert deq[i].tolist() == expected
        assert torch.equal(torch.signbit(deq[i]), q.codes[i] >= 8)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64], ids=str)
@pytest.mark.parametrize("name", list(COMBOS))
def test_extended_quantizer_other_dtypes(name, dtype):
    spec = COMBOS[name]
    x = sample(32, dtype)
    q = golden.quantize(x, name)
    g = G[spec.grid]
    t = ref.e4m3_tensor_scale(x.double().flatten().tolist(), g) if spec.scale is Scale.E4M3 else None
    for i, row in enumerate(x.to(torch.float64).tolist()):
        want = ref.quantize_extended_block(row, spec.formatbook.dialects, g, spec.scale.value, "lut", t)
        assert q.codes[i].tolist() == want["codes"] and q.dialect[i, 0].item() == want["dialect"]


@pytest.mark.parametrize("name", list(COMBOS))
def test_candidate_masks_restrict_both_selections(name):
    spec = COMBOS[name]
    x = sample(32, n=16)
    g = G[spec.grid]
    t = ref.e4m3_tensor_scale(x.flatten().tolist(), g) if spec.scale is Scale.E4M3 else None
    gen = torch.Generator().manual_seed(3)
    mask = torch.rand(x.shape[0], 1, spec.formatbook.num_dialects, generator=gen) < 0.3
    mask[:, :, 5] = True
    for select in ("lut", "mse"):
        q = golden.quantize(x, name, select=select, mask=mask)
        for i, row in enumerate(x.tolist()):
            allowed = mask[i, 0].tolist()
            want = ref.quantize_extended_block(row, spec.formatbook.dialects, g, spec.scale.value, select, t, allowed)
            assert q.dialect[i, 0].item() == want["dialect"] and q.codes[i].tolist() == want["codes"]


def test_quarter_grid_of_doubled_fb32_is_fb32_under_mse():
    """Doubling FB32 onto the quarter grid keeps every midpoint, so MSE picks identical values."""
    doubled = Formatbook("FB32x2", tuple(tuple(2 * h for h in d) for d in FB32.dialects), 8, Grid.QUARTER)
    register_format(dialect_format("test-fb32x2", doubled))
    x = torch.cat([random_blocks(k, 64, 32, seed=9) for k in ("normal", "laplace", "student-t")])
    a = golden.quantize(x, "fb32", select="mse")
    b = golden.quantize(x, "test-fb32x2", select="mse")
    assert torch.equal(a.codes, b.codes) and torch.equal(a.dialect, b.dialect)
    assert torch.equal(a.dequantize(), b.dequantize())
    assert torch.equal(b.signed_units(), 2 * a.signed_half_units())


def test_e4m3_scale_maps_the_block_max_to_the_grid_top():
    """With an E4M3 scale a block's max lands within one E4M3 rounding of 7.5 / 7.75."""
    x = random_blocks("log-uniform", 256, 32, seed=5)
    for grid, top in ((Grid.HALF, 7.5), (Grid.QUARTER, 7.75)):
        name = f"test-{grid.value}-e4m3"
        q = golden.quantize(x, name)
        s = q.block_scale.view(torch.float8_e4m3fn).float().flatten()
        ratio = x.abs().amax(-1) / (s * q.tensor_scale)
        inside = s > 2.0**-6  # blocks far below the tensor max hit the scale's lower clamp
        assert inside.sum() > 64
        assert ((ratio[inside] - top).abs() <= top / 15 + 1e-4).all()  # s within 1/16 relative


def test_all_zero_and_tiny_tensors_in_e4m3_dialects():
    for name in ("test-half-e4m3", "test-quarter-e4m3"):
        z = torch.zeros(2, 64)
        z[1, 3] = -0.0
        q = golden.quantize(z, name)
        assert q.tensor_scale.item() == 0 and (q.block_scale == 0).all() and (q.dialect == 0).all()
        assert torch.equal(torch.signbit(q.dequantize()), torch.signbit(z))
        tiny = torch.full((1, 32), 1e-38)  # t = amax / 3360 would be subnormal: clamped to 2^-120
        q = golden.quantize(tiny, name)
        assert q.tensor_scale.item() == 2.0**-120 and torch.isfinite(q.dequantize()).all()


@pytest.mark.parametrize("name", list(COMBOS))
def test_extended_matmul_order_of_operations(name):
    """Integer path == an independent per-block float reference (NUMERICS s.4 with 2^-2g)."""
    spec = COMBOS[name]
    g = G[spec.grid]
    x = random_blocks("student-t", 8 * 4, 32, seed=1).reshape(8, 128)
    wt = random_blocks("normal", 5 * 4, 32, seed=2).reshape(5, 128)
    a = golden.quantize(x, name)
    w = golden.quantize(wt, name, select="mse")
    y = golden.quantized_matmul(a, w).numpy()
    ha = a.signed_units().numpy()
    hw = w.signed_units().numpy()
    expected = np.zeros_like(y)
    for m in range(8):
        for n in range(5):
            acc = np.float32(0.0)
            for b in range(4):
                dot = int(np.dot(ha[m, b].astype(np.int64), hw[n, b].astype(np.int64)))
                if spec.scale is Scale.E8M0:
                    power = Fraction(2) ** (int(a.exponent[m, b]) + int(w.exponent[n, b]) - 254 - 2 * g)
                    term = np.float32(float(dot * power))
                else:
                    f32 = np.float32
                    sa = f32(ref.e4m3_value(int(a.block_scale[m, b])))
                    sw = f32(ref.e4m3_value(int(w.block_scale[n, b])))
                    t = f32(f32(a.tensor_scale.item()) * f32(w.tensor_scale.item()))
                    term = f32(f32(f32(dot * 2.0 ** (-2 * g)) * f32(sa * sw)) * t)
                acc = np.float32(acc + term)
            expected[m, n] = acc
    np.testing.assert_array_equal(y.view(np.uint32), expected.view(np.uint32))
    # The integer path tracks the float product of the dequantized operands.
    approx = a.dequantize().double() @ w.dequantize().double().T
    assert torch.allclose(torch.from_numpy(y).double(), approx, rtol=1e-5, atol=1e-5)


def test_extended_formats_round_trip_checkpoints(tmp_path):
    x = torch.randn(3, 64)
    tensors = {name: golden.quantize(x, name) for name in COMBOS}
    golden.save_quantized(tmp_path / "c.safetensors", tensors)
    loaded, _ = golden.load_quantized(tmp_path / "c.safetensors")
    for name, q in tensors.items():
        assert torch.equal(loaded[name].dequantize(), q.dequantize())
        assert set(f for f in ("exponent", "block_scale") if getattr(loaded[name], f) is not None) == (
            {"exponent"} if COMBOS[name].scale is Scale.E8M0 else {"block_scale"}
        )


def test_bits_per_element_of_extended_formats():
    for spec in COMBOS.values():
        assert spec.bits_per_element() == 4 + (8 + 4) / 32  # 16 dialects: a 4-bit id
        assert spec.tensor_scale_bits == (32 if spec.scale is Scale.E4M3 else 0)


def test_bad_books_and_scales_are_rejected():
    with pytest.raises(FormatError, match="stay within 15 half units"):
        Formatbook("bad", ((0, 1, 2, 3, 4, 5, 6, 16),))
    Formatbook("ok", ((0, 1, 2, 3, 4, 5, 6, 31),), grid=Grid.QUARTER)
    with pytest.raises(FormatError, match="stay within 31 quarter units"):
        Formatbook("bad", ((0, 1, 2, 3, 4, 5, 6, 32),), grid=Grid.QUARTER)
    with pytest.raises(FormatError, match="unknown scale 'e5m2'"):
        dialect_format("x", HALF_BOOK, "e5m2")
    with pytest.raises(FormatError, match="two-stage selection is defined for dialectfp4 only"):
        golden.quantize(torch.randn(2, 32), "test-quarter-e4m3", select="two-stage")
    with pytest.raises(FormatError, match="already registered with a different definition"):
        register_format(dialect_format("fb32", QUARTER_BOOK))
    with pytest.raises(FormatError, match="quarter-unit grid, not half units"):
        _ = QUARTER_BOOK.half_units

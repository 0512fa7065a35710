"""Activation quantization kernel: bit-identical to its twin and to golden.quantize."""

from tests import kernels_interpret

import pytest
import torch

import golden
from golden.blocks import InputError
from golden.formats import FormatError
from kernels import PackedOperand, QuantizeConfig, quantize_activations, quantize_activations_torch

CONFIG = kernels_interpret.SMALL.quantize
#: (format, block) pairs the kernel supports: every dialect block size, and MXFP4's only one.
CASES = [
    ("fb32", 16),
    ("fb32", 32),
    ("fb32", 64),
    ("dialectfp4", 16),
    ("dialectfp4", 32),
    ("dialectfp4", 64),
    ("mxfp4", 32),
]


def check_quantize(x, format, block=None, mask=None, select=None):
    """Kernel, twin and golden agree on every packed field."""
    kernel = quantize_activations(x, format, block=block, select=select, candidate_mask=mask, config=CONFIG)
    twin = quantize_activations_torch(
        x, format, block=block, select=select, candidate_mask=mask, config=CONFIG
    )
    q = golden.quantize(x, format, block=block, select=select, mask=mask)
    gold = PackedOperand.from_quantized(q)
    for name in ("codes", "exponent", "dialect"):
        k, t, g = getattr(kernel, name), getattr(twin, name), getattr(gold, name)
        if g is None:
            assert k is None and t is None
            continue
        assert torch.equal(k, g), f"{name}: kernel differs from golden in {(k != g).sum()} places"
        assert torch.equal(t, g), f"{name}: twin differs from golden in {(t != g).sum()} places"
    return kernel


def wide_range_rows(rows, k, seed):
    """Rows whose blocks span many binades, including tiny and huge scales."""
    g = torch.Generator().manual_seed(seed)
    scale = torch.pow(2.0, torch.randint(-60, 60, (rows, k // 16), generator=g).float()).repeat_interleave(
        16, 1
    )
    return torch.randn(rows, k, generator=g) * scale


@pytest.mark.parametrize(("format", "block"), CASES)
def test_random_rows_with_ragged_row_tiles(format, block):
    check_quantize(wide_range_rows(21, 128, seed=block), format, block)


@pytest.mark.parametrize(("format", "block"), CASES)
def test_named_corner_blocks(format, block):
    """Zero and negative-zero blocks, subnormals, the largest floats, exact ties and saturation."""
    rows = torch.zeros(9, block)
    rows[1] = -0.0
    rows[2, ::3] = torch.finfo(torch.float32).smallest_normal / 3  # subnormal block maximum
    rows[3, :] = torch.finfo(torch.float32).max * torch.linspace(-1, 1, block)
    rows[4, :] = torch.arange(block) / 4.0  # quarter units: every E2M1 / dialect midpoint exactly
    rows[5, :] = -torch.arange(block) / 8.0
    rows[6, 0] = 7.99
    rows[6, 1:] = torch.linspace(-8, 8, block - 1)
    rows[7, :] = 2.0**-126  # smallest normal everywhere: the clamped exponent -127
    rows[8, :] = torch.tensor([1.0, -1.0]).repeat(block // 2) * 2.0**-140
    check_quantize(rows, format, block)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("format", ["fb32", "dialectfp4", "mxfp4"])
def test_half_precision_inputs(format, dtype):
    check_quantize(wide_range_rows(11, 64, seed=3).clamp(-6e4, 6e4).to(dtype), format)


def binade_rows(block):
    """For every shared exponent e of a normal block maximum, rows of values just at, above and below
    each whole number of quarter units u * 2^(e - 2): the kernel's two scaling multiplies must give
    every u (and MXFP4's exactness flag) of the integer definition, down to subnormal values."""
    u = torch.arange(block, dtype=torch.float64) % 32
    rows = []
    for e in range(-129, 126):  # -128 and -129: block maxima of exponent field 1 and 0 (clamped to -127)
        for fraction in (0.0, 0.5, 1 - 2.0**-18):
            value = (u + fraction) * 2.0 ** (e - 2)
            value[block // 2] = 31.5 * 2.0 ** (e - 2)  # the block maximum: exponent e
            rows.append(torch.where(torch.arange(block) % 3 == 1, -value, value))
    return torch.stack(rows).to(torch.float32)


@pytest.mark.parametrize(("format", "block"), [("fb32", 32), ("dialectfp4", 16), ("mxfp4", 32)])
def test_every_binade_and_quarter_unit(format, block):
    check_quantize(binade_rows(block), format, block)


@pytest.mark.parametrize(
    ("format", "block", "dtype"),
    [("fb32", 32, torch.bfloat16), ("fb32", 16, torch.float32), ("dialectfp4", 32, torch.float16), ("mxfp4", 32, torch.bfloat16)],
)  # fmt: skip
def test_production_launch_shape(format, block, dtype):
    """The default QuantizeConfig (rows per program from the block size, as the AOT report compiles
    it), on a ragged number of rows: more than one program, the last one partial."""
    x = wide_range_rows(QuantizeConfig().rows_for(block) + 37, 2 * block, seed=8).clamp(-6e4, 6e4).to(dtype)
    kernel = quantize_activations(x, format, block=block)
    gold = PackedOperand.from_quantized(golden.quantize(x, format, block=block))
    for name in ("codes", "exponent", "dialect"):
        k, g = getattr(kernel, name), getattr(gold, name)
        assert (k is None and g is None) or torch.equal(k, g), name


@pytest.mark.parametrize("format", ["fb32", "dialectfp4", "tdit-h-e8m0"])
def test_subset_cost_tables_reconstruct_err(format):
    """The subset-count cost: ERR[d][u] is the sum of the Moebius coefficients W[d][s] over the
    subsets s of u's bits, and the kernel's int8 split of W (subset_split) is exact."""
    from kernels.tables import NUM_UCODES, format_tables, moebius_transform

    tables = format_tables(format, "cpu")
    w = moebius_transform(tables.err)
    u, s = torch.arange(NUM_UCODES)[:, None], torch.arange(NUM_UCODES)[None, :]
    within = (s & ~u) == 0  # (u, s): s's bits are all in u
    assert torch.equal(w @ within.T.long(), tables.err.long())
    split = tables.subset_split.long()[:, : tables.num_dialects]
    assert torch.equal(split[1] * 128 + split[0], w) and (split[0] >= 0).all()


@pytest.mark.parametrize("block", [16, 32, 64])
def test_nibble_histogram_fallback(block, monkeypatch):
    """The LUT cost's fallback for books whose Moebius coefficients do not split into int8: the
    nibble-counter histogram against the ERR table, forced here for fb32."""
    import kernels.quantize_act

    monkeypatch.setattr(kernels.quantize_act, "uses_subset_counts", lambda *args: False)
    check_quantize(wide_range_rows(21, 128, seed=block + 1), "fb32", block)
    mask = torch.rand(32, generator=torch.Generator().manual_seed(2)) < 0.5
    check_quantize(wide_range_rows(5, 64, seed=block + 2), "fb32", block, mask=mask | (torch.arange(32) == 7))


def test_fitted_half_grid_book_runs_from_its_table():
    """A shipped formatbook file's format (tdit-h-e8m0: half grid, E8M0) gets its kernel tables
    from the registry like fb32; its LUT selection is bit-identical to golden."""
    check_quantize(wide_range_rows(19, 96, seed=9).to(torch.bfloat16), "tdit-h-e8m0")


def test_leading_axes_are_flattened():
    x = wide_range_rows(12, 96, seed=4).reshape(2, 6, 96)
    assert check_quantize(x, "fb32").rows == 12


@pytest.mark.parametrize(
    "mask_shape",
    [(32,), (23, 1, 32), (23, 3, 32)],
    ids=["shared", "per-row", "per-block"],
)
def test_candidate_mask(mask_shape):
    g = torch.Generator().manual_seed(5)
    mask = torch.rand(mask_shape, generator=g) < 0.25
    mask[..., 31] = True
    kernel = check_quantize(wide_range_rows(23, 96, seed=5), "fb32", mask=mask)
    assert torch.broadcast_to(mask, (23, 3, 32)).gather(-1, kernel.dialect.long()[..., None]).all()


def test_family_masks_pick_levels_within_the_family():
    x = wide_range_rows(16, 64, seed=6)
    for family in range(golden.FB32.num_families):
        kernel = check_quantize(x, "fb32", mask=golden.FB32.family_mask(family))
        assert (kernel.dialect.long() // golden.FB32.family_size == family).all()


def test_lut_selection_on_dialectfp4_with_a_mask():
    mask = torch.zeros(16, dtype=torch.bool)
    mask[8:] = True
    check_quantize(wide_range_rows(10, 64, seed=7), "dialectfp4", select="lut", mask=mask)


def test_worked_example():
    """NUMERICS.md section 7: dialect 9 and the published codes."""
    block = torch.tensor([
        0.91, -0.12, 0.33, 0.05, -1.72, 0.64, 0.27, -0.48, 1.31, 0.02, -0.77, 0.19, 0.56, -0.09, 2.95, -0.35,
        0.44, 0.71, -1.05, 0.13, -0.21, 0.08, 1.88, -0.60, 0.30, -0.03, 0.97, 0.15, -2.41, 0.52, -0.26, 0.11,
    ])  # fmt: skip
    q = quantize_activations(block[None], "dialectfp4", config=CONFIG)
    codes = torch.stack((q.codes & 0xF, q.codes >> 4), -1).flatten()
    assert int(q.dialect) == 9 and int(q.exponent) == 126
    assert "".join(f"{int(c):x}" for c in codes) == "4810e31a50b1287923c1906a1841f290"


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: quantize_activations(torch.ones(2, 40), "fb32"), InputError, "divisible by the block size"),
        (lambda: quantize_activations(torch.ones(2, 32, dtype=torch.float64), "fb32"), InputError, "float64"),
        (lambda: quantize_activations(torch.tensor([[float("nan")] * 32]), "fb32"), InputError, "NaN"),
        (lambda: quantize_activations(torch.ones(2, 32), "nvfp4"), FormatError, "nvfp4"),
        (
            lambda: quantize_activations(
                torch.ones(2, 32), "dialectfp4", candidate_mask=torch.ones(16, dtype=torch.bool)
            ),
            FormatError,
            "LUT selection",
        ),  # fmt: skip
        (
            lambda: quantize_activations(
                torch.ones(2, 32), "fb32", candidate_mask=torch.zeros(32, dtype=torch.bool)
            ),
            FormatError,
            "no dialect",
        ),  # fmt: skip
        (
            lambda: quantize_activations(
                torch.ones(2, 32), "fb32", candidate_mask=torch.ones(16, dtype=torch.bool)
            ),
            FormatError,
            "last axis 32",
        ),  # fmt: skip
        (
            lambda: quantize_activations(torch.ones(2, 32), "fb32", select="mse"),
            FormatError,
            "offline weight rule",
        ),
        (
            lambda: quantize_activations(torch.ones(2, 32), "fb32", select="two-stage"),
            FormatError,
            "dialectfp4 only",
        ),
    ],
    ids=[
        "ragged-k",
        "float64",
        "nan",
        "nvfp4",
        "mask-two-stage",
        "empty-mask",
        "mask-width",
        "mse",
        "two-stage-fb32",
    ],
)
def test_errors_are_one_sentence(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("quantizer", [quantize_activations, quantize_activations_torch])
@pytest.mark.parametrize(("value", "kind"), [(float("nan"), "a NaN"), (float("-inf"), "an infinity")])
def test_non_finite_blocks_are_named(quantizer, value, kind):
    x = torch.ones(2, 3, 64)
    x[1, 2, 40] = value
    with pytest.raises(InputError, match=rf"^block \(1, 2, 1\) contains {kind}; "):
        quantizer(x, "fb32", config=CONFIG)

"""The registry, its derived tables (exhaustively) and the worked example of NUMERICS.md section 7."""

from fractions import Fraction

import pytest
import torch

import golden
from golden.formats import DIALECTFP4_16, E2M1, FB32, FORMATS, NUM_UCODES, Formatbook, FormatError
from tests import reference_model as ref

BOOKS = [FB32, DIALECTFP4_16, E2M1]


@pytest.mark.parametrize("book", BOOKS, ids=lambda b: b.name)
def test_idx_table_is_nearest_value_ties_up_for_every_dialect_and_code(book):
    for d, dialect in enumerate(book.dialects):
        for u in range(NUM_UCODES):
            # Every magnitude in u's bin [u/2, (u+1)/2) half units maps to the same index.
            for value in (Fraction(u, 2), Fraction(2 * u + 1, 4), Fraction(u + 1, 2) - Fraction(1, 1024)):
                assert book.idx_table[d, u] == ref.nearest_index_ties_up(value, dialect), (d, u, value)


@pytest.mark.parametrize("book", BOOKS, ids=lambda b: b.name)
def test_err_table_is_bin_centre_error_and_fits_ten_bits(book):
    for d, dialect in enumerate(book.dialects):
        for u in range(NUM_UCODES):
            assert book.err_table[d, u] == ref.bin_centre_error(u, dialect)
    assert book.err_table.max() <= 961 and book.err_bits <= 10


def test_two_stage_ranges_derive_to_the_spec_table():
    assert DIALECTFP4_16.two_stage_ranges.tolist() == [list(map(list, p)) for p in ref.SPEC_TWO_STAGE_RANGES]


def test_dialectfp4_pairs_share_their_maximum_and_dialect7_is_e2m1():
    for p in range(8):
        assert DIALECTFP4_16.dialects[2 * p][-1] == DIALECTFP4_16.dialects[2 * p + 1][-1] == 15 - p
    assert DIALECTFP4_16.dialects[7] == E2M1.dialects[0]


def test_fb32_families_cover_every_level_with_max_15_minus_level():
    assert FB32.num_dialects == 32 and FB32.family_size == 8 and FB32.id_bits == 5
    for d, dialect in enumerate(FB32.dialects):
        assert dialect[-1] == 15 - d % 8, d
    assert FB32.dialects[0:8] == DIALECTFP4_16.dialects[0::2]
    assert FB32.dialects[8:16] == DIALECTFP4_16.dialects[1::2]
    assert FB32.family_mask(2).nonzero().flatten().tolist() == list(range(16, 24))


@pytest.mark.parametrize(
    "name, bits", [("fb32", 4 + 13 / 32), ("dialectfp4", 4 + 12 / 32), ("mxfp4", 4.25), ("nvfp4", 4.5), ("nvfp4-46", 4.5)]
)
def test_bits_per_element(name, bits):
    assert FORMATS[name].bits_per_element() == bits


def test_dialect_bits_per_element_scale_with_the_block():
    assert FORMATS["fb32"].bits_per_element(16) == 4 + 13 / 16
    assert FORMATS["dialectfp4"].bits_per_element(64) == 4 + 12 / 64


@pytest.mark.parametrize(
    "dialects, problem",
    [
        (((0, 1, 2),), "has 3 values"),
        (((1, 2, 3, 4, 5, 6, 7, 8),), "must start at 0"),
        (((0, 1, 2, 2, 4, 5, 6, 7),), "increase strictly"),
        (((0, 1, 2, 3, 4, 5, 6, 16),), "within 15"),
    ],
)
def test_malformed_formatbooks_are_rejected_with_a_sentence(dialects, problem):
    with pytest.raises(FormatError, match=problem):
        Formatbook(name="bad", dialects=dialects)


def test_unknown_format_names_the_known_ones():
    with pytest.raises(FormatError, match="unknown format 'fp4'.*fb32"):
        golden.get_format("fp4")


WORKED_EXAMPLE = [
    0.91, -0.12, 0.33, 0.05, -1.72, 0.64, 0.27, -0.48, 1.31, 0.02, -0.77, 0.19, 0.56, -0.09, 2.95, -0.35,
    0.44, 0.71, -1.05, 0.13, -0.21, 0.08, 1.88, -0.60, 0.30, -0.03, 0.97, 0.15, -2.41, 0.52, -0.26, 0.11,
]  # fmt: skip


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_numerics_section7_worked_example(dtype):
    x = torch.tensor(WORKED_EXAMPLE, dtype=dtype)
    e, u, _ = golden.front_end(x.reshape(1, 32).to(torch.float64))
    assert e.item() == -1
    assert u.flatten().tolist() == [7, 0, 2, 0, 13, 5, 2, 3, 10, 0, 6, 1, 4, 0, 23, 2, 3, 5, 8, 1, 1, 0, 15, 4,
                                    2, 0, 7, 1, 19, 4, 2, 0]  # fmt: skip
    q = golden.quantize(x, "dialectfp4")
    assert q.exponent.item() == 126 and q.dialect.item() == 9
    assert "".join(f"{c:x}" for c in q.codes.tolist()) == "4810e31a50b1287923c1906a1841f290"
    assert ref.two_stage_select(u.flatten().tolist()) == 9


E2M1_CASES = [  # (input, expected code): every grid value, every tie, saturation, signed zeros
    (0.0, 0x0), (0.5, 0x1), (1.0, 0x2), (1.5, 0x3), (2.0, 0x4), (3.0, 0x5), (4.0, 0x6), (6.0, 0x7),
    (0.25, 0x0), (0.75, 0x2), (1.25, 0x2), (1.75, 0x4), (2.5, 0x4), (3.5, 0x6), (5.0, 0x6),
    (0.2500001, 0x1), (0.7499999, 0x1), (4.9999995, 0x6), (5.0000005, 0x7), (6.5, 0x7), (1e30, 0x7),
    (-0.0, 0x8), (-0.25, 0x8), (-0.75, 0xA), (-5.0, 0xE), (-7.0, 0xF), (1e-45, 0x0),
]  # fmt: skip


@pytest.mark.parametrize("value, code", E2M1_CASES)
def test_e2m1_rounding_named_cases(value, code):
    for dtype in (torch.float32, torch.float64):
        assert golden.e2m1_encode(torch.tensor([value], dtype=dtype)).item() == code
        assert ref.e2m1_code(Fraction(value if value == value else 0), value < 0 or str(value) == "-0.0") == code


def test_e2m1_every_code_round_trips_through_mxfp4_decode():
    for code in range(16):
        magnitude = E2M1.dialects[0][code & 7] / 2
        value = -magnitude if code & 8 else magnitude
        assert golden.e2m1_encode(torch.tensor([value])).item() == code

"""The fast MSE selection (moment formula + exact tie handling + reference fallback) returns the
reference's dialect ids bit for bit (golden/select.py, ``select_mse`` vs ``select_mse_reference``)."""

import pytest
import torch

import golden.select as select
from block_distributions import DISTRIBUTIONS, corner_blocks, random_blocks
from golden.blocks import BlockedTensor, front_end
from golden.formats import FORMATS, get_format

BOOKS = sorted({spec.formatbook.name: spec.formatbook for spec in FORMATS.values() if spec.is_dialect}.items())


def _both(x, book, mask=None):
    blocked = BlockedTensor(x, x.shape[-1])
    e, u, _ = front_end(blocked.values, blocked.amax)
    return select.select_mse(blocked.values, e, u, book, mask), select.select_mse_reference(
        blocked.values, e, u, book, mask
    )


@pytest.mark.parametrize("book", [b for _, b in BOOKS], ids=[n for n, _ in BOOKS])
@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_fast_mse_equals_the_reference_on_many_blocks(book, distribution):
    x = random_blocks(distribution, 20000, seed=3)
    fast, reference = _both(x, book)
    assert torch.equal(fast, reference)


@pytest.mark.parametrize("block", [16, 32, 64])
def test_fast_mse_equals_the_reference_on_ties_and_corners(block):
    """Blocks whose codes never reach the values where dialects differ tie exactly across dialects
    (lowest id wins); few-code blocks, repeated values and corner blocks stress the tie rule."""
    g = torch.Generator().manual_seed(block)
    few_codes = torch.randint(0, 3, (4000, block), generator=g).to(torch.float32) * 0.25
    few_codes[:, 0] = 1.0  # amax fixed: every block uses only small codes
    repeated = random_blocks("normal", 4000, block, seed=1).round(decimals=1)
    corners = torch.cat(list(corner_blocks(block).values()))
    x = torch.cat([few_codes, repeated, corners, random_blocks("grid", 4000, block, seed=2)])
    for book in (b for _, b in BOOKS):
        fast, reference = _both(x, book)
        assert torch.equal(fast, reference), book.name


def test_fast_mse_equals_the_reference_with_masks_and_bfloat16():
    book = get_format("fb32").formatbook
    x = random_blocks("laplace", 8192, seed=9).to(torch.bfloat16).to(torch.float32)
    g = torch.Generator().manual_seed(4)
    mask = torch.rand(8192, book.num_dialects, generator=g) < 0.3
    mask[:, 0] |= ~mask.any(-1)
    fast, reference = _both(x, book, mask[:, None, :])  # (blocks, 1 block per row, dialects)
    assert torch.equal(fast, reference)
    families = book.family_mask(1)
    fast, reference = _both(x, book, families)
    assert torch.equal(fast, reference)


def test_fast_mse_decides_most_blocks_without_the_reference(monkeypatch):
    """The speed comes from deciding blocks by the moment formula: on normal weights only a small
    fraction of blocks may fall back to the per-dialect reference."""
    calls = []
    original = select.select_mse_reference

    def counting(blocks, *args, **kwargs):
        calls.append(blocks.shape[0])
        return original(blocks, *args, **kwargs)

    monkeypatch.setattr(select, "select_mse_reference", counting)
    x = random_blocks("normal", 20000, seed=5)
    _both_fast = select.select_mse
    blocked = BlockedTensor(x, 32)
    e, u, _ = front_end(blocked.values, blocked.amax)
    _both_fast(blocked.values, e, u, get_format("fb32").formatbook)
    assert sum(calls) < 0.01 * x.shape[0], sum(calls)


# --- the exact-integer path (bfloat16 data: every nonzero-code element on the 2^(e-9) grid) --------


@pytest.mark.parametrize("book", [b for _, b in BOOKS if b.grid.value == "half"], ids=[n for n, b in BOOKS if b.grid.value == "half"])
@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_exact_path_equals_the_reference_on_bfloat16_blocks(book, distribution):
    x = random_blocks(distribution, 12000, seed=11).to(torch.bfloat16).to(torch.float32)
    fast, reference = _both(x, book)
    assert torch.equal(fast, reference)


@pytest.mark.parametrize("block", [16, 32, 64])
def test_exact_path_equals_the_reference_on_bfloat16_ties_and_tiny_elements(block):
    """Equal exact sums of different terms: decided only where the reference's float64 sums are
    exact (every element a multiple of 2^(e-9-k)); a far-below-grid element sends the block to the
    reference. Corner blocks (subnormals, huge values) ride along."""
    g = torch.Generator().manual_seed(block)
    few_codes = (torch.randint(0, 12, (3000, block), generator=g).to(torch.float32) * 0.5).to(torch.bfloat16)
    few_codes[:, 0] = 7.5
    tiny = few_codes.clone()
    tiny[:, 1] = 2.0**-60  # a code-0 element far below the grid: its square rounds in float64
    corners = torch.cat(list(corner_blocks(block).values())).to(torch.bfloat16)
    x = torch.cat([few_codes, tiny, corners]).to(torch.float32)
    for book in (b for _, b in BOOKS if b.grid.value == "half"):
        fast, reference = _both(x, book)
        assert torch.equal(fast, reference), book.name


def test_exact_path_equals_the_reference_with_masks():
    book = get_format("fb32").formatbook
    x = random_blocks("normal", 8192, seed=12).to(torch.bfloat16).to(torch.float32)
    g = torch.Generator().manual_seed(5)
    mask = torch.rand(8192, book.num_dialects, generator=g) < 0.3
    mask[:, 3] |= ~mask.any(-1)
    fast, reference = _both(x, book, mask[:, None, :])
    assert torch.equal(fast, reference)


def test_bfloat16_weights_take_the_exact_path_and_rarely_the_reference(monkeypatch):
    """bfloat16 blocks never need the moment formula, and almost never the reference."""
    calls = {"reference": 0, "moments": 0}
    reference, moments = select.select_mse_reference, select._select_mse_moments

    def counting_reference(blocks, *args, **kwargs):
        calls["reference"] += blocks.shape[0]
        return reference(blocks, *args, **kwargs)

    def counting_moments(blocks, *args, **kwargs):
        calls["moments"] += blocks.shape[0]
        return moments(blocks, *args, **kwargs)

    monkeypatch.setattr(select, "select_mse_reference", counting_reference)
    monkeypatch.setattr(select, "_select_mse_moments", counting_moments)
    x = (random_blocks("normal", 20000, seed=6) * 0.02).to(torch.bfloat16).to(torch.float32)
    blocked = BlockedTensor(x, 32)
    e, u, _ = front_end(blocked.values, blocked.amax)
    select.select_mse(blocked.values, e, u, get_format("fb32").formatbook)
    assert calls["moments"] == 0
    assert calls["reference"] < 0.002 * x.shape[0], calls


def test_float32_blocks_fall_back_to_the_moment_formula(monkeypatch):
    calls = []
    moments = select._select_mse_moments
    monkeypatch.setattr(select, "_select_mse_moments", lambda blocks, *a: calls.append(blocks.shape[0]) or moments(blocks, *a))
    x = random_blocks("normal", 1000, seed=7)
    fast, reference = _both(x, get_format("fb32").formatbook)
    assert torch.equal(fast, reference)
    assert sum(calls) == 1000

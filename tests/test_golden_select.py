"""Dialect selection against brute force: LUT (>= 100k blocks), two-stage and MSE, with masks."""

import pytest
import torch

import golden
from golden.formats import DIALECTFP4_16, FB32, NUM_UCODES, FormatError
from tests import reference_model as ref
from tests.block_distributions import DISTRIBUTIONS, corner_blocks, random_blocks

BLOCKS_PER_DISTRIBUTION = 16_384  # x 8 distributions = 131k blocks per formatbook


def brute_force_lut(u: torch.Tensor, book, mask=None) -> torch.Tensor:
    """argmin_d sum_i min_k (2u_i + 1 - 4 h[d][k])^2, lowest id on ties, by explicit search."""
    centre_err = torch.tensor(
        [[min((2 * v + 1 - 4 * h) ** 2 for h in dialect) for v in range(NUM_UCODES)] for dialect in book.dialects]
    )
    costs = torch.stack([centre_err[d][u].sum(-1) for d in range(book.num_dialects)], dim=-1)
    if mask is not None:
        costs = torch.where(mask, costs, torch.full_like(costs, 1 << 40))
    best = torch.full(costs.shape[:-1], -1)
    best_cost = torch.full(costs.shape[:-1], 1 << 50)
    for d in range(book.num_dialects):  # strict '<' keeps the lowest id on ties
        better = costs[..., d] < best_cost
        best = torch.where(better, d, best)
        best_cost = torch.where(better, costs[..., d], best_cost)
    return best


@pytest.mark.parametrize("book", [FB32, DIALECTFP4_16], ids=lambda b: b.name)
@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_lut_selection_equals_brute_force_argmin(book, distribution):
    x = random_blocks(distribution, BLOCKS_PER_DISTRIBUTION, seed=DISTRIBUTIONS.index(distribution))
    _, u, _ = golden.front_end(x.reshape(-1, 32))
    assert torch.equal(golden.select_lut(u, book), brute_force_lut(u, book))


@pytest.mark.parametrize("distribution", ["normal", "student-t", "grid"])
def test_lut_selection_with_random_candidate_masks(distribution):
    x = random_blocks(distribution, 8192, seed=7)
    _, u, _ = golden.front_end(x)
    g = torch.Generator().manual_seed(1)
    mask = torch.rand(8192, FB32.num_dialects, generator=g) < 0.3
    mask[torch.arange(8192), torch.randint(0, 32, (8192,), generator=g)] = True  # never empty
    chosen = golden.select_lut(u, FB32, mask)
    assert mask[torch.arange(8192), chosen].all()
    assert torch.equal(chosen, brute_force_lut(u, FB32, mask))


def test_family_mask_restricts_to_that_family():
    _, u, _ = golden.front_end(random_blocks("laplace", 4096))
    for family in range(FB32.num_families):
        chosen = golden.select_lut(u, FB32, FB32.family_mask(family))
        assert ((chosen // 8) == family).all()
        assert torch.equal(chosen, brute_force_lut(u, FB32, FB32.family_mask(family).expand(4096, 32)))


@pytest.mark.parametrize("name, block", corner_blocks().items())
def test_selection_corner_blocks_match_the_reference(name, block):
    values = block.flatten().tolist()
    e, u, _ = golden.front_end(block)
    us = u.flatten().tolist()
    assert e.item() == ref.shared_exponent(values)
    assert us == [ref.ucode(v, e.item()) for v in values]
    assert golden.select_lut(u, FB32).item() == ref.lut_select(us, FB32.dialects)
    assert golden.select_two_stage(u).item() == ref.two_stage_select(us)


def test_cost_ties_go_to_the_lowest_id():
    zero_u = torch.zeros(1, 32, dtype=torch.int64)  # every dialect costs 32 * ERR[d][0] = 32
    assert golden.lut_costs(zero_u, FB32).unique().numel() == 1
    assert golden.select_lut(zero_u, FB32).item() == 0
    mask = torch.zeros(32, dtype=torch.bool)
    mask[[5, 17, 30]] = True
    assert golden.select_lut(zero_u, FB32, mask).item() == 5


def test_empty_or_misshaped_masks_are_rejected():
    _, u, _ = golden.front_end(random_blocks("normal", 4))
    with pytest.raises(FormatError, match="no dialect to choose"):
        golden.select_lut(u, FB32, torch.zeros(32, dtype=torch.bool))
    with pytest.raises(FormatError, match="last axis 32"):
        golden.select_lut(u, FB32, torch.ones(16, dtype=torch.bool))


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_two_stage_selection_equals_the_reference(distribution):
    x = random_blocks(distribution, 2048, seed=3)
    _, u, _ = golden.front_end(x)
    expected = [ref.two_stage_select(row) for row in u.tolist()]
    assert golden.select_two_stage(u).tolist() == expected


def brute_force_mse(x: torch.Tensor, book, mask=None) -> torch.Tensor:
    """argmin_d sum_i (|x_i| - h[d][nearest(u_i)] 2^(e-1))^2 in float64, nearest by search."""
    e, u, _ = golden.front_end(x)
    step = torch.exp2((e - 1).to(torch.float64))[:, None]
    sse = []
    for dialect in book.dialects:
        h = torch.tensor(dialect, dtype=torch.float64)
        # nearest value to the bin's centre (2u+1)/4 half units: no ties possible there
        nearest = h[((2 * u[..., None] + 1) / 4 - h).abs().argmin(-1)]
        sse.append(((x.to(torch.float64).abs() - nearest * step) ** 2).sum(-1))
    sse = torch.stack(sse, -1)
    if mask is not None:
        sse = torch.where(mask, sse, torch.full_like(sse, float("inf")))
    return sse.argmin(-1)  # first minimum: lowest id


@pytest.mark.parametrize("book", [FB32, DIALECTFP4_16], ids=lambda b: b.name)
@pytest.mark.parametrize("distribution", ["normal", "student-t", "log-uniform", "grid", "all-equal"])
def test_mse_selection_equals_brute_force_float64(book, distribution):
    x = random_blocks(distribution, 4096, seed=11)
    e, u, _ = golden.front_end(x)
    assert torch.equal(golden.select_mse(x, e, u, book), brute_force_mse(x, book))


def test_mse_selection_matches_the_per_block_reference_with_a_mask():
    x = random_blocks("laplace", 64, seed=5)
    e, u, _ = golden.front_end(x)
    mask = FB32.family_mask(2)
    got = golden.select_mse(x, e, u, FB32, mask)
    for row, d in zip(x.tolist(), got.tolist()):
        assert d == ref.mse_select(row, ref.shared_exponent(row), FB32.dialects, mask.tolist())

"""Dialect selection: which dialect of a formatbook each block uses (NUMERICS.md section 2.2).

All three rules take the 5-bit codes ``u`` of a batch of blocks, shape ``(..., nblocks, B)``, and
return int64 dialect ids of shape ``(..., nblocks)``; ties always go to the lowest id.
"""

from __future__ import annotations

import torch

from .formats import DIALECTFP4_16, NUM_UCODES, Formatbook, FormatError

__all__ = ["check_candidate_mask", "code_histogram", "lut_costs", "select_lut", "select_mse", "select_two_stage"]


def code_histogram(u: torch.Tensor, num_ucodes: int = NUM_UCODES) -> torch.Tensor:
    """H[..., v] = #{i : u_i = v}, int64 of shape ``(..., nblocks, num_ucodes)`` (32 by default;
    64 for quarter-grid codes)."""
    # One bincount over (block index, code) pairs: faster than a scatter-add per block.
    num_blocks = u[..., 0].numel()
    pair = (torch.arange(num_blocks).reshape(u.shape[:-1]) * num_ucodes)[..., None] + u
    return torch.bincount(pair.flatten(), minlength=num_blocks * num_ucodes).reshape(*u.shape[:-1], num_ucodes)


def lut_costs(u: torch.Tensor, book: Formatbook) -> torch.Tensor:
    """cost[..., d] = sum_i ERR[d][u_i] (int64, ``(..., nblocks, D)``), as ERR @ H.

    The product runs in float32: every count is <= B <= 64, every entry <= 961 (half grid) or
    <= 3969 (quarter grid) and every sum < 2**24, so the float GEMM is exact whatever its
    summation order.
    """
    hist = code_histogram(u, book.num_ucodes).to(torch.float32)
    return (hist @ book.err_table.T.to(torch.float32)).to(torch.int64)


def check_candidate_mask(mask: torch.Tensor, batch_shape: tuple[int, ...], book: Formatbook) -> torch.Tensor:
    """Validate a candidate mask and broadcast it to ``(*batch_shape, num_dialects)``.

    Raises FormatError (one sentence) for a non-boolean or misshaped mask, one that does not
    broadcast to the blocks, or one that leaves a block without any dialect.
    """
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape[-1:] != (book.num_dialects,):
        raise FormatError(
            f"candidate mask must be a boolean tensor with last axis {book.num_dialects} ({book.name}), "
            f"got {getattr(mask, 'dtype', type(mask).__name__)} of shape {tuple(getattr(mask, 'shape', ()))}"
        )
    try:
        mask = mask.expand(*batch_shape, book.num_dialects)
    except RuntimeError:
        raise FormatError(
            f"candidate mask of shape {tuple(mask.shape)} does not broadcast to the blocks "
            f"{tuple(batch_shape)} x {book.num_dialects} dialects"
        ) from None
    if not mask.any(-1).all():
        raise FormatError("candidate mask leaves a block with no dialect to choose from")
    return mask


def _masked_argmin(cost: torch.Tensor, mask: torch.Tensor | None, book: Formatbook) -> torch.Tensor:
    if mask is not None:
        mask = check_candidate_mask(mask, cost.shape[:-1], book)
        cost = cost.masked_fill(~mask, torch.iinfo(cost.dtype).max if not cost.is_floating_point() else float("inf"))
    return cost.argmin(-1)  # first minimum: ties to the lowest id


def select_lut(u: torch.Tensor, book: Formatbook, mask: torch.Tensor | None = None) -> torch.Tensor:
    """LUT selection: argmin over (allowed) dialects of the bin-centre cost ERR @ H."""
    return _masked_argmin(lut_costs(u, book), mask, book)


def select_two_stage(u: torch.Tensor, book: Formatbook = DIALECTFP4_16) -> torch.Tensor:
    """BlockDialect's two-stage online selection (DialectFP4-16 only).

    Stage 1: the truncated block maximum m = clamp(max(u) >> 1, 8, 15) picks pair p = 15 - m.
    Stage 2: count the codes inside each dialect's beneficial range; A (2p) wins ties.
    An all-zero block gets dialect 0.
    """
    if book is not DIALECTFP4_16:
        raise FormatError(f"two-stage selection is defined for DialectFP4-16 only, not {book.name}")
    umax = u.amax(-1)
    pair = 15 - (umax >> 1).clamp(8, 15)
    ranges = book.two_stage_ranges[pair]  # (..., 2 [A/B], 2 [lo/hi])
    lo, hi = ranges[..., 0][..., None, :], ranges[..., 1][..., None, :]  # (..., 1, 2)
    inside = (u[..., :, None] >= lo) & (u[..., :, None] < hi)  # (..., B, 2)
    count = inside.sum(-2)
    dialect = 2 * pair + (count[..., 1] > count[..., 0]).to(torch.int64)
    return torch.where(umax == 0, torch.zeros_like(dialect), dialect)


def select_mse(
    blocks: torch.Tensor,
    e: torch.Tensor | None,
    u: torch.Tensor,
    book: Formatbook,
    mask: torch.Tensor | None = None,
    *,
    step: torch.Tensor | None = None,
) -> torch.Tensor:
    """Offline MSE selection: argmin_d sum_i (x_i - deq_d(x_i))^2 in float64, ties to lowest id.

    ``deq_d`` is the dialect quantizer of NUMERICS 2.1 (nearest index of the truncated code).
    E8M0 scale: one grid unit is 2^(e - g) and ``deq_d`` is exact in float64. E4M3 scale: pass
    ``step`` = fl32(t * s) * 2^-g per block (float64) and ``e = None``; ``deq_d`` is then the stored
    float32 value fl32(h * 2^-g * fl32(t * s)), as ``QuantizedTensor.dequantize`` gives it.
    Dialects are visited one at a time so memory stays at one dequantized copy of the blocks.
    """
    from .blocks import exact_ldexp

    x = blocks.to(torch.float64)
    round_to_float32 = step is not None
    if step is None:
        step = exact_ldexp(torch.ones_like(e, dtype=torch.float64), e - book.grid.shift)  # one grid unit
    batch = step.shape
    step = step[..., None]
    best = torch.full(batch, float("inf"), dtype=torch.float64)
    best_id = torch.zeros(batch, dtype=torch.int64)
    allowed = None if mask is None else check_candidate_mask(mask, batch, book)
    magnitude = x.abs()
    for d in range(book.num_dialects):
        deq = book.units[d][book.idx_table[d][u]].to(torch.float64) * step
        if round_to_float32:
            deq = deq.to(torch.float32).to(torch.float64)
        sse = ((magnitude - deq) ** 2).sum(-1)
        if allowed is not None:
            sse = torch.where(allowed[..., d], sse, torch.full_like(sse, float("inf")))
        better = sse < best  # strict: an equal later dialect never displaces an earlier one
        best = torch.where(better, sse, best)
        best_id = torch.where(better, torch.full_like(best_id, d), best_id)
    return best_id

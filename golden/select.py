"""Dialect selection: which dialect of a formatbook each block uses (NUMERICS.md section 2.2).

All three rules take the 5-bit codes ``u`` of a batch of blocks, shape ``(..., nblocks, B)``, and
return int64 dialect ids of shape ``(..., nblocks)``; ties always go to the lowest id.
"""

from __future__ import annotations

import collections
import functools

import torch

from .formats import DIALECTFP4_16, NUM_UCODES, Formatbook, FormatError, Grid

__all__ = ["check_candidate_mask", "code_histogram", "device_table", "lut_costs", "select_lut", "select_mse", "select_mse_reference", "select_two_stage"]


#: Most recently used device tables kept (formatbook fitting builds many short-lived books).
_DEVICE_TABLES_KEPT = 256
_DEVICE_TABLES: collections.OrderedDict[tuple, torch.Tensor] = collections.OrderedDict()


def device_table(owner, name: str, device: torch.device | str, build) -> torch.Tensor:
    """The table ``build()`` (derived from ``owner``, e.g. a formatbook, on the CPU) on ``device``,
    built and moved there once and then reused (the last ``_DEVICE_TABLES_KEPT`` of them): a model
    on a GPU reads every table from the GPU, with no copy per call. ``name`` tells apart the tables
    of one owner."""
    key = (owner, name, torch.device(device))
    table = _DEVICE_TABLES.get(key)
    if table is None:
        table = _DEVICE_TABLES[key] = build().to(device)
        if len(_DEVICE_TABLES) > _DEVICE_TABLES_KEPT:
            _DEVICE_TABLES.popitem(last=False)
    else:
        _DEVICE_TABLES.move_to_end(key)
    return table


def code_histogram(u: torch.Tensor, num_ucodes: int = NUM_UCODES) -> torch.Tensor:
    """H[..., v] = #{i : u_i = v}, int64 of shape ``(..., nblocks, num_ucodes)`` (32 by default;
    64 for quarter-grid codes)."""
    # One bincount over (block index, code) pairs: faster than a scatter-add per block.
    num_blocks = u[..., 0].numel()
    pair = (torch.arange(num_blocks, device=u.device).reshape(u.shape[:-1]) * num_ucodes)[..., None] + u
    return torch.bincount(pair.flatten(), minlength=num_blocks * num_ucodes).reshape(*u.shape[:-1], num_ucodes)


def lut_costs(u: torch.Tensor, book: Formatbook) -> torch.Tensor:
    """cost[..., d] = sum_i ERR[d][u_i] (int64, ``(..., nblocks, D)``), i.e. ERR @ H.

    The sums run in float32: every count is <= B <= 64, every entry <= 961 (half grid) or
    <= 3969 (quarter grid) and every sum < 2**24, so the float GEMM is exact whatever its
    summation order.
    """
    # Computed as an embedding-bag sum of ERR's columns (the same exact integers as ERR @ H).
    if u.dtype not in (torch.int32, torch.int64):
        u = u.to(torch.int64)
    rows = device_table(book, "err_rows", u.device, lambda: book.err_table.T.to(torch.float32).contiguous())  # (U, D)
    cost = torch.nn.functional.embedding_bag(u.reshape(-1, u.shape[-1]), rows, mode="sum")
    return cost.to(torch.int64).reshape(*u.shape[:-1], book.num_dialects)


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
    ranges = device_table(book, "two_stage_ranges", u.device, lambda: book.two_stage_ranges)[pair]  # (..., 2, 2)
    lo, hi = ranges[..., 0][..., None, :], ranges[..., 1][..., None, :]  # (..., 1, 2)
    inside = (u[..., :, None] >= lo) & (u[..., :, None] < hi)  # (..., B, 2)
    count = inside.sum(-2)
    dialect = 2 * pair + (count[..., 1] > count[..., 0]).to(torch.int64)
    return torch.where(umax == 0, torch.zeros_like(dialect), dialect)


#: Blocks per chunk of the fast MSE selection (bounds its temporaries to a few tens of MiB).
_MSE_CHUNK_BLOCKS = 1 << 15
#: Relative bound, against A = sum_i (m_i^2 + 2 m_i v_i + v_i^2), on the float64 rounding error of
#: the reference SSE plus that of the moment formula: (B + 3) u A and (B + 36) u A with u = 2^-53,
#: below 2^-42 A together for blocks of B <= 1024 (larger blocks use the reference).
_MSE_REL_BOUND = 2.0**-40


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

    ``deq_d`` is the dialect quantizer of NUMERICS 2.1 (nearest index of the truncated code). The
    result is that of ``select_mse_reference`` (one float64 SSE per dialect, summed over the block)
    bit for bit, computed faster: per block, with ``m = |x| / 2^(e-1)`` and ``V_d[c]`` the half-unit
    value of code ``c`` in dialect ``d``, ``SSE_d = sum m^2 - 2 sum_c S1[c] V_d[c] + sum_c n[c] V_d[c]^2``
    from the code histogram ``n`` and per-code sums ``S1`` (two small GEMMs instead of one pass per
    dialect). Both formulas are within ``_MSE_REL_BOUND * A_d`` of the exact SSE
    (``A_d = sum m^2 + 2 S1.V_d + n.V_d^2``), so a block is decided here when every other allowed
    dialect is either worse by more than both bounds or equal to the winner on every code the block
    holds (then the reference's SSEs are bitwise equal and the lowest such id wins); the remaining
    blocks (near-ties) run ``select_mse_reference``. Runs on the device of ``blocks``.

    Other grids and scales (NUMERICS section 8) run ``select_mse_reference``: on the quarter grid
    one grid unit is 2^(e - 2); with an E4M3 scale pass ``step`` = fl32(t * s) * 2^-g per block
    (float64) and ``e = None``, and ``deq_d`` is the stored float32 value fl32(h * 2^-g * fl32(t * s)).
    """
    if step is not None or book.grid is not Grid.HALF:
        return select_mse_reference(blocks, e, u, book, mask, step=step)
    allowed = None if mask is None else check_candidate_mask(mask, e.shape, book)
    if blocks.dtype == torch.float64 or blocks.shape[-1] > 1024:
        # float64 input can underflow the reference's squared differences; keep its exact rounding.
        return select_mse_reference(blocks, e, u, book, mask)
    batch_shape, block = e.shape, blocks.shape[-1]
    device = blocks.device
    flat_blocks = blocks.reshape(-1, block)
    flat_e, flat_u = e.reshape(-1), u.reshape(-1, block)
    flat_allowed = None if allowed is None else allowed.reshape(-1, book.num_dialects)
    values = device_table(book, "mse_values", device, lambda: book.half_units.gather(1, book.idx_table).to(torch.float64))
    exact = bool((book.half_units[:, 0] == 0).all())  # code 0 is 0 in every dialect
    table = device_table(book, "exact_terms", device, lambda: _exact_term_table_cpu(book)) if exact else None
    differing = device_table(book, "differing_codes", device, lambda: _differing_codes_cpu(book)) if exact else None
    out = torch.empty(flat_e.shape, dtype=torch.int64, device=device)
    chunk_blocks = _MSE_CHUNK_BLOCKS if table is None or device.type != "cpu" else _MSE_TABLE_CHUNK_BLOCKS
    for start in range(0, flat_e.numel(), chunk_blocks):
        rows = slice(start, start + chunk_blocks)
        chunk_allowed = None if flat_allowed is None else flat_allowed[rows]
        if table is None:
            chosen, undecided = _select_mse_moments(
                flat_blocks[rows], flat_e[rows], flat_u[rows], values, chunk_allowed
            )
        else:
            chosen, undecided, off_grid = _select_mse_exact(
                flat_blocks[rows], flat_e[rows], flat_u[rows], values, table, differing, chunk_allowed
            )
            if off_grid.any():  # float32 data: the moment formula decides these blocks
                index = off_grid.nonzero().squeeze(1)
                chosen[index], undecided[index] = _select_mse_moments(
                    flat_blocks[rows][index], flat_e[rows][index], flat_u[rows][index], values,
                    None if chunk_allowed is None else chunk_allowed[index],
                )  # fmt: skip
        if undecided.any():
            index = undecided.nonzero().squeeze(1)
            chosen[index] = select_mse_reference(
                flat_blocks[rows][index], flat_e[rows][index], flat_u[rows][index], book,
                None if chunk_allowed is None else chunk_allowed[index],
            )  # fmt: skip
        out[rows] = chosen
    return out.reshape(batch_shape)


#: Blocks per chunk of the exact-integer path (its temporaries stay in the CPU's L2 cache).
_MSE_TABLE_CHUNK_BLOCKS = 1 << 12
#: The exact-integer path scales each block so that a bfloat16 element with a nonzero code is an
#: integer: M = |x| / 2^(e-1) * 2^FRACTION_BITS (bfloat16 has 8 significant bits, so 7 below the
#: leading one, and a nonzero code means |x| >= 2^(e-2), i.e. M >= 2^(FRACTION_BITS - 1)).
_EXACT_FRACTION_BITS = 8


#: Each exact term T < 2^24 is split as T = 2^12 T_hi + T_lo so that float32 sums of either half
#: over a block (< 2^12 * B <= 2^22) are exact whatever the summation order.
_TERM_SPLIT_BITS = 12


@functools.lru_cache(maxsize=16)
def _exact_term_table_cpu(book: Formatbook) -> torch.Tensor:
    """float32 ``(32 * 2^7, 2 D)``: row k holds ``T[k, d] = (k - 2^8 V_d[k >> 7])^2`` for k >= 128
    (0 below: codes 0, whose value is 0 in every dialect, add the same term to every dialect's
    SSE) split into ``[T_hi | T_lo]`` (``_TERM_SPLIT_BITS``)."""
    scale = 1 << _EXACT_FRACTION_BITS
    values = book.half_units.to(torch.int64).gather(1, book.idx_table.to(torch.int64))  # (D, 32)
    k = torch.arange(NUM_UCODES * scale // 2)
    terms = (k[:, None] - scale * values.T[k >> (_EXACT_FRACTION_BITS - 1)]) ** 2  # (4096, D) exact ints
    terms[k < scale // 2] = 0
    assert int(terms.max()) < 1 << (2 * _TERM_SPLIT_BITS)
    return torch.cat([terms >> _TERM_SPLIT_BITS, terms & ((1 << _TERM_SPLIT_BITS) - 1)], 1).to(torch.float32)


@functools.cache
def _code_bits(num_ucodes: int) -> torch.Tensor:
    """int64 ``(U,)``: 2^c for every nonzero code c, 0 for code 0 (CPU; U <= 63)."""
    bits = torch.ones(num_ucodes, dtype=torch.int64) << torch.arange(num_ucodes)
    bits[0] = 0
    return bits


@functools.lru_cache(maxsize=16)
def _differing_codes_cpu(book: Formatbook) -> torch.Tensor:
    """int64 ``(D, D)``: bit c of ``[w, d]`` set where dialects w and d give code c different values."""
    values = book.half_units.gather(1, book.idx_table)
    differs = values[:, None, :] != values[None, :, :]  # (D, D, U)
    return (differs.to(torch.int64) * _code_bits(values.shape[1])).sum(-1)


def _select_mse_exact(blocks, e, u, values, table, differing, allowed):
    """``(dialect ids, undecided mask, off-grid mask)`` of ``(n, B)`` blocks by exact integer SSEs.

    With ``M_i = |x_i| 2^(9-e)`` an integer for every element of nonzero code (true for bfloat16
    data; checked per block), ``SSE_d * 2^(18-2e) = C + sum_i T[M_i, d]`` exactly, where ``T`` is
    ``_exact_term_table`` and ``C`` (the code-0 elements' squares) is the same for every dialect.
    The reference sums non-negative terms in float64, each exact (a difference of two numbers on
    the 2^(e-9) grid below 2^(e+3), squared in 24 bits), so its relative error is below
    (B - 1) 2^-53; two dialects whose exact sums differ (by at least one unit, against a total
    below B (2^24 + 2^14)) are therefore ordered the same by the reference. Dialects with equal
    exact sums are decided when they equal the lowest of them on every code the block holds, or
    when the reference's sums are exact (then its sums are bitwise equal and the lowest id wins);
    other blocks are
    returned as undecided, and blocks whose elements are not on the grid (float32 data) as off-grid.
    """
    from .blocks import exact_ldexp

    count, block = u.shape
    scaled = exact_ldexp(blocks.abs(), (_EXACT_FRACTION_BITS + 1 - e)[:, None])  # M, < 4096
    # On the grid: every element of nonzero code (M >= 128) is an integer (raising the others to
    # 128 makes that "every element is an integer").
    raised = scaled.clamp(min=1 << (_EXACT_FRACTION_BITS - 1))
    on_grid = (raised - raised.trunc()).amax(-1) == 0  # (a float reduction: faster than bool all)
    index = scaled.clamp_(max=table.shape[0] - 1).to(torch.int32)  # the cast truncates: M's floor
    halves = torch.nn.functional.embedding_bag(index, table, mode="sum").to(torch.int32)  # exact sums
    num_dialects = values.shape[0]
    # (n, D): the exact sums, integers below B * 2^24 <= 2^30 (B <= 64; larger blocks in int64).
    wide = torch.int32 if block <= 64 else torch.int64
    sse = (halves[:, :num_dialects].to(wide) << _TERM_SPLIT_BITS) + halves[:, num_dialects:].to(wide)
    if allowed is not None:
        sse = sse.masked_fill(~allowed, torch.iinfo(wide).max)
    chosen = sse.argmin(-1)  # the lowest id among the minima
    tied = sse == sse.gather(1, chosen[:, None])
    undecided = torch.zeros(count, dtype=torch.bool, device=u.device)
    ambiguous = ((tied.sum(-1) > 1) & on_grid).nonzero().squeeze(1)
    if ambiguous.numel():
        # Tied dialects must equal the chosen one on every nonzero code present in the block.
        present = torch.zeros(ambiguous.numel(), values.shape[1], dtype=torch.bool, device=u.device)
        present.scatter_(1, u[ambiguous].to(torch.int64), True)
        code_bits = device_table(values.shape[1], "code_bits", u.device, lambda: _code_bits(values.shape[1]))
        present_bits = (present.to(torch.int64) * code_bits).sum(-1)
        differs = (differing[chosen[ambiguous]] & present_bits[:, None]) != 0  # (k, D)
        unequal = (differs & tied[ambiguous]).any(-1)
        # Equal exact sums of different terms still tie bitwise when the reference's float64 sums
        # are exact: every element a multiple of 2^(e-9-k) makes every term and partial sum a
        # multiple of 2^(2e-18-2k) below B 2^(2e+6) <= 2^(2e-18-2k+53), so nothing is rounded.
        index = ambiguous[unequal]
        if index.numel():
            k = (29 - (block - 1).bit_length()) // 2
            x = blocks[index].abs()
            fine = exact_ldexp(x, (_EXACT_FRACTION_BITS + 1 + k - e[index])[:, None])
            exact = ((fine == fine.trunc()) & ((fine != 0) | (x == 0))).all(-1)  # a few blocks
            undecided[index] = ~exact
    return chosen, undecided, ~on_grid


def _select_mse_moments(blocks, e, u, values, allowed):
    """``(dialect ids, undecided mask)`` of ``(n, B)`` blocks by the moment formula (see select_mse)."""
    from .blocks import exact_ldexp

    count, block = u.shape
    m = exact_ldexp(blocks.to(torch.float64).abs(), (1 - e)[:, None])  # |x| / 2^(e-1), exact
    pair = (torch.arange(count, device=u.device) * NUM_UCODES)[:, None] + u
    hist = torch.bincount(pair.flatten(), minlength=count * NUM_UCODES).reshape(count, NUM_UCODES)
    s1 = torch.zeros(count * NUM_UCODES, dtype=torch.float64, device=u.device)
    s1.index_add_(0, pair.flatten(), m.flatten())
    s1 = s1.reshape(count, NUM_UCODES)
    s2 = (m * m).sum(-1, keepdim=True)
    # One GEMM for the SSE and one for its error scale: [S1, n] @ [-2 V ; V^2] and [S1, n] @ [2 V ; V^2].
    stats = torch.cat([s1, hist.to(torch.float64)], 1)  # (n, 64)
    squares = values * values
    sse = torch.addmm(s2, stats, torch.cat([-2.0 * values, squares], 1).T)
    bound = torch.addmm(s2, stats, torch.cat([2.0 * values, squares], 1).T).mul_(_MSE_REL_BOUND)
    if allowed is not None:
        sse = sse.masked_fill(~allowed, float("inf"))
    winner = sse.argmin(-1)
    # Dialects equal to the winner on every code present in the block tie with it exactly:
    # sum over present codes of (V_d - V_winner)^2, exact in float64 (small integers), is 0.
    present = (hist > 0).to(torch.float64)
    win_values = values[winner] * present  # (n, 32)
    mismatch = torch.addmm(
        (win_values * win_values).sum(-1, keepdim=True),
        torch.cat([present, win_values], 1),
        torch.cat([squares, -2.0 * values], 1).T,
    )
    same = mismatch == 0
    if allowed is not None:
        same &= allowed
    chosen = same.to(torch.uint8).argmax(-1)  # the first (lowest) id tying with the winner
    win_sse = sse.gather(1, winner[:, None])
    win_bound = bound.gather(1, winner[:, None])
    separated = (sse - bound > win_sse + win_bound) | same
    if allowed is not None:
        separated |= ~allowed
    return chosen, ~separated.all(-1)


def select_mse_reference(
    blocks: torch.Tensor,
    e: torch.Tensor | None,
    u: torch.Tensor,
    book: Formatbook,
    mask: torch.Tensor | None = None,
    *,
    step: torch.Tensor | None = None,
) -> torch.Tensor:
    """The definition of MSE selection, one dialect at a time: for each dialect the float64
    ``sum_i (|x_i| - deq_d(x_i))^2`` of every block, and the first strict minimum. ``select_mse``
    returns the same ids, faster."""
    from .blocks import exact_ldexp

    x = blocks.to(torch.float64)
    device = x.device
    round_to_float32 = step is not None
    if step is None:
        step = exact_ldexp(torch.ones_like(e, dtype=torch.float64), e - book.grid.shift)  # one grid unit
    batch = step.shape
    step = step[..., None]
    best = torch.full(batch, float("inf"), dtype=torch.float64, device=device)
    best_id = torch.zeros(batch, dtype=torch.int64, device=device)
    allowed = None if mask is None else check_candidate_mask(mask, batch, book)
    magnitude = x.abs()
    units = device_table(book, "units", device, lambda: book.units)
    idx_table = device_table(book, "idx_table", device, lambda: book.idx_table)
    for d in range(book.num_dialects):
        deq = units[d][idx_table[d][u]].to(torch.float64) * step
        if round_to_float32:
            deq = deq.to(torch.float32).to(torch.float64)
        sse = ((magnitude - deq) ** 2).sum(-1)
        if allowed is not None:
            sse = torch.where(allowed[..., d], sse, torch.full_like(sse, float("inf")))
        better = sse < best  # strict: an equal later dialect never displaces an earlier one
        best = torch.where(better, sse, best)
        best_id = torch.where(better, torch.full_like(best_id, d), best_id)
    return best_id

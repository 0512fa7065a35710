"""Fitting a formatbook to captured activations (``sdialect formatbook fit``; docs/ALGORITHMS.md,
"Formatbook calibration").

Data: the float input rows ``x`` of every quantized linear in ``golden.dit`` capture directories
(one directory per sample). The split is by sample *and* by step: the training set is the training
samples' calls at the training steps, the held-out set the other samples' calls at the other steps,
so no held-out tensor shares a sample or a step with the training data.

Algorithm (seeded, deterministic for a given seed and data):

1. **Block data.** Each training tensor goes through the target format's own front end (E8M0
   shared exponent, or E4M3 block scale under the tensor scale; half or quarter grid), giving each
   block its codes ``u``, its magnitudes ``v`` in grid units and its grid unit ``step`` (a real
   value). A block's weight is ``step^2 / sum(x^2 of its tensor)``, so squared errors in grid units
   become the tensor's relative noise and every tensor counts alike (the report's SQNR is per
   tensor). At most ``max_blocks`` blocks are kept (a seeded uniform subsample).
2. **Exact level refit.** For a set of blocks, the 8 levels ``0 = h0 < ... < h7 <= top`` that
   minimize the weighted squared error under the format's own rounding (code ``u`` goes to level
   ``k`` iff ``h[k-1] + h[k] <= u < h[k] + h[k+1]``) are found exactly by dynamic programming over
   (h[k-1], h[k]) with per-code prefix sums of the weights, ``w v`` and ``w v^2``.
3. **LBG splitting + Lloyd.** Start from one dialect fitted to all blocks. Split dialects in two
   (the worst first, until the target count): a dialect's blocks are divided by a seeded 2-means
   on their cumulative code histograms and each half is refitted (step 2). Then Lloyd iterations:
   every block takes its **LUT** dialect (the selection the format uses at run time, NUMERICS 2.2)
   and every dialect is refitted exactly to its blocks; a dialect left without blocks, or a
   duplicate, is replaced by a split of the dialect with the largest error. At the target size the
   book with the lowest training error seen is kept.
4. **SeDA families** (documented rule): with ``F = D / 8`` families, dialects are sorted by their
   largest value (descending, ties by the sum of their values, descending) into 8 **levels** of F
   dialects; inside a level the dialects are ranked by the sum of their values (descending), and
   rank ``f`` goes to family ``f``. Dialect id = ``family * 8 + level`` (FB32's layout): every
   family covers all eight dynamic ranges, and families differ in shape (family 0 the most
   uniform, the last the most concentrated near zero).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch

from .blocks import BlockedTensor, exact_ldexp, front_end
from .formats import MAGNITUDE_CODES, Formatbook, FormatError, FormatSpec, Grid, Scale, dialect_format, get_format
from .quantize import e4m3_dialect_front_end, quantize
from .select import lut_costs

__all__ = [
    "BlockData",
    "FitResult",
    "block_data",
    "family_order",
    "fit_formatbook",
    "fitted_format",
    "held_out_table",
    "refit_levels",
    "sqnr_db",
]


@dataclass
class BlockData:
    """Blocks of the training tensors as the target format sees them."""

    u: torch.Tensor  # int64 (N, B) codes
    v: torch.Tensor  # float64 (N, B) magnitudes in grid units
    w: torch.Tensor  # float64 (N,) block weights (grid unit^2 / tensor energy)
    tensor: torch.Tensor  # int64 (N,) index of the block's tensor

    def __len__(self) -> int:
        return self.u.shape[0]

    def subsample(self, max_blocks: int, gen: torch.Generator) -> "BlockData":
        if len(self) <= max_blocks:
            return self
        keep = torch.randperm(len(self), generator=gen)[:max_blocks].sort().values
        return BlockData(self.u[keep], self.v[keep], self.w[keep] * (len(self) / max_blocks), self.tensor[keep])


def block_data(tensors: list[torch.Tensor], grid: Grid, scale: Scale, block: int) -> BlockData:
    """Front-end every tensor ``(M, K)`` in the target grid and scale (step 1 of the algorithm)."""
    us, vs, ws, ts = [], [], [], []
    for i, x in enumerate(tensors):
        values = BlockedTensor(x, block, pad=True).values.reshape(-1, block)
        energy = float((values.double() ** 2).sum())
        if energy == 0:
            continue
        if scale is Scale.E8M0:
            e, u, _ = front_end(values, None, grid)
            step = exact_ldexp(torch.ones_like(e, dtype=torch.float64), e - grid.shift)
            mag = values.double().abs()
        else:
            x32 = values.to(torch.float32)
            t, s_bits, u, _ = e4m3_dialect_front_end(x32, grid)
            s = s_bits.view(torch.float8_e4m3fn).to(torch.float64)
            step = t.double() * s * 2.0**-grid.shift
            mag = x32.double().abs()
        us.append(u)
        vs.append(mag / step[:, None])
        ws.append(step**2 / energy)
        ts.append(torch.full(step.shape, i, dtype=torch.int64))
    if not us:
        raise FormatError("the training data holds no non-zero tensor to fit a formatbook to")
    return BlockData(torch.cat(us), torch.cat(vs), torch.cat(ws), torch.cat(ts))


def _bin_stats(data: BlockData, num_ucodes: int, index: torch.Tensor | None = None) -> np.ndarray:
    """(3, U) per-code sums of w, w v, w v^2 over the blocks ``index`` (all if None)."""
    u, v, w = (data.u, data.v, data.w) if index is None else (data.u[index], data.v[index], data.w[index])
    wb = w[:, None].expand_as(v).reshape(-1)
    flat_u, flat_v = u.reshape(-1), v.reshape(-1)
    out = np.zeros((3, num_ucodes))
    for k, val in enumerate((wb, wb * flat_v, wb * flat_v**2)):
        out[k] = torch.bincount(flat_u, weights=val, minlength=num_ucodes).numpy()
    return out


def _all_bin_stats(data: BlockData, assign: torch.Tensor, dialects: int, num_ucodes: int) -> np.ndarray:
    """(D, 3, U) per-dialect ``_bin_stats`` of an assignment, in one pass."""
    key = (assign[:, None] * num_ucodes + data.u).reshape(-1)
    wb = data.w[:, None].expand_as(data.v).reshape(-1)
    flat_v = data.v.reshape(-1)
    out = np.zeros((3, dialects * num_ucodes))
    for k, val in enumerate((wb, wb * flat_v, wb * flat_v**2)):
        out[k] = torch.bincount(key, weights=val, minlength=dialects * num_ucodes).numpy()
    return out.reshape(3, dialects, num_ucodes).transpose(1, 0, 2)


def refit_levels(stats: np.ndarray, grid: Grid) -> tuple[tuple[int, ...], float]:
    """The exactly optimal 8 levels for per-code sums ``stats`` (3, U) and their error (step 2).

    Level k's codes are [h[k-1] + h[k], h[k] + h[k+1]) (level 0 from 0, level 7 up to U); the cost
    of codes [lo, hi) at value h is S2 - 2 h S1 + h^2 S0 over the range.
    """
    top, num_u = grid.max_units, grid.num_ucodes
    prefix = np.concatenate((np.zeros((3, 1)), np.cumsum(stats, axis=1)), axis=1)  # (3, U + 1)
    h = np.arange(top + 1)

    def cost(lo, hi, value):
        lo, hi = np.clip(lo, 0, num_u), np.clip(hi, 0, num_u)
        s0, s1, s2 = (prefix[k][hi] - prefix[k][lo] for k in range(3))
        return s2 - 2 * value * s1 + value**2 * s0

    # f[a, b]: best cost of levels 0..k-1 given h[k-1] = a, h[k] = b; start at k = 1 (h0 = 0).
    f = np.full((top + 1, top + 1), np.inf)
    f[0, 1:] = cost(0, h[1:], 0)
    a, b, c = h[:, None, None], h[None, :, None], h[None, None, :]
    step_cost = np.where((a < b) & (b < c), cost(a + b, b + c, b), np.inf)  # level k's codes at h[k] = b
    back = []
    for _ in range(MAGNITUDE_CODES - 2):  # choose h[k+1] = c for k = 1..6
        total = f[:, :, None] + step_cost  # (a, b, c)
        best_a = total.argmin(0)  # (b, c)
        f = np.take_along_axis(total, best_a[None], 0)[0]
        back.append(best_a)
    final = f + cost(h[:, None] + h[None, :], num_u, h[None, :])  # level 7: [h6 + h7, U)
    h6, h7 = np.unravel_index(np.argmin(final), final.shape)
    levels = [int(h7), int(h6)]
    for best_a in reversed(back):
        levels.append(int(best_a[levels[-1], levels[-2]]))
    levels = tuple(reversed(levels))
    assert len(levels) == MAGNITUDE_CODES and levels[0] == 0, levels
    return levels, float(final[h6, h7])


def _true_errors(data: BlockData, book: Formatbook, dialect: torch.Tensor) -> torch.Tensor:
    """(N,) weighted squared error of every block in its dialect (the fit objective)."""
    index = torch.gather(book.idx_table[dialect], 1, data.u)
    levels = torch.gather(book.units[dialect], 1, index).double()
    return ((data.v - levels) ** 2).sum(-1) * data.w


def _split(data: BlockData, index: torch.Tensor, grid: Grid, gen: torch.Generator) -> list[torch.Tensor]:
    """Seeded 2-means of blocks ``index`` on their cumulative code histograms (8 points)."""
    if index.numel() < 2:
        return [index]
    u = data.u[index]
    hist = torch.zeros(index.numel(), grid.num_ucodes, dtype=torch.float32)
    hist.scatter_add_(1, u, torch.ones_like(u, dtype=torch.float32))
    stride = grid.num_ucodes // 8
    feats = hist.cumsum(-1)[:, stride - 1 :: stride] / u.shape[1]  # (n, 8)
    centres = feats[torch.randperm(index.numel(), generator=gen)[:2]]
    near = torch.zeros(index.numel(), dtype=torch.bool)
    for _ in range(8):
        d0 = ((feats - centres[0]) ** 2).sum(-1)
        d1 = ((feats - centres[1]) ** 2).sum(-1)
        near = d1 < d0
        count = int(near.sum())
        if count in (0, index.numel()):
            break
        centres = torch.stack((feats[~near].mean(0), feats[near].mean(0)))
    parts = [index[~near], index[near]]
    return [p for p in parts if p.numel()] or [index]


def _perturb(levels: tuple[int, ...], grid: Grid, taken: set) -> tuple[int, ...]:
    """A nearby valid dialect not in ``taken`` (one level moved by one unit), deterministic."""
    for k in range(MAGNITUDE_CODES - 1, 0, -1):
        for delta in (-1, 1):
            cand = list(levels)
            cand[k] += delta
            if all(y > x for x, y in zip(cand, cand[1:])) and cand[-1] <= grid.max_units and tuple(cand) not in taken:
                return tuple(cand)
    raise FormatError("could not find a distinct dialect near an existing one")  # pragma: no cover


@dataclass
class FitResult:
    book: Formatbook
    train_error: float  # weighted training error of the kept book (sum over blocks)
    history: list[dict]  # per iteration: dialects, iteration, train_error
    blocks: int
    seconds: float


def family_order(dialects: list[tuple[int, ...]], family_size: int = 8) -> tuple[list[tuple[int, ...]], int | None]:
    """The SeDA family layout of step 4: id = family * 8 + level (family size None: no families)."""
    count = len(dialects)
    by_range = sorted(dialects, key=lambda d: (-d[-1], -sum(d), d))
    if count % family_size or count < 2 * family_size:
        return by_range, None
    families = count // family_size
    levels = [by_range[i * families : (i + 1) * families] for i in range(family_size)]
    ranked = [sorted(level, key=lambda d: (-sum(d), d)) for level in levels]
    return [ranked[level][f] for f in range(families) for level in range(family_size)], family_size


def fit_formatbook(
    data: BlockData,
    grid: Grid,
    *,
    dialects: int = 32,
    seed: int = 0,
    iterations: int = 12,
    name: str = "fitted",
    balance: bool = True,
    log=None,
) -> FitResult:
    """LBG splitting + Lloyd with LUT selection in the loop and exact level refits (steps 2-4)."""
    if not 1 <= dialects <= 256:
        raise FormatError(f"a formatbook holds 1..256 dialects, got {dialects}")
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    num_u = grid.num_ucodes
    history: list[dict] = []

    def fit(index: torch.Tensor) -> tuple[int, ...]:
        return refit_levels(_bin_stats(data, num_u, index), grid)[0]

    def assignment(rows):
        book = Formatbook(name=name, dialects=tuple(rows), grid=grid)
        assign = lut_costs(data.u, book).argmin(-1)
        errors = _true_errors(data, book, assign)
        per_dialect = torch.zeros(len(rows), dtype=torch.float64).index_add_(0, assign, errors)
        return assign, errors, per_dialect

    def split(rows, assign, d) -> tuple[tuple[int, ...], tuple[int, ...]]:
        parts = _split(data, (assign == d).nonzero().flatten(), grid, gen)
        first = fit(parts[0]) if parts[0].numel() else rows[d]
        second = fit(parts[1]) if len(parts) == 2 else first
        taken = set(rows) | {first}
        return first, (second if second not in taken else _perturb(first, grid, taken))

    rows = [fit(torch.arange(len(data)))]
    if balance:
        # Every tensor's dB counts alike: weight each tensor by 1 / its relative noise under the
        # one-dialect book (the median per-tensor SQNR, not the mean noise, is what is reported).
        _, errors, _ = assignment(rows)
        per_tensor = torch.zeros(int(data.tensor.max()) + 1, dtype=torch.float64).index_add_(0, data.tensor, errors)
        scale = per_tensor[data.tensor]
        data = BlockData(data.u, data.v, data.w / torch.where(scale > 0, scale, 1.0) * float(errors.sum()) / len(per_tensor), data.tensor)
        rows = [fit(torch.arange(len(data)))]
    best_rows, best_err = None, math.inf
    while True:
        for it in range(iterations):
            assign, errors, per_dialect = assignment(rows)
            total = float(errors.sum())
            history.append({"dialects": len(rows), "iteration": it, "train_error": total})
            if log:
                log(f"  {len(rows):>3} dialects, iteration {it:>2}: training error {total:.6g}")
            if len(rows) == dialects and total < best_err:
                best_rows, best_err = list(rows), total
            stats = _all_bin_stats(data, assign, len(rows), num_u)
            counts = torch.bincount(assign, minlength=len(rows))
            new_rows: list = [refit_levels(stats[d], grid)[0] if counts[d] else None for d in range(len(rows))]
            # An empty or duplicate dialect is replaced by the second half of the worst one's split.
            worst_order = per_dialect.argsort(descending=True).tolist()
            seen: set = set()
            for d in range(len(rows)):
                if new_rows[d] is None or new_rows[d] in seen:
                    worst = next(w for w in worst_order if w != d and new_rows[w] is not None)
                    worst_order.remove(worst)
                    seen.discard(new_rows[worst])
                    first, second = split(rows, assign, worst)
                    new_rows[worst] = first
                    seen.add(first)
                    new_rows[d] = second if second not in seen else _perturb(second, grid, seen)
                seen.add(new_rows[d])
            if new_rows == rows:
                break
            rows = new_rows
        if len(rows) >= dialects:
            break
        assign, _, per_dialect = assignment(rows)
        new_rows = list(rows)
        for d in per_dialect.argsort(descending=True).tolist()[: dialects - len(rows)]:
            first, second = split(new_rows, assign, d)
            new_rows[d] = first
            new_rows.append(second if second not in set(new_rows) else _perturb(second, grid, set(new_rows)))
        rows = new_rows
    if best_rows is None:
        best_rows, best_err = rows, float(assignment(rows)[1].sum())
    ordered, family_size = family_order(best_rows)
    book = Formatbook(name=name, dialects=tuple(ordered), family_size=family_size, grid=grid)
    return FitResult(book, best_err, history, len(data), time.perf_counter() - start)


def sqnr_db(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """10 log10(sum x^2 / sum (x - x_hat)^2) in float64 (inf for an exact copy)."""
    x, x_hat = x.double(), x_hat.double()
    noise = float(((x - x_hat) ** 2).sum())
    signal = float((x**2).sum())
    if noise == 0:
        return math.inf
    return 10 * math.log10(signal / noise) if signal else -math.inf


def held_out_table(tensors: list[torch.Tensor], formats: list) -> list[dict]:
    """Per format: median and mean per-tensor SQNR over ``tensors`` (each quantized with the
    format's defaults: activation selection, block), bits per element without and with the
    tensor scale amortized over each tensor's elements (median), in the order given."""
    rows = []
    for fmt in formats:
        spec = get_format(fmt)
        sqnrs, bits = [], []
        for x in tensors:
            q = quantize(x, spec, pad=True)
            sqnrs.append(sqnr_db(x, q.dequantize()))
            bits.append(spec.bits_per_element() + spec.tensor_scale_bits / x.numel())
        rows.append({
            "format": spec.name,
            "bits_per_element": spec.bits_per_element(),
            "bits_per_element_with_tensor_scale": statistics.median(bits),
            "median_sqnr_db": statistics.median(sqnrs),
            "mean_sqnr_db": statistics.fmean(sqnrs),
            "tensors": len(sqnrs),
        })  # fmt: skip
    return rows


def fitted_format(name: str, result: FitResult, scale: Scale, block: int, provenance: dict) -> FormatSpec:
    """The registry row of a fitted book (LUT selection, the given scale and default block)."""
    book = result.book
    scale_text = "E8M0 exponent" if scale is Scale.E8M0 else "E4M3 block scale + float32 tensor scale"
    return dialect_format(
        name,
        book,
        scale,
        description=f"{book.num_dialects} dialects fitted to activations, {book.grid.value} grid, {scale_text}, LUT",
        default_block=block,
        provenance=provenance,
    )

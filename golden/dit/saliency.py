"""Attention saliency, SeDA grouping and family choice (ALGORITHMS.md sections 2 and 3).

Every function here takes diffusers' attention layout: ``query``/``key`` of shape
``(batch, L, heads, head_dim)`` after q/k normalization and rotary embedding, where the joint
sequence of length ``L`` holds the ``T`` video tokens at positions ``offset .. offset + T - 1``.

Memory: probabilities are formed one chunk of queries (or anchors) at a time, never as a full
``L x L`` matrix per head. A chunk holds at most ``max(1, chunk_bytes // (batch * heads * L * 4))``
query rows, i.e. ``chunk_bytes`` of float32 probabilities (at least one row per head); the softmax
keeps two such tiles alive (logits and probabilities), so the pass needs about
``3 * chunk_bytes + O(batch * L * (heads * head_dim + T))`` bytes beyond its inputs.
"""

from __future__ import annotations

import math

import torch

from ..blocks import BlockedTensor, front_end
from ..formats import FB32, Formatbook, get_format
from ..select import lut_costs

__all__ = [
    "anchor_attention",
    "attention_saliency",
    "choose_families",
    "chunk_rows",
    "salient_tokens",
    "seda_groups",
    "token_coordinates",
]

_FLOAT32_BYTES = 4


def chunk_rows(batch: int, heads: int, keys: int, chunk_bytes: int) -> int:
    """Query rows per chunk so one float32 probability tile stays within ``chunk_bytes``."""
    return max(1, chunk_bytes // (batch * heads * keys * _FLOAT32_BYTES))


def _probabilities(q_rows: torch.Tensor, key: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
    """Softmax probabilities ``(batch, heads, rows, L)`` of query rows ``(batch, rows, heads, D)``."""
    scale = 1.0 / math.sqrt(q_rows.shape[-1])
    logits = torch.einsum("brhd,blhd->bhrl", q_rows.float(), key.float()) * scale
    if key_mask is not None:
        logits.masked_fill_(~key_mask[:, None, None, :], float("-inf"))
    return torch.softmax(logits, dim=-1)


def attention_saliency(
    query: torch.Tensor,
    key: torch.Tensor,
    *,
    num_video: int,
    offset: int = 0,
    key_mask: torch.Tensor | None = None,
    max_queries: int = 256,
    chunk_bytes: int = 8 << 20,
) -> torch.Tensor:
    """``s_j``: softmax mass each video token receives, averaged over heads and video queries.

    Args:
        query, key: ``(batch, L, heads, head_dim)``.
        num_video, offset: the video tokens are positions ``offset .. offset + num_video - 1``.
        key_mask: optional bool ``(batch, L)``, False for keys no query may attend to (padding).
        max_queries: average over the strided video queries ``0, s, 2s, ...``, ``s = ceil(T / max_queries)``.
        chunk_bytes: float32 probability bytes one chunk may hold (module docstring).

    Returns:
        float32 ``(batch, num_video)``.
    """
    batch, length, heads, _ = query.shape
    stride = max(1, math.ceil(num_video / max_queries))
    queries = torch.arange(offset, offset + num_video, stride, device=query.device)
    rows = chunk_rows(batch, heads, length, chunk_bytes)
    mass = torch.zeros(batch, length, dtype=torch.float32, device=query.device)
    for start in range(0, len(queries), rows):
        probs = _probabilities(query[:, queries[start : start + rows]], key, key_mask)
        mass += probs.sum(dim=(1, 2))
        del probs
    mass /= heads * len(queries)
    return mass[:, offset : offset + num_video]


def salient_tokens(saliency: torch.Tensor, count: int) -> torch.Tensor:
    """The ``count`` most salient video tokens of each sample, int64 ``(batch, count)``, ascending.

    Ties go to the lower token index (stable sort).
    """
    order = torch.sort(saliency, dim=-1, descending=True, stable=True).indices
    return order[:, :count].sort(dim=-1).values


def anchor_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    anchors: torch.Tensor,
    *,
    num_video: int,
    offset: int = 0,
    key_mask: torch.Tensor | None = None,
    chunk_bytes: int = 8 << 20,
) -> torch.Tensor:
    """Head-averaged attention rows ``A[a, j]`` of anchor queries over video keys.

    Args:
        anchors: int64 ``(batch, k)`` video-token indices (0-based within the video tokens).

    Returns:
        float32 ``(batch, k, num_video)``: softmax over all keys, restricted to video keys afterwards.
    """
    batch, length, heads, _ = query.shape
    count = anchors.shape[1]
    out = torch.empty(batch, count, num_video, dtype=torch.float32, device=query.device)
    rows = chunk_rows(batch, heads, length, chunk_bytes)
    for start in range(0, count, rows):
        index = anchors[:, start : start + rows] + offset  # (batch, r)
        q_rows = torch.gather(query, 1, index[:, :, None, None].expand(-1, -1, *query.shape[2:]))
        probs = _probabilities(q_rows, key, key_mask)
        out[:, start : start + rows] = probs.mean(dim=1)[..., offset : offset + num_video]
        del probs
    return out


def token_coordinates(grid: tuple[int, int, int]) -> torch.Tensor:
    """int64 ``(T, 3)`` (frame, row, col) of video token ``j = (f * rows + r) * cols + c``."""
    frames, rows, cols = grid
    j = torch.arange(frames * rows * cols)
    return torch.stack((j // (rows * cols), (j // cols) % rows, j % cols), dim=-1)


def seda_groups(
    weights: torch.Tensor,
    anchors: torch.Tensor,
    *,
    grid: tuple[int, int, int],
    window: tuple[int, int, int],
    k_c: int,
) -> torch.Tensor:
    """SeDA groups (ALGORITHMS.md 3.2-3.3).

    Each anchor gathers up to ``k_c`` non-anchor tokens with the largest weight inside its window
    (ties to the lower token index); a token claimed by several anchors joins the one that gives it
    the largest weight (ties to the lower anchor position); an anchor belongs to its own group.

    Args:
        weights: float32 ``(batch, k, T)`` head-averaged attention of each anchor to each video token.
        anchors: int64 ``(batch, k)`` video-token indices.

    Returns:
        int64 ``(batch, T)``: position in ``anchors`` of each token's group, -1 for no group.
    """
    batch, count, tokens = weights.shape
    device = weights.device
    groups = torch.full((batch, tokens), -1, dtype=torch.int64, device=device)
    if count == 0:
        return groups
    coords = token_coordinates(grid).to(device)  # (T, 3)
    anchor_coords = coords[anchors]  # (batch, k, 3)
    delta = (coords[None, None] - anchor_coords[:, :, None]).abs()
    inside = (delta <= torch.tensor(window, device=device)).all(-1)  # (batch, k, T)
    is_anchor = torch.zeros(batch, tokens, dtype=torch.bool, device=device).scatter_(1, anchors, True)
    candidate = inside & ~is_anchor[:, None, :]
    scores = torch.where(candidate, weights, torch.full_like(weights, float("-inf")))
    top = torch.sort(scores, dim=-1, descending=True, stable=True)
    keep = min(k_c, tokens)
    claims = torch.full_like(scores, float("-inf"))
    claims.scatter_(-1, top.indices[..., :keep], top.values[..., :keep])
    best, owner = claims.max(dim=1)  # first maximum: ties to the lower anchor position
    groups = torch.where(torch.isfinite(best), owner, groups)
    groups.scatter_(1, anchors, torch.arange(count, device=device).expand(batch, -1).contiguous())
    return groups


def choose_families(
    anchor_rows: torch.Tensor, *, block: int, book: Formatbook = FB32, format: str | None = None
) -> torch.Tensor:
    """``f* = argmin_f sum over the anchor's blocks of min_{d in f} cost[d]`` (ALGORITHMS.md 3.4).

    Args:
        anchor_rows: ``(batch, k, K)`` activation rows of the anchors (one linear's input).
        block: block size along K (a last axis that is not a multiple is zero-padded, as the
            activation quantizer does).
        format: the dialect format (its grid and scale give the codes u and its book the
            families); default: ``book`` on the half grid with the E8M0 exponent.

    Returns:
        int64 ``(batch, k)`` family ids, ties to the lowest family.
    """
    if format is not None:
        from ..quantize import dialect_ucodes

        book = get_format(format).formatbook
        u = dialect_ucodes(anchor_rows, format, block=block, pad=True)
    else:
        _, u, _ = front_end(BlockedTensor(anchor_rows, block, pad=True).values)
    costs = lut_costs(u, book)  # (batch, k, nblocks, D)
    per_family = costs.unflatten(-1, (book.num_families, -1)).amin(-1)  # (batch, k, nblocks, F)
    return per_family.sum(-2).argmin(-1)

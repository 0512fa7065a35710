"""Stimulus for the unit testbenches: random blocks from several distributions and named corner cases.

Every generator returns input fields ``{group path: int array}`` (``sim.payload``) plus, where it
helps a failure report, a name per beat. Generators are deterministic given a ``numpy`` Generator.
"""

from __future__ import annotations

import numpy as np
import torch

import golden
from golden.formats import CODE_BITS, EXPONENT_BIAS, FB32
from hw.config import DecoderConfig, DSUConfig, MACArrayConfig, TwoStageConfig

#: Sign bit of a 4-bit element code (NUMERICS 2.1 step 5).
SIGN_BIT = 1 << (CODE_BITS - 1)

__all__ = [
    "DISTRIBUTIONS",
    "bf16_blocks",
    "decoder_exhaustive",
    "mac_beats",
    "mac_jobs",
    "scaled_blocks",
    "selector_blocks",
]

#: Float distributions a block is drawn from (scaled by a random power of two per block).
DISTRIBUTIONS = ("gaussian", "laplace", "student_t", "outlier", "sparse", "uniform_codes", "narrow_codes")


def _float_blocks(rng: np.random.Generator, kind: str, n: int, block: int) -> np.ndarray:
    if kind == "gaussian":
        x = rng.standard_normal((n, block))
    elif kind == "laplace":
        x = rng.laplace(size=(n, block))
    elif kind == "student_t":
        x = rng.standard_t(2, size=(n, block))
    elif kind == "outlier":
        x = rng.standard_normal((n, block))
        x[np.arange(n), rng.integers(0, block, n)] *= rng.uniform(8, 100, n)
    elif kind == "sparse":
        x = rng.standard_normal((n, block)) * (rng.random((n, block)) < 0.2)
    else:
        raise ValueError(f"unknown float distribution {kind!r}")
    return x * np.exp2(rng.integers(-20, 20, (n, 1)))


def _front_end_fields(x: np.ndarray, grid=golden.Grid.HALF) -> dict[str, np.ndarray]:
    e, u, sign = golden.front_end(torch.from_numpy(x.astype(np.float32)), grid=grid)
    return {"exponent": (e + EXPONENT_BIAS).numpy(), "signs": sign.numpy(), "ucodes": u.numpy()}


def _mask_dtype(num_dialects: int):
    """int64, or Python integers for masks of more than 62 dialects (a 64-dialect book)."""
    return object if num_dialects > 62 else np.int64


def _random_masks(rng: np.random.Generator, n: int, num_dialects: int, mode: str) -> np.ndarray:
    full = (1 << num_dialects) - 1
    dtype = _mask_dtype(num_dialects)
    if mode == "none":
        return np.full(n, full, dtype=dtype)
    if mode == "random":
        masks = [int(rng.integers(1, 1 << 62)) for _ in range(n)]
        if num_dialects > 62:
            masks = [m | (int(rng.integers(0, 1 << 62)) << 62) for m in masks]
        return np.array([(m & full) or 1 for m in masks], dtype=dtype)
    if mode == "family":
        size = 8 if num_dialects % 8 == 0 else num_dialects
        family = rng.integers(0, num_dialects // size, n)
        return np.array([((1 << size) - 1) << (int(f) * size) for f in family], dtype=dtype)
    if mode == "single":
        return np.array([1 << int(d) for d in rng.integers(0, num_dialects, n)], dtype=dtype)
    raise ValueError(f"unknown mask mode {mode!r}")


MASK_MODES = ("none", "random", "family", "single")


def selector_blocks(
    rng: np.random.Generator, config: DSUConfig | TwoStageConfig, n: int
) -> tuple[dict[str, np.ndarray], list[str]]:
    """``n`` random selector inputs, spread over ``DISTRIBUTIONS`` (and mask modes for the DSU)."""
    block = config.block
    num_ucodes = config.book.formatbook.num_ucodes
    parts, names = [], []
    per = -(-n // len(DISTRIBUTIONS))
    for kind in DISTRIBUTIONS:
        if kind == "uniform_codes":
            fields = {
                "exponent": rng.integers(0, 256, per),
                "signs": rng.integers(0, 2, (per, block)),
                "ucodes": rng.integers(0, num_ucodes, (per, block)),
            }
        elif kind == "narrow_codes":  # few distinct codes in a small range: many cost ties
            top = rng.integers(1, num_ucodes, (per, 1))
            fields = {
                "exponent": rng.integers(0, 256, per),
                "signs": rng.integers(0, 2, (per, block)),
                "ucodes": np.minimum(top, rng.integers(0, 4, (per, block)) * rng.integers(1, 9, (per, 1))),
            }
        else:
            fields = _front_end_fields(_float_blocks(rng, kind, per, block), config.grid)
        parts.append(fields)
        names += [kind] * per
    fields = {k: np.concatenate([p[k] for p in parts])[:n] for k in parts[0]}
    names = names[:n]
    if isinstance(config, DSUConfig):
        modes = rng.integers(0, len(MASK_MODES), n)
        masks = np.zeros(n, dtype=_mask_dtype(config.num_dialects))
        for j, mode in enumerate(MASK_MODES):
            sel = modes == j
            masks[sel] = _random_masks(rng, int(sel.sum()), config.num_dialects, mode)
        fields["mask"] = masks
        names = [f"{name}/mask-{MASK_MODES[j]}" for name, j in zip(names, modes)]
    return fields, names


def selector_corners(config: DSUConfig | TwoStageConfig) -> tuple[dict[str, np.ndarray], list[str]]:
    """Named corner cases: all-zero, all-equal (every code), saturation, exponent extremes, cost ties."""
    block = config.block
    num_ucodes = config.book.formatbook.num_ucodes  # 32 on the half grid, 64 on the quarter grid
    rows, names = [], []

    def add(name, ucodes, signs=0, exponent=EXPONENT_BIAS):
        rows.append((exponent, np.broadcast_to(signs, (block,)), np.broadcast_to(ucodes, (block,))))
        names.append(name)

    add("all-zero", 0)
    add("all-zero-negative", 0, signs=1)
    for v in range(num_ucodes):
        add(f"all-equal-{v}", v)
    add(f"saturation-all-{num_ucodes - 1}", num_ucodes - 1, signs=1)
    add(f"saturation-half-{num_ucodes - 1}", np.where(np.arange(block) % 2, num_ucodes - 1, 3))
    ramp = np.arange(block) % num_ucodes
    for exponent in (0, 1, 2 * EXPONENT_BIAS, 2 * EXPONENT_BIAS + 1):
        add(f"exponent-{exponent}", ramp, signs=np.arange(block) % 2, exponent=exponent)
    # Cost ties: blocks whose minimum LUT cost is shared by two or more dialects.
    rng = np.random.default_rng(1234)
    pool = np.minimum(num_ucodes - 1, rng.integers(0, 3, (4096, block)) * rng.integers(1, 12, (4096, 1)))
    costs = golden.lut_costs(torch.from_numpy(pool), config.book.formatbook).numpy()
    tied = np.flatnonzero((costs == costs.min(-1, keepdims=True)).sum(-1) >= 2)
    for j in tied[:24]:
        add(f"cost-tie-{j}", pool[j])
    fields = {
        "exponent": np.array([r[0] for r in rows]),
        "signs": np.stack([r[1] for r in rows]).astype(np.int64),
        "ucodes": np.stack([r[2] for r in rows]).astype(np.int64),
    }
    if isinstance(config, DSUConfig):
        # Each corner once unmasked and once under a mask that keeps only the upper half of the ids
        # (a tie between a masked and an allowed dialect must pick the allowed one).
        d = config.num_dialects
        n = len(names)
        fields = {k: np.concatenate([v, v]) for k, v in fields.items()}
        full, upper = (1 << d) - 1, ((1 << d) - 1) ^ ((1 << (d // 2)) - 1)
        fields["mask"] = np.array([full] * n + [upper] * n, dtype=_mask_dtype(d))
        names = names + [f"{x}/mask-upper" for x in names]
    return fields, names


def bf16_blocks(rng: np.random.Generator, n: int, block: int) -> tuple[np.ndarray, list[str]]:
    """Raw bfloat16 bits (N, block) uint16: random distributions plus corner cases first."""
    corners = {
        "all-zero": np.zeros(block),
        "negative-zero": np.full(block, -0.0),
        "max-finite": np.full(block, 3.3895313892515355e38),
        "min-subnormal": np.full(block, 2.0**-133),
        "subnormal-mix": np.arange(block) * 2.0**-133,
        "tiny-normal": np.arange(block) * 2.0**-126,
        "exponent-edge": np.where(np.arange(block) % 2, 2.0**-125, -(2.0**-127)),
        "exponent-e1": 2.0**-124 * (1 + np.arange(block) / block),  # amax exponent field 3: E = 1
        "huge-mix": np.arange(block) * 2.0**120,
    }
    blocks, names = [], []
    for name, x in corners.items():
        blocks.append(np.asarray(x, dtype=np.float32)[None])
        names.append(name)
    rest = n - len(blocks)
    per = -(-rest // 6)
    for kind in ("gaussian", "laplace", "student_t", "outlier", "sparse"):
        blocks.append(_float_blocks(rng, kind, per, block).astype(np.float32))
        names += [kind] * per
    raw = rng.integers(0, 1 << 16, (per, block), dtype=np.uint32)  # arbitrary bit patterns...
    raw = np.where((raw >> 7 & 0xFF) == 0xFF, raw & ~np.uint32(1 << 14), raw)  # ...made finite
    blocks.append((raw.astype(np.uint32) << 16).view(np.float32))
    names += ["random-bits"] * per
    x = np.concatenate(blocks)[:n]
    bits = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    return bits, names[:n]


def scaled_blocks(rng: np.random.Generator, n: int, config) -> tuple[dict[str, np.ndarray], list[str]]:
    """E4M3 front-end inputs: ``n`` blocks from "tensors" of a few blocks each (the tensor scale ``t``
    varies from tensor to tensor: tiny tensors at the 2^-120 floor, huge ones, zero blocks inside a
    tensor, subnormal and signed-zero elements), with golden's block scale byte and reciprocal
    ``r = fl32(fl32(1 / t) / s)`` (``golden.e4m3_dialect_front_end``, NUMERICS 8.3 steps 1-3).

    Returns fields ``words``, ``block_scale``, ``reciprocal`` and golden's ``ucodes`` / ``signs``."""
    from golden.quantize import e4m3_dialect_front_end

    block, grid = config.block, config.grid
    per_tensor = 4
    tensors, names = [], []
    kinds = ("gaussian", "laplace", "student_t", "outlier", "sparse")
    specials = {
        "zero-block": lambda x: x * np.array([1, 0, 1, 1])[:, None],
        "tiny-tensor": lambda x: x * 2.0**-130,
        "huge-tensor": lambda x: x * 2.0**90,
        "subnormal-elements": lambda x: np.where(np.abs(x) < 0.3, x * 2.0**-140, x),
        "signed-zeros": lambda x: np.where(np.abs(x) < 0.5, -0.0, x),
    }
    for j in range(-(-n // per_tensor)):
        kind = kinds[j % len(kinds)]
        x = _float_blocks(rng, kind, per_tensor, block)
        label = kind
        if j % 3 == 1:
            label = list(specials)[(j // 3) % len(specials)]
            x = specials[label](x)
        tensors.append(x)
        names += [label] * per_tensor
    words, scales, recips, ucodes, signs = [], [], [], [], []
    for x in tensors:
        x32 = torch.from_numpy(x.astype(np.float32))
        if config.input == "bf16":
            x32 = x32.to(torch.bfloat16).to(torch.float32)
        if not (x32 != 0).any():
            x32[0, 0] = 1.0
        t, s_bits, u, sign = e4m3_dialect_front_end(x32, grid)
        r = (1.0 / t) / s_bits.view(torch.float8_e4m3fn).to(torch.float32)
        if config.input == "bf16":
            w = x32.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16).astype(np.int64)
        else:
            w = x32.view(torch.int32).numpy().view(np.uint32).astype(np.int64)
        words.append(w)
        scales.append(s_bits.numpy().astype(np.int64))
        recips.append(r.view(torch.int32).numpy().view(np.uint32).astype(np.int64))
        ucodes.append(u.numpy())
        signs.append(sign.numpy())
    fields = {"words": np.concatenate(words)[:n], "block_scale": np.concatenate(scales)[:n],
              "reciprocal": np.concatenate(recips)[:n]}  # fmt: skip
    golden_fields = {"ucodes": np.concatenate(ucodes)[:n], "signs": np.concatenate(signs)[:n]}
    return {**fields, **{f"golden.{k}": v for k, v in golden_fields.items()}}, names[:n]


def decoder_exhaustive(config: DecoderConfig) -> dict[str, np.ndarray]:
    """Every (format, dialect, code) triple, ``lanes`` codes per beat (the last beat padded)."""
    from hw.layouts import decoder_in_layout

    dialect_bits = decoder_in_layout(config)["dialect"].shape.width
    triples = [
        (f, d, code)
        for f, b in enumerate(config.books)
        for d in range(1 << dialect_bits)
        for code in range(1 << CODE_BITS)
        if d < b.formatbook.num_dialects or d == (1 << dialect_bits) - 1  # plus one out-of-range id
    ]
    lanes = config.lanes
    beats = []
    for start in range(0, len(triples), lanes):
        # One beat shares format and dialect: split the chunk where they change.
        beats.extend(_split_shared(triples[start : start + lanes]))
    fmt = np.array([b[0] for b in beats])
    dialect = np.array([b[1] for b in beats])
    codes = np.array([b[2] + [0] * (lanes - len(b[2])) for b in beats])
    return {"format": fmt, "dialect": dialect, "codes": codes}


def _split_shared(chunk):
    out = []
    for f, d, code in chunk:
        if out and out[-1][0] == f and out[-1][1] == d:
            out[-1][2].append(code)
        else:
            out.append((f, d, [code]))
    return out


def _quantized(codes, dialect, exponent, block) -> golden.QuantizedTensor:
    return golden.QuantizedTensor(
        format="fb32",
        block=block,
        length=codes.shape[-1],
        codes=torch.from_numpy(codes.astype(np.uint8)),
        exponent=torch.from_numpy(exponent.astype(np.uint8)),
        dialect=torch.from_numpy(dialect.astype(np.uint8)),
    )


MAC_MODES = ("normal", "wide", "subnormal", "tie", "cancel", "real-quantized")


def _real_pair(x: torch.Tensor, rows: int, block: int):
    """Golden-quantized (a, w) rows of ``x``: MXFP4 for blocks of 32, FB32 (LUT) otherwise."""
    fmt = "mxfp4" if block == golden.get_format("mxfp4").default_block else "fb32"
    q = golden.quantize(x, fmt, block=block)
    split = {}
    for name, part in (("a", slice(0, rows)), ("w", slice(rows, None))):
        split[name] = golden.QuantizedTensor(
            format=fmt, block=block, length=x.shape[-1], codes=q.codes[part], exponent=q.exponent[part],
            dialect=None if q.dialect is None else q.dialect[part],
        )
    return split["a"], split["w"]


def mac_jobs(rng: np.random.Generator, config: MACArrayConfig, n_jobs: int, mode: str):
    """``n_jobs`` output tiles: (a, w) QuantizedTensor pairs of shapes (rows, K) and (cols, K).

    Modes: ``normal`` (exponents near the bias), ``wide`` (any exponent byte: zeros, overflow to
    inf), ``subnormal`` (products around binary32's subnormal range), ``tie`` (a second block that
    lands exactly halfway between two binary32 values), ``cancel`` (a block and its negation),
    ``real-quantized`` (golden-quantized MXFP4 / FB32 tensors of random data).
    """
    rows, cols, block = config.rows, config.cols, config.block
    jobs = []
    for _ in range(n_jobs):
        if mode == "real-quantized":
            k = block * int(rng.integers(1, 5))
            x = torch.from_numpy(rng.standard_normal((rows + cols, k)).astype(np.float32))
            x = x * float(np.exp2(rng.integers(-30, 30)))
            jobs.append(_real_pair(x, rows, block))
            continue
        nblocks = int(rng.integers(1, 6)) if mode not in ("tie", "cancel") else 2 + int(mode == "cancel" and rng.integers(0, 2))
        shape_a, shape_w = (rows, nblocks), (cols, nblocks)
        codes_a = rng.integers(0, 1 << CODE_BITS, (rows, nblocks, block))
        codes_w = rng.integers(0, 1 << CODE_BITS, (cols, nblocks, block))
        dial_a = rng.integers(0, FB32.num_dialects, shape_a)
        dial_w = rng.integers(0, FB32.num_dialects, shape_w)
        if mode == "normal":
            exp_a = rng.integers(EXPONENT_BIAS - 12, EXPONENT_BIAS + 12, shape_a)
            exp_w = rng.integers(EXPONENT_BIAS - 12, EXPONENT_BIAS + 12, shape_w)
        elif mode == "wide":
            exp_a = rng.integers(0, 255, shape_a)
            exp_w = rng.integers(0, 255, shape_w)
        elif mode == "subnormal":  # E_a + E_w in [90, 140): e_a + e_w - 2 in [-166, -116]
            exp_a = rng.integers(30, 70, shape_a)
            exp_w = rng.integers(60, 70, shape_w)
        elif mode == "cancel":  # block 1 (and 2) negate block 0 (and 1): y collapses to +0 or a tiny rest
            exp_a = np.repeat(rng.integers(EXPONENT_BIAS - 8, EXPONENT_BIAS + 8, (rows, 1)), nblocks, 1)
            exp_w = np.repeat(rng.integers(EXPONENT_BIAS - 8, EXPONENT_BIAS + 8, (cols, 1)), nblocks, 1)
            dial_a[:, 1:] = dial_a[:, :1]
            dial_w[:, 1:] = dial_w[:, :1]
            codes_w[:, 1:] = codes_w[:, :1]
            codes_a[:, 1] = codes_a[:, 0] ^ SIGN_BIT
            if nblocks == 3:
                codes_a[:, 2] = rng.integers(0, 1 << CODE_BITS, (rows, block))
                exp_a[:, 2] -= 20
        else:  # tie: block 1 adds +-1 ulp/2 to block 0's term (exact tie when block 0's acc is odd)
            exp_a, exp_w = _tie_exponents(rng, codes_a, codes_w, dial_a, dial_w, block)
        a = _quantized(codes_a.reshape(rows, -1), dial_a, exp_a, block)
        w = _quantized(codes_w.reshape(cols, -1), dial_w, exp_w, block)
        jobs.append((a, w))
    return jobs


def _tie_exponents(rng, codes_a, codes_w, dial_a, dial_w, block):
    """Make block 1 a single +-1 product and pick exponents so y = A * 2^d +- 1 is a binary32 tie."""
    rows, cols = codes_a.shape[0], codes_w.shape[0]
    # Block 1: one element of magnitude 1 (index 1 of dialect 0 is one half unit) on both sides.
    codes_a[:, 1] = 0
    codes_w[:, 1] = 0
    lane = rng.integers(0, block)
    codes_a[:, 1, lane] = 1 | (rng.integers(0, 2, rows) * SIGN_BIT)
    codes_w[:, 1, lane] = 1 | (rng.integers(0, 2, cols) * SIGN_BIT)
    dial_a[:, 1] = 0
    dial_w[:, 1] = 0
    # The scale comes from output (0, 0): y = A * 2^d +- 1 (in units of block 1's term) needs 25
    # significant bits, so it is an exact RNE tie whenever A is odd (about half the jobs); the other
    # outputs of the tile land near ties.
    a0 = _quantized(codes_a[:1, :1].reshape(1, -1), dial_a[:1, :1], np.full((1, 1), EXPONENT_BIAS), block)
    w0 = _quantized(codes_w[:1, :1].reshape(1, -1), dial_w[:1, :1], np.full((1, 1), EXPONENT_BIAS), block)
    acc = int((a0.signed_half_units()[0, 0] * w0.signed_half_units()[0, 0]).sum())
    bits = max(1, abs(acc).bit_length())
    d = max(0, 25 - bits)
    base = int(rng.integers(EXPONENT_BIAS - 20, EXPONENT_BIAS - 5))
    exp_a = np.zeros((rows, 2), dtype=np.int64)
    exp_w = np.zeros((cols, 2), dtype=np.int64)
    exp_a[:, 1] = base
    exp_w[:, 1] = base
    exp_a[:, 0] = base + d // 2
    exp_w[:, 0] = base + d - d // 2
    return exp_a, exp_w


def mac_beats(config: MACArrayConfig, jobs) -> dict[str, np.ndarray]:
    """Input beats of the MAC array for ``jobs`` (one beat per K block, ``last`` on each job's end)."""
    out: dict[str, list] = {k: [] for k in ("a.exponent", "a.elements.magnitude", "a.elements.sign",
                                             "w.exponent", "w.elements.magnitude", "w.elements.sign", "last")}
    for a, w in jobs:
        for side, q in (("a", a), ("w", w)):
            h = q.signed_half_units().numpy()  # (rows|cols, nblocks, block)
            sign = (q.codes.numpy().reshape(h.shape) >> 3) & 1
            out[f"{side}.exponent"].append(q.exponent.numpy().astype(np.int64).T)  # (nblocks, rows|cols)
            out[f"{side}.elements.magnitude"].append(np.abs(h).transpose(1, 0, 2))
            out[f"{side}.elements.sign"].append(sign.transpose(1, 0, 2))
        nblocks = a.num_blocks
        out["last"].append((np.arange(nblocks) == nblocks - 1).astype(np.int64))
    return {k: np.concatenate(v) for k, v in out.items()}

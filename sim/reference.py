"""Golden-model reference hooks: the expected output fields of every unit, computed by ``golden``.

Each function takes the input fields of a batch of beats (``{group path: int array}``, as
``sim.payload.PayloadCodec`` packs them) and returns the expected output fields in the same form,
so a scoreboard compares whole batches at once.
"""

from __future__ import annotations

import numpy as np
import torch

import golden
from golden.formats import CODE_BITS, EXPONENT_BIAS, Grid
from hw.config import DecoderConfig, DSUConfig, TwoStageConfig

__all__ = [
    "decoder_reference",
    "front_end_reference",
    "mac_reference",
    "mask_to_bool",
    "scaled_front_end_reference",
    "select_reference",
]


def front_end_reference(bf16_bits: np.ndarray, grid: Grid = Grid.HALF) -> dict[str, np.ndarray]:
    """``golden.front_end`` of bfloat16 blocks given as raw bits (N, B) -> exponent, signs, ucodes."""
    x = torch.from_numpy(np.asarray(bf16_bits, dtype=np.uint16).view(np.int16)).view(torch.bfloat16)
    e, u, sign = golden.front_end(x.to(torch.float32), grid=grid)
    return {"exponent": (e + EXPONENT_BIAS).numpy(), "signs": sign.numpy(), "ucodes": u.numpy()}


def scaled_front_end_reference(config, fields: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """E4M3 front-end from its inputs: ``u = min(U - 1, floor(fl32(|x| * r) * 2^(g + 1)))`` in torch
    binary32, golden's expression (NUMERICS 8.3 step 4); the scale byte passes through."""
    words = np.asarray(fields["words"], dtype=np.int64)
    if config.input == "bf16":
        words = words << 16
    x = torch.from_numpy(words.astype(np.uint32).view(np.int32)).view(torch.float32)
    r = torch.from_numpy(np.asarray(fields["reciprocal"], dtype=np.int64).astype(np.uint32).view(np.int32)).view(torch.float32)
    grid = config.grid
    u = ((x.abs() * r[:, None]) * 2.0 ** (grid.shift + 1)).clamp(max=grid.num_ucodes - 1).to(torch.int64)
    return {"exponent": np.asarray(fields["block_scale"]), "signs": torch.signbit(x).to(torch.int64).numpy(), "ucodes": u.numpy()}


def mask_to_bool(mask: np.ndarray, num_dialects: int) -> torch.Tensor:
    """Mask integers (bit d allows dialect d), shape (N,) -> bool tensor (N, num_dialects)."""
    if num_dialects > 62:  # a 64-dialect mask does not fit int64: Python integers
        return torch.tensor([[(int(v) >> d) & 1 for d in range(num_dialects)] for v in mask], dtype=torch.bool)
    mask = np.asarray(mask, dtype=np.int64)
    return torch.from_numpy(((mask[:, None] >> np.arange(num_dialects)) & 1).astype(bool))


def select_reference(config: DSUConfig | TwoStageConfig, fields: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Expected exponent, dialect and element codes of a selector (LUT or two-stage)."""
    book = config.book.formatbook
    u = torch.from_numpy(np.asarray(fields["ucodes"], dtype=np.int64))
    if isinstance(config, DSUConfig):
        dialect = golden.select_lut(u, book, mask_to_bool(fields["mask"], book.num_dialects))
    else:
        dialect = golden.select_two_stage(u, book)
    index = torch.gather(book.idx_table[dialect], -1, u)
    signs = torch.from_numpy(np.asarray(fields["signs"], dtype=np.int64))
    codes = (signs << (CODE_BITS - 1)) | index
    return {"exponent": np.asarray(fields["exponent"]), "dialect": dialect.numpy(), "codes": codes.numpy()}


def decoder_reference(config: DecoderConfig, fields: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Expected sign and magnitude (grid units) of every lane: ``units[dialect][code & 7]``."""
    codes = np.asarray(fields["codes"], dtype=np.int64)
    fmt = np.asarray(fields["format"], dtype=np.int64)
    dialect = np.asarray(fields["dialect"], dtype=np.int64)
    index = codes & ((1 << (CODE_BITS - 1)) - 1)
    magnitude = np.zeros_like(codes)
    for f, b in enumerate(config.books):
        book = b.formatbook
        table = book.units.numpy()
        ids = dialect & ((1 << (book.num_dialects - 1).bit_length()) - 1)
        rows = fmt == f
        magnitude[rows] = table[ids[rows][:, None], index[rows]]
    return {"magnitude": magnitude, "sign": codes >> (CODE_BITS - 1)}


def mac_reference(a: golden.QuantizedTensor, w: golden.QuantizedTensor) -> np.ndarray:
    """``golden.quantized_matmul`` as binary32 bit patterns (uint32 array ``(rows, cols)``)."""
    y = golden.quantized_matmul(a, w)
    return y.contiguous().view(torch.int32).numpy().view(np.uint32)

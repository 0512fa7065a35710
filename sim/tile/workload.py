"""Turn one captured layer call into the tile's input beats and the golden expectation.

The tile re-quantizes activations from their float rows, so a record becomes a list of *tile rows*:
the ``M`` captured input rows ``X`` (with their SeDA candidate masks), then the ``n`` salient rows'
decomposition residuals ``R = X_S - deq(Q1_S)`` (binary32, formed exactly as ``golden.dit`` forms
them; each keeps its row's mask). Per row tile of ``rows`` tile rows, the ``a`` stream carries its
raw blocks once (K block outer, row group of ``quantizers`` rows inner: the tile quantizes each block
once into its buffer); the ``w`` stream carries column group ``j`` (``interleave * cols`` weight rows),
K block ``k``, slot ``l`` (weight rows ``(j * L + l) * cols + c``). Output beat ``t`` of a row tile is
column tile ``t`` (``cols`` weight rows).

Expected outputs come from ``golden.quantized_matmul`` on the captured operands (``Q1 W`` and
``Q2 W``), as binary32 bits; the decomposition merge ``y[S] = fl32(y[S] + Q2 W)`` of the tile's own
outputs is then checked against the captured ``y``. Padding rows (zero words) and padding weight
rows (exponent 0, codes 0) give +0.0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

import golden
from hw.tile import TileConfig, TileFormat

__all__ = [
    "CaptureMismatch",
    "RecordWorkload",
    "check_capture_matches",
    "load_workloads",
    "record_workload",
    "save_workloads",
]


class CaptureMismatch(ValueError):
    """A capture whose format or block does not match the tile configuration."""


def check_capture_matches(config: TileConfig, quant_config) -> None:
    """Raise ``CaptureMismatch`` unless the capture's quantization is what ``config``'s tile computes."""
    from golden.formats import Selection

    fmt = quant_config.format
    block = quant_config.block or golden.get_format(fmt).default_block
    if fmt != config.format.value or block != config.block:
        raise CaptureMismatch(
            f"the capture holds {fmt} blocks of {block}, but the tile computes {config.format.value} blocks of {config.block}"
        )
    spec = golden.get_format(fmt)
    select = spec.check_select(quant_config.activation_select) or spec.default_select
    expected = {TileFormat.FB32: Selection.LUT, TileFormat.DIALECTFP4: Selection.TWO_STAGE}.get(config.format)
    if expected is not None and select is not expected:
        raise CaptureMismatch(f"the capture's activations use {select.value} selection, the tile uses {expected.value}")


@dataclass(frozen=True)
class RecordWorkload:
    """Beats and expectations of one record. Shapes: ``T`` output tiles, ``Kb`` K blocks, ``B`` block."""

    name: str
    layer: str
    step: int
    slot: int
    k_blocks: int
    col_groups: int
    tensor_scales: tuple[int, int] | None  # NVFP4: (t_a, t_w) as binary32 bits; the tile forms fl32(t_a * t_w)
    a_fields: dict[str, np.ndarray]  # "blocks" (R*Kb*rows/q, q, B) raw words; "masks" (R*Kb*rows/q, q) (FB32)
    w_fields: dict[str, np.ndarray]  # "exponent", "dialect" (T*Kb, cols); "codes" (T*Kb, cols, B)
    expected: np.ndarray  # uint32 (T, rows, cols) binary32 bits
    tile_rows: int  # M + n real tile rows (before padding)
    main_rows: int  # M
    salient_rows: np.ndarray  # int64 (n,)
    out_features: int  # N
    captured_y: np.ndarray  # uint32 (M, N)

    @property
    def beats(self) -> int:
        """MAC-array beats: one per ``w`` beat."""
        return len(self.w_fields["codes"])

    @property
    def activation_blocks(self) -> int:
        """Activation blocks quantized (each once)."""
        key = "blocks" if "blocks" in self.a_fields else min(k for k in self.a_fields if k.startswith("blocks."))
        return int(np.prod(self.a_fields[key].shape[:2]))  # NVFP4 / E4M3 dialects: "blocks.<field>" groups

    def assemble(self, outputs: np.ndarray) -> np.ndarray:
        """Tile output beats ``(T, rows, cols)`` -> the ``(tile rows, N)`` result matrix (binary32 bits)."""
        rows, cols = outputs.shape[1:]
        row_tiles = -(-self.tile_rows // rows)
        col_tiles = len(outputs) // row_tiles
        grid = outputs.reshape(row_tiles, col_tiles, rows, cols).transpose(0, 2, 1, 3)
        return grid.reshape(row_tiles * rows, col_tiles * cols)[: self.tile_rows, : self.out_features]

    def merged(self, outputs: np.ndarray) -> np.ndarray:
        """The layer output ``Q1 W; y[S] = fl32(y[S] + Q2 W)`` formed from the tile's outputs (uint32 bits)."""
        y = self.assemble(outputs).view(np.float32)
        out = y[: self.main_rows].copy()
        if len(self.salient_rows):
            out[self.salient_rows] = out[self.salient_rows] + y[self.main_rows :]
        return out.view(np.uint32)


def _bits(x: torch.Tensor, config: TileConfig) -> np.ndarray:
    """Raw input words of float32 values ``x`` (exactly representable in ``config.input``)."""
    if config.input.width == 32:
        return x.contiguous().view(torch.int32).numpy().view(np.uint32).astype(np.int64)
    narrow = x.to(torch.bfloat16)
    if not torch.equal(narrow.to(torch.float32), x):
        raise CaptureMismatch("the captured rows are not bfloat16 values; replay them on a binary32-input tile")
    return narrow.view(torch.int16).numpy().view(np.uint16).astype(np.int64)


def _matmul_bits(a: golden.QuantizedTensor, w: golden.QuantizedTensor) -> np.ndarray:
    return golden.quantized_matmul(a, w).contiguous().view(torch.int32).numpy().view(np.uint32)


def record_workload(config: TileConfig, record, name: str = "") -> RecordWorkload:
    """Beats for ``record`` (a ``golden.dit.CaptureRecord``) on ``config``'s tile."""
    act, weight = record.activation, record.weight
    block, rows, cols = config.block, config.rows, config.cols
    kp = act.codes.shape[-1]
    k_blocks = kp // block
    x = record.x.to(torch.float32)
    floats = [x]
    masks = [record.candidate_mask] if record.candidate_mask is not None else []
    expected = [_matmul_bits(act, weight)]
    salient = np.zeros(0, dtype=np.int64)
    if record.residual is not None:
        s = record.salient_rows
        salient = s.numpy().astype(np.int64)
        residual = x[s] - act.dequantize()[s]  # as golden.dit.linear.quantize_activation forms it
        floats.append(residual)
        if masks:
            masks.append(record.candidate_mask[s])
        expected.append(_matmul_bits(record.residual, weight))
    if config.format.scaled and record.residual is not None:
        raise CaptureMismatch(f"an {config.format.value} tile replays one activation tensor scale per pass; this capture has AD residual rows")
    values = torch.nn.functional.pad(torch.cat(floats), (0, kp - x.shape[1]))
    if k_blocks > config.buffer_blocks:
        raise CaptureMismatch(
            f"the capture's K of {kp} needs {k_blocks} blocks per row, but the tile's buffer holds {config.buffer_blocks}"
        )
    tile_rows = values.shape[0]
    n = weight.codes.shape[0]
    q, slots = config.quantizers, config.interleave
    row_tiles = -(-tile_rows // rows)
    col_groups = -(-n // (slots * cols))
    col_tiles = col_groups * slots
    groups = rows // q

    def activation_field(values: np.ndarray, per_block: int) -> np.ndarray:
        # a beat (i, k, g): rows g*q .. g*q + q - 1 of row tile i at K block k
        padded = np.zeros((row_tiles * rows, k_blocks * per_block), dtype=np.int64)
        padded[:tile_rows] = values
        return padded.reshape(row_tiles, groups, q, k_blocks, per_block).transpose(0, 3, 1, 2, 4).reshape(-1, q, per_block)

    tensor_scales = None
    if config.format.scaled and config.format.quantizes:  # E4M3 dialects: words + golden's scale byte and reciprocal
        s_bits = act.block_scale.reshape(tile_rows, -1)
        t = act.tensor_scale.to(torch.float32)
        r = (1.0 / t) / s_bits.view(torch.float8_e4m3fn).to(torch.float32)
        if t == 0:  # all-zero tensor: scale bytes 0, u = 0
            r = torch.zeros_like(r)
        a_fields = {
            "blocks.words": activation_field(_bits(values, config), block),
            "blocks.block_scale": activation_field(s_bits.numpy().astype(np.int64), 1)[..., 0],
            "blocks.reciprocal": activation_field(r.view(torch.int32).numpy().view(np.uint32).astype(np.int64), 1)[..., 0],
        }
    elif config.format.quantizes:
        a_fields = {"blocks": activation_field(_bits(values, config), block)}
    else:  # NVFP4: the captured quantized activation itself (scale bytes and codes)
        a_fields = {
            "blocks.exponent": activation_field(act.block_scale.reshape(tile_rows, -1).numpy(), 1)[..., 0],
            "blocks.dialect": activation_field(np.zeros((tile_rows, k_blocks), dtype=np.int64), 1)[..., 0],
            "blocks.codes": activation_field(act.codes.reshape(tile_rows, -1).numpy(), block),
        }
    if config.format.scaled:
        tensor_scales = tuple(int(t.to(torch.float32).reshape(1).view(torch.int32).item()) & 0xFFFFFFFF
                              for t in (act.tensor_scale, weight.tensor_scale))  # fmt: skip
    if config.format.masked:
        num = config.format.formatbook.num_dialects
        dtype = object if num > 62 else np.int64  # a 64-dialect mask does not fit int64
        mask_bits = np.full(row_tiles * rows, (1 << num) - 1, dtype=dtype)
        if masks:
            allowed = torch.cat(masks).numpy().astype(np.int64).astype(dtype)
            weights = np.array([1 << d for d in range(num)], dtype=dtype)
            mask_bits[:tile_rows] = (allowed * weights).sum(-1)
        per_row = mask_bits.reshape(row_tiles, 1, groups, q)
        a_fields["masks"] = np.broadcast_to(per_row, (row_tiles, k_blocks, groups, q)).reshape(-1, q)

    def weight_field(values: np.ndarray, per_block: int) -> np.ndarray:
        # w beat (i, j, k, l): weight rows (j * L + l) * cols + c at K block k, for every row tile i
        padded = np.zeros((col_tiles * cols, k_blocks * per_block), dtype=np.int64)
        padded[:n] = values
        tiles = padded.reshape(col_groups, slots, cols, k_blocks, per_block).transpose(0, 3, 1, 2, 4)
        full = np.broadcast_to(tiles[None], (row_tiles, col_groups, k_blocks, slots, cols, per_block))
        return full.reshape(-1, cols, per_block)

    scales = weight.exponent if weight.exponent is not None else weight.block_scale
    w_fields = {
        "exponent": weight_field(scales.numpy(), 1)[..., 0],
        "dialect": weight_field(
            np.zeros(scales.shape, dtype=np.int64) if weight.dialect is None else weight.dialect.numpy(), 1
        )[..., 0],
        "codes": weight_field(weight.codes.numpy(), block),
    }
    y = np.zeros((row_tiles * rows, col_tiles * cols), dtype=np.uint32)
    if tensor_scales is not None and not torch.isfinite(act.tensor_scale * weight.tensor_scale):
        y[:] = 0x7FC00000  # padding blocks (scale 0) times an infinite T: 0 * inf = NaN, as the PE computes
    y[:tile_rows, :n] = np.concatenate(expected)
    expected_tiles = y.reshape(row_tiles, rows, col_tiles, cols).transpose(0, 2, 1, 3).reshape(-1, rows, cols)
    return RecordWorkload(
        name=name or f"{record.layer} step {record.step} slot {record.slot}",
        layer=record.layer,
        step=int(record.step),
        slot=int(record.slot),
        k_blocks=k_blocks,
        col_groups=col_groups,
        tensor_scales=tensor_scales,
        a_fields={k: np.ascontiguousarray(v) for k, v in a_fields.items()},
        w_fields={k: np.ascontiguousarray(v) for k, v in w_fields.items()},
        expected=np.ascontiguousarray(expected_tiles),
        tile_rows=tile_rows,
        main_rows=x.shape[0],
        salient_rows=salient,
        out_features=n,
        captured_y=record.y.contiguous().view(torch.int32).numpy().view(np.uint32),
    )


_SCALARS = ("name", "layer", "step", "slot", "k_blocks", "col_groups", "tensor_scales", "tile_rows", "main_rows", "out_features")
_ARRAYS = ("expected", "salient_rows", "captured_y")


def save_workloads(path, workloads: list[RecordWorkload]) -> None:
    """Write ``workloads`` to one ``.npz`` (the simulator process then needs neither torch models nor
    the capture loader). Written atomically."""
    import json
    import os
    import tempfile
    from pathlib import Path

    arrays = {"manifest": np.frombuffer(json.dumps([{k: getattr(w, k) for k in _SCALARS} for w in workloads]).encode(), np.uint8)}
    for i, w in enumerate(workloads):
        arrays.update({f"r{i}.{k}": getattr(w, k) for k in _ARRAYS})
        arrays.update(_storable(f"r{i}.a.{k}", v) for k, v in w.a_fields.items())
        arrays.update(_storable(f"r{i}.w.{k}", v) for k, v in w.w_fields.items())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_workloads(path) -> list[RecordWorkload]:
    """Inverse of ``save_workloads``."""
    import json

    with np.load(path) as data:
        manifest = json.loads(data["manifest"].tobytes())
        out = []
        for i, meta in enumerate(manifest):
            fields = {k: data[f"r{i}.{k}"] for k in _ARRAYS}
            a = dict(_loaded(k.split(".", 2)[2], data[k]) for k in data.files if k.startswith(f"r{i}.a."))
            w = dict(_loaded(k.split(".", 2)[2], data[k]) for k in data.files if k.startswith(f"r{i}.w."))
            out.append(RecordWorkload(**meta, **fields, a_fields=a, w_fields=w))
        return out


#: Suffix of a field of integers wider than int64 (a 64-dialect mask), stored as little-endian bytes.
_WIDE = ".wide_bytes"


def _storable(key: str, values: np.ndarray) -> tuple[str, np.ndarray]:
    """``(key, values)``, or for an object array of Python integers its little-endian bytes (npz without pickle)."""
    if values.dtype != object:
        return key, values
    nbytes = max(1, (max((int(v).bit_length() for v in values.ravel()), default=0) + 7) // 8)
    raw = np.frombuffer(b"".join(int(v).to_bytes(nbytes, "little") for v in values.ravel()), np.uint8)
    return key + _WIDE, raw.reshape(*values.shape, nbytes)


def _loaded(key: str, values: np.ndarray) -> tuple[str, np.ndarray]:
    """Inverse of ``_storable``."""
    if not key.endswith(_WIDE):
        return key, values
    flat = [int.from_bytes(row.tobytes(), "little") for row in values.reshape(-1, values.shape[-1])]
    return key[: -len(_WIDE)], np.array(flat, dtype=object).reshape(values.shape[:-1])

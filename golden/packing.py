"""Packed storage and checkpoints (docs/NUMERICS.md section 5).

Codes pack two per byte along the last axis: element 2j in bits 3..0, element 2j+1 in bits 7..4.
A checkpoint is a safetensors file holding, per quantized tensor ``NAME``: ``NAME.codes`` (packed
uint8), ``NAME.exponent`` / ``NAME.dialect`` / ``NAME.block_scale`` (uint8, per block) and
``NAME.tensor_scale`` (float32 scalar) as the format needs, plus a JSON header entry describing each
tensor (format, block, logical shape) and ``sha256``, a checksum of the stored data
(``data_digest``). The loader checks every field against that description, the scale bytes
against the contract (no exponent byte 255, no NaN E4M3 scale, a finite tensor scale) and the
data against the checksum.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .formats import FormatError, FormatSpec, get_format
from .quantize import QuantizedTensor

__all__ = [
    "CheckpointError",
    "data_digest",
    "load_quantized",
    "pack_codes",
    "safetensors_header",
    "save_quantized",
    "unpack_codes",
]

CHECKPOINT_SCHEMA = "semanticdialect.packed/2"  # /2: data checksum (sha256) required


#: The exponent byte no block can have (e is clamped to [-127, 127]) and the E4M3 NaN bytes.
EXPONENT_BYTE_INVALID = 255
E4M3_NAN_BYTES = (0x7F, 0xFF)


class CheckpointError(ValueError):
    """A packed checkpoint that is missing, unreadable or inconsistent with its own header."""


def data_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 hex digest of tensors: name, dtype, shape and raw bytes of each, in sorted name order.

    Independent of the file layout, so it is computed from the tensors before saving and from
    the loaded tensors after reading (docs/NUMERICS.md section 5).
    """
    digest = hashlib.sha256()
    for name in sorted(tensors):
        value = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}\0{str(value.dtype).removeprefix('torch.')}\0{list(value.shape)}\0".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def check_file(path: Path, what: str) -> None:
    """A CheckpointError unless ``path`` is an existing regular file."""
    if path.is_dir():
        raise CheckpointError(f"{what} {path} is a directory, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist")


def safetensors_header(path: str | os.PathLike, what: str = "checkpoint") -> dict:
    """The JSON header of a safetensors file (tensor dtypes, shapes, ``__metadata__``), data unread."""
    path = Path(path)
    check_file(path, what)
    try:
        with open(path, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            if header_len > min(path.stat().st_size - 8, 100 << 20):
                raise ValueError(f"header length {header_len} exceeds the file")
            header = json.loads(f.read(header_len))
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{what} {path} is not a readable safetensors file ({err})") from None
    if not isinstance(header, dict) or not isinstance(header.get("__metadata__", {}), dict):
        raise CheckpointError(f"{what} {path} is not a readable safetensors file (its header is not an object)")
    return header


def pack_codes(codes: torch.Tensor) -> torch.Tensor:
    """uint8 codes ``(..., K)`` with K even -> packed uint8 ``(..., K // 2)``."""
    if codes.shape[-1] % 2:
        raise FormatError(f"cannot pack an odd last axis of {codes.shape[-1]} codes")
    if codes.dtype != torch.uint8 or (codes > 0xF).any():
        raise FormatError("codes to pack must be uint8 values in 0..15")
    return codes[..., 0::2] | (codes[..., 1::2] << 4)


def unpack_codes(packed: torch.Tensor) -> torch.Tensor:
    """Packed uint8 ``(..., K // 2)`` -> codes ``(..., K)``."""
    return torch.stack((packed & 0xF, packed >> 4), dim=-1).flatten(-2)


def _fields(q: QuantizedTensor) -> dict[str, torch.Tensor]:
    fields = {"codes": pack_codes(q.codes)}
    for name in ("exponent", "dialect", "block_scale", "tensor_scale"):
        value = getattr(q, name)
        if value is not None:
            fields[name] = value.contiguous()
    return fields


def _expected_fields(spec: FormatSpec) -> tuple[str, ...]:
    return spec.fields


def save_quantized(path: str | os.PathLike, tensors: dict[str, QuantizedTensor], extra: dict | None = None) -> None:
    """Write quantized tensors to a safetensors file atomically (no partial file on failure)."""
    flat: dict[str, torch.Tensor] = {}
    header = {}
    for name, q in tensors.items():
        for field, value in _fields(q).items():
            flat[f"{name}.{field}"] = value
        header[name] = {"format": q.format, "block": q.block, "shape": list(q.shape)}
    metadata = {"schema": CHECKPOINT_SCHEMA, "tensors": json.dumps(header), "sha256": data_digest(flat)}
    if extra:
        metadata["extra"] = json.dumps(extra)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(flat, tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_quantized(path: str | os.PathLike) -> tuple[dict[str, QuantizedTensor], dict]:
    """Read a checkpoint written by ``save_quantized``; returns (tensors, extra metadata).

    Raises CheckpointError with a sentence naming the problem for a missing, corrupt or
    inconsistent file.
    """
    path = Path(path)
    metadata = safetensors_header(path).get("__metadata__", {})
    try:
        flat = load_file(path)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path} is not a readable safetensors file ({err})") from None
    if metadata.get("schema") != CHECKPOINT_SCHEMA:
        raise CheckpointError(
            f"checkpoint {path} has schema {metadata.get('schema')!r}, expected {CHECKPOINT_SCHEMA!r}"
        )
    try:
        header = json.loads(metadata["tensors"])
        extra = json.loads(metadata.get("extra", "{}"))
    except (KeyError, TypeError, json.JSONDecodeError):
        raise CheckpointError(f"checkpoint {path} has a missing or corrupt tensor header") from None
    if not isinstance(header, dict) or not all(isinstance(d, dict) for d in header.values()):
        raise CheckpointError(
            f"checkpoint {path}: its 'tensors' header must be a JSON object of tensor descriptions, "
            f"not {type(header).__name__}"
        )
    if "sha256" not in metadata:
        raise CheckpointError(f"checkpoint {path} carries no data checksum ('sha256'); it was not written by save_quantized")
    if data_digest(flat) != metadata["sha256"]:
        raise CheckpointError(f"checkpoint {path} is corrupt: its data does not match its sha256 checksum")
    tensors = {name: _rebuild(path, name, desc, flat) for name, desc in header.items()}
    unknown = set(flat) - {f"{n}.{f}" for n, d in header.items() for f in _expected_fields(get_format(d["format"]))}
    if unknown:
        raise CheckpointError(f"checkpoint {path} holds tensors its header does not describe: {sorted(unknown)}")
    return tensors, extra


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _rebuild(path: Path, name: str, desc: dict, flat: dict[str, torch.Tensor]) -> QuantizedTensor:
    def fail(what: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {path}: tensor {name!r} {what}")

    try:
        spec = get_format(desc["format"])
        block, shape = desc["block"], desc["shape"]
        if not _is_count(block) or not isinstance(shape, list) or not all(_is_count(s) for s in shape):
            raise ValueError("block and shape entries must be non-negative whole numbers")
        block = spec.check_block(block)
        shape = tuple(shape)
    except (KeyError, TypeError, ValueError) as err:
        raise fail(f"has an invalid description {desc!r} ({err})") from None
    if not shape or shape[-1] <= 0:
        raise fail(f"has an invalid shape {shape}")
    nblocks = -(-shape[-1] // block)
    fields = {}
    for field in _expected_fields(spec):
        key = f"{name}.{field}"
        if key not in flat:
            raise fail(f"is missing its {field!r} field")
        fields[field] = flat[key]
    expected = {
        "codes": ((*shape[:-1], nblocks * block // 2), torch.uint8),
        "exponent": ((*shape[:-1], nblocks), torch.uint8),
        "dialect": ((*shape[:-1], nblocks), torch.uint8),
        "block_scale": ((*shape[:-1], nblocks), torch.uint8),
        "tensor_scale": ((), torch.float32),
    }
    for field, value in fields.items():
        want_shape, want_dtype = expected[field]
        if tuple(value.shape) != want_shape or value.dtype != want_dtype:
            raise fail(
                f"field {field!r} has shape {tuple(value.shape)} and dtype {value.dtype}, "
                f"expected {want_shape} and {want_dtype} for format {spec.name} with block {block}"
            )
    if "dialect" in fields and fields["dialect"].numel() and int(fields["dialect"].max()) >= spec.formatbook.num_dialects:
        raise fail(f"names a dialect id beyond the {spec.formatbook.num_dialects} of {spec.formatbook.name}")
    if "exponent" in fields and (fields["exponent"] == EXPONENT_BYTE_INVALID).any():
        raise fail(f"has exponent byte {EXPONENT_BYTE_INVALID}, which no block can have (e <= 127)")
    if "block_scale" in fields:
        scale = fields["block_scale"]
        if ((scale == E4M3_NAN_BYTES[0]) | (scale == E4M3_NAN_BYTES[1])).any():
            raise fail("has a block scale byte that is an E4M3 NaN (0x7f or 0xff)")
        if (scale & 0x80).any():
            raise fail("has a negative E4M3 block scale; block scales are non-negative")
    if "tensor_scale" in fields and not (torch.isfinite(fields["tensor_scale"]) and fields["tensor_scale"] >= 0):
        raise fail(f"has tensor_scale {fields['tensor_scale'].item()}; expected a finite non-negative number")
    fields["codes"] = unpack_codes(fields["codes"])
    return QuantizedTensor(format=spec.name, block=block, length=shape[-1], **fields)

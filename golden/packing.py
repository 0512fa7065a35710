"""Packed storage and checkpoints (NUMERICS.md section 5).

Codes pack two per byte along the last axis: element 2j in bits 3..0, element 2j+1 in bits 7..4.
A checkpoint is a safetensors file holding, per quantized tensor ``NAME``: ``NAME.codes`` (packed
uint8), ``NAME.exponent`` / ``NAME.dialect`` / ``NAME.block_scale`` (uint8, per block) and
``NAME.tensor_scale`` (float32 scalar) as the format needs, plus a JSON header entry describing each
tensor (format, block, logical shape). The loader checks every field against that description.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .formats import FormatError, FormatSpec, get_format
from .quantize import QuantizedTensor

__all__ = ["CheckpointError", "load_quantized", "pack_codes", "save_quantized", "unpack_codes"]

CHECKPOINT_SCHEMA = "semanticdialect.packed/1"


class CheckpointError(ValueError):
    """A packed checkpoint that is missing, unreadable or inconsistent with its own header."""


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
    metadata = {"schema": CHECKPOINT_SCHEMA, "tensors": json.dumps(header)}
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
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        flat = load_file(path)
        with open(path, "rb") as f:
            header_len = int.from_bytes(f.read(8), "little")
            metadata = json.loads(f.read(header_len)).get("__metadata__", {})
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as err:
        raise CheckpointError(f"checkpoint {path} is not a readable safetensors file ({err})") from None
    if metadata.get("schema") != CHECKPOINT_SCHEMA:
        raise CheckpointError(
            f"checkpoint {path} has schema {metadata.get('schema')!r}, expected {CHECKPOINT_SCHEMA!r}"
        )
    try:
        header = json.loads(metadata["tensors"])
        extra = json.loads(metadata.get("extra", "{}"))
    except (KeyError, json.JSONDecodeError):
        raise CheckpointError(f"checkpoint {path} has a missing or corrupt tensor header") from None
    tensors = {name: _rebuild(path, name, desc, flat) for name, desc in header.items()}
    unknown = set(flat) - {f"{n}.{f}" for n, d in header.items() for f in _expected_fields(get_format(d["format"]))}
    if unknown:
        raise CheckpointError(f"checkpoint {path} holds tensors its header does not describe: {sorted(unknown)}")
    return tensors, extra


def _rebuild(path: Path, name: str, desc: dict, flat: dict[str, torch.Tensor]) -> QuantizedTensor:
    def fail(what: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {path}: tensor {name!r} {what}")

    try:
        spec = get_format(desc["format"])
        block = spec.check_block(int(desc["block"]))
        shape = tuple(int(s) for s in desc["shape"])
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
    fields["codes"] = unpack_codes(fields["codes"])
    return QuantizedTensor(format=spec.name, block=block, length=shape[-1], **fields)

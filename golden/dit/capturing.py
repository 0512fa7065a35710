"""Activation capture (ALGORITHMS.md section 4): record quantized layers' operands for replay.

``with capture(model, "build/capture/run1", CaptureConfig(layers=("*.attn.to_q",), steps=(0,))):``
runs the user's loop unchanged and writes, for every matching layer call, the float input rows,
the golden quantized operands (activation, residual, weight), SeDA candidate masks, salient rows and
the integer-path output into a capture directory (``capture.safetensors`` + ``manifest.json``;
schema in README.md, "Capture files"). ``load_capture`` reads and validates it; ``replay`` recomputes
a record from its float rows and ``replay_operands`` from its stored operands, both bit-exact.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..formats import FormatError, get_format
from ..packing import CheckpointError
from ..quantize import QuantizedTensor
from .config import Execution, QuantConfig
from .linear import ActivationPlan, DecomposedActivation, decomposed_matmul, quantize_activation
from .model import quantized_layers

__all__ = [
    "CAPTURE_SCHEMA",
    "Capture",
    "CaptureConfig",
    "CaptureRecord",
    "capture",
    "load_capture",
    "replay",
    "replay_operands",
]

CAPTURE_SCHEMA = "semanticdialect.capture/1"
TENSORS_FILE = "capture.safetensors"
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True, kw_only=True)
class CaptureConfig:
    """Which layer calls to record.

    Attributes:
        layers: ``fnmatch`` patterns of quantized layer names (``"transformer_blocks.0.attn.*"``).
        steps: denoising steps (0-based) to record; None records every step.
        slots: calls within a step (CFG as separate calls) to record; None records all.
        max_records: refuse to record more calls than this (a guard against filling the disk).
    """

    layers: tuple[str, ...] = ("*",)
    steps: tuple[int, ...] | None = None
    slots: tuple[int, ...] | None = None
    max_records: int = 256

    def __post_init__(self) -> None:
        layers = (self.layers,) if isinstance(self.layers, str) else tuple(self.layers)
        if not layers or not all(isinstance(p, str) and p for p in layers):
            raise FormatError(f"capture layers must be non-empty name patterns, got {self.layers!r}")
        object.__setattr__(self, "layers", layers)
        for name in ("steps", "slots"):
            value = getattr(self, name)
            if value is not None:
                value = tuple(value)
                if any(not isinstance(v, int) or v < 0 for v in value):
                    raise FormatError(f"capture {name} must be non-negative integers, got {value!r}")
                object.__setattr__(self, name, value)
        if not isinstance(self.max_records, int) or self.max_records < 1:
            raise FormatError(f"capture max_records must be a positive integer, got {self.max_records!r}")


@dataclass(frozen=True)
class CaptureRecord:
    """One recorded call of one layer (shapes: ``M`` rows, ``K`` in, ``N`` out features).

    Attributes:
        layer, step, slot: which layer, denoising step and call within the step.
        x: float32 ``(M, K)`` input rows.
        activation: ``Q1``, the quantized rows (codes ``(M, Kp)``, per-block fields ``(M, Kp / B)``).
        residual: ``Q2`` of the salient rows' residual, or None.
        salient_rows: int64 ``(n,)`` ascending row indices, or None.
        candidate_mask: bool ``(M, D)`` allowed dialects per row (SeDA), or None.
        weight: the quantized weight ``(N, K)``; bias: float32 ``(N,)`` or None.
        float_weight: float32 ``(N, K)`` float weight, recorded when the model was quantized with
            ``retain_float_weights=True``, else None.
        y: float32 ``(M, N)`` integer-path output ``Q1 W; y[S] += Q2 W`` **without** the bias.
    """

    layer: str
    step: int
    slot: int
    x: torch.Tensor
    activation: QuantizedTensor
    residual: QuantizedTensor | None
    salient_rows: torch.Tensor | None
    candidate_mask: torch.Tensor | None
    weight: QuantizedTensor
    bias: torch.Tensor | None
    y: torch.Tensor
    float_weight: torch.Tensor | None = None


@dataclass(frozen=True)
class Capture:
    """A loaded capture: the quantization config and its records, in recording order."""

    config: QuantConfig
    records: tuple[CaptureRecord, ...]
    manifest: dict


# --------------------------------------------------------------------------------------------
# QuantizedTensor <-> flat tensors
# --------------------------------------------------------------------------------------------



def _flatten(prefix: str, q: QuantizedTensor, out: dict[str, torch.Tensor]) -> None:
    for field in q.spec.fields:
        out[f"{prefix}.{field}"] = getattr(q, field).clone()  # records may share operands (q/k/v)


def _rebuild(
    prefix: str, flat: dict, fmt: str, block: int, shape: tuple[int, ...], where: str
) -> QuantizedTensor:
    spec = get_format(fmt)
    nblocks = -(-shape[-1] // block)
    expected = {
        "codes": ((*shape[:-1], nblocks * block), torch.uint8),
        "exponent": ((*shape[:-1], nblocks), torch.uint8),
        "dialect": ((*shape[:-1], nblocks), torch.uint8),
        "block_scale": ((*shape[:-1], nblocks), torch.uint8),
        "tensor_scale": ((), torch.float32),
    }
    fields = {}
    for field in spec.fields:
        key = f"{prefix}.{field}"
        if key not in flat:
            raise CheckpointError(f"{where}: tensor {key!r} is missing")
        value = flat[key]
        want_shape, want_dtype = expected[field]
        if tuple(value.shape) != want_shape or value.dtype != want_dtype:
            raise CheckpointError(
                f"{where}: tensor {key!r} has shape {tuple(value.shape)} and dtype {value.dtype}, "
                f"expected {want_shape} and {want_dtype}"
            )
        fields[field] = value
    if (
        "dialect" in fields
        and fields["dialect"].numel()
        and int(fields["dialect"].max()) >= spec.formatbook.num_dialects
    ):
        raise CheckpointError(
            f"{where}: {prefix!r} names a dialect beyond the {spec.formatbook.num_dialects} of {fmt}"
        )
    if fields["codes"].numel() and int(fields["codes"].max()) > 0xF:
        raise CheckpointError(f"{where}: {prefix!r} holds element codes above 15")
    return QuantizedTensor(format=spec.name, block=block, length=shape[-1], **fields)


# --------------------------------------------------------------------------------------------
# Recording
# --------------------------------------------------------------------------------------------


class CaptureRecorder:
    """Collects records while ``capture`` is active; ``write`` stores them atomically."""

    def __init__(self, model, config: CaptureConfig) -> None:
        self.model = model
        self.config = config
        self.layers = {
            name: layer
            for name, layer in quantized_layers(model).items()
            if any(fnmatch(name, p) for p in config.layers)
        }
        if not self.layers:
            raise FormatError(f"capture patterns {list(config.layers)} match no quantized layer of the model")
        self.quant_config = next(iter(self.layers.values())).config
        self.records: list[dict] = []

    def observe(self, layer, rows: torch.Tensor, act: DecomposedActivation, plan: ActivationPlan, y) -> None:
        call = self.model._sdialect_state.call
        step, slot = (0, 0) if call is None else (call.step, call.slot)
        if self.config.steps is not None and step not in self.config.steps:
            return
        if self.config.slots is not None and slot not in self.config.slots:
            return
        if len(self.records) >= self.config.max_records:
            raise FormatError(
                f"capture exceeded max_records={self.config.max_records}; narrow its layers or steps"
            )
        self.records.append({
            "layer": layer.name, "step": step, "slot": slot,
            "x": rows.detach().to(torch.float32).clone(),
            "activation": act.main, "residual": act.residual,
            "salient_rows": None if act.salient_rows is None else act.salient_rows.clone(),
            "candidate_mask": None if plan.candidate_mask is None else plan.candidate_mask.clone(),
            "y": decomposed_matmul(act, layer.weight_q, execution=Execution.INTEGER),
        })  # fmt: skip

    def write(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        flat: dict[str, torch.Tensor] = {}
        layers_meta = {}
        for name, layer in self.layers.items():
            if not any(r["layer"] == name for r in self.records):
                continue
            _flatten(f"w.{name}", layer.weight_q, flat)
            if layer.bias is not None:
                flat[f"w.{name}.bias"] = layer.bias.detach().to(torch.float32).contiguous()
            if layer.float_weight is not None:
                flat[f"w.{name}.float"] = layer.float_weight.detach().to(torch.float32).contiguous()
            layers_meta[name] = {
                "weight_shape": list(layer.weight_q.shape),
                "bias": layer.bias is not None,
                "float_weight": layer.float_weight is not None,
            }
        records_meta = []
        for index, r in enumerate(self.records):
            prefix = f"r{index}"
            flat[f"{prefix}.x"] = r["x"].contiguous()
            flat[f"{prefix}.y"] = r["y"].contiguous()
            _flatten(f"{prefix}.a", r["activation"], flat)
            if r["residual"] is not None:
                _flatten(f"{prefix}.res", r["residual"], flat)
                flat[f"{prefix}.salient_rows"] = r["salient_rows"].to(torch.int64).contiguous()
            if r["candidate_mask"] is not None:
                flat[f"{prefix}.candidate_mask"] = r["candidate_mask"].to(torch.uint8).contiguous()
            records_meta.append({
                "id": prefix, "layer": r["layer"], "step": r["step"], "slot": r["slot"],
                "rows": r["x"].shape[0], "in_features": r["x"].shape[1], "out_features": r["y"].shape[1],
                "salient_rows": 0 if r["residual"] is None else int(r["salient_rows"].numel()),
                "candidate_mask": r["candidate_mask"] is not None,
            })  # fmt: skip
        manifest = {
            "schema": CAPTURE_SCHEMA,
            "quant_config": self.quant_config.to_json(),
            "layers": layers_meta,
            "records": records_meta,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
        try:
            save_file(flat, tmp / TENSORS_FILE, metadata={"schema": CAPTURE_SCHEMA})
            (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
            if path.exists():
                if not (path / MANIFEST_FILE).is_file():
                    raise FormatError(f"refusing to replace {path}: it exists and is not a capture directory")
                shutil.rmtree(path)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
        return path


@contextlib.contextmanager
def capture(model, path: str | os.PathLike, config: CaptureConfig | None = None):
    """Record matching layer calls while the block runs; write ``path`` (a directory) on success.

    Nothing is written if the block raises. Yields the recorder (``.records`` holds the raw records).
    """
    recorder = CaptureRecorder(model, CaptureConfig() if config is None else config)
    for layer in recorder.layers.values():
        layer.observers.append(recorder.observe)
    try:
        yield recorder
    finally:
        for layer in recorder.layers.values():
            layer.observers.remove(recorder.observe)
    recorder.write(path)


# --------------------------------------------------------------------------------------------
# Loading and replay
# --------------------------------------------------------------------------------------------


def load_capture(path: str | os.PathLike) -> Capture:
    """Read and validate a capture directory; CheckpointError names what is wrong."""
    path = Path(path)
    manifest_path, tensors_path = path / MANIFEST_FILE, path / TENSORS_FILE
    if not manifest_path.is_file() or not tensors_path.is_file():
        raise CheckpointError(f"capture {path} needs {MANIFEST_FILE} and {TENSORS_FILE}")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"capture {path}: {MANIFEST_FILE} is not valid JSON ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != CAPTURE_SCHEMA:
        found = manifest.get("schema") if isinstance(manifest, dict) else None
        raise CheckpointError(f"capture {path} has schema {found!r}, expected {CAPTURE_SCHEMA!r}")
    try:
        flat = load_file(tensors_path)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(
            f"capture {path}: {TENSORS_FILE} is not a readable safetensors file ({err})"
        ) from None
    try:
        config = QuantConfig.from_json(manifest["quant_config"])
        layers, records_meta = manifest["layers"], manifest["records"]
    except (KeyError, TypeError, FormatError) as err:
        raise CheckpointError(
            f"capture {path}: manifest is missing or has a malformed field ({err})"
        ) from None
    where = f"capture {path}"
    weights, float_weights = {}, {}
    for name, meta in layers.items():
        shape = tuple(meta["weight_shape"])
        weights[name] = (
            _rebuild(f"w.{name}", flat, config.format, config.block, shape, where),
            flat.get(f"w.{name}.bias"),
        )
        if meta["bias"] and weights[name][1] is None:
            raise CheckpointError(f"{where}: layer {name!r} is missing its bias")
        float_weight = flat.get(f"w.{name}.float")
        if meta.get("float_weight") and (float_weight is None or tuple(float_weight.shape) != shape):
            raise CheckpointError(f"{where}: layer {name!r} is missing its float weight or it is not {shape}")
        float_weights[name] = float_weight
    records = []
    for meta in records_meta:
        try:
            prefix, layer = meta["id"], meta["layer"]
            rows, k, n = int(meta["rows"]), int(meta["in_features"]), int(meta["out_features"])
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{where}: record {meta!r} is malformed ({err})") from None
        if layer not in weights:
            raise CheckpointError(
                f"{where}: record {prefix} names layer {layer!r} that the manifest does not list"
            )
        weight, bias = weights[layer]
        if weight.shape != (n, k):
            raise CheckpointError(
                f"{where}: record {prefix} is {rows}x{k}->{n} but layer {layer!r} has weight {weight.shape}"
            )
        for key, shape, dtype in (
            (f"{prefix}.x", (rows, k), torch.float32),
            (f"{prefix}.y", (rows, n), torch.float32),
        ):
            if key not in flat:
                raise CheckpointError(f"{where}: tensor {key!r} is missing")
            if tuple(flat[key].shape) != shape or flat[key].dtype != dtype:
                raise CheckpointError(
                    f"{where}: tensor {key!r} has shape {tuple(flat[key].shape)}, expected {shape} {dtype}"
                )
        activation = _rebuild(f"{prefix}.a", flat, config.format, config.block, (rows, k), where)
        residual = salient = mask = None
        if meta.get("salient_rows"):
            salient = flat.get(f"{prefix}.salient_rows")
            if salient is None or salient.dtype != torch.int64 or salient.shape != (meta["salient_rows"],):
                raise CheckpointError(f"{where}: record {prefix} has missing or malformed salient_rows")
            if salient.numel() and (int(salient.min()) < 0 or int(salient.max()) >= rows):
                raise CheckpointError(f"{where}: record {prefix} has salient rows outside 0..{rows - 1}")
            residual = _rebuild(
                f"{prefix}.res", flat, config.format, config.block, (salient.numel(), k), where
            )
        if meta.get("candidate_mask"):
            mask = flat.get(f"{prefix}.candidate_mask")
            dialects = get_format(config.format).formatbook.num_dialects
            if mask is None or tuple(mask.shape) != (rows, dialects) or mask.dtype != torch.uint8:
                raise CheckpointError(f"{where}: record {prefix} has a missing or malformed candidate_mask")
            mask = mask.to(torch.bool)
        records.append(CaptureRecord(
            layer=layer, step=int(meta["step"]), slot=int(meta["slot"]), x=flat[f"{prefix}.x"],
            activation=activation, residual=residual, salient_rows=salient, candidate_mask=mask,
            weight=weight, bias=bias, y=flat[f"{prefix}.y"], float_weight=float_weights[layer],
        ))  # fmt: skip
    return Capture(config=config, records=tuple(records), manifest=manifest)


def replay(record: CaptureRecord, config: QuantConfig) -> tuple[DecomposedActivation, torch.Tensor]:
    """Recompute a record from its float rows: re-quantize ``x`` (with its salient rows and mask)
    and run the integer path. Returns ``(activation, y)``; both match the record bit for bit."""
    plan = ActivationPlan(salient_rows=record.salient_rows, candidate_mask=record.candidate_mask)
    act = quantize_activation(record.x, config, plan)
    return act, decomposed_matmul(act, record.weight, execution=Execution.INTEGER)


def replay_operands(record: CaptureRecord) -> torch.Tensor:
    """The integer-path output from the stored quantized operands only (what the RTL replays)."""
    act = DecomposedActivation(
        main=record.activation, residual=record.residual, salient_rows=record.salient_rows
    )
    return decomposed_matmul(act, record.weight, execution=Execution.INTEGER)

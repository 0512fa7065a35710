"""Save and load a quantized transformer (docs/NUMERICS.md section 5): no float weights needed to load.

A model directory holds three files:

- ``quantized.safetensors``: every quantized linear's weight, packed (``golden.save_quantized``:
  two codes per byte, per-block exponent/dialect or scale bytes), keyed by the layer's qualified name;
- ``float.safetensors``: every remaining float tensor of ``model.state_dict()`` (embedders, norms,
  adaLN linears, final projection, the quantized linears' biases);
- ``config.json``: schema, the diffusers class and its config, the ``QuantConfig``, the list of
  quantized layers and the dtypes of the model's non-persistent buffers (rotary tables).

Both safetensors files carry a ``sha256`` checksum of their tensors (``golden.packing.data_digest``),
verified on load. Float tensors keep their dtype (float32, bfloat16, float16), so a bf16 model
reloads as the same bf16 model and reproduces its outputs bit for bit.

``load_quantized_model`` first checks the config against the two files' headers on the meta device
(so a config asking for a huge model allocates nothing), then builds the class, installs the
quantized layers from the packed weights (the float weights of those layers are never read) and
loads the float tensors with strict name, shape and dtype-kind checks.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..formats import FormatError
from ..packing import CheckpointError, data_digest, load_quantized, safetensors_header, save_quantized
from .architectures import ARCHITECTURES
from .config import QuantConfig
from .linear import QUANTIZED_STATE_KEYS
from .model import install, is_quantized, quantized_layers

__all__ = ["MODEL_SCHEMA", "load_quantized_model", "save_quantized_model"]

MODEL_SCHEMA = "semanticdialect.dit-model/2"  # /2: checksums, float dtypes kept
CONFIG_FILE = "config.json"
QUANTIZED_FILE = "quantized.safetensors"
FLOAT_FILE = "float.safetensors"


def save_quantized_model(model: nn.Module, directory: str | os.PathLike) -> Path:
    """Write a model quantized by ``quantize_`` to ``directory`` atomically (module docstring)."""
    if not is_quantized(model):
        raise FormatError("save_quantized_model needs a model quantized with quantize_")
    directory = Path(directory)
    layers = quantized_layers(model)
    config: QuantConfig = model._sdialect_state.config
    model_config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(model.config).items()}
    meta = {
        "schema": MODEL_SCHEMA,
        "class_name": type(model).__name__,
        "model_config": model_config,
        "quant_config": config.to_json(),
        "quantized_layers": list(layers),
        "buffer_dtypes": _non_persistent_buffer_dtypes(model),
    }
    float_state = {k: v.detach().contiguous() for k, v in _float_state(model.state_dict(), layers).items()}
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.", suffix=".tmp"))
    try:
        save_quantized(tmp / QUANTIZED_FILE, {name: layer.weight_q for name, layer in layers.items()})
        save_file(float_state, tmp / FLOAT_FILE, metadata={"schema": MODEL_SCHEMA, "sha256": data_digest(float_state)})
        (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=1))
        if directory.exists():
            if not (directory / CONFIG_FILE).is_file():
                raise FormatError(
                    f"refusing to replace {directory}: it exists and is not a quantized-model directory"
                )
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return directory


def load_quantized_model(directory: str | os.PathLike) -> nn.Module:
    """Rebuild a model saved by ``save_quantized_model``; CheckpointError names what is wrong."""
    import diffusers

    directory = Path(directory)
    config_path = directory / CONFIG_FILE
    if not directory.exists():
        raise CheckpointError(f"quantized model directory {directory} does not exist")
    if not directory.is_dir():
        raise CheckpointError(f"quantized model {directory} is a file; expected the directory save_quantized_model wrote")
    if not config_path.is_file():
        raise CheckpointError(f"quantized model {directory} has no {CONFIG_FILE}")
    try:
        meta = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(
            f"quantized model {directory}: {CONFIG_FILE} is not valid JSON ({err})"
        ) from None
    if not isinstance(meta, dict) or meta.get("schema") != MODEL_SCHEMA:
        found = meta.get("schema") if isinstance(meta, dict) else None
        raise CheckpointError(f"quantized model {directory} has schema {found!r}, expected {MODEL_SCHEMA!r}")
    class_name = meta.get("class_name")
    if class_name not in ARCHITECTURES:
        raise CheckpointError(
            f"quantized model {directory} names class {class_name!r}; supported: {', '.join(ARCHITECTURES)}"
        )
    model_class = getattr(diffusers, class_name)
    try:
        config = QuantConfig.from_json(meta["quant_config"])
        model_config = dict(meta["model_config"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"quantized model {directory}: {CONFIG_FILE} is malformed ({err})") from None
    layers = meta.get("quantized_layers", [])
    buffer_dtypes = meta.get("buffer_dtypes", {})
    if not (isinstance(layers, list) and all(isinstance(n, str) for n in layers) and isinstance(buffer_dtypes, dict)):
        raise CheckpointError(f"quantized model {directory}: {CONFIG_FILE} lists its layers or buffers malformed")
    weights, _ = load_quantized(directory / QUANTIZED_FILE)
    for name, q in weights.items():
        if q.format != config.format or q.block != config.block:
            raise CheckpointError(
                f"quantized model {directory}: layer {name!r} is {q.format}/{q.block}, the config says "
                f"{config.format}/{config.block}"
            )
    if sorted(weights) != sorted(layers):
        raise CheckpointError(
            f"quantized model {directory}: {QUANTIZED_FILE} does not hold the layers {CONFIG_FILE} lists"
        )
    float_header = _float_header(directory)
    _check_config_against_files(directory, model_class, model_config, weights, float_header)
    try:
        model = model_class.from_config(model_config).eval()
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"quantized model {directory}: {CONFIG_FILE} is malformed ({err})") from None
    try:
        install(model, config, weights=weights)
    except FormatError as err:
        raise CheckpointError(
            f"quantized model {directory} does not match its model config ({err})"
        ) from None
    try:
        float_state = load_file(directory / FLOAT_FILE)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(
            f"quantized model {directory}: {FLOAT_FILE} is missing or unreadable ({err})"
        ) from None
    if data_digest(float_state) != float_header.get("__metadata__", {}).get("sha256"):
        raise CheckpointError(
            f"quantized model {directory}: {FLOAT_FILE} is corrupt (its data does not match its sha256 checksum)"
        )
    expected = _float_state(model.state_dict(), quantized_layers(model))
    missing, unexpected = sorted(set(expected) - set(float_state)), sorted(set(float_state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"quantized model {directory}: {FLOAT_FILE} lacks {missing[:5]} "
            f"and has unexpected {unexpected[:5]}"
        )
    for key, value in float_state.items():
        # A float tensor keeps its own dtype (a bf16 model reloads as bf16); only the kind must match.
        same_kind = value.dtype == expected[key].dtype or (value.is_floating_point() and expected[key].is_floating_point())
        if value.shape != expected[key].shape or not same_kind:
            raise CheckpointError(
                f"quantized model {directory}: float tensor {key!r} is {tuple(value.shape)} {value.dtype}, "
                f"expected {tuple(expected[key].shape)} {expected[key].dtype}"
            )
    with torch.no_grad():  # the quantized layers' buffers came from quantized.safetensors
        result = model.load_state_dict(float_state, strict=False, assign=True)
    assert not result.unexpected_keys and set(result.missing_keys) == set(model.state_dict()) - set(expected)
    _restore_buffer_dtypes(directory, model, buffer_dtypes)
    return model


def _float_state(state: dict, layers: dict) -> dict:
    """``state`` without the quantized layers' weight buffers (``quantized.safetensors`` holds them, packed)."""
    def quantized(key: str) -> bool:
        owner, _, leaf = key.rpartition(".")
        return owner in layers and leaf in QUANTIZED_STATE_KEYS

    return {k: v for k, v in state.items() if not quantized(k)}


def _non_persistent_buffer_dtypes(model: nn.Module) -> dict[str, str]:
    """Dtypes of buffers outside ``state_dict`` (rotary tables): a bf16 model's are restored on load."""
    persistent = set(model.state_dict())
    return {name: str(b.dtype).removeprefix("torch.") for name, b in model.named_buffers() if name not in persistent}


def _restore_buffer_dtypes(directory: Path, model: nn.Module, dtypes: dict) -> None:
    buffers = dict(model.named_buffers())
    for name, dtype_name in dtypes.items():
        dtype = getattr(torch, str(dtype_name), None)
        if name not in buffers or not isinstance(dtype, torch.dtype):
            raise CheckpointError(f"quantized model {directory}: {CONFIG_FILE} names an unknown buffer {name!r} or dtype {dtype_name!r}")
        owner, _, leaf = name.rpartition(".")
        module = model.get_submodule(owner) if owner else model
        setattr(module, leaf, buffers[name].to(dtype))


def _float_header(directory: Path) -> dict:
    try:
        return safetensors_header(directory / FLOAT_FILE, what=f"quantized model {directory}: {FLOAT_FILE}")
    except CheckpointError as err:
        raise CheckpointError(f"{err} (float.safetensors is missing or unreadable)") from None


def _check_config_against_files(directory: Path, model_class, model_config: dict, weights: dict,
                                float_header: dict) -> None:
    """Build the model on the meta device (nothing allocated) and compare every tensor shape its
    config implies with the shapes the two files hold; CheckpointError on the first difference."""
    try:
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in model_class.from_config(model_config).state_dict().items()}
    except Exception as err:  # noqa: BLE001 - any failure to build from the config is a bad config
        raise CheckpointError(f"quantized model {directory}: {CONFIG_FILE} is malformed ({type(err).__name__}: {err})") from None

    def mismatch(what: str) -> CheckpointError:
        return CheckpointError(f"quantized model {directory} does not match its model config ({what})")

    for name, q in weights.items():
        want = shapes.pop(f"{name}.weight", None)
        if want is None:
            raise mismatch(f"the config's model has no linear {name!r}")
        if tuple(q.shape) != want:
            raise mismatch(f"layer {name!r} has a quantized weight of shape {tuple(q.shape)}, the config's linear needs {want}")
    stored = {k: tuple(v.get("shape", ())) for k, v in float_header.items() if k != "__metadata__" and isinstance(v, dict)}
    missing, unexpected = sorted(set(shapes) - set(stored)), sorted(set(stored) - set(shapes))
    if missing or unexpected:
        raise mismatch(f"{FLOAT_FILE} lacks {missing[:5]} and has unexpected {unexpected[:5]}")
    for key, want in shapes.items():
        if stored[key] != want:
            raise mismatch(f"float tensor {key!r} is {stored[key]} in {FLOAT_FILE}, the config needs {want}")

"""Packed codes (exhaustive) and safetensors checkpoints, including corrupt and inconsistent files."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import golden
from golden.packing import CHECKPOINT_SCHEMA


def test_pack_unpack_every_byte():
    codes = torch.cartesian_prod(torch.arange(16), torch.arange(16)).to(torch.uint8)  # (256, 2)
    packed = golden.pack_codes(codes)
    assert packed.flatten().tolist() == [lo | hi << 4 for lo, hi in codes.tolist()]
    assert torch.equal(golden.unpack_codes(packed), codes)


def test_pack_layout_low_nibble_first():
    assert golden.pack_codes(torch.tensor([0x1, 0xF, 0x3, 0x0], dtype=torch.uint8)).tolist() == [0xF1, 0x03]


@pytest.mark.parametrize("fmt", list(golden.FORMATS))
def test_checkpoint_round_trip(tmp_path, fmt):
    tensors = {"w": golden.quantize(torch.randn(8, 64), fmt), "x": golden.quantize(torch.randn(2, 3, 40), fmt, pad=True)}
    path = tmp_path / "q.safetensors"
    golden.save_quantized(path, tensors, extra={"note": "test"})
    loaded, extra = golden.load_quantized(path)
    assert extra == {"note": "test"}
    for name, q in tensors.items():
        assert torch.equal(loaded[name].dequantize(), q.dequantize())
        assert loaded[name].shape == q.shape and loaded[name].format == fmt


def _tamper(tmp_path, mutate):
    path = tmp_path / "q.safetensors"
    golden.save_quantized(path, {"w": golden.quantize(torch.randn(4, 64), "fb32")})
    flat = load_file(path)
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        metadata = json.loads(f.read(n))["__metadata__"]
    flat, metadata = mutate(flat, metadata)
    save_file(flat, path, metadata=metadata)
    return path


@pytest.mark.parametrize("mutate, problem", [
    (lambda f, m: ({k: v for k, v in f.items() if k != "w.dialect"}, m), "missing its 'dialect' field"),
    (lambda f, m: ({**f, "w.codes": f["w.codes"][:, :8].contiguous()}, m), "field 'codes' has shape \\(4, 8\\)"),
    (lambda f, m: ({**f, "w.exponent": f["w.exponent"].float()}, m), "field 'exponent'.*dtype torch.float32"),
    (lambda f, m: ({**f, "w.dialect": torch.full_like(f["w.dialect"], 40)}, m), "dialect id beyond the 32"),
    (lambda f, m: (f, {**m, "schema": "other/9"}), "schema 'other/9'"),
    (lambda f, m: (f, {**m, "tensors": "{not json"}), "corrupt tensor header"),
    (lambda f, m: (f, {**m, "tensors": json.dumps({"w": {"format": "fp5", "block": 32, "shape": [4, 64]}})}),
     "invalid description"),
    (lambda f, m: (f, {**m, "tensors": json.dumps({"w": {"format": "fb32", "block": 32, "shape": [4, 96]}})}),
     "field 'codes' has shape"),
    (lambda f, m: ({**f, "v.codes": f["w.codes"].clone()}, m), "does not describe"),
])  # fmt: skip
def test_inconsistent_checkpoints_are_rejected(tmp_path, mutate, problem):
    path = _tamper(tmp_path, mutate)
    with pytest.raises(golden.CheckpointError, match=problem):
        golden.load_quantized(path)


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(golden.CheckpointError, match="does not exist"):
        golden.load_quantized(tmp_path / "none.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not a header at all")
    with pytest.raises(golden.CheckpointError, match="not a readable safetensors file"):
        golden.load_quantized(garbage)


def test_truncated_file(tmp_path):
    path = tmp_path / "q.safetensors"
    golden.save_quantized(path, {"w": golden.quantize(torch.randn(4, 64), "mxfp4")})
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(golden.CheckpointError, match="not a readable safetensors file"):
        golden.load_quantized(path)


def test_schema_constant_is_versioned():
    assert CHECKPOINT_SCHEMA.endswith("/1")

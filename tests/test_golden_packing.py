"""Packed codes (exhaustive) and safetensors checkpoints, including corrupt and inconsistent files."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import golden
from golden.packing import CHECKPOINT_SCHEMA, data_digest


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


def _tamper(tmp_path, mutate, fmt="fb32"):
    """Rewrite a checkpoint through ``mutate(flat, metadata)``, with a checksum that matches the
    new data (a forged or foreign file: the content checks must catch it, not the checksum)."""
    path = tmp_path / "q.safetensors"
    golden.save_quantized(path, {"w": golden.quantize(torch.randn(4, 64), fmt)})
    flat = load_file(path)
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        metadata = json.loads(f.read(n))["__metadata__"]
    flat, metadata = mutate(flat, metadata)
    save_file(flat, path, metadata={**metadata, "sha256": data_digest(flat)})
    return path


def _desc(**overrides):
    return json.dumps({"w": {"format": "fb32", "block": 32, "shape": [4, 64], **overrides}})


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
    (lambda f, m: ({**f, "w.exponent": torch.full_like(f["w.exponent"], 255)}, m), "exponent byte 255"),
    (lambda f, m: (f, {**m, "tensors": _desc(shape=[4, 63.9])}), "invalid description.*whole numbers"),
    (lambda f, m: (f, {**m, "tensors": _desc(shape=[4, True])}), "invalid description"),
    (lambda f, m: (f, {**m, "tensors": _desc(shape=[-4, 64])}), "invalid description"),
    (lambda f, m: (f, {**m, "tensors": _desc(shape="4x64")}), "invalid description"),
    (lambda f, m: (f, {**m, "tensors": _desc(block=32.0)}), "invalid description"),
    (lambda f, m: (f, {**m, "tensors": json.dumps([{"format": "fb32"}])}), "must be a JSON object.*not list"),
    (lambda f, m: (f, {**m, "tensors": "7"}), "must be a JSON object.*not int"),
    (lambda f, m: (f, {**m, "tensors": json.dumps({"w": 3})}), "must be a JSON object"),
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
    assert CHECKPOINT_SCHEMA.endswith("/2")


@pytest.mark.parametrize("byte, problem", [(0x7F, "E4M3 NaN"), (0xFF, "E4M3 NaN"), (0x80 | 0x38, "negative")])
@pytest.mark.parametrize("fmt", ["nvfp4", "nvfp4-46"])
def test_nan_or_negative_block_scale_bytes_are_rejected(tmp_path, fmt, byte, problem):
    def mutate(f, m):
        scale = f["w.block_scale"].clone()
        scale[1, 2] = byte
        return {**f, "w.block_scale": scale}, m

    with pytest.raises(golden.CheckpointError, match=problem):
        golden.load_quantized(_tamper(tmp_path, mutate, fmt))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0])
def test_bad_tensor_scale_is_rejected(tmp_path, value):
    path = _tamper(tmp_path, lambda f, m: ({**f, "w.tensor_scale": torch.tensor(value)}, m), "nvfp4")
    with pytest.raises(golden.CheckpointError, match="expected a finite non-negative number"):
        golden.load_quantized(path)


@pytest.mark.parametrize("fmt", list(golden.FORMATS))
@pytest.mark.parametrize("where", ["first data byte", "last data byte"])
def test_a_flipped_data_byte_fails_the_checksum(tmp_path, fmt, where):
    path = tmp_path / "q.safetensors"
    golden.save_quantized(path, {"w": golden.quantize(torch.randn(4, 64), fmt)})
    data = bytearray(path.read_bytes())
    header_end = 8 + int.from_bytes(data[:8], "little")
    data[header_end if where == "first data byte" else -1] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(golden.CheckpointError, match="does not match its sha256 checksum"):
        golden.load_quantized(path)


def test_a_file_without_checksum_is_rejected(tmp_path):
    path = _tamper(tmp_path, lambda f, m: (f, m))
    flat = load_file(path)
    save_file(flat, path, metadata={"schema": CHECKPOINT_SCHEMA, "tensors": _desc()})
    with pytest.raises(golden.CheckpointError, match="carries no data checksum"):
        golden.load_quantized(path)


def test_directory_given_as_checkpoint(tmp_path):
    with pytest.raises(golden.CheckpointError, match="is a directory, not a checkpoint file"):
        golden.load_quantized(tmp_path)

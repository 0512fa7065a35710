"""Quantized-model directories: bf16/fp16 models round-trip bit-exactly, data carries a checksum,
and a config is checked against the weight files before anything is built (issue 13, issue 14)."""

import json

import pytest
import torch

from golden import CheckpointError
from golden.dit import QuantConfig, load_quantized_model, quantize_, save_quantized_model, tiny_inputs, tiny_transformer

pytestmark = pytest.mark.xdist_group("dit-files")

TIMESTEPS = (900.0, 500.0)


def _run(model, name, dtype):
    inputs = {k: (v.to(dtype) if torch.is_tensor(v) and v.is_floating_point() else v)
              for k, v in tiny_inputs(name, batch=2).items()}
    with torch.no_grad():
        return [model(**inputs, timestep=torch.full((2,), t), return_dict=False)[0] for t in TIMESTEPS]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("name", ["wan", "hunyuan-video"])
def test_half_precision_models_reload_and_reproduce_outputs(tmp_path, name, dtype):
    model = tiny_transformer(name).to(dtype)
    quantize_(model, QuantConfig(format="fb32"))
    expected = _run(model, name, dtype)
    save_quantized_model(model, tmp_path / "model")
    loaded = load_quantized_model(tmp_path / "model")
    assert {v.dtype for v in loaded.state_dict().values()} == {v.dtype for v in model.state_dict().values()}
    assert {n: b.dtype for n, b in loaded.named_buffers()} == {n: b.dtype for n, b in model.named_buffers()}
    got = _run(loaded, name, dtype)
    assert all(a.dtype == dtype and torch.equal(a, b) for a, b in zip(got, expected))


@pytest.fixture()
def saved(tmp_path):
    model = tiny_transformer("wan")
    quantize_(model, QuantConfig(format="mxfp4"))
    return save_quantized_model(model, tmp_path / "model")


@pytest.mark.parametrize("file", ["quantized.safetensors", "float.safetensors"])
def test_a_flipped_byte_in_either_file_is_refused(saved, file):
    path = saved / file
    data = bytearray(path.read_bytes())
    header_end = 8 + int.from_bytes(data[:8], "little")
    data[header_end + (len(data) - header_end) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256 checksum"):
        load_quantized_model(saved)


def test_a_config_asking_for_a_huge_model_is_refused_before_building(saved):
    """64 heads x 128 and 40 + 40 layers would need gigabytes; the check runs on the meta device."""
    meta = json.loads((saved / "config.json").read_text())
    meta["model_config"].update(num_attention_heads=64, attention_head_dim=128, num_layers=40, ffn_dim=4 * 8192)
    (saved / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="does not match its model config"):
        load_quantized_model(saved)


def test_a_file_or_missing_path_is_named(saved):
    with pytest.raises(CheckpointError, match="is a file; expected the directory"):
        load_quantized_model(saved / "config.json")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_quantized_model(saved / "nothing")

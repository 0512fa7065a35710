"""Capture files and quantized-model files: round trips are bit-exact, bad files are named errors."""

import json

import numpy as np
import pytest
import torch

from golden import FB32, CheckpointError, front_end, select_lut
from golden.blocks import BlockedTensor
from golden.dit import (
    CAPTURE_SCHEMA,
    CaptureConfig,
    DecompositionConfig,
    Execution,
    QuantConfig,
    SedaConfig,
    capture,
    load_capture,
    load_quantized_model,
    quantize_,
    quantized_layers,
    replay,
    replay_operands,
    save_quantized_model,
    tiny_inputs,
    tiny_transformer,
)
from sdialect.cli import main as sdialect

# The module fixture runs the expensive part once: keep its tests on one xdist worker
# (`make test` uses --dist loadgroup).
pytestmark = pytest.mark.xdist_group("dit-files")


FULL = QuantConfig(
    format="fb32",
    decomposition=DecompositionConfig(rho=0.1, profile_every=1),
    seda=SedaConfig(k_c=4, window=(1, 2, 2), regroup_every=1),
    execution=Execution.INTEGER,
)
TIMESTEPS = (900.0, 700.0)


def _loop(model, name, *, batch=2):
    inputs = tiny_inputs(name, batch=batch)
    with torch.no_grad():
        return [model(**inputs, timestep=torch.full((batch,), t), return_dict=False)[0] for t in TIMESTEPS]


@pytest.fixture(scope="module")
def captured(tmp_path_factory):
    """A Hunyuan model with AD + SeDA on the integer path, block 0 captured at step 1, plus the
    layer outputs seen by forward hooks."""
    model = tiny_transformer("hunyuan-video")
    quantize_(model, FULL)
    outputs = {}
    for name, layer in quantized_layers(model).items():
        if name.startswith("transformer_blocks.0."):
            layer.register_forward_hook(
                lambda m, i, o: outputs.__setitem__((m.name, model._sdialect_state.call.step), o)
            )
    path = tmp_path_factory.mktemp("capture") / "run"
    with capture(model, path, CaptureConfig(layers=("transformer_blocks.0.*",), steps=(1,))):
        _loop(model, "hunyuan-video")
    return path, outputs


def test_capture_reload_replay_is_bit_exact(captured):
    path, outputs = captured
    cap = load_capture(path)
    assert cap.manifest["schema"] == CAPTURE_SCHEMA and cap.config == FULL
    assert {r.layer for r in cap.records} == {n for n, _ in outputs} and all(r.step == 1 for r in cap.records)
    assert any(r.residual is not None for r in cap.records) and any(
        r.candidate_mask is not None for r in cap.records
    )
    for r in cap.records:
        act, y = replay(r, cap.config)
        assert torch.equal(act.main.codes, r.activation.codes) and torch.equal(
            act.main.dialect, r.activation.dialect
        )
        assert torch.equal(act.main.exponent, r.activation.exponent)
        if r.residual is not None:
            assert torch.equal(act.residual.codes, r.residual.codes)
        assert torch.equal(y, r.y) and torch.equal(replay_operands(r), r.y)
        layer_output = outputs[(r.layer, 1)].reshape(-1, r.y.shape[1])
        assert torch.equal(r.y + r.bias, layer_output), r.layer


def test_seda_rows_use_lut_selection_under_their_family_mask(captured):
    cap = load_capture(captured[0])
    masked = [r for r in cap.records if r.candidate_mask is not None]
    assert masked
    for r in masked:
        grouped = ~r.candidate_mask.all(-1)
        assert grouped.any()
        for row in grouped.nonzero().flatten().tolist():  # one whole family per grouped row
            families = r.candidate_mask[row].nonzero().flatten() // FB32.family_size
            assert families.unique().numel() == 1 and r.candidate_mask[row].sum() == FB32.family_size
        _, u, _ = front_end(BlockedTensor(r.x, 32).values)
        assert torch.equal(r.activation.dialect.long(), select_lut(u, FB32, r.candidate_mask[:, None, :]))
        family = r.activation.dialect.long() // FB32.family_size  # (rows, blocks)
        allowed = r.candidate_mask.long().argmax(-1) // FB32.family_size  # first allowed id's family
        assert torch.equal(family[grouped], allowed[grouped, None].expand(-1, family.shape[1]))
        assert torch.equal(r.activation.dialect.long()[~grouped], select_lut(u[~grouped], FB32))


def test_integer_path_equals_sdialect_matmul_on_captured_layers(tmp_path):
    model = tiny_transformer("wan")
    quantize_(model, QuantConfig(format="fb32", execution=Execution.INTEGER, retain_float_weights=True))
    with capture(model, tmp_path / "cap", CaptureConfig(layers=("blocks.1.*",), steps=(0,))):
        _loop(model, "wan", batch=1)
    cap = load_capture(tmp_path / "cap")
    assert len(cap.records) == 10  # attn1 q/k/v/out, attn2 q/k/v/out, ffn x2
    float_model = tiny_transformer("wan")
    for index, r in enumerate(cap.records):
        assert torch.equal(r.float_weight, float_model.get_submodule(r.layer).weight.detach())
        a_path, w_path, y_path = (tmp_path / f"{index}_{n}.npy" for n in "awy")
        np.save(a_path, r.x.numpy())
        np.save(w_path, r.float_weight.numpy())
        assert sdialect(["matmul", str(a_path), str(w_path), "--format", "fb32", "-o", str(y_path)]) == 0
        assert np.array_equal(np.load(y_path), r.y.numpy()), r.layer


@pytest.mark.parametrize("name", ["hunyuan-video", "wan", "ltx-video"])
def test_saved_quantized_model_reloads_and_reproduces_outputs(tmp_path, name):
    config = QuantConfig(
        format="fb32",
        decomposition=DecompositionConfig(rho=0.1, profile_every=1),
        seda=SedaConfig(k_c=4, window=(1, 2, 2), regroup_every=1),
    )
    model = tiny_transformer(name)
    quantize_(model, config)
    save_quantized_model(model, tmp_path / "model")
    expected = _loop(model, name)
    loaded = load_quantized_model(tmp_path / "model")
    assert list(quantized_layers(loaded)) == list(quantized_layers(model))
    from safetensors.torch import load_file

    stored = load_file(tmp_path / "model" / "float.safetensors")
    assert not any(f"{layer}.weight" in stored for layer in quantized_layers(model))  # no float weights
    assert all(torch.equal(a, b) for a, b in zip(_loop(loaded, name), expected))


# -- bad files --------------------------------------------------------------------------------


@pytest.fixture()
def saved_model(tmp_path):
    model = tiny_transformer("wan")
    quantize_(model, QuantConfig(format="fb32"))
    return save_quantized_model(model, tmp_path / "model")


def _edit_json(path, edit):
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "config.json").unlink(), "has no config.json"),
        (lambda d: (d / "config.json").write_text("{not json"), "not valid JSON"),
        (lambda d: _edit_json(d / "config.json", lambda c: c.update(schema="other/9")), "schema 'other/9'"),
        (
            lambda d: _edit_json(d / "config.json", lambda c: c.update(class_name="UNet2DModel")),
            "UNet2DModel",
        ),
        (
            lambda d: _edit_json(d / "config.json", lambda c: c["model_config"].update(num_layers=3)),
            "does not match",
        ),
        (
            lambda d: _edit_json(d / "config.json", lambda c: c["model_config"].update(ffn_dim=256)),
            "quantized weight of shape",
        ),
        (
            lambda d: _edit_json(d / "config.json", lambda c: c["quant_config"].update(format="dialectfp4")),
            "fb32/32",
        ),
        (lambda d: (d / "quantized.safetensors").write_bytes(b"\x08" + b"\x00" * 20), "not a readable"),
        (lambda d: (d / "float.safetensors").unlink(), "float.safetensors is missing"),
    ],
)
def test_corrupt_or_mismatched_model_files_are_named(saved_model, damage, message):
    damage(saved_model)
    with pytest.raises(CheckpointError, match=message):
        load_quantized_model(saved_model)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "manifest.json").unlink(), "needs manifest.json"),
        (
            lambda d: _edit_json(d / "manifest.json", lambda m: m.update(schema="semanticdialect.capture/0")),
            "capture/0",
        ),
        (lambda d: _edit_json(d / "manifest.json", lambda m: m["records"][0].update(rows=3)), "shape"),
        (lambda d: _edit_json(d / "manifest.json", lambda m: m["records"][0].update(layer="nope")), "'nope'"),
        (lambda d: _edit_json(d / "manifest.json", lambda m: m.pop("quant_config")), "malformed"),
        (lambda d: (d / "capture.safetensors").write_bytes(b"garbage!"), "not a readable"),
    ],
)
def test_corrupt_or_mismatched_capture_files_are_named(tmp_path, damage, message):
    model = tiny_transformer("ltx-video")
    quantize_(model, QuantConfig(format="fb32", decomposition=DecompositionConfig(rho=0.1)))
    with capture(model, tmp_path / "cap", CaptureConfig(layers=("transformer_blocks.0.ff.*",), steps=(0,))):
        _loop(model, "ltx-video", batch=1)
    damage(tmp_path / "cap")
    with pytest.raises(CheckpointError, match=message):
        load_capture(tmp_path / "cap")


def test_capture_writes_nothing_when_the_loop_fails(tmp_path):
    model = tiny_transformer("wan")
    quantize_(model, QuantConfig(format="fb32"))
    with pytest.raises(RuntimeError, match="boom"):
        with capture(model, tmp_path / "cap", CaptureConfig(layers=("blocks.0.*",))):
            _loop(model, "wan", batch=1)
            raise RuntimeError("boom")
    assert not (tmp_path / "cap").exists() and list(tmp_path.iterdir()) == []

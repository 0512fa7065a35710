"""A quantized transformer's ``state_dict()`` carries its quantized weights (torch.save round trip),
refuses a checkpoint of another format, and ``.to()`` moves every quantized tensor and table with
the module while keeping the float32 tensor scale exact (issue 14)."""

import pytest
import torch

from golden import FormatError
from golden.dit import QuantConfig, fast_dequantize, quantize_, quantized_layers, tiny_inputs, tiny_transformer
from golden.dit.linear import QUANTIZED_STATE_KEYS

pytestmark = pytest.mark.xdist_group("dit-files")


def _run(model, name="wan", dtype=torch.bfloat16):
    inputs = {k: (v.to(dtype) if torch.is_tensor(v) and v.is_floating_point() else v)
              for k, v in tiny_inputs(name, batch=2).items()}
    with torch.no_grad():
        return model(**inputs, timestep=torch.full((2,), 700.0), return_dict=False)[0]


def _quantized(fmt: str, *, perturb: float = 0.0):
    model = tiny_transformer("wan").to(torch.bfloat16)
    if perturb:
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for p in model.parameters():
                p.add_((torch.randn(p.shape, generator=g) * perturb).to(p.dtype))
    quantize_(model, QuantConfig(format=fmt))
    return model


@pytest.mark.parametrize("fmt", ["fb32", "nvfp4"])
def test_torch_save_of_the_state_dict_carries_the_quantized_weights(tmp_path, fmt):
    model = _quantized(fmt)
    expected = _run(model)
    state = model.state_dict()
    for name, layer in quantized_layers(model).items():
        assert torch.equal(state[f"{name}.weight_codes"], layer.weight_q.codes)
    torch.save(state, tmp_path / "state.pt")
    other = _quantized(fmt, perturb=0.05)  # different float weights, same architecture and config
    assert not torch.equal(_run(other), expected)
    other.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert torch.equal(_run(other), expected)


def test_a_state_dict_of_another_format_or_a_float_model_is_refused():
    state = _quantized("fb32").state_dict()
    with pytest.raises(FormatError, match=r"holds a fb32/32 weight, the layer is dialectfp4/32"):
        _quantized("dialectfp4").load_state_dict(state)
    with pytest.raises(RuntimeError, match="weight_codes"):  # a float model: unexpected keys, not silence
        tiny_transformer("wan").load_state_dict(state)
    with pytest.raises(RuntimeError, match="weight_codes"):  # a float checkpoint lacks the quantized weights
        _quantized("fb32").load_state_dict(tiny_transformer("wan").state_dict())


def test_every_quantized_tensor_follows_the_module_device_and_keeps_its_dtype():
    """``.to(dtype)`` leaves codes and the (int32-bit) tensor scale untouched; ``.to("meta")`` moves
    every buffer, the dequantized weight is rebuilt there and dequantization reads its tables there
    (a CPU table indexed by meta codes would raise)."""
    model = _quantized("nvfp4")
    layers = quantized_layers(model)
    before = {n: (layer.weight_q.codes.clone(), layer.weight_q.tensor_scale.clone()) for n, layer in layers.items()}
    model.to(torch.float16)
    for name, layer in layers.items():
        codes, scale = before[name]
        assert torch.equal(layer.weight_q.codes, codes) and layer.weight_q.tensor_scale.dtype == torch.float32
        assert torch.equal(layer.weight_q.tensor_scale.view(torch.int32), scale.view(torch.int32))
    for fmt in ("nvfp4", "fb32", "mxfp4"):
        model = _quantized(fmt)
        first = next(iter(quantized_layers(model).values()))
        first.weight_deq  # noqa: B018 - cached on the CPU, dropped by the move
        model.to("meta")
        for layer in quantized_layers(model).values():
            q = layer.weight_q
            tensors = [q.codes, q.exponent, q.dialect, q.block_scale, q.tensor_scale, layer.bias]
            assert all(t.device.type == "meta" for t in tensors if t is not None), layer.name
            assert layer.weight_deq.device.type == "meta" and fast_dequantize(q).device.type == "meta"
        assert all(t.device.type == "meta" for t in model.state_dict().values())


def test_quantized_state_keys_name_every_quantized_buffer():
    model = _quantized("fb32")
    layer = next(iter(quantized_layers(model).values()))
    persistent = {k for k in layer.state_dict() if k != "bias"}
    assert persistent <= set(QUANTIZED_STATE_KEYS) and "weight_codes" in persistent

"""`sdialect bench model` writes its JSON and rejects bad arguments with exit status 2."""

import json

import pytest

from golden import get_format
from sdialect.cli import main as sdialect


def test_bench_model_reports_quantization_cost_and_step_ratio(tmp_path):
    out = tmp_path / "model.json"
    assert (
        sdialect(
            ["bench", "model", "--arch", "wan", "--steps", "2", "--latent", "2", "8", "8", "-o", str(out)]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert result["architecture"] == "wan" and result["config"]["seda"] is not None
    assert result["quantize"]["wall_time_s"] > 0 and result["quantize"]["quantized_layers"] == 20
    quantize = result["quantize"]
    bits = get_format("fb32").bits_per_element()  # per element, against 32 for float32
    assert quantize["quantized_weight_bytes"] == pytest.approx(quantize["float_weight_bytes"] * bits / 32)
    assert len(result["per_step_s"]["float"]) == len(result["per_step_s"]["quantized"]) == 2
    ratio = result["mean_step_s"]["quantized"] / result["mean_step_s"]["float"]
    assert result["ratio_quantized_over_float"] == pytest.approx(ratio)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--arch", "unet"], "unknown architecture"),
        (["--steps", "0"], "must be positive"),
        (["-o", "out.txt"], "must end in .json"),
    ],
)
def test_bench_model_rejects_bad_arguments(tmp_path, capsys, argv, message):
    assert sdialect(["bench", "model", *argv]) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_bench_model_at_a_real_configuration_reports_quantize_and_forward_ratio(tmp_path, monkeypatch):
    """The wan-1.3b benchmark, run on a 1-block slice of the 1.3B configuration at 32 tokens."""
    out = tmp_path / "real.json"
    assert sdialect(["bench", "model", "--config", "wan-1.3b", "--layers", "1", "--tokens", "32", "-o", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["model_config"]["num_layers"] == 1 and result["model_config"]["ffn_dim"] == 8960
    q = result["quantize"]
    assert q["quantized_layers"] == 10 and q["wall_time_s"] > 0
    assert q["quantized_weight_elements"] == 8 * 1536 * 1536 + 2 * 1536 * 8960  # attn1, attn2 (on projected text), FFN
    identity = q["bit_identical_to_reference_selection"]
    assert identity["checked"] and identity["mismatches"] == 0 and identity["layers"] == 10
    assert identity["sampled_blocks"] == 4 * (9 * 1536 + 8960) // 32  # 4 rows of each linear
    f = result["forward_s"]
    assert result["ratio_fake_quant_over_float_fp32"] == pytest.approx(f["fake_quant"] / f["float_fp32"])


def test_bench_model_real_rejects_bad_tokens(capsys):
    assert sdialect(["bench", "model", "--config", "wan-1.3b", "--tokens", "1000"]) == 2
    assert "--tokens" in capsys.readouterr().err

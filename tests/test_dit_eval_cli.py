"""`sdialect eval --model DIR` on every class quantize_ supports, and its checks before generating."""

import json

import pytest

from golden.dit import tiny_transformer
from sdialect.cli import main


def _eval(capsys, *args):
    code = main(["eval", *map(str, args)])
    return code, capsys.readouterr().err


def _hunyuan_patch_1():
    import torch
    from diffusers import HunyuanVideoTransformer3DModel

    torch.manual_seed(0)
    return HunyuanVideoTransformer3DModel(
        in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=16, num_layers=1,
        num_single_layers=1, num_refiner_layers=1, mlp_ratio=2.0, patch_size=1, patch_size_t=1,
        text_embed_dim=32, pooled_projection_dim=16, rope_axes_dim=(4, 6, 6), guidance_embeds=False,
    )  # fmt: skip


def test_too_small_frames_for_ssim_fail_before_generating(capsys, tmp_path):
    """HunyuanVideo with patch_size=1: 8 patches are 8 latent pixels, below SSIM's 11 x 11 window."""
    _hunyuan_patch_1().save_pretrained(str(tmp_path / "model"))
    out = tmp_path / "report"
    code, err = _eval(capsys, "--model", tmp_path / "model", "--size", "8", "--samples", "1", "--out", out)
    lines = [line for line in err.splitlines() if line.startswith("sdialect eval: error: ")]
    assert code == 2 and len(lines) == 1 and "SSIM" in lines[0] and "--size 8" in lines[0], err
    assert not out.exists()


def test_default_size_of_a_patch_1_model_is_large_enough_for_ssim(tmp_path):
    import torch

    from evaluation.workload import local_directory

    _hunyuan_patch_1().save_pretrained(str(tmp_path / "model"))
    workload = local_directory(tmp_path / "model", samples=1, seed=0, device=torch.device("cpu"), frames=2, size=None)
    assert workload.noise.shape[-2:] == (11, 11)


@pytest.mark.parametrize("arch", ["ltx-video", "cogvideox", "mochi", "skyreels-v2"])
def test_eval_runs_every_class_quantize_supports(capsys, tmp_path, arch):
    model_dir = tmp_path / "model"
    tiny_transformer(arch).save_pretrained(str(model_dir))
    out = tmp_path / "report"
    size = 12
    code, err = _eval(capsys, "--model", model_dir, "--samples", "1", "--steps", "2", "--frames", "2",
                      "--size", size, "--no-capture", "--out", out)  # fmt: skip
    assert code == 0, err
    result = json.loads((out / "metrics.json").read_text())
    assert result["model"]["architecture"] == arch
    assert {"fb32", "fb32+ad", "fb32+ad+seda"} <= set(result["methods"])
    for entry in result["methods"].values():
        assert len(entry["latent_sqnr_per_step"]) == 2

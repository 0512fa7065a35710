"""`sdialect eval --model DIR`: one-sentence errors for bad directories, and a foreign checkpoint end to end."""

import json

from sdialect.cli import main


def run_eval(capsys, *args):
    code = main(["eval", *map(str, args)])
    return code, capsys.readouterr().err


def assert_one_sentence_error(code, err, fragment):
    # Library import chatter (e.g. torchao's notice when diffusers loads) may precede the error line.
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("sdialect eval: error: ")]
    assert len(lines) == 1, err
    assert fragment in lines[0]


def test_missing_directory(capsys, tmp_path):
    code, err = run_eval(capsys, "--model", tmp_path / "nowhere")
    assert_one_sentence_error(code, err, "does not exist")


def test_directory_without_config(capsys, tmp_path):
    code, err = run_eval(capsys, "--model", tmp_path)
    assert_one_sentence_error(code, err, "no config.json")


def test_config_without_weights(capsys, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "WanTransformer3DModel"}))
    code, err = run_eval(capsys, "--model", tmp_path)
    assert_one_sentence_error(code, err, "no diffusers weights")


def test_sharded_checkpoint_with_a_missing_shard(capsys, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "WanTransformer3DModel"}))
    index = {"weight_map": {"a": "diffusion_pytorch_model-00001-of-00002.safetensors",
                            "b": "diffusion_pytorch_model-00002-of-00002.safetensors"}}  # fmt: skip
    (tmp_path / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))
    (tmp_path / "diffusion_pytorch_model-00001-of-00002.safetensors").write_bytes(b"")
    code, err = run_eval(capsys, "--model", tmp_path)
    assert_one_sentence_error(code, err, "00002-of-00002")


def test_unsupported_class(capsys, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "UNet2DConditionModel"}))
    (tmp_path / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    code, err = run_eval(capsys, "--model", tmp_path)
    assert_one_sentence_error(code, err, "supports")


def test_corrupt_weights(capsys, tmp_path):
    from golden.dit import tiny_transformer

    tiny_transformer("wan").save_pretrained(str(tmp_path))
    (tmp_path / "diffusion_pytorch_model.safetensors").write_bytes(b"not a safetensors file")
    code, err = run_eval(capsys, "--model", tmp_path)
    assert_one_sentence_error(code, err, "Cannot load the weights file")


def test_bad_sample_count(capsys, tmp_path):
    code, err = run_eval(capsys, "--model", tmp_path, "--samples", "0")
    assert_one_sentence_error(code, err, "--samples")


def test_foreign_checkpoint_end_to_end(capsys, tmp_path):
    # A tiny random Wan checkpoint in the pipeline layout (DIR/transformer); the Hunyuan path is the
    # embedded model's (tests/test_demo_quick.py). Latent 2 x 12 x 12: 72 tokens, the smallest SSIM takes.
    arch = "wan"
    from golden.dit import tiny_transformer

    model_dir = tmp_path / "model" / "transformer"  # the pipeline layout: DIR/transformer
    tiny_transformer(arch).save_pretrained(str(model_dir))
    out = tmp_path / "report"
    code, err = run_eval(capsys, "--model", model_dir.parent, "--samples", "1", "--steps", "2",
                         "--frames", "2", "--size", "12", "--out", out)
    assert code == 0, err
    result = json.loads((out / "metrics.json").read_text())
    assert result["model"]["pixel_space"] is False
    assert result["model"]["architecture"] == arch
    assert set(result["methods"]) >= {"mxfp4", "nvfp4", "nvfp4-46", "dialectfp4-16", "fb32", "fb32+ad", "fb32+ad+seda"}
    for entry in result["methods"].values():
        assert len(entry["latent_sqnr_per_step"]) == 2
    assert (out / "summary.md").is_file()

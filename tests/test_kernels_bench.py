"""`sdialect bench kernels` without a GPU says so, exits 0 and writes nothing; bad arguments exit 2."""

import pytest
import torch

from sdialect.cli import main

requires_no_gpu = pytest.mark.skipif(
    torch.cuda.is_available(), reason="this machine has a GPU: the benchmark would run"
)


@requires_no_gpu
def test_without_a_gpu_it_says_so_and_exits_cleanly(tmp_path, capsys):
    out = tmp_path / "bench" / "kernels.json"
    assert main(["bench", "kernels", "--tokens", "4096", "--shapes", "1536x1536", "-o", str(out)]) == 0
    assert "no CUDA GPU" in capsys.readouterr().out
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--shapes", "1536by1536"], "form KxN"),
        (["--shapes", "1000x1536"], "divisible by 64"),
        (["--formats", "nvfp4"], "nvfp4"),
        (["--tokens", "0"], "positive"),
        (["--formats", "tdit-q-e4m3"], "runs in exact mode only on the kernels; pass --modes exact"),
    ],
    ids=["shape-syntax", "shape-divisibility", "format", "tokens", "e4m3-fast"],
)
def test_bad_arguments_are_one_sentence_errors(argv, message, capsys):
    assert main(["bench", "kernels", *argv]) == 2
    assert message in capsys.readouterr().err


def test_weight_only_baseline_dequantizes_like_golden():
    import golden
    from kernels.cli_bench import _mxfp4_dequantize_bf16
    from kernels.packed import PackedOperand

    q = golden.quantize(torch.randn(24, 128) * 3, "mxfp4")
    assert torch.equal(
        _mxfp4_dequantize_bf16(PackedOperand.from_quantized(q)), q.dequantize().to(torch.bfloat16)
    )


def test_command_table_import_does_not_load_triton():
    """The CLI builds its parser from kernels.cli_bench: that must not import triton (or set its mode)."""
    import subprocess
    import sys

    script = "import sys, kernels.cli_bench; sys.exit('triton' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", script], timeout=120).returncode == 0

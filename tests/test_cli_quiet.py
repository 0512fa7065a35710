"""Third-party noise is filtered at the command-line entry; everything else still shows."""

import subprocess
import sys
import textwrap

NOISY_LINES = ("_C_mxfp8", "is an Enum subclass", "Unable to import `torchao` Tensor objects", "install accelerate")


def test_known_noise_is_dropped_and_other_messages_pass():
    script = textwrap.dedent("""
        import logging, warnings
        from sdialect import _quiet
        _quiet.install(); _quiet.install()
        logging.getLogger("torchao").warning("Failed to load /v/torchao/_C_mxfp8.cpython-310-x86_64-linux-gnu.so: x")
        logging.getLogger("torch.utils._pytree").warning("<enum 'K'> is an Enum subclass and is now natively supported by torch.compile as an opaque value type.")
        logging.getLogger("diffusers.quantizers.torchao.torchao_quantizer").warning("Unable to import `torchao` Tensor objects. This may affect")
        logging.getLogger("diffusers.models.modeling_utils").warning("Cannot initialize model with low cpu memory usage because `accelerate` was not found in the environment. pip install accelerate")
        logging.getLogger("torchao").warning("torchao: a real problem")
        logging.getLogger("diffusers.models.modeling_utils").warning("diffusers: another real problem")
        logging.getLogger("golden").warning("golden: the project's own warning")
        warnings.warn("a project UserWarning")
    """)
    err = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stderr
    for line in NOISY_LINES:
        assert line not in err, err
    for line in ("torchao: a real problem", "diffusers: another real problem", "golden: the project's own warning",
                 "a project UserWarning"):
        assert line in err, err


def test_a_command_importing_torchao_prints_no_noise(tmp_path):
    out = tmp_path / "b.json"
    done = subprocess.run([sys.executable, "-m", "sdialect.cli", "bench", "golden", "--rows", "8", "--cols", "64",
                           "--repeats", "1", "--out", str(out)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert out.is_file()
    for line in NOISY_LINES:
        assert line not in done.stderr, done.stderr

"""Import first in a kernel test: runs the Triton kernels in triton's CPU interpreter.

``TRITON_INTERPRET`` is read when ``@triton.jit`` runs, so it must be set before ``kernels`` is
imported in the worker process, and ideally before ``triton`` itself: triton.language's own helpers
(``tl.zeros``, ``tl.sum``, ...) are ``@triton.jit`` functions too. Another test module may import
triton first (torchao and torch do), so this module also turns those helpers into interpreted ones
when it finds them compiled-mode; that only affects this test process.
"""

import os
import sys

os.environ["TRITON_INTERPRET"] = "1"

import triton.language as tl  # noqa: E402
from triton.runtime.interpreter import InterpretedFunction  # noqa: E402
from triton.runtime.jit import JITFunction  # noqa: E402


def _interpret_triton_language() -> None:
    """Replace every compiled-mode @jit helper of triton.language.* by an interpreted one."""
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "triton.language" or name.startswith("triton.language.")):
            continue
        for attribute, value in list(vars(module).items()):
            if isinstance(value, JITFunction):
                setattr(module, attribute, InterpretedFunction(value.fn))


if isinstance(tl.zeros, JITFunction):  # triton was imported before TRITON_INTERPRET was set
    _interpret_triton_language()

import kernels  # noqa: E402
import kernels.launch  # noqa: E402

if not kernels.launch.interpreting():
    raise RuntimeError(
        "the kernels package was imported before TRITON_INTERPRET=1 was set; "
        "import tests.kernels_interpret before anything that imports kernels"
    )

#: Small tiles, so that the test shapes cover several tiles and ragged edges.
SMALL = kernels.KernelConfig(
    quantize=kernels.QuantizeConfig(rows=8),
    gemm=kernels.GemmConfig(block_m=16, block_n=16, fast_tile_k=64),
    residual=kernels.ResidualConfig(rows=4),
)

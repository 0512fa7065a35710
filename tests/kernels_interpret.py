"""Import first in a kernel test: runs the Triton kernels in triton's CPU interpreter.

``TRITON_INTERPRET`` must be set before ``@triton.jit`` runs, i.e. before ``kernels`` is imported
anywhere in the worker process; this module sets it and checks that it took effect.
"""

import os

os.environ["TRITON_INTERPRET"] = "1"

import kernels.launch  # noqa: E402

if not kernels.launch.interpreting():
    raise RuntimeError(
        "the kernels package was imported before TRITON_INTERPRET=1 was set; "
        "import tests.kernels_interpret before anything that imports kernels"
    )

#: Small tiles, so that the test shapes cover several tiles and ragged edges.
import kernels  # noqa: E402

SMALL = kernels.KernelConfig(
    quantize=kernels.QuantizeConfig(rows=8),
    gemm=kernels.GemmConfig(block_m=16, block_n=16, fast_tile_k=64),
    residual=kernels.ResidualConfig(rows=4),
)

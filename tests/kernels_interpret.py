"""Shared set-up of the kernel tests: the interpreter check and small tile configurations.

``tests/conftest.py`` sets ``TRITON_INTERPRET=1`` before any test module imports triton.
"""

import kernels
import kernels.launch

if not kernels.launch.interpreting():
    raise RuntimeError(
        "the kernel tests need TRITON_INTERPRET=1 (tests/conftest.py sets it) on a machine without a GPU"
    )

#: Small tiles, so that the test shapes cover several tiles and ragged edges.
SMALL = kernels.KernelConfig(
    quantize=kernels.QuantizeConfig(rows=16),
    gemm=kernels.GemmConfig(block_m=16, block_n=16, fast_tile_k=64),
    residual=kernels.ResidualConfig(rows=4),
)

"""Suite-wide set-up that must happen before any test module is imported.

The CPU suite runs the Triton kernels in Triton's interpreter. ``TRITON_INTERPRET`` is read when a
``@triton.jit`` function is created, including triton.language's own helpers, so it is set here,
before torch/torchao/kernels import triton in any worker. A GPU run may override it
(``TRITON_INTERPRET=0 pytest ...``).
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_configure(config):
    """One torch thread per test process: `make test` runs one pytest-xdist worker per core, and
    the tiny models of the suite gain nothing from intra-op threads (on a loaded 2-core machine,
    OpenMP spinning made them orders of magnitude slower)."""
    import torch

    torch.set_num_threads(1)

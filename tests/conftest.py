"""Suite-wide set-up that must happen before any test module is imported.

The CPU suite runs the Triton kernels in Triton's interpreter. ``TRITON_INTERPRET`` is read when a
``@triton.jit`` function is created, including triton.language's own helpers, so it is set here,
before torch/torchao/kernels import triton in any worker. A GPU run may override it
(``TRITON_INTERPRET=0 pytest ...``).
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

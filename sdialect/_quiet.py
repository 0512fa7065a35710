"""Third-party log lines a user of ``sdialect`` cannot act on, dropped at the command-line entry.

Each entry names the logger that emits the line and a pattern of that one message, so nothing else
from those libraries (and nothing from this project) is hidden:

- torchao's ``Failed to load .../torchao/_C_mxfp8...so``: its optional CUDA extensions, absent on a
  CPU-only torch; the Python paths the project uses do not need them;
- torch's pytree deprecation ``<enum ...> is an Enum subclass ... register_constant()``, triggered
  by torchao's own imports;
- diffusers' ``Unable to import `torchao` Tensor objects`` (only for torchao-serialized checkpoints,
  which the project never loads) and its advice to ``install accelerate`` for low-memory loading
  (the project loads small local models and does not depend on accelerate).
"""

from __future__ import annotations

import logging
import re

__all__ = ["NOISE", "install"]

NOISE = (
    ("torchao", re.compile(r"^Failed to load \S*torchao/_C\w*\S*\.so")),
    ("torch.utils._pytree", re.compile(r"is an Enum subclass and is now natively supported by torch\.compile")),
    ("diffusers.quantizers.torchao.torchao_quantizer", re.compile(r"^Unable to import `torchao` Tensor objects")),
    ("diffusers.models.modeling_utils",
     re.compile(r"^Cannot initialize model with low cpu memory usage because `accelerate` was not found")),
)  # fmt: skip


class _DropMessage(logging.Filter):
    def __init__(self, pattern: re.Pattern) -> None:
        super().__init__()
        self.pattern = pattern

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(record.getMessage())


def install() -> None:
    """Attach the filters (idempotent); call before the heavy imports happen."""
    for name, pattern in NOISE:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessage) and f.pattern is pattern for f in logger.filters):
            logger.addFilter(_DropMessage(pattern))

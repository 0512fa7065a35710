"""What every public kernel wrapper shares: device checks and launch options."""

from __future__ import annotations

import torch
import triton

from golden.blocks import InputError

__all__ = ["LAUNCH_OPTIONS", "check_runnable", "interpreting"]

#: Compile options of every launch. Floating-point contraction stays off: ``y + acc * scale`` fused
#: into one FMA would round once where NUMERICS.md section 4 rounds twice.
LAUNCH_OPTIONS = {"enable_fp_fusion": False}


def interpreting() -> bool:
    """True when triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1`` at import)."""
    return bool(triton.knobs.runtime.interpret)


def check_runnable(name: str, tensor: torch.Tensor) -> None:
    """Raise InputError unless ``tensor`` can feed a kernel: a CUDA tensor, or any under the interpreter."""
    if not isinstance(tensor, torch.Tensor):
        raise InputError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.device.type != "cuda" and not interpreting():
        raise InputError(
            f"{name} is on {tensor.device}; the Triton kernels need a CUDA tensor "
            f"(or TRITON_INTERPRET=1 set before triton is imported)"
        )

"""What every public kernel wrapper shares: device checks and launch options."""

from __future__ import annotations

import os

import torch
import triton

from golden.blocks import InputError

__all__ = ["LAUNCH_OPTIONS", "check_runnable", "interpreting", "validation_default"]

#: Compile options of every launch. Floating-point contraction stays off: ``y + acc * scale`` fused
#: into one FMA would round once where NUMERICS.md section 4 rounds twice.
LAUNCH_OPTIONS = {"enable_fp_fusion": False}


#: Whether ``@triton.jit`` produced interpreted kernels: triton decides when the kernel modules are
#: imported (right after this one), so a later change of ``TRITON_INTERPRET`` has no effect.
_INTERPRETED = bool(triton.knobs.runtime.interpret)


def interpreting() -> bool:
    """True when the kernels run in triton's CPU interpreter (``TRITON_INTERPRET=1`` at import)."""
    return _INTERPRETED


def check_runnable(name: str, tensor: torch.Tensor) -> None:
    """Raise InputError unless ``tensor`` can feed a kernel: a CUDA tensor, or any under the interpreter."""
    if not isinstance(tensor, torch.Tensor):
        raise InputError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.device.type != "cuda" and not interpreting():
        raise InputError(
            f"{name} is on {tensor.device}; the Triton kernels need a CUDA tensor "
            f"(or TRITON_INTERPRET=1 set before triton is imported)"
        )


#: Environment variable that turns the host-side checks of the linear's hot path on (``1``).
VALIDATE_ENV = "SDIALECT_KERNEL_CHECKS"


def validation_default() -> bool:
    """Whether ``w4a4_linear`` validates by default: checks that read device values on the host
    (NaN/infinite blocks, salient-row ranges and uniqueness, empty candidate masks) synchronise with
    the GPU and rule out CUDA graphs, so they run only when ``SDIALECT_KERNEL_CHECKS=1``."""
    return os.environ.get(VALIDATE_ENV, "") == "1"

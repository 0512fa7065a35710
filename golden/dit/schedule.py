"""Denoising-step bookkeeping: which step and which call of that step the transformer is running.

The user's loop is not changed: a forward pre-hook on the transformer reads the ``timestep``
argument of every call and takes the scheduler's timestep of the call from it: its *largest*
element (``call_timestep``). Pipelines pass the scheduler's ``t`` either as one value per sample or
per token, where conditioning tokens carry 0 or a smaller value (LTX image-to-video and condition
pipelines, Wan 2.2 TI2V with ``expand_timesteps``); the largest element is ``t`` in every case.

A call whose timestep differs from the previous call's starts a new denoising step; a call with the
same timestep is another *slot* of the same step (pipelines that run the conditional and
unconditional CFG passes as two calls). The first two steps of a generation show which way its
timesteps move (down for most schedulers, up for Mochi's ``invert_sigmas`` scheduler); a timestep
that moves the other way starts a new generation at step 0. Batched CFG (one call, batch 2) is one slot whose
per-sample state has a batch axis. State that lives across steps (salient tokens, SeDA groups,
per-linear families) is kept per slot, for at most ``MAX_SLOTS`` calls per step: a further call at
the same timestep is an error (call ``reset_schedule`` between repeated calls), so state never grows
without bound. Each quantized transformer counts its own calls: of Wan 2.2's two experts, the
low-noise expert's first call is its step 0 (it profiles there, having no salient set yet).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import torch

from ..formats import FormatError

__all__ = ["MAX_SLOTS", "BlockState", "CallInfo", "ModelState", "call_timestep"]

#: Most transformer calls of one denoising step (CFG passes, guidance variants) that keep state.
MAX_SLOTS = 8


def call_timestep(timestep: torch.Tensor | float | None) -> float | None:
    """The scheduler's timestep of a forward call: the largest element of its ``timestep`` argument
    (per-token timesteps hold smaller values, usually 0, for conditioning tokens), or None."""
    if timestep is None:
        return None
    t = torch.as_tensor(timestep).detach()
    if t.numel() == 0:
        return None
    return float(t.amax().item())


@dataclass(frozen=True)
class CallInfo:
    """One transformer forward call.

    Attributes:
        step: 0-based denoising step.
        slot: index of this call among the calls of the same step (0 unless CFG runs as two calls).
        grid: ``(frames, rows, cols)`` of video tokens after patchification; tokens are numbered
            ``j = (f * rows + r) * cols + c``.
        profile: whether this step runs the saliency pass.
        regroup: whether this step recomputes SeDA groups.
        video_offset: position of the first video token in the rows of the block's video-role
            linears (0 when video comes first; the text length for CogVideoX's text-first sequence).
    """

    step: int
    slot: int
    grid: tuple[int, int, int]
    profile: bool
    regroup: bool
    video_offset: int = 0

    @property
    def num_video_tokens(self) -> int:
        f, r, c = self.grid
        return f * r * c


@dataclass
class SlotState:
    """Per-slot state of one transformer block.

    ``salient``: int64 ``(batch, |S|)`` video-token indices, sorted, or None before the first
    profiling step. ``anchors``: the ``salient`` of the last regrouping step; ``groups``: int64
    ``(batch, T)`` position in ``anchors`` of each video token's SeDA group, -1 for no group.
    ``version`` identifies ``groups``: a fresh number of the model's counter whenever they change,
    never reused (not even after a reset), so per-layer caches keyed by it cannot go stale.
    """

    salient: torch.Tensor | None = None
    anchors: torch.Tensor | None = None
    groups: torch.Tensor | None = None
    version: int = 0


@dataclass
class BlockState:
    """State shared by the attention processor and the quantized linears of one transformer block."""

    name: str
    model: ModelState
    slots: dict[int, SlotState] = field(default_factory=dict)

    def slot(self) -> SlotState:
        return self.slots.setdefault(self.model.call.slot, SlotState())


class ModelState:
    """Step tracking for one quantized transformer (attached as ``model._sdialect_state``)."""

    def __init__(self, config) -> None:
        self.config = config
        self.call: CallInfo | None = None
        self._last_timestep: float | None = None
        #: +1 / -1 once two steps of this generation have shown which way its timesteps move.
        self._direction = 0
        self._step = -1
        self._slot = 0
        self.blocks: dict[str, BlockState] = {}
        #: Source of ``SlotState.version`` numbers.
        self.versions = itertools.count(1)
        #: ``(input tensor, its _version, plan, activation)`` of the last quantized-linear call, so
        #: q/k/v projections of one input quantize it once. Cleared on every forward call.
        self.last_activation: tuple | None = None

    def block(self, name: str) -> BlockState:
        return self.blocks.setdefault(name, BlockState(name=name, model=self))

    def reset(self) -> None:
        """Forget the schedule and every block's state: the next call is step 0 of a new generation."""
        self.call = None
        self.last_activation = None
        self._last_timestep = None
        self._direction = 0
        self._step = -1
        self._slot = 0
        for block in self.blocks.values():
            block.slots.clear()

    def begin_call(
        self, timestep: torch.Tensor | float | None, grid: tuple[int, int, int], video_offset: int = 0
    ) -> CallInfo:
        """Advance the schedule for one forward call; returns the call's ``CallInfo``."""
        t = call_timestep(timestep)
        if t is None or self._last_timestep is None or t != self._last_timestep:
            if t is not None and self._last_timestep is not None:
                move = 1 if t > self._last_timestep else -1
                if self._direction == 0:
                    self._direction = move
                elif move != self._direction:  # the schedule turned back: a new generation
                    self.reset()
            self._step += 1
            self._slot = 0
        else:
            if self._slot + 1 >= MAX_SLOTS:
                raise FormatError(
                    f"the transformer was called {MAX_SLOTS + 1} times at timestep {t:g} without the timestep "
                    f"changing; a denoising step keeps state for at most {MAX_SLOTS} calls, so call "
                    "golden.dit.reset_schedule(model) between repeated calls at one timestep"
                )
            self._slot += 1
        self._last_timestep = t
        self.last_activation = None
        self.call = CallInfo(
            step=self._step,
            slot=self._slot,
            grid=tuple(int(g) for g in grid),
            profile=self.config.profile_step(self._step),
            regroup=self.config.regroup_step(self._step),
            video_offset=int(video_offset),
        )
        return self.call

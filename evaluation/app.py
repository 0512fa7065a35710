"""What `sdialect demo` and `sdialect eval` share: presets, device choice, run and report."""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

#: Default report folder of `sdialect demo`.
DEFAULT_REPORT = Path("build/report")


@dataclass(frozen=True, kw_only=True)
class Preset:
    """How many samples and denoising steps a run uses."""

    samples: int
    steps: int


#: ``sdialect demo``: one clip per source video.
FULL = Preset(samples=4, steps=8)
#: ``sdialect demo --quick``: one clip.
QUICK = Preset(samples=1, steps=4)


def add_common_arguments(parser: argparse.ArgumentParser, *, default_out: Path | None) -> None:
    parser.add_argument("--quick", action="store_true", help=f"{QUICK.samples} samples x {QUICK.steps} steps instead of {FULL.samples} x {FULL.steps}")
    parser.add_argument("--samples", type=int, default=None, help="number of videos to generate (overrides the preset)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (overrides the preset)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial noise")
    parser.add_argument("--ablations", action="store_true", help="also run the one-knob ablations (selection rule, rho, SeDA window, K_g)")
    parser.add_argument("--formatbooks", action="store_true", help="also the fitted formatbooks (quarter grid, E4M3 scale) with AD and SeDA")
    parser.add_argument("--no-capture", action="store_true", help="skip the activation capture for the hardware regression")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto = cuda when available")
    parser.add_argument("--out", type=Path, default=default_out, help="report folder (replaced atomically)")


def settings_from(args):
    """(samples, Settings, device) from parsed arguments, validated."""
    import torch

    from golden.errors import UsageError

    from .runner import Settings

    preset = QUICK if args.quick else FULL
    samples = preset.samples if args.samples is None else args.samples
    steps = preset.steps if args.steps is None else args.steps
    if samples < 1:
        raise UsageError(f"--samples must be at least 1, got {samples}.")
    if steps < 1:
        raise UsageError(f"--steps must be at least 1, got {steps}.")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but no CUDA GPU is available.")
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu")
    return samples, Settings(steps=steps, ablations=args.ablations, formatbooks=args.formatbooks, capture=not args.no_capture), device


def run(args, make_workload, *, model_info: dict) -> int:
    """Build the workload with ``make_workload(samples, seed, device)``, evaluate and write the report."""
    import torch

    from golden.errors import UsageError

    from .data import DataError
    from .model import ModelError
    from .report import CAPTURE_DIR, SUMMARY_FILE, headline_table, write_report
    from .runner import evaluate

    samples, settings, device = settings_from(args)
    out = Path(args.out)
    staging = out.with_name(out.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    start = time.perf_counter()
    try:
        workload = make_workload(samples=samples, seed=args.seed, device=device)
    except (ModelError, DataError) as err:
        raise UsageError(str(err)) from None
    try:
        with torch.no_grad():
            result, runs = evaluate(workload, settings, capture_root=staging / CAPTURE_DIR if settings.capture else None)
        result = {
            "command": "sdialect " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "sdialect",
            "model": {**model_info, "name": workload.model_name, "architecture": workload.architecture,
                      "pixel_space": workload.pixel_space},
            "device": str(device),
            "settings": {"samples": samples, "steps": settings.steps, "seed": args.seed, "ablations": settings.ablations,
                         "sample_names": list(workload.names)},
            **result,
        }  # fmt: skip
        write_report(staging, out, result, runs, names=workload.names)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    print("\n".join(headline_table(result)))
    print(f"\nreport: {out / SUMMARY_FILE} ({time.perf_counter() - start:.0f} s)")
    return 0

"""What `sdialect demo` and `sdialect eval` share: presets, device choice, run and report."""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from golden.errors import UsageError

#: Default report folder of `sdialect demo`.
DEFAULT_REPORT = Path("build/report")


@dataclass(frozen=True, kw_only=True)
class Preset:
    """How many clips, seeds and denoising steps a run uses, and whether the ablations run."""

    name: str
    samples: int
    seeds: int
    steps: int
    ablations: bool = False
    formatbooks: bool = False  # the fitted formatbooks (evaluation.methods.formatbook_methods)

    def describe(self) -> str:
        extra = (" + fitted formatbooks" if self.formatbooks else "") + (" + ablations" if self.ablations else "")
        return f"{self.samples} clips x {self.seeds} seeds x {self.steps} steps{extra}"


#: ``sdialect demo`` (``make demo``): one clip per source video, one seed; intervals over the 4 clips.
DEFAULT = Preset(name="default", samples=4, seeds=1, steps=8, formatbooks=True)
#: ``sdialect demo --quick``: one clip, one seed.
QUICK = Preset(name="quick", samples=1, seeds=1, steps=4)
#: ``sdialect demo --full``: what the README's tables are produced with.
FULL = Preset(name="full", samples=4, seeds=3, steps=8, ablations=True, formatbooks=True)
PRESETS = {p.name: p for p in (DEFAULT, QUICK, FULL)}


def add_common_arguments(parser: argparse.ArgumentParser, *, default_out: Path | None) -> None:
    preset = parser.add_mutually_exclusive_group()
    preset.add_argument("--quick", action="store_true", help=f"{QUICK.describe()} instead of {DEFAULT.describe()}")
    preset.add_argument("--full", action="store_true", help=f"{FULL.describe()} (the README's results)")
    parser.add_argument("--samples", type=int, default=None, help="clips (videos per seed) to generate (overrides the preset)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds of the initial noise per clip, from --seed on (overrides the preset)")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (overrides the preset)")
    parser.add_argument("--seed", type=int, default=0, help="first seed of the initial noise")
    parser.add_argument("--ablations", action="store_true", help="also run the one-knob ablations (default with --full)")
    parser.add_argument("--formatbooks", action=argparse.BooleanOptionalAction, default=None,
                        help="the fitted formatbooks (quarter grid, E4M3 scale) alone and with AD and SeDA"
                        " (default: on for `sdialect demo` except --quick; off for `sdialect eval`)")
    parser.add_argument("--no-capture", action="store_true", help="skip the activation capture for the hardware regression")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto = cuda when available")
    parser.add_argument("--out", type=Path, default=default_out, help="report folder: new, empty or an earlier report (replaced atomically)")


def settings_from(args):
    """(samples, seeds, Settings, device) from parsed arguments, validated."""
    import torch

    from .runner import Settings

    preset = QUICK if args.quick else FULL if getattr(args, "full", False) else DEFAULT
    samples = preset.samples if args.samples is None else args.samples
    seeds = preset.seeds if args.seeds is None else args.seeds
    steps = preset.steps if args.steps is None else args.steps
    for name, value in (("--samples", samples), ("--seeds", seeds), ("--steps", steps)):
        if value < 1:
            raise UsageError(f"{name} must be at least 1, got {value}.")
    if args.seed < 0 or args.seed + seeds > 2**31 - 1:
        raise UsageError(f"--seed must lie in [0, 2^31 - 1 - seeds), got {args.seed}.")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but no CUDA GPU is available.")
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu")
    # The fitted books were fitted on the embedded model: on by the preset only for `sdialect demo`.
    formatbooks = args.formatbooks
    if formatbooks is None:
        formatbooks = preset.formatbooks and getattr(args, "embedded_model", False)
    settings = Settings(
        steps=steps, ablations=args.ablations or preset.ablations, formatbooks=formatbooks, capture=not args.no_capture
    )
    return samples, tuple(range(args.seed, args.seed + seeds)), settings, device


#: Loggers whose warnings the user cannot act on: torchao's optional CUDA extensions failing to load
#: on a CPU machine, torch's pytree deprecation notice that torchao triggers, diffusers' hints about
#: optional packages (accelerate) and torchao tensor types.
THIRD_PARTY_LOGGERS = ("torchao", "torch.utils._pytree", "diffusers")


def quiet_third_party() -> None:
    """Raise the third-party loggers above to ERROR (before they are imported, so import-time
    warnings are dropped too). Errors still show."""
    import logging

    # diffusers sets its library logger's level from this variable when it first configures it.
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from diffusers.utils import logging as diffusers_logging
    except ImportError:
        return
    diffusers_logging.set_verbosity_error()


def machine() -> str:
    """One line naming the machine a run was made on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu}, {cores} cores available, {platform.system()} {platform.release()}"


def run(args, make_workload, *, model_info: dict) -> int:
    """Check the arguments and the output folder, build the workload with
    ``make_workload(samples, seed, device)`` per seed, evaluate and write the report."""
    quiet_third_party()
    import torch

    from .data import DataError
    from .model import ModelError
    from .output import Staging, check_out
    from .report import CAPTURE_DIR, SUMMARY_FILE, headline_table, write_report
    from .runner import evaluate
    from .workload import with_seeds

    check_out(Path(args.out))  # before anything slow
    samples, seeds, settings, device = settings_from(args)
    start = time.perf_counter()
    with Staging(Path(args.out)) as staging:
        try:
            workload = with_seeds(make_workload, samples=samples, seeds=seeds, device=device)
        except (ModelError, DataError) as err:
            raise UsageError(str(err)) from None
        with torch.no_grad():
            result, runs = evaluate(workload, settings, capture_root=staging.path / CAPTURE_DIR if settings.capture else None)
        result = {
            "command": "sdialect " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "sdialect",
            "model": {**model_info, "name": workload.model_name, "architecture": workload.architecture,
                      "pixel_space": workload.pixel_space},
            "device": str(device),
            "machine": machine(),
            "settings": {"clips": samples, "seeds": list(seeds), "samples": len(workload.names), "steps": settings.steps,
                         "seed": seeds[0], "ablations": settings.ablations, "sample_names": list(workload.names),
                         "units": [{"clip": c, "seed": s} for c, s in zip(workload.clips, workload.seeds)]},
            **result,
        }  # fmt: skip
        result["run_time_s"] = time.perf_counter() - start
        result = write_report(staging.path, result, runs, names=workload.names)
        out = staging.commit()
    print("\n".join(headline_table(result)))
    print("\n".join(["", "Verdict:", *result["verdict"]]))
    print(f"\nreport: {out / SUMMARY_FILE} ({time.perf_counter() - start:.0f} s)")
    return 0

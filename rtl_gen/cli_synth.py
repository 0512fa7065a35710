"""`sdialect synth`: the hardware cost report into build/report/hw.md and hw.json.

    sdialect synth                      # every design of DESIGNS, both flows (make synth)
    sdialect synth --profile quick      # the units and the 1 x 1 tiles only
    sdialect synth --profile builtin    # FB32, DialectFP4-16, MXFP4, NVFP4 only (no registry variants)
    sdialect synth --only tile_mxfp4    # designs whose name contains a substring
    sdialect synth --flows generic      # skip the ECP5 flow
    sdialect synth --readme README.md   # also rewrite the README's hardware table from hw.json
    sdialect synth --seed 2 --only tile_dialectfp4_bf16_r2_c2   # place and route with another seed

Each tile is synthesized with its hierarchy kept (the PE one module, instantiated rows x cols times),
so one run per tile gives the tile's total and the share of each unit inside it; every unit is also
synthesized on its own for its Fmax. Results are cached in ``--work`` per Verilog hash.
"""

from __future__ import annotations

import argparse

from golden.errors import UsageError

FLOWS = ("generic", "ecp5")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="build/report", help="report folder (default build/report)")
    parser.add_argument("--work", default="build/synth", help="Verilog, scripts and tool logs (default build/synth)")
    parser.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="synthesize only designs whose name contains TEXT (repeatable)")  # fmt: skip
    parser.add_argument("--flows", default=",".join(FLOWS), help="comma-separated subset of: generic, ecp5")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per tool run (default 3600)")
    parser.add_argument("--profile", choices=("full", "quick", "builtin", "builtin-quick"), default="full",
                        help="full: tiles at 1x1, 4x4, 16x16 and every unit; quick: units and 1x1 tiles; "
                        "builtin(-quick): the same without the registry variant formats")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=2, help="tool runs at a time (default 2)")
    parser.add_argument("--place-max-luts", type=int, default=None, metavar="N",
                        help="place and route a tile array only up to N LUT4s (default rtl_gen.synth_report.PLACE_LUT_BUDGET)")  # fmt: skip
    parser.add_argument("--place-size", default=None, metavar="RxC",
                        help="place and route the tiles of this size (default rtl_gen.synth_report.PLACED_SIZE, 2x2)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=None, metavar="N",
                        help="nextpnr placer seed (default rtl_gen.synth.DEFAULT_SEED, 1); each seed is cached on its own")  # fmt: skip
    parser.add_argument("--cached-only", action="store_true",
                        help="start no tool: report the cached results (designs without one are listed as not measured)")  # fmt: skip
    parser.add_argument("--readme", default=None, metavar="PATH",
                        help="rewrite the hardware table between the hw-table markers of PATH from hw.json")  # fmt: skip


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .synth import DEFAULT_SEED, generator_digest

    generator_digest()  # the sources' digest before hw/ is imported (rtl_gen.synth.generator_digest)
    from .synth_report import DESIGNS, PLACE_LUT_BUDGET, PLACED_SIZE, PROFILES, update_readme, run_report

    flows = tuple(f.strip() for f in args.flows.split(",") if f.strip())
    unknown = [f for f in flows if f not in FLOWS]
    if unknown or not flows:
        raise UsageError(f"unknown flow {unknown[0] if unknown else args.flows!r}; expected some of {', '.join(FLOWS)}")
    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
    if args.seed is not None and args.seed < 1:
        raise UsageError(f"--seed must be a positive integer, got {args.seed}")
    place_size = PLACED_SIZE
    if args.place_size is not None:
        try:
            place_size = tuple(int(x) for x in args.place_size.lower().split("x"))
            if len(place_size) != 2 or min(place_size) < 1:
                raise ValueError
        except ValueError:
            raise UsageError(f"--place-size must look like 2x2 (rows x cols), got {args.place_size!r}") from None
    readme = Path(args.readme) if args.readme else None
    if readme is not None:
        text = readme.read_text() if readme.is_file() else ""
        if README_BEGIN not in text or README_END not in text:
            raise UsageError(f"{readme} has no {README_BEGIN} ... {README_END} markers for the hardware table")
    designs = [d for d in DESIGNS if PROFILES[args.profile](d) and (not args.only or any(t in d.name for t in args.only))]
    if not designs:
        raise UsageError(f"no design name contains {' or '.join(args.only)}; known: {', '.join(d.name for d in DESIGNS)}")
    command = " ".join(["sdialect synth", *_argv_tail(args)])
    report = run_report(designs, flows=flows, out=Path(args.out), work=Path(args.work), timeout=args.timeout,
                        workers=args.jobs, place_budget=args.place_max_luts or PLACE_LUT_BUDGET,
                        cached_only=args.cached_only, place_size=place_size,
                        seed=DEFAULT_SEED if args.seed is None else args.seed,
                        command=command + (f" --readme {readme}" if readme is not None else ""))  # fmt: skip
    print(report)
    if readme is not None:
        update_readme(readme, Path(args.out) / "hw.json", command=command)
        print(readme)
    return 0


README_BEGIN = "<!-- hw-table:begin -->"
README_END = "<!-- hw-table:end -->"


def _argv_tail(args) -> list[str]:
    out = []
    if args.profile != "full":
        out += ["--profile", args.profile]
    for text in args.only:
        out += ["--only", text]
    if args.flows != ",".join(FLOWS):
        out += ["--flows", args.flows]
    if args.place_size is not None:
        out += ["--place-size", args.place_size]
    if args.seed is not None:
        out += ["--seed", str(args.seed)]
    if args.cached_only:
        out += ["--cached-only"]
    if args.place_max_luts is not None:
        out += ["--place-max-luts", str(args.place_max_luts)]
    for flag, value, default in (("--out", args.out, "build/report"), ("--work", args.work, "build/synth")):
        if value != default:
            out += [flag, value]
    return out

"""`sdialect rtl`: write deterministic Verilog of the hardware units (hw/README.md).

    sdialect rtl --unit dsu --book fb32 --dialects-per-cycle 8 --out build/rtl
    sdialect rtl --unit dsu --book tdit64-q-e4m3 --out build/rtl     # a registry formatbook by name
    sdialect rtl --unit decoder --books path/to/book.json --lanes 32  # or a formatbook file by path
    sdialect rtl --unit scaled_front_end --grid quarter               # E4M3 front-end (NUMERICS 8.3)
    sdialect rtl --all --out build/rtl
"""

from __future__ import annotations

import argparse

from golden.errors import UsageError
from golden.paths import check_output_dir

UNITS = ("front_end", "scaled_front_end", "dsu", "two_stage", "decoder", "mac_array")
BOOKS = ("fb32", "dialectfp4", "e2m1")
GRIDS = ("half", "quarter")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--unit", choices=UNITS, help="generate one unit configuration")
    what.add_argument("--all", action="store_true", help="generate every default configuration")
    parser.add_argument("--out", default="build/rtl", help="output folder (default build/rtl)")
    parser.add_argument("--block", type=int, default=32, help="block size B (16, 32 or 64)")
    parser.add_argument("--book", default="fb32",
                        help="DSU formatbook: fb32, dialectfp4, a registry dialect format (tdit64-q-e4m3) or a formatbook file")  # fmt: skip
    parser.add_argument("--dialects-per-cycle", type=int, default=None, help="DSU dialects costed per cycle")
    parser.add_argument(
        "--books", default=",".join(BOOKS),
        help="decoder formatbooks, comma separated (default fb32,dialectfp4,e2m1; registry names and files too, one grid)",
    )
    parser.add_argument("--grid", choices=GRIDS, default=None,
                        help="front-end / MAC array grid (default half; the E4M3 front-end defaults to quarter)")  # fmt: skip
    parser.add_argument("--e4m3", action="store_true", help="MAC array with the E4M3 scale path (NVFP4, E4M3 dialect formats)")
    parser.add_argument("--lanes", type=int, default=1, help="decoder lanes (codes per cycle)")
    parser.add_argument("--rows", type=int, default=2, help="MAC array rows (activation blocks)")
    parser.add_argument("--cols", type=int, default=2, help="MAC array columns (weight blocks)")
    parser.add_argument("--lint", action="store_true", help="also run verilator --lint-only -Wall")


def _config(args):
    from golden.formats import Grid
    from hw import (Book, ConfigError, DecoderConfig, DSUConfig, FrontEndConfig, MACArrayConfig, ScaledFrontEndConfig,
                    TwoStageConfig)  # fmt: skip

    grid = Grid(args.grid) if args.grid else None
    try:
        if args.unit == "front_end":
            return FrontEndConfig(block=args.block, grid=grid or Grid.HALF)
        if args.unit == "scaled_front_end":
            return ScaledFrontEndConfig(block=args.block, grid=grid or Grid.QUARTER)
        if args.unit == "dsu":
            return DSUConfig(book=Book(args.book), block=args.block, dialects_per_cycle=args.dialects_per_cycle)
        if args.unit == "two_stage":
            return TwoStageConfig(block=args.block)
        if args.unit == "decoder":
            names = [n.strip() for n in args.books.split(",") if n.strip()]
            if not names:
                raise UsageError(f"--books names no formatbook; expected some of {', '.join(BOOKS)} or registry formats")
            return DecoderConfig(books=tuple(Book(n) for n in names), lanes=args.lanes)
        return MACArrayConfig(rows=args.rows, cols=args.cols, block=args.block, grid=grid or Grid.HALF, nvfp4=args.e4m3)
    except ConfigError as err:
        raise UsageError(str(err)) from None


def main(args: argparse.Namespace) -> int:
    from .generate import DEFAULT_CONFIGS, lint, write_verilog

    configs = DEFAULT_CONFIGS if args.all else (_config(args),)
    check_output_dir(args.out, "RTL output directory")
    for config in configs:
        path = write_verilog(config, args.out)
        print(path)
        if args.lint:
            result = lint(path, config.name)
            if result.returncode:
                raise UsageError(f"verilator lint failed for {path}: {result.stderr.strip().splitlines()[0]}")
    return 0

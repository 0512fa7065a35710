"""`sdialect rtl`: write deterministic Verilog of the hardware units (hw/README.md).

    sdialect rtl --unit dsu --book fb32 --dialects-per-cycle 8 --out build/rtl
    sdialect rtl --all --out build/rtl
"""

from __future__ import annotations

import argparse

from golden.errors import UsageError
from golden.paths import check_output_dir

UNITS = ("front_end", "dsu", "two_stage", "decoder", "mac_array")
BOOKS = ("fb32", "dialectfp4", "e2m1")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--unit", choices=UNITS, help="generate one unit configuration")
    what.add_argument("--all", action="store_true", help="generate every default configuration")
    parser.add_argument("--out", default="build/rtl", help="output folder (default build/rtl)")
    parser.add_argument("--block", type=int, default=32, help="block size B (16, 32 or 64)")
    parser.add_argument("--book", choices=BOOKS[:2], default="fb32", help="DSU formatbook")
    parser.add_argument("--dialects-per-cycle", type=int, default=None, help="DSU dialects costed per cycle")
    parser.add_argument(
        "--books", default=",".join(BOOKS), help="decoder formatbooks, comma separated (default all)"
    )
    parser.add_argument("--lanes", type=int, default=1, help="decoder lanes (codes per cycle)")
    parser.add_argument("--rows", type=int, default=2, help="MAC array rows (activation blocks)")
    parser.add_argument("--cols", type=int, default=2, help="MAC array columns (weight blocks)")
    parser.add_argument("--lint", action="store_true", help="also run verilator --lint-only -Wall")


def _config(args):
    from hw import Book, ConfigError, DecoderConfig, DSUConfig, FrontEndConfig, MACArrayConfig, TwoStageConfig

    try:
        if args.unit == "front_end":
            return FrontEndConfig(block=args.block)
        if args.unit == "dsu":
            return DSUConfig(book=Book(args.book), block=args.block, dialects_per_cycle=args.dialects_per_cycle)
        if args.unit == "two_stage":
            return TwoStageConfig(block=args.block)
        if args.unit == "decoder":
            names = [n.strip() for n in args.books.split(",") if n.strip()]
            unknown = [n for n in names if n not in BOOKS]
            if unknown:
                raise UsageError(f"unknown decoder formatbook {unknown[0]!r}; expected some of {', '.join(BOOKS)}")
            return DecoderConfig(books=tuple(Book(n) for n in names), lanes=args.lanes)
        return MACArrayConfig(rows=args.rows, cols=args.cols, block=args.block)
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

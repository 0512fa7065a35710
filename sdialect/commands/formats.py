"""`sdialect formats`: the format registry as a table, optionally with each formatbook."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tables", action="store_true", help="also print every formatbook's dialects")


def main(args: argparse.Namespace) -> int:
    from golden.formats import FORMATS

    print(f"{'format':<10} {'block':>5} {'bits/elem':>9}  {'selection':<10} description")
    for spec in FORMATS.values():
        select = spec.default_select.value if spec.default_select else "-"
        print(f"{spec.name:<10} {spec.default_block:>5} {spec.bits_per_element():>9.4f}  {select:<10} {spec.description}")
    if args.tables:
        books = {id(s.formatbook): s.formatbook for s in FORMATS.values()}
        for book in books.values():
            print(f"\n{book.name}: {book.num_dialects} dialects, magnitudes in half units (x0.5)")
            for d, h in enumerate(book.dialects):
                family = f"  family {book.family_of(d)}" if book.family_size else ""
                print(f"  {d:>2}: {' '.join(f'{v:>2}' for v in h)}{family}")
    return 0

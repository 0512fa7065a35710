"""`sdialect formats`: the format registry as a table, optionally with each formatbook."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tables", action="store_true", help="also print every formatbook's dialects")


def main(args: argparse.Namespace) -> int:
    from golden.formats import FORMATS

    width = max(10, *(len(name) for name in FORMATS))
    print(f"{'format':<{width}} {'block':>5} {'bits/elem':>9}  {'selection':<10} description")
    for spec in FORMATS.values():
        select = spec.default_select.value if spec.default_select else "-"
        tensor = f" (+{spec.tensor_scale_bits} bits/tensor)" if spec.tensor_scale_bits else ""
        print(f"{spec.name:<{width}} {spec.default_block:>5} {spec.bits_per_element():>9.4f}  {select:<10} "
              f"{spec.description}{tensor}")
    if args.tables:
        books = {id(s.formatbook): s.formatbook for s in FORMATS.values()}
        for book in books.values():
            unit = {"half": "half units (x0.5)", "quarter": "quarter units (x0.25)"}[book.grid.value]
            print(f"\n{book.name}: {book.num_dialects} dialects, magnitudes in {unit}")
            for d, h in enumerate(book.dialects):
                family = f"  family {book.family_of(d)}" if book.family_size else ""
                print(f"  {d:>2}: {' '.join(f'{v:>2}' for v in h)}{family}")
    return 0

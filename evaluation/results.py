"""Tables for the README from a finished report's ``metrics.json``.

    python -m evaluation.results docs/results/full/metrics.json

prints the verdict, the headline table and the ablation table as Markdown, each regenerated from
the numbers in the file (the same functions that wrote its ``summary.md``), preceded by the
command, run time and machine of the run that produced it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .methods import Group
from .report import ablation_section, headline_table


def tables(result: dict) -> list[str]:
    settings = result["settings"]
    lines = [
        f"Produced by `{result['command']}`"
        + (f" in {result['run_time_s'] / 60:.0f} min on {result['machine']}" if "run_time_s" in result else "")
        + f"; {settings['clips']} clips x {len(settings['seeds'])} seeds x {settings['steps']} steps; tables printed by"
        " `python -m evaluation.results docs/results/full/metrics.json`.",
        "",
        "Verdict (95 % intervals of paired differences; win/loss only when the interval excludes zero):",
        "",
        *result["verdict"],
        "",
        *headline_table(result, groups=(Group.BASELINE.value, Group.LITERATURE.value, Group.PROPOSED.value)),
        "",
    ]
    lines += ablation_section(result)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("metrics", type=Path, help="metrics.json of a finished report")
    args = parser.parse_args(argv)
    try:
        result = json.loads(args.metrics.read_text())
    except (OSError, ValueError) as err:
        print(f"evaluation.results: error: cannot read {args.metrics}: {err}", file=sys.stderr)
        return 2
    if "statistics" not in result or "verdict" not in result:
        print(f"evaluation.results: error: {args.metrics} has no statistics (written by an older version?)", file=sys.stderr)
        return 2
    print("\n".join(tables(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

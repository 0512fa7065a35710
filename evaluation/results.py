"""Tables for the README from a finished report's ``metrics.json``.

    python -m evaluation.results docs/results/full/metrics.json

prints the verdict, the headline table and the ablation table as Markdown, each regenerated from
the numbers in the file (the same functions that wrote its ``summary.md``), preceded by the
command, run time and machine of the run that produced it.

    python -m evaluation.results --reanalyze docs/results/full/metrics.json

first recomputes the statistics, paired differences, motion strata and verdict from the per-video
values in the file with the current ``evaluation.analysis`` and rewrites that report's
``metrics.json`` and ``summary.md`` (each atomically); the measured values are not touched.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .analysis import analyze
from .methods import Group
from .report import SUMMARY_FILE, ablation_section, headline_table, summary_lines

#: The keys ``analysis.analyze`` derives from the measured values (recomputed by ``--reanalyze``).
DERIVED = ("statistics", "paired_differences", "motion_strata", "verdict")


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


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def reanalyze(metrics: Path, result: dict) -> dict:
    """``result`` analysed afresh from its measured values; rewrites ``metrics`` and the
    ``summary.md`` beside it."""
    fresh = analyze({k: v for k, v in result.items() if k not in DERIVED})
    folder = metrics.parent
    lines = summary_lines(fresh, strip_files=fresh.get("files", {}).get("strips", []), staging=folder)
    _write(metrics, json.dumps(fresh, indent=1, allow_nan=False) + "\n")
    _write(folder / SUMMARY_FILE, "\n".join(lines) + "\n")
    return fresh


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("metrics", type=Path, help="metrics.json of a finished report")
    parser.add_argument("--reanalyze", action="store_true",
                        help="recompute the statistics and verdict from the per-video values and rewrite metrics.json and summary.md")
    args = parser.parse_args(argv)
    try:
        result = json.loads(args.metrics.read_text())
    except (OSError, ValueError) as err:
        print(f"evaluation.results: error: cannot read {args.metrics}: {err}", file=sys.stderr)
        return 2
    if "statistics" not in result or "verdict" not in result:
        print(f"evaluation.results: error: {args.metrics} has no statistics (written by an older version?)", file=sys.stderr)
        return 2
    if args.reanalyze:
        try:
            result = reanalyze(args.metrics, result)
        except OSError as err:
            print(f"evaluation.results: error: cannot rewrite the report beside {args.metrics}: {err}", file=sys.stderr)
            return 2
    print("\n".join(tables(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

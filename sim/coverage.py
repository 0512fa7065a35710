"""Functional coverage of the unit regressions: named bins, sampled from what the scoreboard checked.

A small model of the project's own rather than cocotb-coverage: the interesting events are
properties of whole batches (the dialect golden chose, cost-tie classes over 32 costs, rounding
ties of a binary32 accumulation), computed vectorized with numpy from the batch and the golden
expectation after the scoreboard has passed it bit-exact; cocotb-coverage's per-transaction
decorators would call Python once per block and bin, and its report format would still need a
merge step across simulators, seeds and xdist workers. Here a ``Coverage`` is a plain
``{bin: hits}`` dict per configuration, JSON-serializable and merged by addition.

Bins are *defined* up front per unit configuration (``define_bins``), so a bin that is never hit
shows up as a hole; ``sample_batch`` adds hits from a checked batch, the testbench adds the protocol
bins (back-pressure seen on each port, resets while idle, while a beat is in flight, while a MAC
partial sum is in flight). ``python -m sim.coverage REPORT_DIR`` merges every report the unit
regressions wrote, writes ``coverage.json`` and a text table, and exits non-zero below the goal.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch

import golden
from golden.formats import CODE_BITS, NUM_UCODES
from hw import DecoderConfig, DSUConfig, FrontEndConfig, MACArrayConfig, TwoStageConfig, UnitConfig

__all__ = ["PROTOCOL_BINS", "Coverage", "define_bins", "sample_batch"]

#: Exponent bytes the brief names as extremes (E = 0, 1, 254), plus everything else.
EXPONENT_BINS = ("exponent-0", "exponent-1", "exponent-254", "exponent-other")
#: The front end's output exponent extremes: E = 0 (zero or tiny blocks), 1, and the largest, 252.
FRONT_END_EXPONENT_BINS = ("exponent-0", "exponent-1", "exponent-252", "exponent-other")
#: Stream-protocol and reset states every unit must have been driven through.
PROTOCOL_BINS = (
    "protocol/input-stalled",  # i.valid while i.ready was low
    "protocol/output-stalled",  # o.valid while o.ready was low
    "protocol/input-gap",  # i.valid low between beats
    "reset/idle",  # reset with nothing in flight
    "reset/in-flight",  # reset while an accepted beat had not come out
    "reset/output-held",  # reset while o.valid waited for o.ready
)
#: MAC-only reset bin: the accumulators held part of a job's sum.
PARTIAL_SUM_BIN = "reset/partial-sum"
MASK_BINS = ("mask/full", "mask/family", "mask/single", "mask/random")
TIE_BINS = ("tie/unique", "tie/2", "tie/3+", "tie/masked-cheaper")
MAC_BINS = (
    "result/normal",
    "result/zero",
    "result/subnormal",
    "result/overflow-inf",
    "result/nan",
    "rounding/add-tie",
    "rounding/add-inexact",
    "rounding/term-inexact",
    "job/one-block",
    "job/many-blocks",
)


def define_bins(config: UnitConfig) -> list[str]:
    """Every bin the regression of ``config`` must hit."""
    bins = list(PROTOCOL_BINS)
    if isinstance(config, (DSUConfig, TwoStageConfig)):
        book = config.book.formatbook
        bins += [f"dialect/{d}" for d in range(book.num_dialects)]
        bins += [f"code/{d}/{c}" for d in range(book.num_dialects) for c in range(1 << CODE_BITS)]
        bins += list(EXPONENT_BINS)
        if isinstance(config, DSUConfig):
            bins += list(MASK_BINS) + list(TIE_BINS)
        else:
            bins += ["two-stage/a-wins-tie", "two-stage/b-wins", "two-stage/all-zero"]
    elif isinstance(config, FrontEndConfig):
        # E = max(Ex_max - 2, 0) of a finite bf16 block tops out at 254 - 2 (NUMERICS 2.1).
        bins += list(FRONT_END_EXPONENT_BINS) + ["input/zero-block", "input/subnormal", "ucode/0", "ucode/mid"]
        bins += [f"ucode/{NUM_UCODES - 1}"]
    elif isinstance(config, DecoderConfig):
        from hw.layouts import decoder_in_layout

        dialect_bits = decoder_in_layout(config)["dialect"].shape.width
        for f, b in enumerate(config.books):
            bins += [f"code/{f}/{d}/{c}" for d in range(b.formatbook.num_dialects) for c in range(1 << CODE_BITS)]
        if any(b.formatbook.num_dialects < 1 << dialect_bits for b in config.books):
            bins += ["format/out-of-range-dialect"]
    elif isinstance(config, MACArrayConfig):
        bins += list(MAC_BINS) + [PARTIAL_SUM_BIN]
    return bins


class Coverage:
    """Hit counts per bin of one configuration; ``defined`` bins count towards the goal."""

    def __init__(self, name: str, defined: list[str], hits: dict[str, int] | None = None) -> None:
        self.name = name
        self.defined = list(defined)
        self.hits: Counter = Counter(hits or {})

    @classmethod
    def for_config(cls, config: UnitConfig) -> Coverage:
        return cls(config.name, define_bins(config))

    def hit(self, name: str, count: int = 1) -> None:
        if count:
            self.hits[name] += int(count)

    def merge(self, other: Coverage) -> None:
        if other.name != self.name:
            raise ValueError(f"cannot merge coverage of {other.name} into {self.name}")
        self.defined = sorted(set(self.defined) | set(other.defined), key=self.defined_order(other))
        self.hits.update(other.hits)

    def defined_order(self, other):
        order = {b: i for i, b in enumerate(self.defined + [b for b in other.defined if b not in self.defined])}
        return order.__getitem__

    @property
    def holes(self) -> list[str]:
        return [b for b in self.defined if not self.hits.get(b)]

    @property
    def percent(self) -> float:
        return 100.0 * (len(self.defined) - len(self.holes)) / max(1, len(self.defined))

    def to_dict(self) -> dict:
        return {"name": self.name, "defined": self.defined, "hits": dict(self.hits)}

    @classmethod
    def from_dict(cls, raw: dict) -> Coverage:
        return cls(raw["name"], raw["defined"], raw["hits"])


def _exponent_bins(cov: Coverage, exponent: np.ndarray, extremes=(0, 1, 254)) -> None:
    exponent = np.asarray(exponent)
    for value in extremes:
        cov.hit(f"exponent-{value}", int((exponent == value).sum()))
    cov.hit("exponent-other", int((~np.isin(exponent, extremes)).sum()))


def _code_bins(cov: Coverage, dialect: np.ndarray, codes: np.ndarray, prefix: str = "code") -> None:
    keys = (np.asarray(dialect, dtype=np.int64).ravel() << CODE_BITS) | np.asarray(codes, dtype=np.int64).ravel()
    values, counts = np.unique(keys, return_counts=True)
    for key, count in zip(values.tolist(), counts.tolist()):
        cov.hit(f"{prefix}/{key >> CODE_BITS}/{key & ((1 << CODE_BITS) - 1)}", count)


def _mask_class(masks: np.ndarray, num_dialects: int) -> list[str]:
    full = (1 << num_dialects) - 1
    size = 8 if num_dialects % 8 == 0 else num_dialects
    families = {((1 << size) - 1) << (f * size) for f in range(num_dialects // size)}
    out = []
    for m in np.asarray(masks).tolist():
        if m == full:
            out.append("mask/full")
        elif m in families:
            out.append("mask/family")
        elif m & (m - 1) == 0:
            out.append("mask/single")
        else:
            out.append("mask/random")
    return out


def _sample_dsu(cov: Coverage, config: DSUConfig, fields, expected) -> None:
    book = config.book.formatbook
    costs = golden.lut_costs(torch.from_numpy(np.asarray(fields["ucodes"], dtype=np.int64)), book).numpy()
    from .reference import mask_to_bool

    masks = np.asarray(fields["mask"], dtype=object if book.num_dialects > 62 else np.int64)  # 64 dialects: Python ints
    allowed = mask_to_bool(masks, book.num_dialects).numpy()
    masked_costs = np.where(allowed, costs, np.iinfo(np.int64).max)
    best = masked_costs.min(-1, keepdims=True)
    ties = (masked_costs == best).sum(-1)
    cov.hit("tie/unique", int((ties == 1).sum()))
    cov.hit("tie/2", int((ties == 2).sum()))
    cov.hit("tie/3+", int((ties >= 3).sum()))
    cov.hit("tie/masked-cheaper", int((costs.min(-1) < best[:, 0]).sum()))
    for name, count in Counter(_mask_class(masks, book.num_dialects)).items():
        cov.hit(name, count)


def _sample_two_stage(cov: Coverage, config: TwoStageConfig, fields, expected) -> None:
    book = config.book.formatbook
    u = np.asarray(fields["ucodes"], dtype=np.int64)
    umax = u.max(-1)
    ranges = book.two_stage_ranges.numpy() if hasattr(book.two_stage_ranges, "numpy") else np.asarray(book.two_stage_ranges)
    pairs = ranges.shape[0]
    top = (NUM_UCODES >> 1) - 1
    pair = top - np.clip(umax >> 1, top - (pairs - 1), top)
    lo_a, hi_a, lo_b, hi_b = (ranges[pair, c, e][:, None] for c in (0, 1) for e in (0, 1))
    count_a = ((u >= lo_a) & (u < hi_a)).sum(-1)
    count_b = ((u >= lo_b) & (u < hi_b)).sum(-1)
    nonzero = umax > 0
    cov.hit("two-stage/a-wins-tie", int((nonzero & (count_a == count_b)).sum()))
    cov.hit("two-stage/b-wins", int((nonzero & (count_b > count_a)).sum()))
    cov.hit("two-stage/all-zero", int((~nonzero).sum()))


def _sample_front_end(cov: Coverage, fields, expected) -> None:
    bits = np.asarray(fields[""], dtype=np.int64)
    magnitude = bits & 0x7FFF
    _exponent_bins(cov, expected["exponent"], extremes=(0, 1, 252))
    cov.hit("input/zero-block", int((magnitude.max(-1) == 0).sum()))
    cov.hit("input/subnormal", int(((magnitude > 0) & (magnitude < 0x80)).any(-1).sum()))
    u = np.asarray(expected["ucodes"])
    cov.hit("ucode/0", int((u == 0).sum()))
    cov.hit(f"ucode/{NUM_UCODES - 1}", int((u == NUM_UCODES - 1).sum()))
    cov.hit("ucode/mid", int(((u > 0) & (u < NUM_UCODES - 1)).sum()))


def _sample_decoder(cov: Coverage, config: DecoderConfig, fields, expected) -> None:
    fmt = np.asarray(fields["format"], dtype=np.int64)
    dialect = np.asarray(fields["dialect"], dtype=np.int64)
    codes = np.asarray(fields["codes"], dtype=np.int64)
    for f, b in enumerate(config.books):
        rows = (fmt == f) & (dialect < b.formatbook.num_dialects)
        if rows.any():
            d = np.repeat(dialect[rows], codes.shape[1])
            _code_bins(cov, d, codes[rows].ravel(), prefix=f"code/{f}")
        out = (fmt == f) & (dialect >= b.formatbook.num_dialects)
        cov.hit("format/out-of-range-dialect", int(out.sum()))


def _float_class(bits: np.ndarray) -> dict[str, int]:
    bits = np.asarray(bits, dtype=np.uint32)
    exponent, fraction = (bits >> 23) & 0xFF, bits & 0x7FFFFF
    return {
        "result/zero": int(((exponent == 0) & (fraction == 0)).sum()),
        "result/subnormal": int(((exponent == 0) & (fraction != 0)).sum()),
        "result/normal": int(((exponent > 0) & (exponent < 255)).sum()),
        "result/overflow-inf": int(((exponent == 255) & (fraction == 0)).sum()),
        "result/nan": int(((exponent == 255) & (fraction != 0)).sum()),
    }


def _sample_mac(cov: Coverage, jobs) -> None:
    for a, w in jobs:
        cov.hit("job/one-block" if a.num_blocks == 1 else "job/many-blocks")
        ha = a.signed_half_units().to(torch.float64).numpy()  # (rows, blocks, block)
        hw = w.signed_half_units().to(torch.float64).numpy()
        ea = a.unbiased_exponent().numpy().astype(np.int64)  # (rows, blocks)
        ew = w.unbiased_exponent().numpy().astype(np.int64)
        y = np.zeros((ha.shape[0], hw.shape[0]), np.float32)
        for b in range(a.num_blocks):
            # The exact term (float64 holds acc * 2^(e_a + e_w - 2) exactly) and its one rounding.
            exact_term = (ha[:, b] @ hw[:, b].T) * np.exp2((ea[:, b, None] + ew[None, :, b] - 2).astype(np.float64))
            with np.errstate(over="ignore", invalid="ignore"):
                term = exact_term.astype(np.float32)
                cov.hit("rounding/term-inexact", int((np.isfinite(term) & (term != exact_term)).sum()))
                exact = y.astype(np.float64) + term.astype(np.float64)
                rounded = (y + term).astype(np.float32)
                finite = np.isfinite(exact) & np.isfinite(rounded)
                err = np.abs(exact - rounded.astype(np.float64))
                # A tie: the exact sum lies halfway between the rounded value and a neighbour.
                up = np.abs(np.nextafter(rounded, np.float32(np.inf)).astype(np.float64) - rounded) / 2
                down = np.abs(np.nextafter(rounded, np.float32(-np.inf)).astype(np.float64) - rounded) / 2
            cov.hit("rounding/add-inexact", int((finite & (err != 0)).sum()))
            cov.hit("rounding/add-tie", int((finite & (err != 0) & ((err == up) | (err == down))).sum()))
            y = rounded
        for name, count in _float_class(y.view(np.uint32)).items():
            cov.hit(name, count)


def sample_batch(cov: Coverage, config: UnitConfig, batch, expected: dict | None = None) -> None:
    """Add the stimulus/result bins of a batch the scoreboard has checked bit-exact."""
    from . import reference

    fields = batch.fields
    if isinstance(config, (DSUConfig, TwoStageConfig)):
        expected = expected or reference.select_reference(config, fields)
        dialect = np.asarray(expected["dialect"], dtype=np.int64)
        for d, count in zip(*np.unique(dialect, return_counts=True)):
            cov.hit(f"dialect/{int(d)}", int(count))
        codes = np.asarray(expected["codes"], dtype=np.int64)
        _code_bins(cov, np.repeat(dialect, codes.shape[1]), codes.ravel())
        _exponent_bins(cov, fields["exponent"])
        if isinstance(config, DSUConfig):
            _sample_dsu(cov, config, fields, expected)
        else:
            _sample_two_stage(cov, config, fields, expected)
    elif isinstance(config, FrontEndConfig):
        _sample_front_end(cov, fields, expected or reference.front_end_reference(fields[""], config.grid))
    elif isinstance(config, DecoderConfig):
        _sample_decoder(cov, config, fields, expected)
    elif isinstance(config, MACArrayConfig):
        _sample_mac(cov, batch.jobs)


def merge_reports(paths: list[Path]) -> dict[str, Coverage]:
    """Coverage per configuration name, summed over the ``report.json`` files in ``paths``."""
    merged: dict[str, Coverage] = {}
    for path in paths:
        raw = json.loads(Path(path).read_text())
        if "coverage" not in raw:
            continue
        cov = Coverage.from_dict(raw["coverage"])
        if cov.name in merged:
            merged[cov.name].merge(cov)
        else:
            merged[cov.name] = cov
    return merged


def _table(merged: dict[str, Coverage]) -> str:
    lines = [f"{'configuration':36} {'bins':>6} {'hit':>6} {'coverage':>9}  holes"]
    for name, cov in sorted(merged.items()):
        holes = cov.holes
        shown = ", ".join(holes[:6]) + (f", ... ({len(holes) - 6} more)" if len(holes) > 6 else "")
        lines.append(f"{name:36} {len(cov.defined):6d} {len(cov.defined) - len(holes):6d} {cov.percent:8.2f}%  {shown}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.coverage", description=__doc__.splitlines()[0])
    parser.add_argument("reports", type=Path, help="directory holding the regressions' report JSON files")
    parser.add_argument("--out", type=Path, default=None, help="coverage JSON (default: REPORTS/coverage.json)")
    parser.add_argument("--goal", type=float, default=100.0, help="minimum coverage per configuration, percent")
    args = parser.parse_args(argv)
    if not args.reports.is_dir():
        print(f"error: report directory {args.reports} does not exist; run the unit regressions first", file=sys.stderr)
        return 2
    paths = sorted(p for p in args.reports.rglob("*.json") if p.name != "coverage.json")
    merged = merge_reports(paths)
    if not merged:
        print(f"error: no coverage in the {len(paths)} JSON files under {args.reports}", file=sys.stderr)
        return 2
    out = args.out or args.reports / "coverage.json"
    summary = {
        name: {"defined": len(c.defined), "hit": len(c.defined) - len(c.holes), "percent": c.percent,
               "holes": c.holes, "hits": dict(c.hits)}
        for name, c in sorted(merged.items())
    }
    out.write_text(json.dumps({"goal_percent": args.goal, "reports": len(paths), "configurations": summary}, indent=1))
    print(_table(merged))
    print(f"coverage written to {out}")
    short = [name for name, c in merged.items() if c.percent < args.goal]
    if short:
        print(f"error: {len(short)} configuration(s) below {args.goal}% functional coverage: {', '.join(sorted(short))}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

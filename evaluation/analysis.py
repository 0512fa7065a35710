"""Statistics of a finished evaluation: intervals, paired differences, motion strata, the verdict.

Everything here is a pure function of the metrics dict the runner produced (``metrics.json`` before
this step), so it can be recomputed from a committed ``metrics.json`` and tested on made-up
numbers. The unit is one generated video, a (clip, seed) pair (``settings.units``); see
``stats`` for the intervals and the win / loss / within-noise rule.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from . import stats
from .methods import REFERENCE_GROUPS, Group


@dataclass(frozen=True)
class Criterion:
    """A metric the report compares methods on: ``key`` into a method entry (per-sample values under
    ``per_sample``), whether higher is better, its unit and the number of decimals shown."""

    key: str
    name: str
    higher_is_better: bool
    unit: str
    decimals: int


CRITERIA = (
    Criterion("psnr", "PSNR", True, " dB", 2),
    Criterion("ssim", "SSIM", True, "", 4),
    Criterion("temporal_consistency_error", "temporal-consistency error", False, "", 5),
    Criterion("final_latent_sqnr", "final latent SQNR", True, " dB", 2),
)
#: The comparisons that isolate AD and SeDA: (method, the method it adds to, what the step is).
STEPS = (("fb32+ad", "fb32", "AD"), ("fb32+ad+seda", "fb32+ad", "SeDA"))
#: Issue 16's quality target: the best proposed method's video PSNR at least this many dB above this
#: baseline, the paired interval excluding zero, and its temporal-consistency error no worse (not a
#: loss beyond noise).
TARGET_BASELINE, TARGET_PSNR_GAIN_DB = "nvfp4-46", 0.5
MOTION_STRATA = ("low motion", "high motion")
PAIR_STRATA = ("low", "middle", "high")


def per_unit(entry: dict, criterion: Criterion) -> list[float]:
    return [float(v) for v in entry[criterion.key]["per_sample"]]


def units(result: dict) -> list[dict]:
    """``[{"clip", "seed"}]`` per sample; older results without units count each sample as its own clip."""
    if result.get("settings", {}).get("units"):
        return result["settings"]["units"]
    n = len(next(iter(result["methods"].values()))["psnr"]["per_sample"])
    return [{"clip": f"sample {i}", "seed": result.get("settings", {}).get("seed", 0)} for i in range(n)]


def method_statistics(result: dict) -> dict:
    """``{method: {metric: interval + per_seed}}``: mean, 95 % CI over the videos, mean per seed."""
    unit_list = units(result)
    seeds = list(dict.fromkeys(u["seed"] for u in unit_list))
    out = {}
    for key, entry in result["methods"].items():
        out[key] = {}
        for c in CRITERIA:
            values = per_unit(entry, c)
            summary = stats.interval(values)
            summary["per_seed"] = {
                str(s): statistics.fmean(v for v, u in zip(values, unit_list) if u["seed"] == s) for s in seeds
            }
            out[key][c.key] = summary
    return out


def comparisons(result: dict) -> list[tuple[str, str]]:
    """(a, b) pairs the report differences: every proposed method against every baseline and
    literature method, the AD and SeDA steps, and every ablation against the default it varies."""
    methods = result["methods"]
    references = [k for k, m in methods.items() if m["group"] in {g.value for g in REFERENCE_GROUPS}]
    proposed = [k for k, m in methods.items() if m["group"] == Group.PROPOSED.value]
    pairs = [(p, b) for p in proposed for b in references]
    pairs += [(a, b) for a, b, _ in STEPS if a in methods and b in methods]
    pairs += [(k, m["against"]) for k, m in methods.items() if m["group"] == Group.ABLATION.value and m.get("against") in methods]
    return list(dict.fromkeys(pairs))


def difference(result: dict, a: str, b: str, criterion: Criterion, *, select: list[int] | None = None) -> dict:
    """Paired difference ``a - b`` on one criterion (optionally over the units ``select``), its
    interval, the verdict for ``a``, and on how many videos ``a`` is strictly better."""
    va, vb = per_unit(result["methods"][a], criterion), per_unit(result["methods"][b], criterion)
    clip_of = [u["clip"] for u in units(result)]
    if select is not None:
        va, vb, clip_of = [va[i] for i in select], [vb[i] for i in select], [clip_of[i] for i in select]
    diff = stats.paired(va, vb)
    sign = 1 if criterion.higher_is_better else -1
    exact_tie = all(x == y for x, y in zip(va, vb))
    # The seeds of one clip share its content: the same difference with the clip as the unit (mean
    # over its seeds), a stricter interval for whether a gain carries over to other content.
    clips = list(dict.fromkeys(clip_of))
    per_clip = [statistics.fmean(x - y for x, y, c in zip(va, vb, clip_of) if c == clip) for clip in clips]
    over_clips = stats.interval(per_clip)
    return {
        "a": a,
        "b": b,
        "metric": criterion.key,
        "mean": diff["mean"],
        "ci95": diff["ci95"],
        "n": diff["n"],
        "verdict": "tie" if exact_tie else stats.verdict(diff, higher_is_better=criterion.higher_is_better),
        "better_units": sum(1 for x, y in zip(va, vb) if sign * (x - y) > 0),
        "over_clips": {
            "mean": over_clips["mean"], "ci95": over_clips["ci95"], "n": over_clips["n"],
            "verdict": "tie" if exact_tie else stats.verdict(over_clips, higher_is_better=criterion.higher_is_better),
            "better_clips": sum(1 for d in per_clip if sign * d > 0),
        },
    }  # fmt: skip


def paired_differences(result: dict) -> list[dict]:
    return [difference(result, a, b, c) for a, b in comparisons(result) for c in CRITERIA]


def motion_strata(result: dict) -> dict:
    """Clips split at the median of their reference motion energy (mean absolute frame difference,
    averaged over seeds) into low and high motion, and frame pairs split into tertiles of their own
    motion energy; every metric per stratum with its interval, and the paired differences."""
    ref = result["reference"]
    unit_list = units(result)
    motion = ref["motion_per_sample"]
    clips = list(dict.fromkeys(u["clip"] for u in unit_list))
    clip_motion = {c: statistics.fmean(m for m, u in zip(motion, unit_list) if u["clip"] == c) for c in clips}
    threshold = statistics.median(clip_motion.values())
    low = [c for c in clips if clip_motion[c] <= threshold] if len(clips) > 1 else clips
    high = [c for c in clips if c not in low]
    members = {"low motion": low, "high motion": high}
    out = {
        "definition": "clip motion energy = mean |ref[t+1] - ref[t]| of the float reference in [0, 1] pixels,"
        " averaged over seeds; clips at or below the median are low motion",
        "clip_motion": clip_motion,
        "threshold": threshold,
        "clips": members,
        "per_stratum": {},
        "paired_differences": {},
    }
    for name, chosen in members.items():
        select = [i for i, u in enumerate(unit_list) if u["clip"] in chosen]
        if not select:
            continue
        out["per_stratum"][name] = {
            key: {c.key: stats.interval([per_unit(entry, c)[i] for i in select]) for c in CRITERIA}
            for key, entry in result["methods"].items()
        }
        out["paired_differences"][name] = [
            difference(result, a, b, c, select=select) for a, b in comparisons(result) for c in CRITERIA
        ]
    # Frame pairs: tertiles of the reference's per-pair motion, over all videos.
    pairs = [(m, i, t) for i, row in enumerate(ref["motion_per_pair"]) for t, m in enumerate(row)]
    ordered = sorted(m for m, _, _ in pairs)
    edges = [ordered[len(ordered) // 3], ordered[(2 * len(ordered)) // 3]] if len(ordered) >= 3 else [ordered[-1]] * 2
    strata = {name: [] for name in PAIR_STRATA}
    for m, i, t in pairs:
        strata["low" if m < edges[0] else "middle" if m < edges[1] else "high"].append((i, t))
    out["frame_pairs"] = {"edges": edges, "counts": {k: len(v) for k, v in strata.items()}, "per_stratum": {}}
    for name, chosen in strata.items():
        if not chosen:
            continue
        out["frame_pairs"]["per_stratum"][name] = {
            key: {
                "temporal_consistency_error": stats.interval(
                    [entry["temporal_consistency_error"]["per_pair"][i][t] for i, t in chosen]
                ),
                "psnr_next_frame": stats.interval([entry["psnr"]["per_frame"][i][t + 1] for i, t in chosen]),
            }
            for key, entry in result["methods"].items()
        }
    return out


def _value(result: dict, key: str, criterion: Criterion) -> float:
    return statistics.fmean(per_unit(result["methods"][key], criterion))


def fmt_number(value: float | None, decimals: int, *, signed: bool = False) -> str:
    """``value`` with ``decimals`` decimals; a nonzero value that would print as zero gets two
    significant digits instead (so a tiny real difference never reads as 0.0000)."""
    if value is None:
        return "n/a"
    if value != 0 and round(abs(value), decimals) == 0:
        text = f"{value:+.2g}" if signed else f"{value:.2g}"
    else:
        text = f"{value:+.{decimals}f}" if signed else f"{value:.{decimals}f}"
    return text


def describe(diff: dict, criterion: Criterion) -> str:
    """``+0.27 dB [95 % CI +0.10, +0.44]: a win`` -- the wording follows the interval."""
    d = criterion.decimals
    text = fmt_number(diff["mean"], d, signed=True) + criterion.unit
    if diff["ci95"] is not None:
        lo, hi = diff["ci95"]
        text += f" [95 % CI {fmt_number(lo, d, signed=True)}, {fmt_number(hi, d, signed=True)}]"
    word = {
        stats.WIN: "a win beyond run-to-run noise",
        stats.LOSS: "a loss beyond run-to-run noise",
        stats.NOISE: "within noise" if diff["ci95"] is not None else "within noise (one video: no interval)",
        "tie": "a tie (identical on every video)",
    }[diff["verdict"]]
    return f"{text}, {word}"


def verdict_lines(result: dict, differences: list[dict]) -> list[str]:
    """The short verdict summary.md opens with: per metric the best method and how the best proposed
    method compares with the best other one, and what AD and SeDA add."""
    methods = result["methods"]
    by_pair = {(d["a"], d["b"], d["metric"]): d for d in differences}
    headline = [k for k, m in methods.items() if m["group"] != Group.ABLATION.value]
    proposed = [k for k in headline if methods[k]["group"] == Group.PROPOSED.value]
    others = [k for k in headline if methods[k]["group"] in {g.value for g in REFERENCE_GROUPS}]
    lines = []
    for c in CRITERIA:
        pick = max if c.higher_is_better else min
        best = pick(headline, key=lambda k: _value(result, k, c))
        line = f"- **{c.name}**: best is {methods[best]['label']} ({fmt_number(_value(result, best, c), c.decimals)}{c.unit})"
        if proposed and others:
            p = pick(proposed, key=lambda k: _value(result, k, c))
            o = pick(others, key=lambda k: _value(result, k, c))
            d = by_pair.get((p, o, c.key))
            if d is not None:
                line += (
                    f"; best proposed {methods[p]['label']} ({methods[p]['bits_per_element_effective']:.2f} bits) vs best"
                    f" other {methods[o]['label']} ({methods[o]['bits_per_element_effective']:.2f} bits): {describe(d, c)}"
                )
        lines.append(line + ".")
    target = target_line(result, by_pair)
    if target:
        lines.append(target)
    for a, b, what in STEPS:
        if a in methods and b in methods:
            parts = [f"{c.name} {describe(by_pair[(a, b, c.key)], c)}" for c in CRITERIA if (a, b, c.key) in by_pair]
            bits = methods[a]["activation_bits_per_element_effective"]
            lines.append(f"- **What {what} adds** ({methods[a]['label']} vs {methods[b]['label']}, {bits:.2f} effective"
                         f" activation bits): " + "; ".join(parts) + ".")  # fmt: skip
    return lines


def target_line(result: dict, by_pair: dict) -> str | None:
    """Whether the best SemanticDialect configuration (the proposed method with the highest mean
    PSNR among those without a low-rank branch, which is SVDQuant's idea and costs extra bits) meets
    the target against ``TARGET_BASELINE``: mean gain >= ``TARGET_PSNR_GAIN_DB``, interval
    excluding zero, temporal error not a loss beyond noise. None when either method is missing."""
    methods = result["methods"]
    psnr, temporal = CRITERIA[0], CRITERIA[2]
    proposed = [k for k, m in methods.items() if m["group"] == Group.PROPOSED.value and m.get("baseline") is None]
    if TARGET_BASELINE not in methods or not proposed:
        return None
    best = max(proposed, key=lambda k: _value(result, k, psnr))
    d, t = by_pair.get((best, TARGET_BASELINE, psnr.key)), by_pair.get((best, TARGET_BASELINE, temporal.key))
    if d is None or t is None:
        return None
    met = d["mean"] >= TARGET_PSNR_GAIN_DB and d["verdict"] == stats.WIN and t["verdict"] != stats.LOSS
    line = (
        f"- **Target** (video PSNR of the best SemanticDialect configuration, no low-rank branch, >="
        f" {methods[TARGET_BASELINE]['label']} + {TARGET_PSNR_GAIN_DB} dB, outside the noise, temporal error no worse):"
        f" {methods[best]['label']} ({methods[best]['bits_per_element_effective']:.2f} effective bits) vs"
        f" {methods[TARGET_BASELINE]['label']} ({methods[TARGET_BASELINE]['bits_per_element_effective']:.2f}): PSNR"
        f" {describe(d, psnr)}; temporal-consistency error {describe(t, temporal)}: **{'met' if met else 'not met'}**"
    )
    clips = d.get("over_clips")
    if clips is None or clips["n"] < 2 or clips["n"] == d["n"]:
        return line + "."
    return line + (
        f" over the videos. With the clip as the unit (its seeds averaged) the PSNR difference is"
        f" {describe({**clips, 'verdict': clips['verdict']}, psnr)}, better on {clips['better_clips']} of {clips['n']} clips."
    )


def analyze(result: dict) -> dict:
    """``result`` plus ``statistics``, ``paired_differences``, ``motion_strata`` and ``verdict``."""
    differences = paired_differences(result)
    return {
        **result,
        "statistics": method_statistics(result),
        "paired_differences": differences,
        "motion_strata": motion_strata(result),
        "verdict": verdict_lines(result, differences),
    }


__all__ = ["CRITERIA", "Criterion", "analyze", "describe", "difference", "fmt_number", "motion_strata"]

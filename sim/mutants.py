"""Mutation check: a committed list of named design mutants, each with the test that must kill it.

A ``Mutant`` is a textual patch to the Amaranth source (``hw/*.py``): an exact snippet, which must
occur exactly once (so a mutant that no longer applies after a refactoring is reported as stale,
never silently skipped), and its replacement. ``python -m sim.mutants`` (``make mutants``):

1. runs every killer test once on the real design: each must pass (a killer that fails anyway
   would "kill" every mutant and prove nothing);
2. for each mutant, copies ``hw/`` into a temporary tree, applies the patch and runs the killer
   tests in a fresh process whose ``sys.path`` puts that tree first (cocotb's simulator process
   inherits it, so the generated Verilog and everything the testbench imports see the mutant);
   simulator builds go to ``build/mutants/<name>/`` (``SDIALECT_SIM_ROOT``), apart from the real
   ones;
3. asserts every mutant was killed by every one of its killers (a list of seeds is a list of
   killers: the reset-less accumulator must die at each reset seed), writes
   ``build/mutants/report.json`` and exits non-zero otherwise.

Killers are pytest node ids, so "which test kills it" is a name anyone can run by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MUTANTS", "Mutant", "MutantError", "apply_mutant", "main"]

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build" / "mutants"

#: The reset test's seeds (tests/test_sim_units.py RESET_SEEDS): the reset-less mutant must die at each.
RESET_KILLERS = tuple(f"tests/test_sim_units.py::test_resets_bite_at_every_seed[seed{s}]" for s in (1, 2, 3, 4))
MAC_AMARANTH = "tests/test_hw_units.py::test_bit_exact_under_backpressure[mac_array_r1_c2_b16]"
DSU_AMARANTH = "tests/test_hw_units.py::test_bit_exact_under_backpressure[dsu_fb32_b16_p32]"
ADDER = "tests/test_hw_float32.py::test_adder_matches_numpy_round_to_nearest_even"
C_SLOW_MAC_CONTRACT = "tests/test_formal_units.py::test_every_property_is_proved[mac_array_r1_c1_b16_l2_o2:stream-contract]"
PIPELINED_DSU_CONTRACT = "tests/test_formal_units.py::test_every_property_is_proved[dsu_dialectfp4_b16_p16_s3:stream-contract]"
C_SLOW_BACK_PRESSURE = "tests/test_hw_pipeline.py::test_c_slow_mac_array_is_bit_exact_under_back_pressure[mac_array_r2_c2_b16_l4]"
#: The tile join's killers: a full-rate 2 x 2 tile over three row tiles (two buffer banks), so the
#: quantizer outruns the array and its writes must wait for a bank (the back-pressure tests stream
#: two row tiles only, which never fill both banks, so a join that ignores its sink survives them).
TILE_JOIN_KILLERS = tuple(f"tests/test_tile_pipeline.py::test_tile_2x2_is_bit_exact_and_keeps_the_array_busy[{f}]"
                          for f in ("mxfp4", "fb32"))


class MutantError(RuntimeError):
    """A mutant that cannot be applied (its snippet is gone or ambiguous)."""


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str  # relative to the repository root
    old: str
    new: str
    killers: tuple[str, ...]
    why: str  # the bug it models
    #: Further edits of the same bug elsewhere: (file, old, new), each snippet exactly once.
    also: tuple[tuple[str, str, str], ...] = ()


#: Issue 10's new or changed mutants first (a run cut short still covers them).
MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "mac-reset-less-accumulator",
        "hw/mac_array.py",
        'open_slots = Signal(slots, name="open_slots")',
        'open_slots = Signal(slots, name="open_slots", reset_less=True)',
        RESET_KILLERS,
        "the accumulator state ignores reset (the adder ring's register and the C-slow slot bookkeeping): a "
        "partial sum in flight at a reset leaks into the resent job. Either half alone is an equivalent mutant: a "
        "reset ring restarts from +0.0, and a reset slot map marks the next beat `first`, which discards the ring",
        also=(("hw/mac_array.py", 'feedback = Signal(FLOAT32_BITS, name="ring_feedback")',
               'feedback = Signal(FLOAT32_BITS, name="ring_feedback", reset_less=True)'),),
    ),
    Mutant(
        "tile-join-ignores-sink-ready",
        "hw/tile.py",
        "m.d.comb += source.ready.eq(sink.ready)",
        "m.d.comb += source.ready.eq(1)",
        TILE_JOIN_KILLERS,
        "a lockstep join hands its sources' beats over while its sink stalls (quantizers -> buffer, decoders "
        "-> MAC array): beats are lost under back-pressure",
    ),
    Mutant(
        "c-slow-idle-slot-adds-a-term",
        "hw/mac_array.py",
        'term = _register(m, Mux(flags_at[0], term_bits, 0), "term")',
        'term = _register(m, term_bits, "term")',
        (C_SLOW_BACK_PRESSURE,),
        "a C-slow slot that gets no beat in a cycle adds the stale term instead of +0.0 (issue 10's adder ring)",
    ),
    Mutant(
        "mac-stuck-ready",
        "hw/mac_array.py",
        "self.i.ready.eq((phase == expect) & (pending < depth))",
        "self.i.ready.eq(phase == expect)",
        (C_SLOW_MAC_CONTRACT,),
        "the MAC array accepts beats while its output FIFO is full: beats are lost under back-pressure (random "
        "back-pressure in simulation never fills the FIFO of one output per job; the contract's capacity bound does)",
    ),
    Mutant(
        "skid-fifo-credit-off-by-one",
        "hw/pipeline.py",
        "i.ready.eq(inside < depth),",
        "i.ready.eq(inside <= depth),",
        (PIPELINED_DSU_CONTRACT,),
        "a free-running pipeline takes one beat more than its skid FIFO holds: a beat is lost under back-pressure "
        "(random back-pressure in simulation rarely stalls long enough; the stream contract's capacity bound does)",
    ),
    Mutant(
        "mac-no-restart-after-last",
        "hw/mac_array.py",
        "m.d.sync += feedback.eq(Mux(start_ahead, 0, before_last))",
        "m.d.sync += feedback.eq(before_last)",
        (MAC_AMARANTH,),
        "the accumulators are not cleared after a job's last K block",
    ),
    Mutant(
        "mac-dropped-sign-xor",
        "hw/mac_array.py",
        "negative = ea.sign ^ ew.sign",
        "negative = ea.sign",
        (MAC_AMARANTH,),
        "the product sign ignores the weight's sign bit",
    ),
    Mutant(
        "adder-round-half-up",
        "hw/float32.py",
        "round_up = guard & (rest | significand[0])",
        "round_up = guard",
        (ADDER, MAC_AMARANTH),
        "the accumulator adder rounds ties away from zero instead of to even",
    ),
    Mutant(
        "term-round-half-up",
        "hw/float32.py",
        "rounded.eq(kept + (half & (sticky | kept[0])))",
        "rounded.eq(kept + half)",
        ("tests/test_hw_float32.py::test_term_conversion_is_one_rne_rounding[14]",),
        "subnormal terms round ties away from zero",
    ),
    Mutant(
        "dsu-tie-to-highest-id",
        "hw/select.py",
        "take = right[0] & (~left[0] | (right[1] < left[1]))",
        "take = right[0] & (~left[0] | (right[1] <= left[1]))",
        (DSU_AMARANTH,),
        "a cost tie goes to the highest dialect id instead of the lowest",
    ),
    Mutant(
        "dsu-mask-ignored",
        "hw/select.py",
        "m.d.comb += allowed.eq(held.mask[k])",
        "m.d.comb += allowed.eq(1)",
        (DSU_AMARANTH,),
        "the candidate mask is ignored at full parallelism",
    ),
    Mutant(
        "selector-stuck-ready",
        "hw/select.py",
        "m.d.comb += self.i.ready.eq(~held_valid | done)",
        "m.d.comb += self.i.ready.eq(1)",
        (DSU_AMARANTH,),
        "the selector takes a new block while one is still held: blocks are lost",
    ),
    Mutant(
        "selector-output-not-cleared",
        "hw/select.py",
        "with m.Elif(self.o.ready):\n            m.d.sync += self.o.valid.eq(0)",
        "with m.Elif(0):\n            m.d.sync += self.o.valid.eq(0)",
        (DSU_AMARANTH,),
        "o.valid stays high after a handshake: beats are duplicated",
    ),
    Mutant(
        "two-stage-b-wins-ties",
        "hw/select.py",
        "choice = Cat(counts[1] > counts[0], pair)",
        "choice = Cat(counts[1] >= counts[0], pair)",
        ("tests/test_hw_units.py::test_bit_exact_under_backpressure[two_stage_b32]",),
        "dialect B wins two-stage count ties (BlockDialect gives them to A)",
    ),
    Mutant(
        "stage-payload-moves-while-stalled",
        "hw/common.py",
        "        with m.If(ready):\n            m.d.sync += valid.eq(i.valid)\n            with m.If(i.valid):",
        "        with m.If(ready):\n            m.d.sync += valid.eq(i.valid)\n        if True:\n            with m.If(i.valid):",
        ("tests/test_hw_units.py::test_bit_exact_under_backpressure[decoder_fb32_dialectfp4_e2m1_l3]",),
        "a registered stage overwrites its payload while the output is stalled",
    ),
    Mutant(
        "front-end-exponent-off-by-one",
        "hw/front_end.py",
        "amax_exp - EXPONENT_SHIFT, 0))",
        "amax_exp - EXPONENT_SHIFT + 1, 0))",
        ("tests/test_hw_units.py::test_bit_exact_under_backpressure[front_end_b32]",),
        "the shared exponent is one too large (E = Ex_max - 1)",
    ),
    Mutant(
        "decoder-ignores-format",
        "hw/decoder.py",
        "                    with m.Case(f):\n                        m.d.comb += magnitude.eq(read)",
        "                    with m.Case(f):\n                        m.d.comb += magnitude.eq(reads[0])",
        ("tests/test_hw_units.py::test_bit_exact_under_backpressure[decoder_fb32_dialectfp4_e2m1_l3]",),
        "every format decodes with the first formatbook's table",
    ),
)


def apply_mutant(mutant: Mutant, tree: Path) -> None:
    """Patch ``tree / mutant.file`` in place; raises MutantError if the snippet is not there exactly once."""
    for file, old, new in ((mutant.file, mutant.old, mutant.new), *mutant.also):
        path = tree / file
        text = path.read_text()
        count = text.count(old)
        if count != 1:
            raise MutantError(
                f"mutant {mutant.name} is stale: its snippet occurs {count} times in {file} (expected once); "
                "update sim/mutants.py to the current source"
            )
        path.write_text(text.replace(old, new))


def _pytest(nodeids: list[str], *, tree: Path | None, sim_root: Path, log: Path) -> dict[str, str]:
    """Run ``nodeids`` in one pytest process; ``{nodeid: outcome}`` (passed/failed/error/skipped)."""
    env = dict(os.environ, SDIALECT_SIM_ROOT=str(sim_root))
    report = log.with_suffix(".outcomes.json")
    plugin = (
        "import json,pytest\n"
        "OUT={}\n"
        "def pytest_runtest_logreport(report):\n"
        "    if report.when=='call' or report.outcome!='passed':\n"
        "        OUT[report.nodeid]=report.outcome if report.when=='call' else ('error' if report.outcome=='failed' else report.outcome)\n"
        "def pytest_sessionfinish(session):\n"
        f"    json.dump(OUT, open({str(report)!r},'w'))\n"
    )
    plugin_dir = log.parent / f".plugin_{log.stem}"
    plugin_dir.mkdir(parents=True, exist_ok=True)
    (plugin_dir / "mutant_outcomes.py").write_text(plugin)
    # The mutated tree goes first on sys.path: `python -m` would put the working directory first, so
    # the process starts in the tree's own directory and finds the repository through PYTHONPATH.
    paths = [str(tree)] if tree else []
    env["PYTHONPATH"] = os.pathsep.join(paths + [str(plugin_dir), str(REPO), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "mutant_outcomes",
               # No ini `pythonpath`: it would put the repository (the real hw/) before the tree.
               "-o", "addopts=", "-o", "pythonpath=", "--rootdir", str(REPO), *(str(REPO / n) for n in nodeids)]
    with open(log, "w") as handle:
        subprocess.run(command, cwd=tree or REPO, env=env, stdout=handle, stderr=subprocess.STDOUT, check=False)
    outcomes = json.loads(report.read_text()) if report.exists() else {}
    return {n: outcomes.get(n, "not run") for n in nodeids}


def _prepare_tree(mutant: Mutant, base: Path) -> Path:
    tree = base / mutant.name
    shutil.copytree(REPO / "hw", tree / "hw", ignore=shutil.ignore_patterns("__pycache__"))
    apply_mutant(mutant, tree)
    return tree


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.mutants", description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="list the mutants and their killers, run nothing")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="run only this mutant (repeatable)")
    parser.add_argument("--skip-control", action="store_true", help="do not first run the killers on the real design")
    args = parser.parse_args(argv)
    names = {m.name for m in MUTANTS}
    unknown = [n for n in args.only if n not in names]
    if unknown:
        print(f"error: unknown mutant {unknown[0]!r}; `python -m sim.mutants --list` names them", file=sys.stderr)
        return 2
    chosen = [m for m in MUTANTS if not args.only or m.name in args.only]
    if args.list:
        for m in chosen:
            print(f"{m.name:36} {m.file:18} {m.why}\n{'':36} killed by: {', '.join(m.killers)}")
        return 0
    BUILD.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sdialect-mutants-") as tmp:
        trees = {}
        for m in chosen:  # fail fast on a stale mutant, before any long run
            try:
                trees[m.name] = _prepare_tree(m, Path(tmp))
            except MutantError as error:
                print(f"error: {error}", file=sys.stderr)
                return 1
        report: dict = {"control": {}, "mutants": {}}
        killers = sorted({k for m in chosen for k in m.killers})
        if not args.skip_control:
            started = time.perf_counter()
            control = _pytest(killers, tree=None, sim_root=BUILD / "control", log=BUILD / "control.log")
            report["control"] = control
            bad = {k: v for k, v in control.items() if v != "passed"}
            print(f"control: {len(killers)} killer tests on the real design, {time.perf_counter() - started:.0f} s")
            if bad:
                print(f"error: killer tests do not pass on the real design: {bad} (see {BUILD / 'control.log'})",
                      file=sys.stderr)
                return 1
        survivors = []
        for m in chosen:
            started = time.perf_counter()
            outcomes = _pytest(list(m.killers), tree=trees[m.name], sim_root=BUILD / m.name,
                               log=BUILD / f"{m.name}.log")
            killed = all(v == "failed" for v in outcomes.values())
            report["mutants"][m.name] = {"file": m.file, "why": m.why, "killed": killed, "killers": outcomes,
                                         "seconds": round(time.perf_counter() - started, 1)}
            print(f"{'KILLED ' if killed else 'SURVIVED'} {m.name:36} {time.perf_counter() - started:5.0f} s  "
                  + ", ".join(f"{k.split('::')[-1]}: {v}" for k, v in outcomes.items()))
            if not killed:
                survivors.append(m.name)
        (BUILD / "report.json").write_text(json.dumps(report, indent=1))
    print(f"{len(chosen) - len(survivors)} of {len(chosen)} mutants killed; report in {BUILD / 'report.json'}")
    if survivors:
        print(f"error: mutants survived: {', '.join(survivors)} (logs in {BUILD})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

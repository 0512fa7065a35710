"""The DSU's selection claim, decomposed so that every part is a complete (unbounded) proof.

The claim (NUMERICS 2.2): on any block, the DSU picks a dialect that is allowed by the block's mask,
of minimum LUT cost ``cost[d] = sum_i ERR[d][u_i]`` among the allowed ones, ties to the lowest id,
and encodes the elements as ``(s << 3) | IDX[d][u]`` with the exponent passed through.

Stated on the whole unit against costs recomputed from a tracked block, Yices has to rediscover
that two adder trees over 16 x 16 table lookups agree, and did not finish in 10 minutes. The claim
is the conjunction of two facts about the unit's cost stage (the register ``held`` that keeps the
block while its dialect is chosen, loaded from the input beat at its handshake), each stated on
the real unit (``hw.select.DialectSelectUnit``, not a copy):

- ``dsu_*:argmin`` -- the argmin, with the costs as free inputs: the cost signals ``cost_k`` are
  formal cut points (Yosys ``cutpoint``: their drivers are replaced by ``$anyseq``, so the solver
  chooses every cost in every cycle). Whatever the costs, the dialect the unit chooses is allowed,
  no costlier than any allowed dialect and strictly cheaper than every allowed lower id (an all-zero
  mask, outside the contract, gives dialect 0). With several passes per block (``dialects_per_cycle``
  below the dialect count) the harness records the costs each pass saw and the carried best
  candidate is asserted to be the argmin of the passes so far (the inductive invariant). Also
  asserted: the output beat is the chosen dialect, the exponent and ``(s << 3) | IDX[d][u]``
  from golden's ``idx_table`` for every lane (so the threshold encoder is checked for every
  dialect the solver can make the unit choose, i.e. all of them), and ``held`` is the accepted beat.
- ``dsu_*:costs`` -- the cost trees, uncut: whenever the cost stage holds a block, each ``cost_k``
  equals ``sum_i ERR[d][u_i]`` for the dialect ``d`` it costs in this pass, with ERR straight from
  golden's ``err_table`` and a plain left-to-right sum (no shared structure with the unit's ROMs
  and balanced tree).

Both are purely combinational in the state (``held``, the pass counter, the harness's records), so
k-induction closes them: mode ``prove``, valid for every reachable state and every block, not only
within a bounded depth.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Array, Assert, Assume, Cat, Const, Fragment, Module, ResetSignal, Signal

from golden.formats import CODE_BITS
from hw.common import tree_reduce
from hw.config import DSUConfig
from hw.layouts import selector_in_layout
from hw.select import DialectSelectUnit

from .harness import _past

__all__ = ["dsu_argmin", "dsu_cost_tree", "dsu_costs", "dsu_err_lookup", "spec_argmin"]


class _ObservedDSU(DialectSelectUnit):
    """The DSU unchanged; ``observed`` keeps the cost stage's signals its ``choose`` step is handed."""

    def choose(self, m, held, held_valid, step, last_pass, dialect) -> None:
        super().choose(m, held, held_valid, step, last_pass, dialect)
        self.observed = {"held": held, "held_valid": held_valid, "step": step, "last_pass": last_pass,
                         "dialect": dialect}  # fmt: skip


def _named(fragment: Fragment, names: list[str]) -> dict:
    """The signals named ``names`` that ``fragment``'s own statements drive (one each, or an error)."""
    found: dict = {}

    def walk(statements) -> None:
        for statement in statements:
            lhs = getattr(statement, "lhs", None)
            if isinstance(lhs, Signal) and lhs.name in names:
                found.setdefault(lhs.name, lhs)
            for case in getattr(statement, "cases", ()):  # If/Switch bodies: (patterns, statements, src_loc)
                walk(case[1])

    for statements in fragment.statements.values():
        walk(statements)
    missing = [n for n in names if n not in found]
    if missing:
        raise RuntimeError(f"the DSU has no signal {missing[0]!r} any more: update formal/argmin.py to hw/select.py")
    return found


def _elaborate(config: DSUConfig, extra: list[str] = ()):
    if config.pipeline_stages is not None:
        raise ValueError(f"{config.name}: the argmin harness is for the two-register DSU (the pipelined one is "
                         "proved equivalent to it)")
    unit = _ObservedDSU(config)
    fragment = Fragment.get(unit, None)
    names = [f"cost_{k}" for k in range(config.parallel)] + ["done", *extra]
    if config.passes > 1:
        names += ["best_valid", "best_cost", "best_id"]
    return unit, fragment, _named(fragment, names)


def spec_argmin(m: Module, costs: list, mask, chosen, *, name: str = "spec") -> None:
    """Assert that ``chosen`` is allowed by ``mask`` (when nonzero), no costlier than any allowed
    dialect and strictly cheaper than every allowed lower id; dialect 0 on an all-zero mask."""
    chosen_cost = Signal(len(costs[0]), name=f"{name}_chosen_cost")
    m.d.comb += chosen_cost.eq(Array(costs)[chosen])
    with m.If(mask != 0):
        m.d.comb += Assert(mask.bit_select(chosen, 1))
        for d, cost in enumerate(costs):
            with m.If(mask[d]):
                m.d.comb += Assert(chosen_cost <= cost)
                with m.If(chosen > d):
                    m.d.comb += Assert(chosen_cost < cost)
    with m.Else():
        m.d.comb += Assert(chosen == 0)


def _encoder_spec(m: Module, config: DSUConfig, block, dialect, codes) -> None:
    """``codes[i] == (s_i << 3) | IDX[dialect][u_i]`` for every lane (IDX from golden, one flat table)."""
    book = config.book.formatbook
    idx = np.asarray(book.idx_table)
    ubits = len(block.ucodes[0])
    flat = [0] * (book.num_dialects << ubits)
    for d in range(book.num_dialects):
        for u in range(idx.shape[1]):
            flat[(d << ubits) | u] = int(idx[d, u])
    table = Array(Const(v, CODE_BITS - 1) for v in flat)
    for i in range(config.block):
        index = Signal(CODE_BITS - 1, name=f"spec_index_{i}")
        m.d.comb += index.eq(table[Cat(block.ucodes[i], dialect)])
        m.d.comb += Assert(codes[i] == Cat(index, block.signs[i]))


def dsu_argmin(config: DSUConfig, *, choice: bool = True, output: bool = True):
    """Top module for ``dsu_*:argmin`` (the caller cuts ``cost_*`` with ``cutpoint``): ``choice`` asserts the
    dialect chosen in every pass (and the carried best), ``output`` the output beat and the held block."""

    def build():
        m = Module()
        unit, fragment, named = _elaborate(config)
        m.submodules.dut = fragment
        seen = unit.observed
        held, held_valid, step, dialect = seen["held"], seen["held_valid"], seen["step"], seen["dialect"]
        costs_now = [named[f"cost_{k}"] for k in range(config.parallel)]
        width = len(costs_now[0])
        mask = held.mask
        # Costs as ranks (the order-isomorphism argument of the module docstring): any pattern of
        # orders and ties among N costs occurs with values below N.
        for cost in costs_now:
            m.d.comb += Assume(cost < config.num_dialects)
        started = Signal(name="started", reset_less=True)
        m.d.sync += started.eq(1)
        # A reset in the previous cycle voids the checks of what that cycle loaded.
        past_rst = _past(m, ResetSignal(), "past_rst", init=1)
        checked = started & ~past_rst

        # Costs of every dialect as the unit saw them: this pass's from the cut points, earlier
        # passes' from the harness's records (written in the pass that costed them).
        passes = config.passes
        if passes == 1:
            costs = costs_now
        else:
            records = [Signal(width, name=f"seen_cost_{d}") for d in range(config.num_dialects)]
            # Strengthening for k-induction: the records (and the carried best) are ranks too.
            for record in records:
                m.d.comb += Assert(record < config.num_dialects)
            m.d.comb += Assert(named["best_cost"] < config.num_dialects)
            with m.If(held_valid):
                for s in range(passes):
                    with m.If(step == s):
                        m.d.sync += [records[s * config.parallel + k].eq(costs_now[k]) for k in range(config.parallel)]
            costs = []
            for d in range(config.num_dialects):
                s, k = divmod(d, config.parallel)
                current = Signal(width, name=f"spec_cost_{d}")
                m.d.comb += current.eq(costs_now[k] if s == passes - 1 else records[d])
                if s < passes - 1:
                    with m.If(step == s):
                        m.d.comb += current.eq(costs_now[k])
                costs.append(current)

        with m.If(held_valid & choice):
            if passes == 1:
                spec_argmin(m, costs, mask, dialect)
            else:
                # The dialect chosen after pass `step` is the argmin over the ids costed so far
                # (the last pass: over all of them); the records of later passes are not yet valid.
                best_valid, best_cost, best_id = named["best_valid"], named["best_cost"], named["best_id"]
                for s in range(passes):
                    with m.If(step == s):
                        n = (s + 1) * config.parallel
                        spec_argmin(m, costs[:n], mask[:n], dialect, name=f"spec_pass{s}")
                        if s:  # the carried candidate: the argmin of the passes before this one
                            seen_ids = s * config.parallel
                            m.d.comb += Assert(best_valid == (mask[:seen_ids] != 0))
                            with m.If(best_valid):
                                m.d.comb += Assert(best_cost == Array(costs[:seen_ids])[best_id])
                                spec_argmin(m, costs[:seen_ids], mask[:seen_ids], best_id, name=f"spec_best{s}")

        # The output beat: loaded in the `done` cycle with the chosen dialect and the encoded block.
        done = named["done"]
        past_done = _past(m, done, "past_done")
        past_dialect = _past(m, dialect, "past_dialect")
        past_held = _past(m, held.as_value(), "past_held")
        past_block = Signal(selector_in_layout(config), name="past_block")
        m.d.comb += past_block.eq(past_held)
        with m.If(checked & past_done & output):
            m.d.comb += [Assert(unit.o.valid), Assert(unit.o.payload.dialect == past_dialect),
                         Assert(unit.o.payload.exponent == past_block.exponent)]
            _encoder_spec(m, config, past_block, past_dialect, unit.o.payload.codes)
        # The cost stage holds the beat that was accepted.
        past_fire = _past(m, unit.i.valid & unit.i.ready, "past_fire")
        past_payload = _past(m, unit.i.payload.as_value(), "past_payload")
        with m.If(checked & past_fire & output):
            m.d.comb += Assert(held_valid & (held.as_value() == past_payload))
        return m, [unit.i.valid, unit.i.payload.as_value(), unit.o.ready]

    return build


def _term_names(config: DSUConfig) -> list[str]:
    return [f"err_{k}_{i}" for k in range(config.parallel) for i in range(config.block)]


def _err_spec(config: DSUConfig, held, step, k: int, i: int):
    """ERR of the dialect candidate ``k`` costs in this pass, for lane ``i``, straight from golden's table."""
    err = np.asarray(config.book.formatbook.err_table)
    ubits = len(held.ucodes[0])
    flat = [int(err[s * config.parallel + k, u]) for s in range(config.passes) for u in range(1 << ubits)]
    table = Array(Const(v, config.book.formatbook.err_bits) for v in flat)
    return table[held.ucodes[i] if config.passes == 1 else Cat(held.ucodes[i], step)]


def dsu_err_lookup(config: DSUConfig):
    """Top module for ``dsu_*:err-lookup``: every lane's ERR read is golden's ``err_table`` entry of its
    code, for the dialect its candidate costs in this pass."""

    def build():
        m = Module()
        unit, fragment, named = _elaborate(config, _term_names(config))
        m.submodules.dut = fragment
        held, held_valid, step = (unit.observed[n] for n in ("held", "held_valid", "step"))
        for k in range(config.parallel):
            for i in range(config.block):
                with m.If(held_valid):
                    m.d.comb += Assert(named[f"err_{k}_{i}"] == _err_spec(config, held, step, k, i))
        return m, [unit.i.valid, unit.i.payload.as_value(), unit.o.ready]

    return build


def dsu_costs(config: DSUConfig):
    """Top module for ``dsu_*:costs``: whenever the cost stage holds a block, each ``cost_k`` equals the
    exact integer ``sum_i ERR[d][u_i]`` (golden's table, the dialect candidate k costs in this pass).

    The spec evaluates the exact sum in a balanced order (Amaranth's ``+`` widens, so nothing is
    lost at any order; the total fits the unit's cost width, checked here): integer addition being
    associative, any evaluation order is the same number, and the balanced one lets the solver match
    the unit's adder tree term by term instead of rediscovering associativity."""

    def build():
        m = Module()
        unit, fragment, named = _elaborate(config)
        m.submodules.dut = fragment
        held, held_valid, step = (unit.observed[n] for n in ("held", "held_valid", "step"))
        width = len(named["cost_0"])
        limit = int(np.asarray(config.book.formatbook.err_table).max())
        assert limit * config.block < 1 << width, f"{config.name}: cost width {width} too small"
        for k in range(config.parallel):
            terms = [_err_spec(config, held, step, k, i) for i in range(config.block)]
            exact = tree_reduce(terms, lambda a, b: a + b)
            with m.If(held_valid):
                m.d.comb += Assert(named[f"cost_{k}"] == exact)
        return m, [unit.i.valid, unit.i.payload.as_value(), unit.o.ready]

    return build


def dsu_cost_tree(config: DSUConfig):
    """Top module for ``dsu_*:cost-tree`` (the caller cuts ``err_*``): each ``cost_k`` is the plain
    left-to-right sum of its lanes' (free) ERR terms, and no sum overflows the cost width."""

    def build():
        m = Module()
        unit, fragment, named = _elaborate(config, _term_names(config))
        m.submodules.dut = fragment
        book = config.book.formatbook
        width = len(named["cost_0"])
        limit = int(np.asarray(book.err_table).max())
        assert limit * config.block < 1 << width, f"{config.name}: cost width {width} too small"
        for k in range(config.parallel):
            total = Const(0, width + 1)
            for i in range(config.block):
                term = named[f"err_{k}_{i}"]
                m.d.comb += Assume(term <= limit)  # the ROM's largest entry (err-lookup proves the ROM)
                total = (total + term)[: width + 1]
            m.d.comb += Assert(named[f"cost_{k}"] == total)
        return m, [unit.i.valid, unit.i.payload.as_value(), unit.o.ready]

    return build

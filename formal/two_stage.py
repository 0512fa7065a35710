"""BlockDialect's two-stage selector (``hw.select.TwoStageSelector``) against a complete spec of its output
beat, in both forms: the two-register unit and the pipelined one (``TwoStageConfig.pipeline_stages``:
free-running cuts and a skid FIFO, issue 10). Holding both to one spec that determines every output
beat is their equivalence (the argument of formal/pipelined.py: two units that each hand out, in order,
exactly the spec's beat of every input beat compute the same stream function, whatever the
back-pressure).

The spec (NUMERICS 2.2, ``golden.select.select_two_stage``), written from golden's tables and not from
the unit's generators: ``M`` = the block's largest code u (stated relationally: ``spec_max`` is a free
input assumed to be >= every u and equal to one of them, which singles out the maximum), the pair
``p = 15 - clamp(M >> 1, 8, 15)``, ``count_A`` / ``count_B`` = the codes inside dialect ``2p``'s and
``2p + 1``'s beneficial ranges ``[lo, hi)`` (``two_stage_ranges``), dialect ``2p + (count_B > count_A)``
(A wins ties), 0 for an all-zero block; the exponent passed through and ``(s << 3) | IDX[d][u]`` for
every lane (golden's ``idx_table``, ``formal.argmin._encoder_spec``). The counts are exact integers
summed in a balanced order (order is immaterial for integers; the balanced one lets the solver match
the unit's count trees term by term, as ``formal.argmin.dsu_costs`` argues).

- ``two_stage_b16:spec`` (unbounded, k-induction): whenever the cost stage holds a block, the dialect
  the unit chooses is the spec's; the output beat loaded with it is the spec's beat; the cost stage
  holds the accepted beat. Combinational in the state, so induction closes.
- ``two_stage_b16_sN:spec`` (the pipelined unit): whenever the last cut register is valid it holds the
  spec's beat of the block that entered ``S`` cycles earlier (``S`` = cuts; the harness keeps a
  reset-less delay line of the input payload). The datapath to the last cut is feed-forward (every
  cut register loads every cycle), so the property at a cycle reads only the input beats of the last
  ``S`` cycles and the last stage's valid bit; BMC at depth ``S + 1`` reaches every such combination
  (the FIFO is empty, ``i.ready`` high, the solver picks the beats) and is complete; the module
  proves it by k-induction at ``S + 2`` where that closes (see formal/README.md for the mode used).
- ``two_stage_b16_sN:transport`` (bounded): ``encoded`` (the encoder's output, the last cut's input)
  cut; for any solver-picked input beat, the unit's output beat is the last cut register's value
  ``S`` cycles after that beat's handshake (``formal.pipelined.pipelined_dsu_transport``'s harness,
  for this unit).
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Array, Assert, Assume, Cat, Const, Cover, Fragment, Module, Mux, ResetSignal, Signal

import hw.select
from hw.common import tree_reduce
from hw.config import TwoStageConfig
from hw.layouts import selector_in_layout

from .argmin import _encoder_spec, _named
from .harness import _past
from .pipelined import _delay_line, _observing_stages

__all__ = ["ENCODED_CUTS", "pipelined_two_stage_spec", "two_stage_spec", "two_stage_transport"]

#: The cut of ``:transport``: the encoder's output, so the last cut register holds free data.
ENCODED_CUTS = ("top/w:dut.encoded",)


def spec_dialect(m: Module, config: TwoStageConfig, ucodes: list, umax, name: str = "spec"):
    """The dialect NUMERICS 2.2 picks for ``ucodes`` whose maximum is ``umax`` (golden's formula and tables)."""
    book = config.book.formatbook
    ranges = np.asarray(book.two_stage_ranges)  # (pairs, 2 [A/B], 2 [lo/hi])
    pairs = ranges.shape[0]
    top = (book.num_ucodes >> 1) - 1  # 15: the largest truncated maximum
    pair_of = [top - min(max(v >> 1, top - (pairs - 1)), top) for v in range(book.num_ucodes)]  # clamp(M >> 1, 8, 15)
    pair = Signal(range(pairs), name=f"{name}_pair")
    m.d.comb += pair.eq(Array(Const(p, range(pairs)) for p in pair_of)[umax])
    counts = []
    for c, label in enumerate("ab"):
        width = len(umax) + 1
        lo = Array(Const(int(ranges[p, c, 0]), width) for p in range(pairs))[pair]
        hi = Array(Const(int(ranges[p, c, 1]), width) for p in range(pairs))[pair]
        inside = [((u >= lo) & (u < hi)).as_unsigned() for u in ucodes]
        count = Signal(range(len(ucodes) + 1), name=f"{name}_count_{label}")
        m.d.comb += count.eq(tree_reduce(inside, lambda a, b: a + b))  # exact integers
        counts.append(count)
    dialect = Signal(book.id_bits, name=f"{name}_dialect")
    m.d.comb += dialect.eq(Mux(umax == 0, 0, 2 * pair + (counts[1] > counts[0])))
    return dialect


def _spec_max(m: Module, ucodes: list, name: str) -> Signal:
    """A free input assumed to be the maximum of ``ucodes`` (>= each, equal to one): exactly one value fits."""
    umax = Signal(len(ucodes[0]), name=name)
    for u in ucodes:
        m.d.comb += Assume(umax >= u)
    m.d.comb += Assume(Cat(*(umax == u for u in ucodes)).any())
    return umax


class _ObservedTwoStage(hw.select.TwoStageSelector):
    """The two-register selector unchanged; ``observed`` keeps the cost stage's signals."""

    def choose(self, m, held, held_valid, step, last_pass, dialect) -> None:
        super().choose(m, held, held_valid, step, last_pass, dialect)
        self.observed = {"held": held, "held_valid": held_valid, "dialect": dialect}


def two_stage_spec(config: TwoStageConfig):
    """Top module for ``two_stage_b*:spec`` (the two-register unit)."""
    if config.pipeline_stages is not None:
        raise ValueError(f"{config.name}: two_stage_spec is for the two-register unit; see pipelined_two_stage_spec")

    def build():
        m = Module()
        unit = _ObservedTwoStage(config)
        fragment = Fragment.get(unit, None)
        named = _named(fragment, ["done"])
        m.submodules.dut = fragment
        held, held_valid, dialect = (unit.observed[n] for n in ("held", "held_valid", "dialect"))
        ucodes = [held.ucodes[i] for i in range(config.block)]
        umax = _spec_max(m, ucodes, "spec_max")
        expected = spec_dialect(m, config, ucodes, umax)
        with m.If(held_valid):
            m.d.comb += Assert(dialect == expected)
        started = Signal(name="started", reset_less=True)
        m.d.sync += started.eq(1)
        past_rst = _past(m, ResetSignal(), "past_rst", init=1)
        checked = started & ~past_rst
        # The output beat loaded in the `done` cycle: the chosen dialect, the exponent, the encoded codes.
        past_done = _past(m, named["done"], "past_done")
        past_dialect = _past(m, dialect, "past_dialect")
        past_block = Signal(selector_in_layout(config), name="past_block")
        m.d.comb += past_block.eq(_past(m, held.as_value(), "past_held"))
        with m.If(checked & past_done):
            m.d.comb += [Assert(unit.o.valid), Assert(unit.o.payload.dialect == past_dialect),
                         Assert(unit.o.payload.exponent == past_block.exponent)]  # fmt: skip
            _encoder_spec(m, config, past_block, past_dialect, unit.o.payload.codes)
        # The cost stage holds the accepted beat.
        past_fire = _past(m, unit.i.valid & unit.i.ready, "past_fire")
        past_payload = _past(m, unit.i.payload.as_value(), "past_payload")
        with m.If(checked & past_fire):
            m.d.comb += Assert(held_valid & (held.as_value() == past_payload))
        m.d.comb += Cover(checked & past_done & (unit.o.payload.dialect[0] == 1))
        return m, [unit.i.valid, unit.i.payload.as_value(), unit.o.ready, umax]

    return build


def _elaborate_pipelined(config: TwoStageConfig):
    if config.pipeline_stages is None:
        raise ValueError(f"{config.name}: these harnesses are for the pipelined two-stage selector")
    unit = hw.select.TwoStageSelector(config)
    with _observing_stages() as observers:
        fragment = Fragment.get(unit, None)
    if len(observers) != 1:
        raise RuntimeError(f"{config.name}: the pipelined two-stage selector no longer builds one Stages: "
                           "update formal/two_stage.py to hw/select.py")
    stages = observers[0]
    final = stages.calls[-1]
    if set(final["values_after"]) != {"encoded"} or final["cuts_after"] != stages.cuts:
        raise RuntimeError(f"{config.name}: the last cut no longer registers 'encoded': update formal/two_stage.py")
    return unit, fragment, stages


def pipelined_two_stage_spec(config: TwoStageConfig):
    """Top module for ``two_stage_b*_sN:spec``: the last cut register, when valid, holds the spec's beat
    of the block that entered ``S`` cycles earlier."""

    def build():
        m = Module()
        unit, fragment, stages = _elaborate_pipelined(config)
        m.submodules.dut = fragment
        total = stages.cuts
        block = _delay_line(m, unit.i.payload, total, "formal_in", shape=selector_in_layout(config))[total]
        ucodes = [block.ucodes[i] for i in range(config.block)]
        umax = _spec_max(m, ucodes, "spec_max")
        expected = spec_dialect(m, config, ucodes, umax)
        final = stages.calls[-1]
        beat, valid = final["values_after"]["encoded"], final["valid_after"]
        with m.If(valid):
            m.d.comb += [Assert(beat.dialect == expected), Assert(beat.exponent == block.exponent)]
            _encoder_spec(m, config, block, expected, beat.codes)
        m.d.comb += Cover(valid & (beat.dialect[0] == 1))
        return m, [unit.i.valid, unit.i.payload.as_value(), unit.o.ready, umax]

    return build


def two_stage_transport(config: TwoStageConfig):
    """Top module for ``two_stage_b*_sN:transport`` (``encoded`` cut): the skid FIFO hands out, for a
    solver-picked input beat, the last cut register's value ``S`` cycles after its handshake."""
    from .pipelined import pipelined_dsu_transport

    return pipelined_dsu_transport(config, elaborate=_elaborate_pipelined)

"""The C-slow MAC array (``MACArrayConfig.interleave`` = L >= 2) against its L = 1 reference.

The L = 1 reference (NUMERICS 4): each output is ``y = fl32(...fl32(fl32(+0 + t_1) + t_2)... + t_n)``,
the K-order RNE sum of its job's terms ``t_k`` (one per input beat, from the PE's product/term
pipeline, which is the same generator at every L). The C-slow array differs from it in two places
only (part 1 is proved by the properties here; part 2, ``ring_order``, is being written):

1. **The pipelined adder equals the combinational adder** (``adder_equivalence``, ``term_equivalence``).
   ``hw.float32.add_binary32`` with the cut set ``hw.mac_array.adder_cuts`` builds for L (the real
   hooks, ``ADDER_CUTS``: ``L - 1`` registers for L <= 8, all seven from L = 8 on) is held against the
   same function with no cuts: whenever no reset happened in the last ``S`` cycles (``S`` = registers
   the cut set inserts), the pipelined output equals the combinational adder of the operands of
   ``S`` cycles earlier. Likewise ``term_to_binary32`` with the PE's three cuts (every L). A miter of
   two copies of the same gates with registers in between: Yices closes it by BMC in seconds.

   *Why BMC at depth S + 1 is complete:* the cut pipeline is feed-forward -- every cut register loads
   every cycle (``hw.mac_array._cut``: no enable, no feedback inside the adder), so the register of
   cut ``j`` holds a function of the operands of ``j`` cycles earlier, and after ``S`` cycles without
   reset the whole pipeline state (and the harness's delay line of the operands) is a function of the
   last ``S`` operand pairs alone. The property at a cycle reads only that state and the harness's age
   counter (cycles since reset, saturating at ``S``); every combination of ``S`` operand pairs is
   reached within ``S`` cycles of the initial state (the operands are free inputs). So BMC over
   cycles ``0..S`` covers every reachable case at every later cycle too: the proof is unbounded in
   effect. (A retiming bug, a value crossing a cut without its register, makes the pipelined adder
   mix operands of different cycles; ``tests/test_formal_cslow.py`` shows the miter catching it.)

2. **The ring hands each output its terms in K order** (``ring_order``). Proved on the real
   ``hw.mac_array.MACArray`` (its phase/slot/``open_slots``/``first`` logic, the input registers,
   the output FIFO and its credit) with the real ``ProcessingElement.elaborate`` (its flag delay
   lines, the idle-slot and first-beat gating registers ``term``/``start``/``done_in``, and the real
   ``_adder_ring``: ``Mux(start, +0, ring)``, the adder with the real ``adder_cuts`` registers, the
   ring register(s), the ``done`` delay), with the PE's *arithmetic* replaced, on the formal side,
   for the duration of the elaboration (``hw`` is unchanged):

   - the product stages (``_partial_sums``) by a tag of the beat (the low bits of the PE's ``a``
     and ``w`` operands) through the same ``PRODUCT_STAGES`` registers;
   - ``term_to_binary32`` by that tag passed through the PE's real term cut hooks (three registers);
   - ``add_binary32`` by an abstract operator ``f(acc, t) = t == 0 ? acc : rotl(acc, 7) ^ t``
     followed by the PE's real adder cut hooks (so the ring keeps exactly its real length: the
     registers ``adder_cuts(L)`` inserts plus the ring registers).

   ``f`` is non-commutative and order-recording (``f(f(0, a), b) != f(f(0, b), a)`` for ``a != b``),
   has ``+0`` (all-zero bits) as its identity on the term side -- as the real adder does on every
   value the ring can hold (``adder_identity``: ``y + (+0) = y`` for every ``y`` but ``-0`` and
   non-canonical NaNs, and the ring never holds those: it starts from ``+0`` and holds adder outputs)
   -- and ``f(+0, t) = t`` like ``+0 + t``. Asserted: whenever a PE's ring output is a finished
   output (``done``), it equals the spec's fold ``f(...f(f(0, t_1), t_2)..., t_n)`` over the tags of
   the beats of one job, in order, where the spec assigns the ``n``-th beat taken since reset to
   slot ``n mod L`` and a slot's job runs from its first beat to its ``last`` beat; and finished
   outputs come in the order of their jobs' ``last`` beats, each once (the harness's queue of expected
   folds, tracked through a solver-picked job to the ``o`` handshake).

   *Why an abstract operator proves it for the real adder (data independence):* no control signal
   of the array or the ring (``phase``, ``slot``, ``open_slots``, ``pending``, ``valid``, ``first``,
   ``last``, ``start``, ``done``) reads a term, an operand or a sum; data moves only through
   registers, the ``Mux(valid, term, 0)`` and ``Mux(start, 0, ring)`` selections and the adder. So
   the ring output at any cycle is one fixed expression over the adder and the terms, fixed by the
   valid/last/ready history alone; the proof shows that expression is the K-order fold of one job
   (for a solver-chosen history, up to the bound). Reinterpreting ``f`` as the real pipelined adder
   (equal to the combinational one, part 1), with idle-slot ``+0`` additions dropped (identity on
   every reachable ring value, ``adder_identity``), gives the L = 1 reference's K-order RNE sum.

   Bounded (BMC): the ring is a loop, so the depth is stated per configuration (``RING_DEPTHS``).

``adder_identity`` is combinational (one adder, two free inputs): proved in every cycle.
"""

from __future__ import annotations

import contextlib

from amaranth.hdl import Assert, Assume, Cat, Const, Cover, Module, Mux, Signal, signed

import hw.mac_array
from golden.formats import EXPONENT_BITS, Grid
from hw.float32 import ADDER_HOOKS, CANONICAL_NAN, TERM_HOOKS, add_binary32, term_to_binary32

__all__ = ["ADDER_INTERLEAVES", "adder_equivalence", "adder_identity", "adder_registers", "term_equivalence"]

#: The distinct cut sets of the ring adder: L = 2..7 (``ADDER_CUTS``), then L >= 8 (all seven hooks).
ADDER_INTERLEAVES = (2, 3, 4, 5, 6, 7, 8)


def _counting(hooks) -> tuple[tuple, list]:
    """``hooks`` wrapped so that each records the values it was handed and returned (``None`` when it
    registered nothing: it returned the same signals)."""
    seen: list = [None] * len(hooks)

    def wrap(k, hook):
        def cut(values: dict) -> dict:
            out = hook(values)
            if any(out[name] is not values[name] for name in values):
                seen[k] = out
            return out

        return cut

    return tuple(wrap(k, hook) for k, hook in enumerate(hooks)), seen


def _recording(count: int) -> tuple[tuple, list]:
    """``count`` identity hooks that record the values they are handed (the combinational reference)."""
    seen: list = [None] * count

    def hook(k):
        def cut(values: dict) -> dict:
            seen[k] = dict(values)
            return values

        return cut

    return tuple(hook(k) for k in range(count)), seen


def adder_registers(interleave: int) -> int:
    """Registers the ring adder's cut set inserts for ``interleave`` (found by building it)."""
    m = Module()
    m._MustUse__silence = True
    hooks, seen = _counting(hw.mac_array.adder_cuts(m, interleave, "probe"))
    add_binary32(m, Signal(32), Signal(32), "probe", cuts=hooks)
    return sum(v is not None for v in seen)


def _age(m: Module, stages: int) -> Signal:
    """Cycles since the last reset, saturating at ``stages`` (a reset clears it, like the pipeline)."""
    age = Signal(range(stages + 1), name="formal_age")
    with m.If(age < stages):
        m.d.sync += age.eq(age + 1)
    return age


def _delayed(m: Module, value, cycles: int, name: str):
    """``value`` of ``cycles`` cycles ago (reset-less harness registers)."""
    for j in range(cycles):
        reg = Signal(value.shape(), name=f"{name}_{j + 1}", reset_less=True)
        m.d.sync += reg.eq(value)
        value = reg
    return value


def _pipeline_miter(m: Module, function, operands: list, hooks: tuple) -> int:
    """Assert that ``function(m, *operands, prefix, cuts=hooks)`` (a cut pipeline) equals the same
    function with no cuts, applied to the operands of ``S`` cycles earlier (``S``: registers the hooks
    insert), whenever no reset happened in the last ``S`` cycles; also, as lemmas that keep every
    solver step local, that the values each registering hook holds equal the combinational function's
    values at that hook ``r`` cycles earlier (``r``: registers up to and including it). Returns ``S``."""
    hooks, piped_at = _counting(hooks)
    piped = function(m, *operands, "pipe", cuts=hooks)
    recording, reference_at = _recording(len(hooks))
    reference = function(m, *operands, "ref", cuts=recording)
    stages = sum(v is not None for v in piped_at)
    age = _age(m, stages)
    registers = 0
    for k, held in enumerate(piped_at):
        if held is None:
            continue
        registers += 1
        expected = {name: _delayed(m, reference_at[k][name], registers, f"formal_h{k}_{name}") for name in held}
        with m.If(age >= registers):
            for name, value in held.items():
                m.d.comb += Assert(value == expected[name])
    expected = _delayed(m, reference, stages, "formal_out")
    with m.If(age == stages):
        m.d.comb += Assert(piped == expected)
    m.d.comb += Cover((age == stages) & (piped != 0))
    return stages


def adder_equivalence(interleave: int, *, cut_hooks=None):
    """Top module of ``ring_adder_lN:equivalence``: the ring adder with L's cut set, ``S`` cycles after its
    operands, equals the combinational ``add_binary32`` of them. ``cut_hooks(m)`` (tests) replaces the
    real ``hw.mac_array.adder_cuts(m, interleave, ...)``."""

    def build():
        m = Module()
        a, b = Signal(32, name="a"), Signal(32, name="b")
        hooks = cut_hooks(m) if cut_hooks is not None else hw.mac_array.adder_cuts(m, interleave, "pipe")
        _pipeline_miter(m, add_binary32, [a, b], hooks)
        return m, [a, b]

    return build


def term_equivalence(block: int, grid: Grid = Grid.HALF, *, cut_hooks=None):
    """Top module of ``pe_term_b{block}:equivalence``: the PE's ``term_to_binary32`` with its three cut
    registers equals the combinational one of the (acc, shift) of three cycles earlier."""

    def build():
        m = Module()
        acc = Signal(signed(hw.mac_array._acc_bits(block, grid)), name="acc")
        shift = Signal(signed(EXPONENT_BITS + 3), name="shift")
        if cut_hooks is not None:
            hooks = cut_hooks(m)
        else:  # exactly the PE's hooks (hw.mac_array.ProcessingElement.elaborate)
            hooks = tuple(hw.mac_array._cut(m, f"term_s{hw.mac_array.PRODUCT_STAGES + 1 + k}") for k in range(TERM_HOOKS))
        _pipeline_miter(m, term_to_binary32, [acc, shift], hooks)
        return m, [acc, shift]

    return build


def adder_identity():
    """Top module of ``ring_adder:identity``: ``add_binary32(y, +0) == y`` for every ``y`` except ``-0`` and
    the non-canonical NaNs (which the ring never holds); ``add_binary32(+0, t)`` is ``t`` but for ``t = -0``
    (``+0``) and NaNs (canonical). Combinational."""

    def build():
        m = Module()
        y = Signal(32, name="y")
        nan = (y[23:31] == 0xFF) & (y[:23] != 0)
        total = add_binary32(m, y, Const(0, 32), "idle")
        with m.If((y != 0x80000000) & (~nan | (y == CANONICAL_NAN))):
            m.d.comb += Assert(total == y)
        start = add_binary32(m, Const(0, 32), y, "start")
        m.d.comb += Assert(start == Mux(y == 0x80000000, 0, Mux(nan, CANONICAL_NAN, y)))
        return m, [y]

    return build

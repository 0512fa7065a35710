"""The C-slow MAC array (``MACArrayConfig.interleave`` = L >= 2) against its L = 1 reference.

The L = 1 reference (NUMERICS 4): each output is ``y = fl32(...fl32(fl32(+0 + t_1) + t_2)... + t_n)``,
the K-order RNE sum of its job's terms ``t_k`` (one per input beat, from the PE's product/term
pipeline, which is the same generator at every L). The C-slow array differs from it in two places
only, and each is proved here:

1. **The pipelined adder equals the combinational adder** (``adder_equivalence``, ``term_equivalence``).
   ``hw.float32.add_binary32`` with the cut set ``hw.mac_array.adder_cuts`` builds for L (the real
   hooks, ``ADDER_CUTS``: ``L - 1`` registers for L <= 8, all seven from L = 8 on) is held against the
   same function with no cuts: whenever no reset happened in the last ``S`` cycles (``S`` = registers
   the cut set inserts), the pipelined output equals the combinational adder of the operands of
   ``S`` cycles earlier. Likewise ``term_to_binary32`` with the PE's three cuts (every L) and the
   NVFP4 PE's four-cut ``round_to_binary32`` (``nvfp4_round_equivalence``). A miter of two copies of
   the same gates with registers in between; asserted as well, as lemmas that keep every solver step
   local, that each cut register holds the combinational function's values at its hook ``r`` cycles
   earlier (without them the L = 8 miter had not finished after 280 s; with them every one takes
   seconds).

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
   lines, the idle-slot and first-beat gating registers ``term``/``done_in``, and the real
   ``_adder_ring``: the feedback register loaded with ``Mux(start_ahead, +0, sum)``, the adder with the
   real ``adder_cuts`` registers, the ring register(s), the ``done`` delay), with the PE's *arithmetic*
   replaced, on the formal side, for the duration of the elaboration (``hw`` is unchanged):

   - the product stages (``_partial_sums``) by a tag of the beat (the low bits of the PE's ``a``
     and ``w`` operands) through the same ``PRODUCT_STAGES`` registers;
   - ``term_to_binary32`` by that tag passed through the PE's real term cut hooks (three registers);
   - ``add_binary32`` by an abstract operator ``f(acc, t) = t == 0 ? acc : (acc << 3) | t`` (3-bit
     tags) followed by the PE's real adder cut hooks (so the ring keeps exactly its real length: the
     registers ``adder_cuts(L)`` inserts plus the ring registers).

   ``f`` records the nonzero tags folded in, in order: it is injective on sequences of up to ten
   (``n`` nonzero tags give a value in ``[8^(n-1), 8^n)``), so an equality of two ``f``-folds is an
   equality of the two sequences of terms. It has ``+0`` (all-zero bits) as its identity on the term
   side -- as the real adder does on every value the ring can hold (``ring_adder:identity``:
   ``y + (+0) = y`` for every ``y`` but ``-0`` and non-canonical NaNs, and the ring never holds those:
   it starts from ``+0`` and holds adder outputs) -- and ``f(+0, t) = t`` like ``+0 + t``. (A
   rotate-and-XOR combine was tried first: the parity made Yices stall from step 22 at L = 2.)
   Asserted: whenever the PE hands out a finished output (``done``: the output FIFO's write), it is
   the spec's fold ``f(...f(f(0, t_1), t_2)..., t_n)`` over the tags of one job's beats, in order,
   where the spec assigns the ``n``-th beat taken since reset to slot ``n mod L`` and a slot's job
   runs from its first beat to its ``last`` beat; finished outputs come in the order of their jobs'
   ``last`` beats, each once (a solver-picked job is followed through the queue of finished jobs;
   nothing leaves the ring while no job is owed). From the FIFO write to ``o``: the output FIFO is
   ``hw.pipeline.SkidFIFO``, the generator whose order ``dsu_*_s3:transport`` proves, and the MAC
   array's stream contract (``mac_array_*:stream-contract``) proves nothing lost or duplicated there.

   *Why an abstract operator proves it for the real adder (data independence):* no control signal
   of the array or the ring (``phase``, ``slot``, ``open_slots``, ``pending``, ``valid``, ``first``,
   ``last``, ``start_ahead``, ``done``) reads a term, an operand or a sum; data moves only through
   registers, the ``Mux(valid, term, 0)`` and ``Mux(start_ahead, 0, sum)`` selections and the adder. So
   the ring output at any cycle is one fixed expression over the adder and the terms, fixed by the
   valid/last/ready history alone; the proof shows that expression is the K-order fold of one job
   (for a solver-chosen history, up to the bound). Reinterpreting ``f`` as the real pipelined adder
   (equal to the combinational one, part 1), with idle-slot ``+0`` additions dropped (identity on
   every reachable ring value, ``adder_identity``), gives the L = 1 reference's K-order RNE sum.

   Bounded (BMC): the ring is a loop, so the depth is stated per configuration (``RING_CONFIGS``):
   L = 1 (the reference itself, held to the same spec) and the C-slow L = 2, 4, 8.

``adder_identity`` is combinational (one adder, two free inputs): proved in every cycle.
"""

from __future__ import annotations

import contextlib
import threading

from amaranth.hdl import Assert, Cat, Const, Cover, Fragment, Module, Mux, Signal, signed

import hw.mac_array
from golden.formats import EXPONENT_BITS, Grid
from hw.config import MACArrayConfig
from hw.float32 import CANONICAL_NAN, ROUND_HOOKS, TERM_HOOKS, add_binary32, round_to_binary32, term_to_binary32

__all__ = ["ADDER_INTERLEAVES", "RING_CONFIGS", "abstract_combine", "adder_equivalence", "adder_identity", "adder_registers",
           "nvfp4_round_equivalence", "ring_order", "term_equivalence"]

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


def nvfp4_round_equivalence(block: int, *, cut_hooks=None):
    """Top module of ``nvfp4_pe_round_b{block}:equivalence``: the NVFP4 PE's ``round_to_binary32`` with its
    four cut registers (``hw.mac_array.NVFP4ProcessingElement``: every hook registered) equals the
    combinational one of the (magnitude, exponent, sign) of four cycles earlier, at the PE's widths."""

    def build():
        m = Module()
        # The PE's widths: |acc| (acc bits - 1) times the block-scale product (8 bits), times sig(T) (24 bits).
        exact_bits = hw.mac_array._acc_bits(block, Grid.HALF) - 1 + 8
        magnitude = Signal(exact_bits + 24, name="magnitude")
        exponent = Signal(signed(EXPONENT_BITS + 4), name="exponent")
        negative = Signal(name="negative")
        if cut_hooks is not None:
            hooks = cut_hooks(m)
        else:
            hooks = tuple(hw.mac_array._cut(m, f"term_s{k}") for k in range(ROUND_HOOKS))

        def function(m, magnitude, exponent, negative, prefix, cuts):
            return round_to_binary32(m, magnitude, exponent.as_signed(), negative, prefix, cuts=cuts)

        _pipeline_miter(m, function, [magnitude, exponent, negative], hooks)
        return m, [magnitude, exponent, negative]

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


# ---------------------------------------------------------------------------------------------------
# Part 2: the ring hands each output its terms in K order (the real array and PE control, abstract
# arithmetic).

#: Bits of the beat tag: ten of them fit the ring's 32-bit word.
TAG_BITS = 3


def abstract_combine(acc, term):
    """``f(acc, t) = t == 0 ? acc : (acc << 3) | t`` on 32 bits (``t`` a 3-bit tag): the record of the nonzero
    tags folded in, in order (injective on sequences of up to ten: a sequence of ``n`` nonzero tags lies in
    ``[8^(n-1), 8^n)``); +0 its identity on the term side, ``f(0, t) = t`` (as ``+0 + t``)."""
    return Mux(term == 0, acc, Cat(term[:TAG_BITS], acc[: 32 - TAG_BITS]))


def _beat_tag(operand_a, operand_w):
    """A beat's tag: the low bits of the magnitude of the activation's first element."""
    return operand_a.elements[0].magnitude[:TAG_BITS]


def _modelled_partial_sums(m, a, w, block, grid):
    tag = Cat(_beat_tag(a, w), Const(0, 1)).as_signed()
    return [hw.mac_array._delay(m, tag, "formal_tag", hw.mac_array.PRODUCT_STAGES)]


def _modelled_term(m, acc, shift, prefix, cuts):
    values = {"tag": acc}
    for cut in cuts:  # the PE's real term cut hooks: its three registers
        values = cut(values)
    return Cat(values["tag"][:TAG_BITS], Const(0, 32 - TAG_BITS))


def _modelled_adder(m, a, b, prefix, cuts):
    values = {"sum": abstract_combine(a, b)}  # b: the term (the tag, zero-extended)
    for cut in cuts:  # the real adder_cuts(L) hooks: the adder's registers
        values = cut(values)
    return values["sum"]


_MODELS = {"_partial_sums": _modelled_partial_sums, "term_to_binary32": _modelled_term, "add_binary32": _modelled_adder}
_LOCK = threading.Lock()
_ACTIVE = threading.local()
_INSTALLED: dict = {"count": 0, "saved": {}}


def _dispatcher(name: str):
    def call(*args, **kwargs):
        if getattr(_ACTIVE, "on", False):
            return _MODELS[name](*args, **kwargs)
        return _INSTALLED["saved"][name](*args, **kwargs)

    return call


@contextlib.contextmanager
def _abstract_arithmetic():
    """The PE's product stages, term and adder replaced by the tag model in ``hw.mac_array``'s namespace for
    the duration of an elaboration, in this thread only: ``python -m formal`` builds properties in several
    threads, and another thread elaborating a MAC array meanwhile gets the real functions (the installed
    dispatchers call them). Everything else is the hardware's own code."""
    with _LOCK:
        if _INSTALLED["count"] == 0:
            _INSTALLED["saved"] = {name: getattr(hw.mac_array, name) for name in _MODELS}
            for name in _MODELS:
                setattr(hw.mac_array, name, _dispatcher(name))
        _INSTALLED["count"] += 1
    _ACTIVE.on = True
    try:
        yield
    finally:
        _ACTIVE.on = False
        with _LOCK:
            _INSTALLED["count"] -= 1
            if _INSTALLED["count"] == 0:
                for name, value in _INSTALLED["saved"].items():
                    setattr(hw.mac_array, name, value)


#: (configuration, BMC depth) of ``ring_order``: L = 1 (the reference itself), the C-slow L of the tiles.
RING_CONFIGS = (
    (MACArrayConfig(rows=1, cols=1, block=16, interleave=1), 20),
    (MACArrayConfig(rows=1, cols=1, block=16, interleave=2), 26),
    (MACArrayConfig(rows=1, cols=1, block=16, interleave=4), 26),
    (MACArrayConfig(rows=1, cols=1, block=16, interleave=8), 30),
)


def ring_order(config: MACArrayConfig, *, count_bits: int = 5):
    """Top module of ``mac_array_*:ring-order``: the real MAC array (rows = cols = 1) with the tag model of
    the arithmetic; every finished output of the PE (``done``, the output FIFO's write) is the K-order
    fold of one job's tags, in the order of the jobs' ``last`` beats. A job: the beats of one slot (the
    ``n``-th beat taken since reset is slot ``n mod L``) from its first beat to its ``last`` beat."""
    from hw.mac_array import MACArray, ProcessingElement

    if config.rows != 1 or config.cols != 1 or config.nvfp4 or config.grid is not Grid.HALF:
        raise ValueError(f"{config.name}: ring_order is stated for a 1 x 1 half-grid array (the ring is per PE)")

    def build():
        m = Module()
        pes = []

        def factory(block, interleave):  # the array's own PE, kept at hand for its y / done ports
            pes.append(ProcessingElement(block, interleave, config.grid))
            return pes[-1]

        unit = MACArray(config, pe_factory=factory)
        with _abstract_arithmetic():
            m.submodules.dut = Fragment.get(unit, None)
        (pe,) = pes
        slots = config.interleave
        fire = Signal(name="spec_fire")
        m.d.comb += fire.eq(unit.i.valid & unit.i.ready)
        beat = unit.i.payload
        tag = Cat(_beat_tag(beat.a[0], beat.w[0]), Const(0, 32 - TAG_BITS))
        # The spec: per slot, the fold so far, whether its job is open, and its beat count.
        slot = Signal(range(max(2, slots)), name="spec_slot")
        folds = [Signal(32, name=f"spec_fold_{s}") for s in range(slots)]
        opened = [Signal(name=f"spec_open_{s}") for s in range(slots)]
        counts = [Signal(count_bits, name=f"spec_count_{s}") for s in range(slots)]
        new_fold = Signal(32, name="spec_new_fold")
        new_count = Signal(count_bits, name="spec_new_count")
        with m.Switch(slot):
            for s in range(slots):
                with m.Case(s):
                    m.d.comb += [new_fold.eq(abstract_combine(Mux(opened[s], folds[s], 0), tag)),
                                 new_count.eq(Mux(opened[s], counts[s], 0) + 1)]  # fmt: skip
                    with m.If(fire):
                        m.d.sync += [folds[s].eq(new_fold), opened[s].eq(~beat.last), counts[s].eq(new_count)]
        with m.If(fire):
            m.d.sync += slot.eq(Mux(slot == slots - 1, 0, slot + 1))
        # Finished jobs not yet out of the PE; one solver-picked job followed to its output (its place in
        # the queue: the finished jobs before it).
        finished = fire & beat.last
        owed = Signal(range(MACArray.output_depth(config) + 2), name="ring_owed")
        m.d.sync += owed.eq(owed + finished - pe.done)
        m.d.comb += Assert(~pe.done | (owed != 0))  # nothing out of the ring that no job owes
        pick = Signal(name="ring_pick")
        tracking = Signal(name="ring_tracking")
        ahead = Signal.like(owed, name="ring_ahead")
        expected = Signal(32, name="ring_expected")
        length = Signal(count_bits, name="ring_length")
        tracked_slot = Signal.like(slot, name="ring_tracked_slot")
        arrived = Signal(name="ring_arrived")
        m.d.comb += arrived.eq(tracking & pe.done & (ahead == 0))
        with m.If(arrived):
            m.d.sync += tracking.eq(0)
        with m.Elif(tracking & pe.done):
            m.d.sync += ahead.eq(ahead - 1)
        with m.If(~tracking & finished & pick):
            m.d.sync += [tracking.eq(1), expected.eq(new_fold), length.eq(new_count), tracked_slot.eq(slot),
                         ahead.eq(owed - pe.done)]  # fmt: skip
        with m.If(arrived):
            m.d.comb += Assert(pe.y == expected)
        m.d.comb += Cover(arrived & (length >= 2) & (tracked_slot == (slots - 1 if slots <= 4 else 1)))
        return m, [unit.i.valid, unit.i.payload.as_value(), unit.o.ready, pick]

    return build

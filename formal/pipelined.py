"""The pipelined DSU (``DSUConfig.pipeline_stages``, issue 10) held to the same complete spec as the
two-register DSU: that is its equivalence proof.

The spec (NUMERICS 2.2, formal/argmin.py): the output beat of an input block is the dialect allowed
by the mask, of minimum ``cost[d] = sum_i ERR[d][u_i]``, ties to the lowest id (all-zero mask: 0), the
exponent passed through and ``(s << 3) | IDX[d][u]`` for every lane. It determines the output beat
completely (the conditions single out one id; the encoding is a function of it), so two units that
both hand out, in order, exactly the spec's beat for every input beat are equivalent stream
transformers: same input sequence, same output sequence, whatever the back-pressure. The
two-register DSU is proved to do so by ``dsu_*:argmin`` + ``:costs`` (+ ``:err-lookup``); the
pipelined one by the four properties here, each on the real ``hw.select.DialectSelectUnit``:

- ``:err-lookup`` (unbounded) -- every ERR ROM read at the input is golden's ``err_table`` entry of
  its lane's code (combinational in the input beat).
- ``:costs`` (BMC at depth ``c + 1``, complete, see below) -- where the adder trees end (the *cost
  point*), every cost equals the exact sum (balanced order, as ``formal.argmin.dsu_costs``) of the
  ERR reads made ``c`` cycles earlier (``c`` = register cuts before the cost point), whenever that
  point's valid bit is high; the pipeline carries that block's ucodes and mask there.
- ``:argmin`` (unbounded, k-induction at ``S + 2``; costs are cut points, free ranks as in
  formal/argmin.py) -- whenever the last cut register is valid, it holds the spec's beat for the
  block that entered ``S`` cycles earlier (``S`` = all cuts), given the costs the cost point showed
  ``S - c`` cycles earlier.
- ``:transport`` (bounded) -- the skid FIFO hands out, for any solver-picked input beat, exactly the
  value the last cut register held when that beat reached it ``S`` cycles after its handshake
  (nothing reordered; costs cut: the claim is about the valid bits and the FIFO, not the data).

Chained: the output beat of input beat ``x`` (``:transport``) is the last cut register ``S`` cycles
later, which is the spec's beat of ``x`` over the costs the cost point showed ``c`` cycles after
``x`` entered (``:argmin``), which are the exact sums of the ERR reads of ``x`` (``:costs``), which
are golden's ERR of ``x``'s codes (``:err-lookup``).

The datapath is free-running (every cut register loads every cycle, a valid bit travels beside), so
the part from the input to the last cut is a feed-forward pipeline: its state is a function of the
last ``S`` cycles' inputs (a valid bit high at a stage implies no reset in the cycles the block took to
reach it). k-induction closes ``:argmin``; for ``:costs`` its induction step (four copies of 16 or 32
adder trees, nothing constant) had not finished after 5 minutes, so it is BMC at depth ``c + 1``,
which is complete for it: the property at a cycle depends only on the input beats of the last ``c``
cycles and the cost point's valid bit (high only if those beats were taken with no reset between),
and every such combination is reached within ``c + 1`` cycles of the initial state (the FIFO is
empty, so ``i.ready`` is high, and the solver picks the beats). The harness keeps its own reset-less
delay lines of the input payload (``d[j]`` = the payload ``j`` cycles ago), of the ERR reads and of
the costs at the cost point.

The cost point is found by observing the unit's ``hw.pipeline.Stages`` while it elaborates
(``_ObservedStages``: ``cut`` records each level's values and valid bit and otherwise does exactly
what ``Stages.cut`` does; the one addition is a named wire, ``formal_cost_k``, between each adder
tree's root and its readers, so that ``cutpoint`` can cut it: a buffer, no logic changed).
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np
from amaranth.hdl import Array, Assert, Assume, Const, Cover, Fragment, Module, Signal

import hw.select
from hw.common import tree_reduce
from hw.config import DSUConfig
from hw.layouts import selector_in_layout
from hw.pipeline import Stages

from .argmin import _encoder_spec, spec_argmin
from .harness import stream_contract, track_transaction

__all__ = ["COST_POINT_CUTS", "pipelined_dsu_argmin", "pipelined_dsu_costs", "pipelined_dsu_err_lookup",
           "pipelined_dsu_transport"]

#: The cut points of ``:argmin`` and ``:transport``: the named wires at the adder trees' roots.
COST_POINT_CUTS = ("top/w:dut.formal_cost_*",)


class _ObservedStages:
    """Mixed into the ``Stages`` class ``hw.select`` uses (``hw.pipeline.Stages``, or a test's mutant of it):
    unchanged, recording every ``cut`` call (level, cuts before it, valid bit and values before and
    after); the adder trees' roots get named wires ``formal_cost_k``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[dict] = []
        self.cost_point: dict | None = None

    def cut(self, level: int, values: dict) -> dict:
        trees = values.get("trees")
        if self.cost_point is None and trees is not None and "mask" in values and all(len(t) == 1 for t in trees):
            named = []
            for k, tree in enumerate(trees):
                wire = Signal(tree[0].shape(), name=f"formal_cost_{k}")
                self.m.d.comb += wire.eq(tree[0])
                named.append([wire])
            values = {**values, "trees": named}
            self.cost_point = {"costs": [t[0] for t in named], "cuts": self._count, "valid": self.valid,
                               "mask": values["mask"], "ucodes": values["ucodes"]}  # fmt: skip
        # Copies: the unit pops entries from the dict ``cut`` returns (the same dict when not cut).
        call = {"level": level, "cuts_before": self._count, "valid_before": self.valid, "values_before": dict(values)}
        out = super().cut(level, values)
        call.update(cuts_after=self._count, valid_after=self.valid, values_after=dict(out))
        self.calls.append(call)
        return out


_PATCH_LOCK = threading.Lock()
_PATCH_ACTIVE = threading.local()  # .stacks: {(id(namespace), name): [replacement, ...]} of this thread
_PATCH_INSTALLED: dict = {}  # (id(namespace), name) -> [threads using it, the original]


class _Dispatch:
    """Stands in for a patched name: calls (and attribute reads) go to this thread's replacement while one
    is active in it, else to the original."""

    def __init__(self, key) -> None:
        self._key = key

    def _target(self):
        stack = getattr(_PATCH_ACTIVE, "stacks", {}).get(self._key)
        return stack[-1] if stack else _PATCH_INSTALLED[self._key][1]

    def __call__(self, *args, **kwargs):
        return self._target()(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._target(), name)


@contextlib.contextmanager
def thread_local_patch(namespace: dict, make):
    """Replace names of a module's ``namespace`` for the duration of the block, **in this thread only**:
    ``python -m formal`` builds properties in several threads, and another thread elaborating the same
    unit meanwhile gets the originals. ``make(originals)`` returns ``{name: replacement}`` given the
    current values of those names (``make.names`` lists them)."""
    keys = {name: (id(namespace), name) for name in make.names}
    with _PATCH_LOCK:
        for name, key in keys.items():
            if key not in _PATCH_INSTALLED:
                _PATCH_INSTALLED[key] = [0, namespace[name]]
                namespace[name] = _Dispatch(key)
            _PATCH_INSTALLED[key][0] += 1
        originals = {name: _PATCH_INSTALLED[key][1] for name, key in keys.items()}
    stacks = _PATCH_ACTIVE.__dict__.setdefault("stacks", {})
    try:
        replacements = make(originals)
        for name, key in keys.items():
            stacks.setdefault(key, []).append(replacements[name])
        try:
            yield
        finally:
            for key in keys.values():
                stacks[key].pop()
    finally:
        with _PATCH_LOCK:
            for name, key in keys.items():
                _PATCH_INSTALLED[key][0] -= 1
                if _PATCH_INSTALLED[key][0] == 0:
                    namespace[name] = _PATCH_INSTALLED.pop(key)[1]


@contextlib.contextmanager
def _observing_stages():
    """``hw.select.Stages`` recorded (``_ObservedStages``) while the caller elaborates, in this thread only."""
    observers: list[_ObservedStages] = []

    def make(originals):
        class Recording(_ObservedStages, originals["Stages"]):
            def __init__(self, *args, **kwargs) -> None:
                super().__init__(*args, **kwargs)
                observers.append(self)

        return {"Stages": Recording}

    make.names = ("Stages",)
    with thread_local_patch(vars(hw.select), make):
        yield observers


def _elaborate(config: DSUConfig):
    if config.pipeline_stages is None:
        raise ValueError(f"{config.name}: these harnesses are for the pipelined DSU (pipeline_stages set)")
    unit = hw.select.DialectSelectUnit(config)
    with _observing_stages() as observers:
        fragment = Fragment.get(unit, None)
    if len(observers) != 1 or observers[0].cost_point is None:
        raise RuntimeError(f"{config.name}: the pipelined DSU no longer builds one Stages with adder trees named "
                           "'trees' and a 'mask': update formal/pipelined.py to hw/select.py")
    stages = observers[0]
    final = stages.calls[-1]
    if set(final["values_after"]) != {"encoded"} or final["cuts_after"] != stages.cuts:
        raise RuntimeError(f"{config.name}: the last cut no longer registers 'encoded': update formal/pipelined.py")
    return unit, fragment, stages


def _delay_line(m: Module, value, length: int, name: str, shape=None) -> list:
    """``[value, value 1 cycle ago, ..., value `length` cycles ago]`` (reset-less registers)."""
    line = [value]
    for j in range(1, length + 1):
        reg = Signal(shape if shape is not None else len(value), name=f"{name}_{j}", reset_less=True)
        m.d.sync += reg.eq(line[-1])
        line.append(reg)
    return line


def _payload_line(m: Module, config: DSUConfig, unit, length: int) -> list:
    layout = selector_in_layout(config)
    return _delay_line(m, unit.i.payload, length, "formal_in", shape=layout)


def _ports(unit) -> list:
    return [unit.i.valid, unit.i.payload.as_value(), unit.o.ready]


def cuts_before_cost_point(config: DSUConfig) -> int:
    """Register cuts between the input and the adder trees' roots (level ``depth(block)``), from ``Stages``'
    own placement rule; k-induction at this plus one is complete for ``:costs``."""
    from amaranth.hdl import Const

    probe = Module()
    probe._MustUse__silence = True  # only the placement is wanted, nothing is elaborated
    placement = Stages(probe, hw.select.DialectSelectUnit.levels(config), config.pipeline_stages, Const(1), "probe")
    return sum(1 for after in placement.after if after < hw.select._depth(config.block))


def _terms(stages: _ObservedStages) -> list[list]:
    """The ERR ROM reads (``err_k_i``: candidate k, lane i) at level 0, read from the input payload."""
    first = stages.calls[0]
    if first["level"] != 0 or "errors" not in first["values_before"]:
        raise RuntimeError("the pipelined DSU no longer reads its ERR ROMs at level 0: update formal/pipelined.py")
    return first["values_before"]["errors"]


def pipelined_dsu_err_lookup(config: DSUConfig):
    """Top module for ``dsu_*_sN:err-lookup``: every ERR read at the input is golden's ``err_table`` entry of
    its lane's code (combinational in the input beat: holds in every cycle)."""

    def build():
        m = Module()
        unit, fragment, stages = _elaborate(config)
        m.submodules.dut = fragment
        book = config.book.formatbook
        err = np.asarray(book.err_table)
        for k, lanes in enumerate(_terms(stages)):
            table = Array(Const(int(err[k, u]), book.err_bits) for u in range(err.shape[1]))
            for i, term in enumerate(lanes):
                m.d.comb += Assert(term == table[unit.i.payload.ucodes[i]])
        return m, _ports(unit)

    return build


def pipelined_dsu_costs(config: DSUConfig):
    """Top module for ``dsu_*_sN:costs``: whenever the cost point
    is valid, every cost is the exact sum of the ERR reads its block made ``c`` cycles earlier (balanced
    order, exact integers: see ``formal.argmin.dsu_costs``), and the pipeline carries that block's ucodes
    and mask there. With ``:err-lookup``: the costs are golden's sums over the block's codes."""

    def build():
        m = Module()
        unit, fragment, stages = _elaborate(config)
        m.submodules.dut = fragment
        point = stages.cost_point
        lag = point["cuts"]
        assert lag == cuts_before_cost_point(config), f"{config.name}: the cost point moved; update formal/pipelined.py"
        width = len(point["costs"][0])
        limit = int(np.asarray(config.book.formatbook.err_table).max())
        assert limit * config.block < 1 << width, f"{config.name}: cost width {width} too small"
        block = _payload_line(m, config, unit, lag)[lag]
        seen = [[_delay_line(m, term, lag, f"formal_term_{k}_{i}")[lag] for i, term in enumerate(lanes)]
                for k, lanes in enumerate(_terms(stages))]  # fmt: skip
        with m.If(point["valid"]):
            for k, terms in enumerate(seen):
                m.d.comb += Assert(point["costs"][k] == tree_reduce(terms, lambda a, b: a + b))
            m.d.comb += Assert(point["mask"] == block.mask)
            for i in range(config.block):
                m.d.comb += Assert(point["ucodes"][i] == block.ucodes[i])
        m.d.comb += Cover(point["valid"])
        return m, _ports(unit)

    return build


def pipelined_dsu_argmin(config: DSUConfig):
    """Top module for ``dsu_*_sN:argmin`` (the caller cuts ``formal_cost_*``): the last cut register holds
    the spec's output beat of its block, over the costs the cost point showed for it."""

    def build():
        m = Module()
        unit, fragment, stages = _elaborate(config)
        m.submodules.dut = fragment
        point = stages.cost_point
        total = stages.cuts
        for cost in point["costs"]:
            m.d.comb += Assume(cost < config.num_dialects)  # ranks (formal/argmin.py, rank argument)
        line = _payload_line(m, config, unit, total)
        lag = total - point["cuts"]
        cost_lines = [_delay_line(m, cost, lag, f"formal_seen_cost_{k}") for k, cost in enumerate(point["costs"])]
        costs = [cl[lag] for cl in cost_lines]
        final = stages.calls[-1]
        beat, valid = final["values_after"]["encoded"], final["valid_after"]
        block = line[total]
        with m.If(valid):
            spec_argmin(m, costs, block.mask, beat.dialect)
            m.d.comb += Assert(beat.exponent == block.exponent)
            _encoder_spec(m, config, block, beat.dialect, beat.codes)
        m.d.comb += Cover(valid & (block.mask != 0) & (beat.dialect != 0))
        return m, _ports(unit)

    return build


def pipelined_dsu_transport(config, *, elaborate=None):
    """Top module for ``dsu_*_sN:transport`` (costs cut): for a solver-picked input beat, the unit's output
    beat is the last cut register's value ``S`` cycles after that beat's handshake. ``elaborate`` builds
    another free-running unit with ``Stages`` and ``skid_output`` (formal/two_stage.py: the pipelined
    two-stage selector); the FIFO's credit is ``latency + 1`` beats in every such unit."""

    def build():
        m = Module()
        unit, fragment, stages = (elaborate or _elaborate)(config)
        m.submodules.dut = fragment
        from hw import unit_timing

        latency = unit_timing(config).latency
        contract = stream_contract(m, unit.i, unit.o, latency=latency, capacity=latency + 1)
        tracked = track_transaction(m, unit.i, unit.o, contract, selector_in_layout(config))
        picked = Signal(name="formal_picked")
        m.d.comb += picked.eq(~tracked.tracking & contract.in_fire & tracked.pick)
        flags = [picked]
        for j in range(1, stages.cuts + 1):  # reset clears these: a reset drops the tracked beat
            flag = Signal(name=f"formal_picked_{j}")
            m.d.sync += flag.eq(flags[-1])
            flags.append(flag)
        final = stages.calls[-1]
        beat, valid = final["values_after"]["encoded"], final["valid_after"]
        expected = Signal(len(beat.as_value()), name="formal_expected")
        have = Signal(name="formal_have_expected")
        with m.If(flags[-1]):
            m.d.comb += Assert(valid)
            m.d.sync += [expected.eq(beat.as_value()), have.eq(1)]
        with m.If(tracked.arrived):
            m.d.comb += [Assert(have), Assert(unit.o.payload.as_value() == expected)]
            m.d.sync += have.eq(0)
        return m, [*_ports(unit), tracked.pick]

    return build

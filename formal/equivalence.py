"""Equivalence of a pipelined unit to its reference, as stream transformers (bounded).

``lockstep_equivalence(pipelined, reference)`` drives both units from one producer: a beat is
offered to both only while both are ready, so they accept the same input sequence in the same
cycles; each output stream has its own free ``ready`` (independent back-pressure). Both units are
also held to the stream contract (``formal.harness.stream_contract``). The solver picks one input
beat (``track_transaction`` on each, with the same pick); the harness keeps the output beat each
unit hands out for it and asserts the two are equal once both have arrived. Since the pick is free,
this holds for every beat within the depth: the pipelined unit's output sequence equals the
reference's, whatever the back-pressure on either side.

The reference of the pipelined DSU (``DSUConfig.pipeline_stages``, free-running with a skid FIFO,
issue 10) is the two-register DSU of the same formatbook and block (``pipeline_stages=None``); of
the C-slow MAC array (``interleave = L``), the same array with the single-cycle adder (``L = 1``).
"""

from __future__ import annotations

from amaranth.hdl import Assert, Cover, Module, Signal

from hw import build_unit, unit_timing

from .harness import stream_contract, track_transaction

__all__ = ["lockstep_equivalence"]


def _capacity(config) -> int:
    from .properties import _capacity as capacity

    return capacity(config)


def lockstep_equivalence(pipelined, reference, in_layout, *, completes=None):
    """Top module: ``pipelined`` and ``reference`` (unit configurations) fed the same beats in the same cycles."""

    def build():
        m = Module()
        m.submodules.dut = dut = build_unit(pipelined)
        m.submodules.ref = ref = build_unit(reference)
        valid = Signal(name="producer_valid")
        payload = Signal(in_layout, name="producer_payload")
        both = dut.i.ready & ref.i.ready
        m.d.comb += [dut.i.valid.eq(valid & both), ref.i.valid.eq(valid & both),
                     dut.i.payload.eq(payload), ref.i.payload.eq(payload)]  # fmt: skip
        contracts, tracks = [], []
        for unit, config, tag in ((dut, pipelined, "dut"), (ref, reference, "ref")):
            timing = unit_timing(config)
            contract = stream_contract(m, unit.i, unit.o, latency=timing.latency, capacity=_capacity(config),
                                       completes=completes, name=f"{tag}_contract")  # fmt: skip
            contracts.append(contract)
        if completes is not None:  # jobs of several beats: track job ends only
            raise NotImplementedError("lockstep_equivalence tracks one-to-one units")
        pick = Signal(name="pick")
        for unit, contract, tag in ((dut, contracts[0], "dut"), (ref, contracts[1], "ref")):
            tracked = track_transaction(m, unit.i, unit.o, contract, in_layout, name=f"{tag}_track")
            m.d.comb += tracked.pick.eq(pick)
            got = Signal(len(unit.o.payload.as_value()), name=f"{tag}_result")
            have = Signal(name=f"{tag}_have")
            with m.If(tracked.arrived):
                m.d.sync += [got.eq(unit.o.payload.as_value()), have.eq(1)]
            tracks.append((tracked, got, have, unit))
        (t_dut, got_dut, have_dut, _), (t_ref, got_ref, have_ref, _) = tracks
        # Compare in the cycle the second one arrives (the first one's beat is kept).
        dut_now = Signal.like(got_dut, name="dut_now")
        ref_now = Signal.like(got_ref, name="ref_now")
        m.d.comb += [dut_now.eq(got_dut), ref_now.eq(got_ref)]
        with m.If(t_dut.arrived):
            m.d.comb += dut_now.eq(dut.o.payload.as_value())
        with m.If(t_ref.arrived):
            m.d.comb += ref_now.eq(ref.o.payload.as_value())
        both_in = (have_dut | t_dut.arrived) & (have_ref | t_ref.arrived)
        with m.If(both_in):
            m.d.comb += Assert(dut_now == ref_now)
        m.d.comb += Cover(both_in)
        return m, [valid, payload.as_value(), dut.o.ready, ref.o.ready, pick]

    return build


def pipelined_dsu_function(pipelined, reference):
    """Top module for ``dsu_*_s1:same-function``: the one-cut pipelined DSU computes the two-register
    DSU's function. The pipelined unit's input payload is driven by the reference's cost-stage
    register ``held`` (its free-running cut register loads every cycle); whenever the reference hands a
    block to its output register, the pipelined unit's cut register holds, one cycle later, the same
    output beat (exponent, dialect, codes). Both datapaths read the same signals in the same cycle, so
    the solver matches the two generators term by term (``_elaborate_pipelined`` against ``choose`` and
    ``_encode``); k-induction closes it (every value of ``held``). With more cuts the same levels are
    built with registers between them (``hw.pipeline.Stages.cut``), which the stream contract of the
    three-cut unit covers as a stream; that a cut only delays is by construction, not proved here."""
    from amaranth.hdl import Fragment, ResetSignal

    from .argmin import _ObservedDSU, _named
    from .harness import _past

    if pipelined.pipeline_stages != 1 or reference.pipeline_stages is not None:
        raise ValueError("pipelined_dsu_function compares a one-cut pipelined DSU with the two-register DSU")

    def build():
        m = Module()
        ref = _ObservedDSU(reference)
        ref_fragment = Fragment.get(ref, None)
        ref_named = _named(ref_fragment, ["done"])
        dut = build_unit(pipelined)
        dut_fragment = Fragment.get(dut, None)
        cut = _named(dut_fragment, ["dsu_s0_encoded"])["dsu_s0_encoded"]
        m.submodules.ref = ref_fragment
        m.submodules.dut = dut_fragment
        m.d.comb += dut.i.payload.eq(ref.observed["held"])
        started = Signal(name="started", reset_less=True)
        m.d.sync += started.eq(1)
        past_rst = _past(m, ResetSignal(), "past_rst", init=1)
        past_done = _past(m, ref_named["done"], "past_done")
        with m.If(started & ~past_rst & past_done):
            m.d.comb += Assert(cut == ref.o.payload.as_value())
        m.d.comb += Cover(started & ~past_rst & past_done)
        return m, [ref.i.valid, ref.i.payload.as_value(), ref.o.ready, dut.i.valid, dut.o.ready]

    return build

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

"""Formal harnesses: a unit under test wrapped with Amaranth ``Assert``/``Assume``/``Cover`` statements.

Everything here is generic over stream ports, so a new (pipelined) unit plugs in by naming its
ports: ``stream_contract(m, i, o, ...)`` binds the valid/ready contract to one input and one output
stream of any component, and ``track_transaction`` picks one arbitrary input beat (chosen by the
solver) and hands its payload to a checker together with the output beat it produced, which is how
functional properties (the DSU argmin, equivalence to a reference) are stated.

The harness's own registers (previous-cycle copies, counters) live in the same ``sync`` domain as
the unit; the top-level ``rst`` is a free input that the first cycle assumes high. Inputs the
harness does not drive (``i.valid``, ``i.payload``, ``o.ready``, the tracker's pick) are free: the
solver chooses them every cycle, subject only to the producer's side of the contract.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Assert, Assume, Cover, Module, ResetSignal, Signal

__all__ = ["StreamContract", "Tracked", "stream_contract", "track_transaction"]


def _past(m: Module, value, name: str, init: int = 0) -> Signal:
    """``value`` one cycle ago (a reset-less register, so the harness itself never forgets)."""
    past = Signal(len(value), name=name, reset_less=True, init=init)
    m.d.sync += past.eq(value)
    return past


@dataclass
class StreamContract:
    """Harness signals other properties can build on."""

    started: Signal  # high from the second cycle on
    owed: Signal  # outputs owed: completed input jobs not yet handed out
    in_fire: Signal
    out_fire: Signal


def stream_contract(
    m: Module,
    i,
    o,
    *,
    latency: int,
    capacity: int,
    completes=None,
    name: str = "contract",
) -> StreamContract:
    """The valid/ready contract of a unit with input stream ``i`` and output stream ``o``.

    Assumed of the producer (on ``i``) and asserted of the unit (on ``o``):

    - *valid held until ready, payload stable while stalled*: a beat offered and not taken is
      offered again, unchanged, in the next cycle (unless reset intervenes).

    Asserted of the unit:

    - *reset returns to idle*: the cycle after a reset, ``o.valid`` is low (and nothing is owed);
    - *no beat duplicated*: an output beat is only handed out while an input job is owed
      (``owed`` counts input jobs completed, i.e. handshakes with ``completes(payload)`` true,
      minus output handshakes);
    - *no beat lost*: ``owed`` never exceeds ``capacity`` (the jobs the pipeline can hold), and
      while jobs are owed and ``o.ready`` stays high, an output comes within ``latency`` cycles.

    ``completes`` maps the input payload to "this beat ends a job" (default: every beat, a
    one-to-one unit; the MAC array passes ``lambda p: p.last``).
    """
    rst = ResetSignal()
    started = Signal(name=f"{name}_started", reset_less=True)
    m.d.sync += started.eq(1)
    m.d.comb += Assume(started | rst)  # the first cycle is a reset

    in_fire = Signal(name=f"{name}_in_fire")
    out_fire = Signal(name=f"{name}_out_fire")
    m.d.comb += [in_fire.eq(i.valid & i.ready), out_fire.eq(o.valid & o.ready)]
    in_payload = i.payload.as_value() if hasattr(i.payload, "as_value") else i.payload
    out_payload = o.payload.as_value() if hasattr(o.payload, "as_value") else o.payload
    job_done = in_fire & (1 if completes is None else completes(i.payload))

    past_rst = _past(m, rst, f"{name}_past_rst", init=1)
    # Producer side (assumed): a stalled input beat stays offered and unchanged.
    past_i_stall = _past(m, i.valid & ~i.ready & ~rst, f"{name}_past_i_stall")
    past_i_payload = _past(m, in_payload, f"{name}_past_i_payload")
    with m.If(started & past_i_stall):
        m.d.comb += Assume(i.valid & (in_payload == past_i_payload))
    # Unit side (asserted): a stalled output beat stays offered and unchanged.
    past_o_stall = _past(m, o.valid & ~o.ready & ~rst, f"{name}_past_o_stall")
    past_o_payload = _past(m, out_payload, f"{name}_past_o_payload")
    with m.If(started & past_o_stall & ~rst):
        m.d.comb += Assert(o.valid & (out_payload == past_o_payload))
    # Reset returns to idle.
    with m.If(started & past_rst):
        m.d.comb += Assert(~o.valid)

    # Counting: nothing duplicated, nothing beyond the pipeline's capacity.
    owed = Signal(range(capacity + 2), name=f"{name}_owed")
    m.d.sync += owed.eq(owed + job_done - out_fire)
    with m.If(started & ~rst):
        m.d.comb += Assert(owed <= capacity)
        with m.If(o.valid):
            m.d.comb += Assert(owed != 0)
    # Bounded liveness: with jobs owed and o.ready high, an output comes within `latency` cycles.
    waiting = Signal(range(latency + 2), name=f"{name}_waiting")
    with m.If((owed != 0) & o.ready & ~out_fire & (waiting <= latency)):
        m.d.sync += waiting.eq(waiting + 1)
    with m.Else():
        m.d.sync += waiting.eq(0)
    with m.If(started & ~rst):
        m.d.comb += Assert(waiting < latency + 1)

    # Non-vacuity: a stall followed by a handshake, and a full pipeline, are reachable.
    m.d.comb += Cover(started & ~rst & past_o_stall & out_fire)
    m.d.comb += Cover(started & ~rst & (owed == capacity))
    return StreamContract(started, owed, in_fire, out_fire)


@dataclass
class Tracked:
    """The tracked input beat and the moment its output is handed out."""

    payload: Signal  # the input payload the solver picked (as a flat value)
    arrived: Signal  # high in the cycle its output beat is handed out (o.payload is that beat)


def track_transaction(m: Module, i, o, contract: StreamContract, in_layout, *, name: str = "track") -> Tracked:
    """Let the solver pick any one input beat of a one-to-one unit; flag its output beat.

    A free input ``pick`` chooses the beat at its handshake; the harness stores the payload and
    the number of outputs owed before it (its place in the queue), counts output handshakes down
    and raises ``arrived`` on the matching one. A reset drops the tracked beat.
    """
    pick = Signal(name=f"{name}_pick")  # free: a top-level input
    tracking = Signal(name=f"{name}_tracking")
    ahead = Signal.like(contract.owed, name=f"{name}_ahead")
    payload = Signal(in_layout, name=f"{name}_payload")
    arrived = Signal(name=f"{name}_arrived")
    m.d.comb += arrived.eq(tracking & contract.out_fire & (ahead == 0))
    with m.If(arrived):
        m.d.sync += tracking.eq(0)
    with m.Elif(tracking & contract.out_fire):
        m.d.sync += ahead.eq(ahead - 1)
    with m.If(~tracking & contract.in_fire & pick):
        # Outputs owed before it, less one leaving in this very cycle.
        m.d.sync += [tracking.eq(1), payload.eq(i.payload), ahead.eq(contract.owed - contract.out_fire)]
    m.d.comb += Cover(arrived)
    tracked = Tracked(payload, arrived)
    tracked.pick = pick
    tracked.tracking = tracking
    return tracked

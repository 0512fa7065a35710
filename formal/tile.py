"""The stream contract of the tile (``hw.tile.Tile``), output side, on its three streams (bounded).

The tile is not one-to-one (a row tile's ``col_groups * k_blocks * L`` weight beats and its
activation beats give ``col_groups * L`` output beats), so the generic ``stream_contract`` does not
apply as is. Stated here: assumed of the producers on ``a`` and ``w`` and asserted of the tile on
``o``, a beat offered and not taken is offered again, unchanged, in the next cycle; the cycle after
a reset ``o.valid`` is low; no output beat is handed out without a weight beat taken since the
reset for it (outputs never exceed weight beats: nothing is duplicated). The control inputs
``k_blocks`` (1..``buffer_blocks``) and ``col_groups`` (1..2) are held while streaming.

The input side (``tile_input_contract``, issue 11): an ``a`` beat has no one-to-one output, so it is a
scoreboard of counters since the last reset -- ``a`` beats taken vs buffer writes (nothing duplicated,
a bounded number in flight, a write within the quantizer latency while one is in flight and the bank
is free), per buffer address the reads since its write (never read before written, never more than
``col_groups * L`` times, never overwritten before that many reads: no bank released early), and
``w`` beats taken vs MAC-array input beats (the same three claims through the edge FIFO).
"""

from __future__ import annotations

import contextlib

from amaranth.hdl import Assert, Assume, Cover, Fragment, Module, Mux, ResetSignal, Signal

from hw.tile import Tile, TileConfig

from .harness import _past

__all__ = ["input_side_bounds", "tile_input_contract", "tile_output_contract"]


def _assume_tile_environment(m: Module, tile, config: TileConfig):
    """The tile's environment, shared by the output and input contracts: a reset in the first cycle,
    the control inputs in range and held, and producers on ``a`` and ``w`` that hold a stalled beat.
    Returns ``(rst, started)``."""
    rst = ResetSignal()
    started = Signal(name="started", reset_less=True)
    m.d.sync += started.eq(1)
    m.d.comb += Assume(started | rst)
    # Control inputs: in range, held.
    for port, top in ((tile.k_blocks, config.buffer_blocks), (tile.col_groups, 2)):
        m.d.comb += Assume((port >= 1) & (port <= top))
        past = _past(m, port, f"past_{port.name}")
        with m.If(started):
            m.d.comb += Assume(port == past)
    # Producers on a and w hold a stalled beat.
    for stream, tag in ((tile.a, "a"), (tile.w, "w")):
        payload = stream.payload.as_value()
        stall = _past(m, stream.valid & ~stream.ready & ~rst, f"past_{tag}_stall")
        held = _past(m, payload, f"past_{tag}_payload")
        with m.If(started & stall):
            m.d.comb += Assume(stream.valid & (payload == held))
    return rst, started


def tile_output_contract(config: TileConfig, *, count_bits: int = 6):
    def build():
        m = Module()
        m.submodules.dut = tile = Tile(config)
        rst, started = _assume_tile_environment(m, tile, config)
        past_rst = _past(m, rst, "past_rst", init=1)
        # The tile holds a stalled output beat; reset returns o to idle.
        out = tile.o.payload.as_value()
        o_stall = _past(m, tile.o.valid & ~tile.o.ready & ~rst, "past_o_stall")
        o_held = _past(m, out, "past_o_payload")
        with m.If(started & o_stall & ~rst):
            m.d.comb += Assert(tile.o.valid & (out == o_held))
        with m.If(started & past_rst):
            m.d.comb += Assert(~tile.o.valid)
        # Nothing duplicated: output beats never outnumber the weight beats taken (counters saturate).
        top = (1 << count_bits) - 1
        w_beats = Signal(count_bits, name="w_beats")
        o_beats = Signal(count_bits, name="o_beats")
        w_fire, o_fire = tile.w.valid & tile.w.ready, tile.o.valid & tile.o.ready
        with m.If(w_fire & (w_beats != top)):
            m.d.sync += w_beats.eq(w_beats + 1)
        with m.If(o_fire & (o_beats != top)):
            m.d.sync += o_beats.eq(o_beats + 1)
        with m.If(started & ~rst & (w_beats != top)):
            m.d.comb += Assert(o_beats + o_fire <= w_beats)
        m.d.comb += Cover(started & ~rst & o_stall & o_fire)
        ports = [tile.a.valid, tile.a.payload.as_value(), tile.w.valid, tile.w.payload.as_value(), tile.o.ready,
                 tile.k_blocks, tile.col_groups]
        return m, ports

    return build


# --- The input side: a scoreboard of counters on `a`, the buffer and `w` (issue 11) ----------------------


@contextlib.contextmanager
def _recording(tile_class):
    """While the tile elaborates (in this thread), record its buffer rows, its MAC array and its lockstep joins
    (the classes and helper ``hw.tile`` uses, wrapped: each still does exactly what it did)."""
    from .pipelined import thread_local_patch

    scope = tile_class.elaborate.__globals__  # hw.tile's namespace (or a test's mutated copy of it)
    seen = {"rows": [], "macs": [], "joins": []}

    def make(originals):
        class Row(originals["BufferRow"]):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                seen["rows"].append(self)

        class Mac(originals["MACArray"]):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                seen["macs"].append(self)

        def join(m, sources, sink):
            seen["joins"].append(sink)
            originals["_lockstep_join"](m, sources, sink)

        return {"BufferRow": Row, "MACArray": Mac, "_lockstep_join": join}

    make.names = ("BufferRow", "MACArray", "_lockstep_join")
    with thread_local_patch(scope, make):  # in this thread only: `python -m formal` builds in several
        yield seen


def input_side_bounds(config: TileConfig) -> dict[str, int]:
    """The scoreboard's bounds, from the tile's own timing table: ``a_in_flight`` -- `a` beats taken and not
    yet written (one per register of the quantizer path: front-end, selector, the skid entry, the
    registered write); ``a_wait`` -- cycles an `a` beat in flight may see the buffer ready without a
    write landing (the quantizer latency); ``w_in_flight`` -- `w` beats taken and not yet in the MAC
    array (the edge FIFO's credit); ``w_wait`` -- cycles one may wait while the MAC array is ready (the
    read, decode and edge FIFO latencies)."""
    units = Tile.unit_timings(config)
    edge = sum(units[u].latency for u in ("buffer_read", "decoder", "edge_fifo"))
    quantizer = Tile.quantizer_timing(config).latency
    return {"a_in_flight": quantizer, "a_wait": quantizer, "w_in_flight": edge + 1, "w_wait": edge}


def tile_input_contract(config: TileConfig, *, tile_class=Tile, count_bits: int = 6):
    """Top module for ``tile_*:input-contract`` (one quantizer, one row: an `a` beat is one block, one buffer
    write). Producers and control inputs as in ``tile_output_contract``. Asserted, counting since the
    last reset (a reset flushes the tile and the scoreboard alike):

    - `a`, nothing duplicated or lost: buffer writes never outnumber `a` beats taken; at most
      ``a_in_flight`` are taken and not yet written; while one is and the buffer's write side is ready
      (its bank not full), a write lands within ``a_wait`` cycles;
    - the buffer, per address (``2 x buffer_blocks`` of them): a `w` beat never reads an address no write
      has landed on since the reset, nor one already read ``col_groups x L`` times since its write; a
      write never lands on a block read fewer than ``col_groups x L`` times since its own write (no bank
      released early, none overwritten while it is still owed reads);
    - `w`, nothing duplicated or lost: MAC-array input beats never outnumber `w` beats taken; at most
      ``w_in_flight`` are in between; while one is and the MAC array is ready, it fires within
      ``w_wait`` cycles.
    """
    if config.quantizers != 1 or config.rows != 1:
        raise ValueError(f"{config.name}: the input-side scoreboard counts one row's blocks (rows = quantizers = 1)")
    bounds = input_side_bounds(config)

    def build():
        m = Module()
        tile = tile_class(config)
        with _recording(tile_class) as seen:
            fragment = Fragment.get(tile, None)
        if len(seen["rows"]) != 1 or len(seen["macs"]) != 1 or not seen["joins"]:
            raise RuntimeError(f"{config.name}: the tile no longer builds one BufferRow, one MACArray and its joins "
                               "through hw.tile's names: update formal/tile.py to hw/tile.py")
        written = seen["joins"][-1]  # the selectors' join into the buffer write (hw/tile.py's last join)
        if written.valid.name != "quantized__valid":
            raise RuntimeError(f"{config.name}: the last join is {written.valid.name!r}, not the buffer write's")
        row, mac = seen["rows"][0], seen["macs"][0]
        m.submodules.dut = fragment
        rst, started = _assume_tile_environment(m, tile, config)
        live = started & ~rst

        def counter(name, event):
            count = Signal(count_bits, name=name)
            m.d.sync += count.eq(count + event)
            return count

        def waiting(name, pending, ready, event, limit):
            wait = Signal(range(limit + 2), name=name)
            with m.If(pending & ready & ~event & (wait <= limit)):
                m.d.sync += wait.eq(wait + 1)
            with m.Elif(~(pending & ready)):
                m.d.sync += wait.eq(0)
            with m.Else():
                m.d.sync += wait.eq(Mux(event, 0, wait))
            with m.If(live):
                m.d.comb += Assert(wait <= limit)

        # `a` -> buffer writes.
        a_fire = tile.a.valid & tile.a.ready
        landed = row.write_enable  # the registered write: the memory's write enable
        a_taken, writes = counter("a_taken", a_fire), counter("buffer_writes", landed)
        with m.If(live):
            m.d.comb += [Assert(writes + landed <= a_taken), Assert(a_taken - writes <= bounds["a_in_flight"])]
        waiting("a_waiting", a_taken != writes, written.ready, landed, bounds["a_wait"])

        # The buffer, per address: written since the reset, and reads since the last write.
        reads_owed = tile.col_groups * config.interleave
        take = tile.w.valid & tile.w.ready
        depth = 2 * config.buffer_blocks
        for address in range(depth):
            has_block = Signal(name=f"block_{address}_written")
            reads = Signal(count_bits, name=f"block_{address}_reads")
            write_here = landed & row.write_select[0][address]  # every copy holds the same word
            read_here = take & row.read_select[0][address]
            with m.If(live & read_here):
                m.d.comb += [Assert(has_block), Assert(reads < reads_owed)]
            with m.If(live & write_here):
                m.d.comb += Assert(~has_block | (reads == reads_owed))
            with m.If(write_here):
                m.d.sync += [has_block.eq(1), reads.eq(0)]
            with m.Elif(read_here):
                m.d.sync += reads.eq(reads + 1)
            if address == 0:  # non-vacuity: a block read out, its bank released and written again
                m.d.comb += Cover(live & write_here & has_block & (reads == reads_owed) & (tile.col_groups == 2))

        # `w` -> MAC-array input beats.
        fire = mac.i.valid & mac.i.ready
        w_taken, fired = counter("w_taken", take), counter("mac_beats", fire)
        with m.If(live):
            m.d.comb += [Assert(fired + fire <= w_taken), Assert(w_taken - fired <= bounds["w_in_flight"])]
        waiting("w_waiting", w_taken != fired, mac.i.ready, fire, bounds["w_wait"])
        ports = [tile.a.valid, tile.a.payload.as_value(), tile.w.valid, tile.w.payload.as_value(), tile.o.ready,
                 tile.k_blocks, tile.col_groups]
        return m, ports

    return build

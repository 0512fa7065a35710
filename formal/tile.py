"""The stream contract of the tile (``hw.tile.Tile``), output side, on its three streams (bounded).

The tile is not one-to-one (a row tile's ``col_groups * k_blocks * L`` weight beats and its
activation beats give ``col_groups * L`` output beats), so the generic ``stream_contract`` does not
apply as is. Stated here: assumed of the producers on ``a`` and ``w`` and asserted of the tile on
``o``, a beat offered and not taken is offered again, unchanged, in the next cycle; the cycle after
a reset ``o.valid`` is low; no output beat is handed out without a weight beat taken since the
reset for it (outputs never exceed weight beats: nothing is duplicated). The control inputs
``k_blocks`` (1..``buffer_blocks``) and ``col_groups`` (1..2) are held while streaming.
"""

from __future__ import annotations

from amaranth.hdl import Assert, Assume, Cover, Module, ResetSignal, Signal

from hw.tile import Tile, TileConfig

from .harness import _past

__all__ = ["tile_output_contract"]


def tile_output_contract(config: TileConfig, *, count_bits: int = 6):
    def build():
        m = Module()
        m.submodules.dut = tile = Tile(config)
        rst = ResetSignal()
        started = Signal(name="started", reset_less=True)
        m.d.sync += started.eq(1)
        m.d.comb += Assume(started | rst)
        past_rst = _past(m, rst, "past_rst", init=1)
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

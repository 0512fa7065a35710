"""No clock-enable net fans out past ``hw.common.ENABLE_FANOUT`` flip-flops after Yosys (issue 10, Fmax).

The chunked registers (``register_stage``, ``skid_buffer``, ``SkidFIFO``) keep one copy of their control
register per chunk; Yosys merges registers of identical inputs, so the copies only help if they survive
synthesis. This runs the project's own ECP5 synthesis (``rtl_gen.synth.synthesize_ecp5``, no place and
route) on a wrapper of all three at 100 bits and counts, in the netlist, the flip-flops behind each
clock-enable net.
"""

from __future__ import annotations

import collections
import json

from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hw.common import ENABLE_FANOUT, register_stage
from hw.pipeline import SkidFIFO, skid_buffer

WIDTH = 100


class _Chunked(wiring.Component):
    """A register stage, then a skid buffer, then a skid FIFO, all ``WIDTH`` bits wide."""

    def __init__(self) -> None:
        super().__init__({"i": In(stream.Signature(WIDTH)), "o": Out(stream.Signature(WIDTH))})

    def elaborate(self, platform) -> Module:
        m = Module()
        staged = stream.Signature(WIDTH).create(path=("staged",))
        skidded = stream.Signature(WIDTH).create(path=("skidded",))
        register_stage(m, self.i, staged, self.i.payload)
        skid_buffer(m, staged, skidded, "skid")
        m.submodules.fifo = fifo = SkidFIFO(WIDTH, 3)
        m.d.comb += [fifo.w_en.eq(skidded.valid), fifo.w_data.eq(skidded.payload), skidded.ready.eq(1),
                     self.o.valid.eq(fifo.r_valid), self.o.payload.eq(fifo.r_data), fifo.r_en.eq(self.o.ready)]
        return m


def _clock_enable_fanouts(netlist: dict) -> collections.Counter:
    """Flip-flops per clock-enable net driven inside the design. A net from a top-level input port is left
    out: Yosys may take ``i.valid`` itself as the enable of every chunk (and fold the chunk's ready into
    the data input), and that net is the producer's register, outside this module."""
    (module,) = (mod for mod in netlist["modules"].values() if mod.get("attributes", {}).get("top"))
    inputs = {bit for port in module["ports"].values() if port["direction"] == "input" for bit in port["bits"]}
    fanout = collections.Counter()
    for cell in module["cells"].values():
        if cell["type"] == "TRELLIS_FF":
            for bit in cell["connections"].get("CE", []):
                if isinstance(bit, int) and bit not in inputs:  # a net of the design, not a constant or port
                    fanout[bit] += 1
    return fanout


def test_no_clock_enable_drives_more_than_a_chunk_after_synthesis(tmp_path):
    from rtl_gen.synth import synthesize_ecp5

    assert ENABLE_FANOUT < WIDTH  # so every register here is chunked
    source = tmp_path / "chunked.v"
    source.write_text(verilog.convert(_Chunked(), name="chunked"))
    synthesize_ecp5(source, "chunked", tmp_path / "work", place_and_route=False)
    fanout = _clock_enable_fanouts(json.loads((tmp_path / "work" / "chunked.ecp5.json").read_text()))
    # 100 storage bits per register: the skid entry and three FIFO slots at least (the stage's enable may
    # be the input port, above).
    assert sum(fanout.values()) >= 3 * WIDTH
    assert max(fanout.values()) <= ENABLE_FANOUT, sorted(fanout.values())[-8:]

"""Multi-format decoder: (format, dialect id, 4-bit codes) -> sign + magnitude in grid units.

One magnitude ROM per formatbook in ``config.books`` (``Formatbook.units``: FB32, DialectFP4-16,
E2M1 for the MXFP4/NVFP4 elements, or any registry book), indexed by ``{dialect, index}``; the
magnitudes are 4-bit half units, or 5-bit quarter units for quarter-grid books (the books of one
decoder share a grid, ``DecoderConfig``); the ``format``
input picks the ROM (``config.books[format]``). Dialect-id bits above a formatbook's own id width
are ignored (E2M1 has a single dialect and ignores the id); a ``format`` value past the end of
``books`` decodes to magnitude 0. Latency 1 cycle, initiation interval 1.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from golden.formats import CODE_BITS, MAGNITUDE_CODES

from .common import Rom, UnitTiming, register_stage
from .config import DecoderConfig
from .layouts import decoder_in_layout, decoder_out_layout

__all__ = ["MultiFormatDecoder"]

INDEX_BITS = (MAGNITUDE_CODES - 1).bit_length()


class MultiFormatDecoder(wiring.Component):
    """Ports: ``i`` (``decoder_in_layout``: format, dialect, codes), ``o`` (``decoder_out_layout``)."""

    LATENCY = 1
    INITIATION_INTERVAL = 1

    @classmethod
    def timing(cls, config) -> UnitTiming:
        return UnitTiming(cls.LATENCY, cls.INITIATION_INTERVAL)

    def __init__(self, config: DecoderConfig) -> None:
        if not isinstance(config, DecoderConfig):
            raise TypeError(f"MultiFormatDecoder needs a DecoderConfig, got {config!r}")
        self.config = config
        super().__init__(
            {
                "i": In(stream.Signature(decoder_in_layout(config))),
                "o": Out(stream.Signature(decoder_out_layout(config))),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg = self.config
        payload = self.i.payload
        magnitude_bits = cfg.grid.magnitude_bits
        roms = []
        for b, book in ((b, b.formatbook) for b in cfg.books):
            bits = (book.num_dialects - 1).bit_length()  # 0 for E2M1: a single dialect
            table = [0] * (MAGNITUDE_CODES << bits)
            for d, row in enumerate(book.dialects):
                for k, h in enumerate(row):
                    table[(d << INDEX_BITS) | k] = h
            roms.append((Rom(m, f"magnitude_rom_{b.ident}", table, magnitude_bits), bits))

        out = Signal(decoder_out_layout(cfg), name="decoded")
        for lane in range(cfg.lanes):
            code = payload.codes[lane]
            index = code[:INDEX_BITS]
            magnitude = Signal(magnitude_bits, name=f"magnitude_{lane}")
            reads = [
                table.read(m, Cat(index, payload.dialect[:bits]), f"magnitude_{lane}_{b.ident}")
                for (table, bits), b in zip(roms, cfg.books)
            ]
            with m.Switch(payload.format):
                for f, read in enumerate(reads):
                    with m.Case(f):
                        m.d.comb += magnitude.eq(read)
                with m.Default():  # a format number past the end of `books`
                    m.d.comb += magnitude.eq(0)
            m.d.comb += [out[lane].magnitude.eq(magnitude), out[lane].sign.eq(code[CODE_BITS - 1])]
        register_stage(m, self.i, self.o, out)
        return m

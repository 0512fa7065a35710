"""The accelerator tile: block front-end -> dialect selection -> decoder -> MAC array, streams in and out.

Dataflow (output-stationary, one K block per cycle at full rate)::

    a (rows raw blocks [+ masks]) ─fork─> row r: front-end ─> selector ─fork─> decoder ──┐
                                                                            └> exponent ─┤
    w (cols quantized blocks)     ─fork─> col c: decoder ─────────────────────────────────┤
                                          col c: exponent ────────────────────────────────┴join─> MAC array ─> o

Every input beat of ``a`` carries one K block of each of the ``rows`` activation rows of the current
output tile, every beat of ``w`` one K block of each of the ``cols`` weight rows; the tile counts
``k_blocks`` joined beats per output tile (``last`` of the MAC array) and emits one beat of
``rows x cols`` binary32 results per tile (NUMERICS 4: K order, RNE, +0.0 start). ``k_blocks`` is a
static input (a control register): hold it while a stream is running.

Formats (``TileFormat``), the selector per activation row, and the decoders' formatbook:

- ``FB32``: LUT dialect-select unit (``hw.DialectSelectUnit``) with a SeDA candidate mask per row;
- ``DIALECTFP4``: BlockDialect's two-stage selector (``hw.TwoStageSelector``), no mask;
- ``MXFP4``: E2M1 encoder (``hw.tile_front_end.E2M1Encoder``, round half to even) after a sticky
  front-end; same E8M0 exponent rule, E2M1 decoders.

NVFP4 is not a tile configuration: its product needs the E4M3 block scales and the binary32 tensor
scales multiplied into every term (two binary32 multipliers per PE), which ``hw.MACArray`` does not
have. The cost report covers NVFP4's element path (E2M1 decoder, B = 16 MAC array) only.

The front-end is ``hw.BlockFrontEnd`` for bfloat16 dialect tiles and ``hw.tile_front_end.FloatFrontEnd``
for binary32 input (capture replay: AD residuals are binary32) and for MXFP4 (needs sticky bits).
Every fork and join is a lockstep handshake (all sinks take a beat together; a join's beat leaves
when every source has one), so the branches stay aligned without any side channel.

Timing: latency (``a`` handshake of a tile's last K block -> its ``o`` beat valid, no back-pressure,
weights ahead) = front-end + selector + decoder + MAC array latencies (``Tile.timing``); initiation
interval 1 K block per cycle. Performance counters: ``perf_mac_beats`` counts MAC-array input beats,
``perf_mac_window`` the cycles from the first to the latest MAC beat inclusive, so their ratio is
the sustained processing-element utilization.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.formats import CODE_BITS, EXPONENT_BITS, Formatbook

from .common import UnitTiming, register_stage
from .config import BLOCK_SIZES, Book, ConfigError, DecoderConfig, DSUConfig, FrontEndConfig, MACArrayConfig, TwoStageConfig
from .decoder import MultiFormatDecoder
from .front_end import BlockFrontEnd
from .layouts import mac_out_layout
from .mac_array import MACArray
from .select import DialectSelectUnit, TwoStageSelector
from .tile_front_end import (
    E2M1Encoder,
    E2M1EncoderConfig,
    FloatFrontEnd,
    FloatFrontEndConfig,
    InputFloat,
    encoded_block_layout,
)

__all__ = ["PERF_COUNTER_BITS", "Tile", "TileConfig", "TileFormat", "tile_a_layout", "tile_w_layout"]

#: Width of the performance counters and of ``k_blocks``.
PERF_COUNTER_BITS = 32
K_BLOCKS_BITS = 16


class TileFormat(enum.Enum):
    """Number format of a tile (names as in ``golden.FORMATS``)."""

    FB32 = "fb32"
    DIALECTFP4 = "dialectfp4"
    MXFP4 = "mxfp4"

    @property
    def book(self) -> Book:
        return {TileFormat.FB32: Book.FB32, TileFormat.DIALECTFP4: Book.DIALECTFP4_16, TileFormat.MXFP4: Book.E2M1}[self]

    @property
    def formatbook(self) -> Formatbook:
        return self.book.formatbook

    @property
    def masked(self) -> bool:
        """Whether activation rows carry a SeDA candidate mask (LUT selection only)."""
        return self is TileFormat.FB32


@dataclass(frozen=True, kw_only=True)
class TileConfig:
    """One tile: ``rows x cols`` PEs over blocks of ``block`` elements of ``format``, ``input`` words in.

    ``dialects_per_cycle`` is the FB32 DSU's area/throughput knob (None: all 32, one block per cycle;
    anything less makes the MAC array wait, by design).
    """

    format: TileFormat = TileFormat.FB32
    rows: int = 2
    cols: int = 2
    block: int = 32
    input: InputFloat = InputFloat.FP32
    dialects_per_cycle: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.format, TileFormat):
            raise ConfigError(f"format must be an hw.tile.TileFormat, got {self.format!r}")
        if not isinstance(self.input, InputFloat):
            raise ConfigError(f"input must be an hw.tile_front_end.InputFloat, got {self.input!r}")
        for name in ("rows", "cols"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.block not in BLOCK_SIZES:
            raise ConfigError(f"block size must be one of {list(BLOCK_SIZES)}, got {self.block!r}")
        if self.format is TileFormat.MXFP4 and self.block != 32:
            raise ConfigError(f"an MXFP4 tile uses blocks of 32 (OCP MX), got {self.block}")
        if self.dialects_per_cycle is not None and self.format is not TileFormat.FB32:
            raise ConfigError(f"dialects_per_cycle applies to the FB32 DSU only, not to {self.format.value!r}")
        self.selector_config  # validates dialects_per_cycle

    @property
    def name(self) -> str:
        dsu = "" if self.dialects_per_cycle is None else f"_p{self.dialects_per_cycle}"
        return f"tile_{self.format.value}_{self.input.value}_r{self.rows}_c{self.cols}_b{self.block}{dsu}"

    @property
    def selector_config(self) -> DSUConfig | TwoStageConfig | E2M1EncoderConfig:
        if self.format is TileFormat.FB32:
            return DSUConfig(book=Book.FB32, block=self.block, dialects_per_cycle=self.dialects_per_cycle)
        if self.format is TileFormat.DIALECTFP4:
            return TwoStageConfig(block=self.block)
        return E2M1EncoderConfig(block=self.block)

    @property
    def front_end_config(self) -> FrontEndConfig | FloatFrontEndConfig:
        if self.input is InputFloat.BF16 and self.format is not TileFormat.MXFP4:
            return FrontEndConfig(block=self.block)
        return FloatFrontEndConfig(block=self.block, input=self.input, inexact=self.format is TileFormat.MXFP4)

    @property
    def decoder_config(self) -> DecoderConfig:
        return DecoderConfig(books=(self.format.book,), lanes=self.block)

    @property
    def mac_config(self) -> MACArrayConfig:
        return MACArrayConfig(rows=self.rows, cols=self.cols, block=self.block)

    def to_dict(self) -> dict:
        return {
            "unit": "tile",
            "format": self.format.value,
            "rows": self.rows,
            "cols": self.cols,
            "block": self.block,
            "input": self.input.value,
            "dialects_per_cycle": self.dialects_per_cycle,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TileConfig:
        raw = json.loads(text)
        if raw.pop("unit", None) != "tile":
            raise ConfigError(f"not a tile configuration: {text!r}")
        return cls(
            format=TileFormat(raw.pop("format")),
            input=InputFloat(raw.pop("input")),
            **raw,
        )


def tile_a_layout(config: TileConfig) -> data.StructLayout:
    """Activation beat: ``blocks[r]`` raw words of row r's K block; ``masks[r]`` its candidate mask (FB32)."""
    fields = {"blocks": data.ArrayLayout(data.ArrayLayout(config.input.width, config.block), config.rows)}
    if config.format.masked:
        fields["masks"] = data.ArrayLayout(config.format.formatbook.num_dialects, config.rows)
    return data.StructLayout(fields)


def tile_w_layout(config: TileConfig) -> data.ArrayLayout:
    """Weight beat: one quantized K block (exponent, dialect id, codes) per column."""
    return data.ArrayLayout(encoded_block_layout(config.block, config.format.formatbook.id_bits), config.cols)


def _fork(m: Module, source, sinks) -> None:
    """Lockstep fork: every sink takes ``source``'s beat in the same cycle (sinks' ready must not depend on valid)."""
    all_ready = Signal(name=f"{sinks[0].valid.name}_fork_ready")
    m.d.comb += all_ready.eq(Cat(*(s.ready for s in sinks)).all())
    m.d.comb += source.ready.eq(all_ready)
    for sink in sinks:
        m.d.comb += sink.valid.eq(source.valid & all_ready)


def _join(m: Module, sources, sink) -> None:
    """Lockstep join: ``sink`` gets a beat when every source has one; all sources hand over together."""
    all_valid = Signal(name=f"{sink.valid.name}_join_valid")
    m.d.comb += all_valid.eq(Cat(*(s.valid for s in sources)).all())
    m.d.comb += sink.valid.eq(all_valid)
    for source in sources:
        m.d.comb += source.ready.eq(sink.ready & all_valid)


def _channel(name: str, layout):
    """A free-standing valid/ready/payload interface (used between units and side registers)."""
    return stream.Signature(layout).create(path=(name,))


class Tile(wiring.Component):
    """Ports: ``a`` (``tile_a_layout``), ``w`` (``tile_w_layout``), ``o`` (``mac_out_layout``: y[rows][cols]
    binary32), ``k_blocks`` (K blocks per output tile, >= 1), ``perf_mac_beats``, ``perf_mac_window``."""

    @classmethod
    def unit_timings(cls, config: TileConfig) -> dict[str, UnitTiming]:
        """Latency and initiation interval of each unit on the activation path, in order."""
        fe = config.front_end_config
        front_end = (BlockFrontEnd if isinstance(fe, FrontEndConfig) else FloatFrontEnd).timing(fe)
        sel = config.selector_config
        selector = {
            DSUConfig: DialectSelectUnit,
            TwoStageConfig: TwoStageSelector,
            E2M1EncoderConfig: E2M1Encoder,
        }[type(sel)].timing(sel)
        return {
            "front_end": front_end,
            "selector": selector,
            "decoder": MultiFormatDecoder.timing(config.decoder_config),
            "mac_array": MACArray.timing(config.mac_config),
        }

    @classmethod
    def timing(cls, config: TileConfig) -> UnitTiming:
        units = cls.unit_timings(config).values()
        return UnitTiming(
            latency=sum(u.latency for u in units),
            initiation_interval=max(u.initiation_interval for u in units),
        )

    def __init__(self, config: TileConfig) -> None:
        if not isinstance(config, TileConfig):
            raise TypeError(f"Tile needs a TileConfig, got {config!r}")
        self.config = config
        super().__init__(
            {
                "a": In(stream.Signature(tile_a_layout(config))),
                "w": In(stream.Signature(tile_w_layout(config))),
                "o": Out(stream.Signature(mac_out_layout(config.mac_config))),
                "k_blocks": In(unsigned(K_BLOCKS_BITS)),
                "perf_mac_beats": Out(unsigned(PERF_COUNTER_BITS)),
                "perf_mac_window": Out(unsigned(PERF_COUNTER_BITS)),
            }
        )

    def _front_end(self):
        fe = self.config.front_end_config
        return BlockFrontEnd(fe) if isinstance(fe, FrontEndConfig) else FloatFrontEnd(fe)

    def _selector(self):
        sel = self.config.selector_config
        if isinstance(sel, DSUConfig):
            return DialectSelectUnit(sel)
        if isinstance(sel, TwoStageConfig):
            return TwoStageSelector(sel)
        return E2M1Encoder(sel)

    def _decode(self, m: Module, name: str, source, sinks: list) -> None:
        """``source`` (encoded block) -> decoder + exponent register in lockstep; appends the two outputs."""
        cfg = self.config
        decoder = MultiFormatDecoder(cfg.decoder_config)
        m.submodules[f"{name}_decoder"] = decoder
        exponent_in = _channel(f"{name}_exponent_in", unsigned(EXPONENT_BITS))
        exponent_out = _channel(f"{name}_exponent", unsigned(EXPONENT_BITS))
        register_stage(m, exponent_in, exponent_out, exponent_in.payload)
        _fork(m, source, [decoder.i, exponent_in])
        id_bits = len(decoder.i.payload.dialect)
        m.d.comb += [
            decoder.i.payload.format.eq(0),
            decoder.i.payload.dialect.eq(source.payload.dialect[:id_bits]),
            exponent_in.payload.eq(source.payload.exponent),
        ]
        for k in range(cfg.block):
            m.d.comb += decoder.i.payload.codes[k].eq(source.payload.codes[k][:CODE_BITS])
        sinks.append((decoder.o, exponent_out))

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg = self.config
        mac = MACArray(cfg.mac_config)
        m.submodules.mac_array = mac

        # Activation rows: fork the beat to every row's front-end (and mask register).
        a_sinks, a_operands = [], []
        for r in range(cfg.rows):
            front_end = self._front_end()
            selector = self._selector()
            m.submodules[f"row_{r}_front_end"] = front_end
            m.submodules[f"row_{r}_selector"] = selector
            m.d.comb += front_end.i.payload.eq(self.a.payload.blocks[r])
            a_sinks.append(front_end.i)
            if cfg.format.masked:
                mask_in = _channel(f"row_{r}_mask_in", unsigned(cfg.format.formatbook.num_dialects))
                mask_out = _channel(f"row_{r}_mask", unsigned(cfg.format.formatbook.num_dialects))
                register_stage(m, mask_in, mask_out, mask_in.payload)
                m.d.comb += mask_in.payload.eq(self.a.payload.masks[r])
                a_sinks.append(mask_in)
                _join(m, [front_end.o, mask_out], selector.i)
                fe_out = front_end.o.payload
                m.d.comb += [
                    selector.i.payload.exponent.eq(fe_out.exponent),
                    selector.i.payload.signs.eq(fe_out.signs),
                    selector.i.payload.ucodes.eq(fe_out.ucodes),
                    selector.i.payload.mask.eq(mask_out.payload),
                ]
            else:
                m.d.comb += [
                    selector.i.valid.eq(front_end.o.valid),
                    front_end.o.ready.eq(selector.i.ready),
                    selector.i.payload.eq(front_end.o.payload),
                ]
            self._decode(m, f"row_{r}", selector.o, a_operands)
        _fork(m, self.a, a_sinks)

        # Weight columns: decoder + exponent register per column.
        w_sinks, w_operands = [], []
        for c in range(cfg.cols):
            column = _channel(f"col_{c}_block", encoded_block_layout(cfg.block, cfg.format.formatbook.id_bits))
            m.d.comb += column.payload.eq(self.w.payload[c])
            w_sinks.append(column)
            self._decode(m, f"col_{c}", column, w_operands)
        _fork(m, self.w, w_sinks)

        # Join every operand in front of the MAC array; count K blocks for `last`.
        _join(m, [s for pair in a_operands + w_operands for s in pair], mac.i)
        for r, (decoded, exponent) in enumerate(a_operands):
            m.d.comb += [mac.i.payload.a[r].elements.eq(decoded.payload), mac.i.payload.a[r].exponent.eq(exponent.payload)]
        for c, (decoded, exponent) in enumerate(w_operands):
            m.d.comb += [mac.i.payload.w[c].elements.eq(decoded.payload), mac.i.payload.w[c].exponent.eq(exponent.payload)]
        k_index = Signal(K_BLOCKS_BITS, name="k_index")
        last = Signal(name="k_last")
        m.d.comb += [last.eq(k_index + 1 >= self.k_blocks), mac.i.payload.last.eq(last)]
        fire = Signal(name="mac_fire")
        m.d.comb += fire.eq(mac.i.valid & mac.i.ready)
        with m.If(fire):
            m.d.sync += k_index.eq(k_index + 1)
            with m.If(last):
                m.d.sync += k_index.eq(0)

        wiring.connect(m, wiring.flipped(self.o), mac.o)

        # Performance counters: MAC beats, and the window from the first MAC beat to the latest.
        started = Signal(name="perf_started")
        since_first = Signal(PERF_COUNTER_BITS, name="perf_since_first")
        with m.If(started | fire):
            m.d.sync += since_first.eq(since_first + 1)
        with m.If(fire):
            m.d.sync += [
                started.eq(1),
                self.perf_mac_beats.eq(self.perf_mac_beats + 1),
                self.perf_mac_window.eq(since_first + 1),
            ]
        return m


"""The accelerator tile: one shared activation quantizer, a quantized-activation buffer, a C-slow MAC array.

Dataflow (output-stationary; hw/TILE.md has the picture and the throughput model)::

    a (q raw blocks [+ masks]) ─fork─> q x (front-end ─> selector) ─join─> write: buffer[bank][row][k]
    w (cols quantized blocks)  ─> read buffer[bank][*][k] ─fork─> row decoders + col decoders ─join─> MAC array ─> o

- **Quantizer at the producer.** ``quantizers`` (q) front-end + selector pairs take the raw activation
  blocks of a row tile, ``q`` rows per beat, K block outer and row group inner, and write every
  quantized block **once** into the quantized-activation buffer (one memory per row, two banks of
  ``buffer_blocks`` K blocks: the next row tile is quantized while the array works on this one).
- **Array reads quantized blocks.** Each ``w`` beat carries one K block of ``cols`` pre-quantized weight
  rows; the tile reads the rows' quantized blocks at that K index from the buffer, decodes them at
  the array edge (one decoder per row and per column: the PEs see signed half-unit magnitudes, the
  same PE for every format) and feeds the C-slow MAC array. Per row tile the ``w`` order is: column
  group ``j`` (``col_groups`` of them, control input), K block ``k``, slot ``l`` (``interleave`` L), i.e.
  weight rows ``(j * L + l) * cols + c``. Each quantized activation block is read ``col_groups * L``
  times; it was quantized once.
- **Output.** Per column group, L beats of ``rows x cols`` binary32 words (slot order); a row tile
  gives ``col_groups * L`` beats.

Handshakes: forks and joins are lockstep; the quantizers' outputs wait while the write bank is still
full, the buffer read waits until the read bank is full; the MAC array never stalls internally (skid
FIFO). ``k_blocks`` (<= ``buffer_blocks``) and ``col_groups`` are control inputs, held while streaming.

Formats (``TileFormat``): FB32 (LUT DSU with a SeDA candidate mask per row), DIALECTFP4 (BlockDialect's
two-stage selector), MXFP4 (sticky front-end + E2M1 encoder), NVFP4 (pre-quantized activations, E4M3
scale path), and any dialect format of the registry (``TileFormat("tdit64-q-e4m3")``, a shipped fitted
book, or a formatbook file by path): a LUT DSU over its table with a SeDA mask per row, on its grid
(quarter-grid books: 6-bit codes u, 5-bit magnitudes) and with its scale -- E8M0 as FB32, or E4M3:
the ``hw.scaled_front_end`` quantizer (each block arrives with its E4M3 scale byte and binary32
reciprocal from the scale pass, NUMERICS 8.3) and NVFP4's E4M3 scale path in the PEs with the tensor
scales ``tensor_scale_a`` / ``tensor_scale_w``. Performance counters: ``perf_mac_beats``
counts MAC-array input beats, ``perf_mac_window`` the cycles from the first to the latest MAC beat
inclusive, so their ratio is the sustained PE utilization.
"""

from __future__ import annotations

import enum
import json
import os
import re
from dataclasses import dataclass

from amaranth.hdl import Cat, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from golden.formats import CODE_BITS, EXPONENT_BITS, Formatbook, Grid, Scale

from .common import UnitTiming, enable_chunks, register_stage
from .config import (BLOCK_SIZES, Book, ConfigError, DecoderConfig, DSUConfig, FrontEndConfig, MACArrayConfig,
                     ScaledFrontEndConfig, TwoStageConfig)  # fmt: skip
from .decoder import MultiFormatDecoder
from .float32 import multiply_binary32
from .front_end import BlockFrontEnd
from .layouts import mac_out_layout
from .layouts import scaled_front_end_in_layout
from .mac_array import MACArray
from .pipeline import SkidFIFO, skid_buffer
from .scaled_front_end import ScaledFrontEnd
from .select import DialectSelectUnit, TwoStageSelector
from .tile_front_end import (
    E2M1Encoder,
    E2M1EncoderConfig,
    FloatFrontEnd,
    FloatFrontEndConfig,
    InputFloat,
    encoded_block_layout,
)

__all__ = ["PERF_COUNTER_BITS", "Tile", "TileConfig", "TileFormat", "predicted_utilization", "tile_a_layout", "tile_w_layout"]

#: Width of the performance counters and of ``k_blocks``.
PERF_COUNTER_BITS = 32
K_BLOCKS_BITS = 16


class TileFormat(enum.Enum):
    """Number format of a tile (names as in ``golden.FORMATS``).

    The four members are the built-in tiles; any other dialect format of the registry is a tile
    format too: ``TileFormat("tdit64-q-e4m3")`` (or a formatbook file's path) returns a member whose
    value is the registry name (``hw.Book``'s rule; iteration lists the four built-in ones).
    """

    FB32 = "fb32"
    DIALECTFP4 = "dialectfp4"
    MXFP4 = "mxfp4"
    NVFP4 = "nvfp4"

    @classmethod
    def _missing_(cls, value):
        if not isinstance(value, (str, os.PathLike)):
            return None
        name = Book(value).value  # ConfigError for an unknown or non-dialect format
        member = cls._value2member_map_.get(name)
        if member is None:
            member = object.__new__(cls)
            member._name_ = re.sub(r"\W", "_", name).upper()
            member._value_ = name
            cls._value2member_map_[name] = member
        return member

    @property
    def registry(self) -> bool:
        """A registry dialect format (not one of the four built-in tiles)."""
        return self not in (TileFormat.FB32, TileFormat.DIALECTFP4, TileFormat.MXFP4, TileFormat.NVFP4)

    @property
    def book(self) -> Book:
        if self.registry:
            return Book(self.value)
        return {TileFormat.FB32: Book.FB32, TileFormat.DIALECTFP4: Book.DIALECTFP4_16}.get(self, Book.E2M1)

    @property
    def formatbook(self) -> Formatbook:
        return self.book.formatbook

    @property
    def grid(self) -> Grid:
        return self.book.grid

    @property
    def ident(self) -> str:
        """The value as a Verilog identifier piece."""
        return self.book.ident if self.registry else self.value

    @property
    def lut(self) -> bool:
        """Whether the tile selects dialects with the LUT DSU (FB32 and the registry dialect formats)."""
        return self is TileFormat.FB32 or self.registry

    @property
    def scaled(self) -> bool:
        """E4M3 block scales under binary32 tensor scales (NVFP4, E4M3 dialect formats): the PEs' scale path."""
        return self is TileFormat.NVFP4 or (self.registry and self.book.scale is Scale.E4M3)

    @property
    def quantizes(self) -> bool:
        """Whether the tile quantizes its activations (NVFP4 takes them pre-quantized: NUMERICS 3.4)."""
        return self is not TileFormat.NVFP4

    @property
    def masked(self) -> bool:
        """Whether activation rows carry a SeDA candidate mask (LUT selection only)."""
        return self.lut


@dataclass(frozen=True, kw_only=True)
class TileConfig:
    """One tile: ``rows x cols`` PEs over blocks of ``block`` elements of ``format``, ``input`` words in.

    - ``quantizers`` (q, divides ``rows``): activation quantizers (front-end + selector) shared by the rows;
    - ``dialects_per_cycle``: the FB32 DSU's area/throughput knob (None: all 32, one block per cycle);
    - ``dsu_stages``: register cuts of the selector: the full-parallel FB32 DSU (``DSUConfig.pipeline_stages``)
      or the DialectFP4-16 two-stage selector (``TwoStageConfig.pipeline_stages``); None: the two-register
      unit; a multi-pass DSU (``dialects_per_cycle`` set) is the two-register unit, so it is stored as None;
    - ``interleave``: the MAC array's C-slow factor L (outputs per PE in flight, adder stages);
    - ``buffer_blocks``: K blocks per bank of the quantized-activation buffer (the largest ``k_blocks``);
    - ``output_depth``: the MAC array's output FIFO beats (None: its latency + 1; ``interleave + 1``
      keeps full rate once ``k_blocks * interleave`` covers the array latency).
    """

    format: TileFormat = TileFormat.FB32
    rows: int = 2
    cols: int = 2
    block: int = 32
    input: InputFloat = InputFloat.FP32
    dialects_per_cycle: int | None = None
    quantizers: int = 1
    dsu_stages: int | None = 4
    interleave: int = 4
    buffer_blocks: int = 16
    output_depth: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.format, TileFormat):
            raise ConfigError(f"format must be an hw.tile.TileFormat, got {self.format!r}")
        if not isinstance(self.input, InputFloat):
            raise ConfigError(f"input must be an hw.tile_front_end.InputFloat, got {self.input!r}")
        if self.output_depth is not None and (not isinstance(self.output_depth, int) or self.output_depth < 1):
            raise ConfigError(f"output_depth must be a positive integer or None, got {self.output_depth!r}")
        for name in ("rows", "cols", "quantizers", "interleave", "buffer_blocks"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.rows % self.quantizers:
            raise ConfigError(f"quantizers must divide rows ({self.rows}), got {self.quantizers}")
        if self.block not in BLOCK_SIZES:
            raise ConfigError(f"block size must be one of {list(BLOCK_SIZES)}, got {self.block!r}")
        if self.format is TileFormat.MXFP4 and self.block != 32:
            raise ConfigError(f"an MXFP4 tile uses blocks of 32 (OCP MX), got {self.block}")
        if self.format is TileFormat.NVFP4 and self.block != 16:
            raise ConfigError(f"an NVFP4 tile uses blocks of 16, got {self.block}")
        if self.dialects_per_cycle is not None and not self.format.lut:
            raise ConfigError(f"dialects_per_cycle applies to the FB32 DSU only (and the LUT DSU of registry books), not to {self.format.value!r}")
        if self.dialects_per_cycle is not None and self.dsu_stages is not None:
            object.__setattr__(self, "dsu_stages", None)  # a multi-pass DSU is the two-register unit
        if self.buffer_blocks >= 1 << K_BLOCKS_BITS:
            raise ConfigError(f"buffer_blocks must be below {1 << K_BLOCKS_BITS}, got {self.buffer_blocks}")
        self.selector_config  # validates dialects_per_cycle / dsu_stages
        self.front_end_config  # validates the input word format against the grid

    @property
    def name(self) -> str:
        dsu = "" if self.dialects_per_cycle is None else f"_p{self.dialects_per_cycle}"
        staged = self.format.lut or self.format is TileFormat.DIALECTFP4
        stages = "" if self.dsu_stages is None or not staged else f"_s{self.dsu_stages}"
        return (f"tile_{self.format.ident}_{self.input.value}_r{self.rows}_c{self.cols}_b{self.block}{dsu}{stages}"
                f"_q{self.quantizers}_l{self.interleave}_k{self.buffer_blocks}"
                f"{'' if self.output_depth is None else f'_o{self.output_depth}'}")  # fmt: skip

    @property
    def rows_per_quantizer(self) -> int:
        return self.rows // self.quantizers

    @property
    def selector_config(self) -> DSUConfig | TwoStageConfig | E2M1EncoderConfig | None:
        if self.format is TileFormat.NVFP4:
            return None
        if self.format.lut:
            return DSUConfig(book=self.format.book, block=self.block, dialects_per_cycle=self.dialects_per_cycle,
                             pipeline_stages=self.dsu_stages)  # fmt: skip
        if self.format is TileFormat.DIALECTFP4:
            return TwoStageConfig(block=self.block, pipeline_stages=self.dsu_stages)
        return E2M1EncoderConfig(block=self.block)

    @property
    def front_end_config(self) -> FrontEndConfig | FloatFrontEndConfig | ScaledFrontEndConfig:
        if self.format.scaled and self.format.quantizes:  # E4M3 dialect formats
            return ScaledFrontEndConfig(block=self.block, grid=self.format.grid, input=self.input.value)
        if self.input is InputFloat.BF16 and self.format is not TileFormat.MXFP4:
            return FrontEndConfig(block=self.block, grid=self.format.grid)
        return FloatFrontEndConfig(block=self.block, input=self.input, inexact=self.format is TileFormat.MXFP4,
                                   grid=self.format.grid)  # fmt: skip

    @property
    def decoder_config(self) -> DecoderConfig:
        return DecoderConfig(books=(self.format.book,), lanes=self.block)

    @property
    def mac_config(self) -> MACArrayConfig:
        return MACArrayConfig(rows=self.rows, cols=self.cols, block=self.block, interleave=self.interleave,
                              output_depth=self.output_depth, nvfp4=self.format.scaled, grid=self.format.grid)  # fmt: skip

    def to_dict(self) -> dict:
        return {
            "unit": "tile",
            "format": self.format.book.ref if self.format.registry else self.format.value,
            "rows": self.rows,
            "cols": self.cols,
            "block": self.block,
            "input": self.input.value,
            "dialects_per_cycle": self.dialects_per_cycle,
            "quantizers": self.quantizers,
            "dsu_stages": self.dsu_stages,
            "interleave": self.interleave,
            "buffer_blocks": self.buffer_blocks,
            "output_depth": self.output_depth,
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
    """Activation beat: ``blocks[j]`` raw words of one K block of row ``g * q + j`` (row group ``g``);
    ``masks[j]`` its candidate mask (LUT DSU tiles). NVFP4: ``blocks[j]`` is the pre-quantized block (E4M3
    scale byte in ``exponent``, E2M1 codes). E4M3 dialect formats: ``blocks[j]`` is ``words``, ``block_scale``
    and ``reciprocal`` (``hw.layouts.scaled_front_end_in_layout``)."""
    q = config.quantizers
    if not config.format.quantizes:
        return data.StructLayout({"blocks": data.ArrayLayout(encoded_block_layout(config.block, config.format.formatbook.id_bits), q)})
    fe = config.front_end_config
    if isinstance(fe, ScaledFrontEndConfig):  # E4M3 dialects: raw words + the block's scale byte and reciprocal
        fields = {"blocks": data.ArrayLayout(scaled_front_end_in_layout(fe), q)}
    else:
        fields = {"blocks": data.ArrayLayout(data.ArrayLayout(config.input.width, config.block), q)}
    if config.format.masked:
        fields["masks"] = data.ArrayLayout(config.format.formatbook.num_dialects, q)
    return data.StructLayout(fields)


def tile_w_layout(config: TileConfig) -> data.ArrayLayout:
    """Weight beat: one quantized K block (exponent, dialect id, codes) per column."""
    return data.ArrayLayout(encoded_block_layout(config.block, config.format.formatbook.id_bits), config.cols)


def _lockstep_fork(m: Module, source, sinks) -> None:
    """Fork into sinks that move in lockstep: identical units (or one-register stages) given the same
    valid and the same downstream ready, so their ready bits are always equal and the first one speaks
    for all (no AND over sinks that may sit far apart on the die)."""
    m.d.comb += source.ready.eq(sinks[0].ready)
    for sink in sinks:
        m.d.comb += sink.valid.eq(source.valid)


def _lockstep_join(m: Module, sources, sink) -> None:
    """Join sources that move in lockstep (their valid bits are always equal): the first one's valid."""
    m.d.comb += sink.valid.eq(sources[0].valid)
    for source in sources:
        m.d.comb += source.ready.eq(sink.ready)


def _channel(name: str, layout):
    """A free-standing valid/ready/payload interface (used between units and side registers)."""
    return stream.Signature(layout).create(path=(name,))


class Tile(wiring.Component):
    """Ports: ``a`` (``tile_a_layout``), ``w`` (``tile_w_layout``), ``o`` (``mac_out_layout``: y[rows][cols]
    binary32), ``k_blocks`` (K blocks per output, 1..buffer_blocks), ``col_groups`` (column groups of
    ``interleave * cols`` weight rows per row tile, >= 1), ``perf_mac_beats``, ``perf_mac_window``."""

    @classmethod
    def unit_timings(cls, config: TileConfig) -> dict[str, UnitTiming]:
        """Latency and initiation interval of each unit: the quantizer path, then the array path."""
        fe = config.front_end_config
        front_end = {FrontEndConfig: BlockFrontEnd, ScaledFrontEndConfig: ScaledFrontEnd}.get(type(fe), FloatFrontEnd).timing(fe)
        sel = config.selector_config
        if sel is None:  # NVFP4: a register stage in place of the quantizer
            front_end, selector = UnitTiming(0, 1), UnitTiming(1, 1)
        else:
            selector = {
                DSUConfig: DialectSelectUnit,
                TwoStageConfig: TwoStageSelector,
                E2M1EncoderConfig: E2M1Encoder,
            }[type(sel)].timing(sel)
        return {
            "front_end": front_end,
            "selector": selector,
            "buffer_write": UnitTiming(1, 1),
            "buffer_read": UnitTiming(1, 1),
            "decoder": MultiFormatDecoder.timing(config.decoder_config),
            "edge_fifo": UnitTiming(1, 1),
            "mac_array": MACArray.timing(config.mac_config),
        }

    @classmethod
    def timing(cls, config: TileConfig) -> UnitTiming:
        """Array path: ``w`` handshake of a slot's last K block -> its ``o`` beat (activations buffered);
        initiation interval: one ``w`` beat per cycle."""
        units = cls.unit_timings(config)
        path = ("buffer_read", "decoder", "edge_fifo", "mac_array")
        return UnitTiming(latency=sum(units[u].latency for u in path), initiation_interval=1)

    @classmethod
    def quantizer_timing(cls, config: TileConfig) -> UnitTiming:
        """Quantizer path: ``a`` handshake -> the block in the buffer (its registered write, then one more
        cycle until a read can see it); a quantizer takes one block per ``initiation_interval`` cycles."""
        units = cls.unit_timings(config)
        return UnitTiming(
            latency=units["front_end"].latency + units["selector"].latency + units["buffer_write"].latency + 1,
            initiation_interval=max(units["front_end"].initiation_interval, units["selector"].initiation_interval),
        )

    def __init__(self, config: TileConfig, *, pe_factory=None) -> None:
        if not isinstance(config, TileConfig):
            raise TypeError(f"Tile needs a TileConfig, got {config!r}")
        self.config = config
        self.pe_factory = pe_factory  # hw.mac_array.ProcessingElementInstance for hierarchical synthesis
        super().__init__(
            {
                "a": In(stream.Signature(tile_a_layout(config))),
                "w": In(stream.Signature(tile_w_layout(config))),
                "o": Out(stream.Signature(mac_out_layout(config.mac_config))),
                "k_blocks": In(unsigned(K_BLOCKS_BITS)),
                "col_groups": In(unsigned(K_BLOCKS_BITS)),
                **({"tensor_scale_a": In(32), "tensor_scale_w": In(32)} if config.format.scaled else {}),
                "perf_mac_beats": Out(unsigned(PERF_COUNTER_BITS)),
                "perf_mac_window": Out(unsigned(PERF_COUNTER_BITS)),
            }
        )

    def _front_end(self):
        fe = self.config.front_end_config
        return {FrontEndConfig: BlockFrontEnd, ScaledFrontEndConfig: ScaledFrontEnd}.get(type(fe), FloatFrontEnd)(fe)

    def _selector(self):
        sel = self.config.selector_config
        if isinstance(sel, DSUConfig):
            return DialectSelectUnit(sel)
        if isinstance(sel, TwoStageConfig):
            return TwoStageSelector(sel)
        return E2M1Encoder(sel)

    def _decoder(self, m: Module, name: str, source, block_payload, sinks: list) -> None:
        """``source`` (a stream whose payload is ignored) + ``block_payload`` (encoded block) -> decoder and
        exponent register in lockstep; appends the two output streams to ``sinks``."""
        cfg = self.config
        decoder = MultiFormatDecoder(cfg.decoder_config)
        m.submodules[f"{name}_decoder"] = decoder
        exponent_in = _channel(f"{name}_exponent_in", unsigned(EXPONENT_BITS))
        exponent_out = _channel(f"{name}_exponent", unsigned(EXPONENT_BITS))
        register_stage(m, exponent_in, exponent_out, exponent_in.payload)
        id_bits = len(decoder.i.payload.dialect)
        m.d.comb += [
            decoder.i.payload.format.eq(0),
            decoder.i.payload.dialect.eq(block_payload.dialect[:id_bits] if id_bits else 0),
            exponent_in.payload.eq(block_payload.exponent),
        ]
        for k in range(cfg.block):
            m.d.comb += decoder.i.payload.codes[k].eq(block_payload.codes[k][:CODE_BITS])
        sinks.append((decoder.i, exponent_in, decoder.o, exponent_out))

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg = self.config
        q, per_quantizer = cfg.quantizers, cfg.rows_per_quantizer
        book = cfg.format.formatbook
        entry = encoded_block_layout(cfg.block, book.id_bits)
        depth = 2 * cfg.buffer_blocks
        factory = None
        if self.pe_factory is not None:
            factory = lambda block, slots: self.pe_factory(block, slots, cfg.mac_config.nvfp4, cfg.mac_config.grid)  # noqa: E731
        mac = MACArray(cfg.mac_config, pe_factory=factory)
        m.submodules.mac_array = mac

        # ---- Quantizers: q front-end + selector pairs, fed in lockstep from `a`. The front-end's output
        # register feeds the selector directly (its first stage, the LUT DSU's ROM reads, starts at a
        # register; issue 10: a zero-latency skid buffer between them put its multiplexer in front of the
        # ROMs, the FB32 2 x 2 tile's 55 MHz path); the selector's credit reaches the front-end's enables
        # through one LUT per 32 flip-flops (``register_stage``). The E2M1 encoder, one shallow register
        # stage, has a skid buffer in front of it, so the buffer's ready stops there and does not run on
        # into the front-end's enables (issue 10: skid -> encoder -> front-end enables, 8 ns of routing, was
        # the MXFP4 2 x 2 tile's 70.7 MHz path with the skid after the encoder); a skid buffer follows the
        # pre-quantized lane.
        a_sinks, selected = [], []
        for j in range(q if cfg.format.quantizes else 0):
            front_end, selector = self._front_end(), self._selector()
            m.submodules[f"quantizer_{j}_front_end"] = front_end
            m.submodules[f"quantizer_{j}_selector"] = selector
            m.d.comb += front_end.i.payload.eq(self.a.payload.blocks[j])
            a_sinks.append(front_end.i)
            into = _channel(f"quantizer_{j}_into_selector", selector.i.payload.shape())
            if cfg.format.masked:
                mask_in = _channel(f"quantizer_{j}_mask_in", unsigned(book.num_dialects))
                mask_out = _channel(f"quantizer_{j}_mask", unsigned(book.num_dialects))
                register_stage(m, mask_in, mask_out, mask_in.payload)
                m.d.comb += mask_in.payload.eq(self.a.payload.masks[j])
                a_sinks.append(mask_in)
                _lockstep_join(m, [front_end.o, mask_out], into)
                fe_out = front_end.o.payload
                m.d.comb += [
                    into.payload.exponent.eq(fe_out.exponent),
                    into.payload.signs.eq(fe_out.signs),
                    into.payload.ucodes.eq(fe_out.ucodes),
                    into.payload.mask.eq(mask_out.payload),
                ]
            else:
                _lockstep_join(m, [front_end.o], into)
                m.d.comb += into.payload.eq(front_end.o.payload)
            if isinstance(selector, E2M1Encoder):  # a one-register unit: the skid buffer is in front of it
                skid_buffer(m, into, selector.i, f"quantizer_{j}_skid")
            else:
                m.d.comb += [selector.i.valid.eq(into.valid), into.ready.eq(selector.i.ready),
                             selector.i.payload.eq(into.payload)]  # fmt: skip
            selected.append(selector.o)
        if not cfg.format.quantizes:  # NVFP4: pre-quantized blocks, one register stage per lane
            for j in range(q):
                lane_in = _channel(f"prequantized_{j}_in", entry)
                lane_reg = _channel(f"prequantized_{j}_reg", entry)
                lane_out = _channel(f"prequantized_{j}", entry)
                register_stage(m, lane_in, lane_reg, lane_in.payload)
                skid_buffer(m, lane_reg, lane_out, f"prequantized_{j}_skid")
                m.d.comb += lane_in.payload.eq(self.a.payload.blocks[j])
                a_sinks.append(lane_in)
                selected.append(lane_out)
        if cfg.format.scaled:
            # T = fl32(t_a * t_w), once, registered (the control inputs are static while streaming).
            product = multiply_binary32(m, self.tensor_scale_a, self.tensor_scale_w, "tensor_scale")
            tensor_scale = Signal(32, name="tensor_scale")
            m.d.sync += tensor_scale.eq(product)
        _lockstep_fork(m, self.a, a_sinks)

        # ---- The quantized-activation buffer: one memory per row, banks [0, B) and [B, 2B).
        full = Signal(2, name="bank_full")
        write_bank = Signal(name="write_bank")
        read_bank = Signal(name="read_bank")
        write_k = Signal(K_BLOCKS_BITS, name="write_k")
        write_group = Signal(range(max(2, per_quantizer)), name="write_group")
        written = _channel("quantized", unsigned(1))
        _lockstep_join(m, selected, written)
        m.d.comb += written.ready.eq(~full.bit_select(write_bank, 1))
        write = Signal(name="buffer_write")
        m.d.comb += write.eq(written.valid & written.ready)
        last_group = write_group == per_quantizer - 1
        last_k = write_k + 1 >= self.k_blocks
        with m.If(write):
            m.d.sync += write_group.eq(Mux(last_group, 0, write_group + 1))
            with m.If(last_group):
                m.d.sync += write_k.eq(Mux(last_k, 0, write_k + 1))
                with m.If(last_k):
                    m.d.sync += write_bank.eq(~write_bank)
        # The write is registered (issue 10, Fmax): the memories' write enables gate every storage flop
        # of a word, so they start at registers, not at the selectors' handshake. A bank counts as full
        # once its last block has landed (``filled`` one cycle late), so a read never races the write.
        write_rows = Signal(cfg.rows, name="buffer_write_rows")  # one bit per row: its memory writes
        write_data = [Signal(entry, name=f"buffer_write_data_{j}") for j in range(q)]
        filled = Signal(name="bank_filled")
        filled_bank = Signal(name="bank_filled_bank")
        advanced = Signal(name="buffer_write_advanced")  # the last write moved (write_k, write_bank) on
        m.d.sync += [
            write_rows.eq(Cat(*(write & (write_group == r // q) for r in range(cfg.rows)))),
            advanced.eq(write & last_group),
            filled.eq(write & last_group & last_k),
            filled_bank.eq(write_bank),
            *(write_data[j].eq(selected[j].payload) for j in range(q)),
        ]
        # The registered write's word, one-hot (``BufferRow.write_select``): one copy per chunk of a word,
        # each following the address on its own (a move within the bank is a shift; the bank's last block
        # jumps to the other bank's first, where ``write_bank`` now points), so a word chunk's enable is one
        # LUT of two registers beside its flip-flops (issue 10: the decoded word enable of one register
        # fanned out to 136 flip-flops across the die).
        first_of = (1, 1 << cfg.buffer_blocks)  # each bank's first word, one-hot
        write_selects = [  # = onehot(write address, one cycle ago)
            _word_select(m, depth, f"buffer_write_select_{c}", advanced, filled, write_bank, first_of)
            for c in range(len(BufferRow.chunks(entry)))
        ]

        # ---- Compute side, free-running (issue 10: no stall fans out into the read stage, the decoders
        # or the PEs): a `w` beat is taken while the bank is full and the edge FIFO in front of the MAC
        # array has a credit for it; it reads every row's block at K index read_k of the read bank
        # (cycle 1), the edge decoders decode rows and columns (cycle 2), the edge FIFO takes the
        # decoded beat, and the MAC array takes it from there when its slot comes round.
        # Credit: take -> edge FIFO output is `edge_latency` cycles, so `edge_latency + 1` beats keep full rate.
        units = self.unit_timings(cfg)
        edge_latency = sum(units[u].latency for u in ("buffer_read", "decoder", "edge_fifo"))
        fifo_depth = edge_latency + 1
        read_k = Signal(K_BLOCKS_BITS, name="read_k")
        read_slot = Signal(range(max(2, cfg.interleave)), name="read_slot")
        read_group = Signal(K_BLOCKS_BITS, name="read_group")
        staged = Signal(name="read_valid")  # the read stage holds a beat (memory data + weights + last)
        staged_w = Signal(tile_w_layout(cfg), name="read_w")
        staged_last = Signal(name="read_last")
        inside = Signal(range(fifo_depth + 1), name="edge_inside")  # beats taken, not yet in the MAC array
        take = Signal(name="w_take")
        m.d.comb += [self.w.ready.eq(full.bit_select(read_bank, 1) & (inside < fifo_depth)),
                     take.eq(self.w.valid & self.w.ready)]  # fmt: skip
        slot_end = read_slot == cfg.interleave - 1
        # The ends of K and of the column groups are registers (issue 10, Fmax: ``read_k + 1 >= k_blocks``,
        # two 16-bit carry chains, had been the critical path into every row's read select).
        k_end = _registered_end(m, read_k, self.k_blocks, take & slot_end, "read_k_end")
        group_end = _registered_end(m, read_group, self.col_groups, take & slot_end & k_end, "read_group_end")
        row_blocks = []
        for r in range(cfg.rows):
            row = BufferRow(entry, depth)
            m.submodules[f"buffer_row_{r}"] = row
            m.d.comb += [
                *(row.write_select[c].eq(select) for c, select in enumerate(write_selects)),
                row.write_data.eq(write_data[r % q]),  # row r = group r // q of quantizer r % q
                row.write_enable.eq(write_rows[r]),
            ]
            # The read word, one-hot, one copy per row and chunk (the read multiplexer's selects start at
            # registers beside their chunk; a decoded read address had fanned out to every word of every
            # row): block read_k of read_bank, moved on with them.
            for c in range(len(BufferRow.chunks(entry))):
                select = _word_select(m, depth, f"buffer_row_{r}_read_select_{c}", take & slot_end, k_end,
                                      group_end ^ read_bank, first_of)  # fmt: skip
                m.d.comb += row.read_select[c].eq(select)
            row_blocks.append(row.read_data)
        m.d.sync += [staged.eq(take), staged_w.eq(self.w.payload), staged_last.eq(k_end)]
        with m.If(take):
            m.d.sync += read_slot.eq(Mux(slot_end, 0, read_slot + 1))
            with m.If(slot_end):
                m.d.sync += read_k.eq(Mux(k_end, 0, read_k + 1))
                with m.If(k_end):
                    m.d.sync += read_group.eq(Mux(group_end, 0, read_group + 1))
                    with m.If(group_end):
                        m.d.sync += read_bank.eq(~read_bank)
        tile_done = take & slot_end & k_end & group_end
        for b in range(2):
            set_b = filled & (filled_bank == b)
            clear_b = tile_done & (read_bank == b)
            with m.If(set_b):
                m.d.sync += full[b].eq(1)
            with m.Elif(clear_b):
                m.d.sync += full[b].eq(0)

        # ---- Decoders at the array edge (rows and columns), `last` beside them, all in lockstep.
        lanes = []
        for r in range(cfg.rows):
            self._decoder(m, f"row_{r}", None, row_blocks[r], lanes)
        for c in range(cfg.cols):
            self._decoder(m, f"col_{c}", None, staged_w[c], lanes)
        last_in = _channel("last_in", unsigned(1))
        last_out = _channel("last", unsigned(1))
        register_stage(m, last_in, last_out, last_in.payload)
        m.d.comb += last_in.payload.eq(staged_last)
        # Every lane is a one-register stage, never held (ready tied high) and loaded every cycle (valid
        # tied high: no clock enable fans out from `staged` into the ~700 flip-flops of the edge beat,
        # issue 10), so a lane holds the decode of the read stage's beat of one cycle before, which is
        # valid when `last_out.valid` is: that one bit writes the edge FIFO.
        for sink in [s for lane in lanes for s in lane[:2]]:
            m.d.comb += sink.valid.eq(1)
        m.d.comb += last_in.valid.eq(staged)
        for source in [s for lane in lanes for s in lane[2:]] + [last_out]:
            m.d.comb += source.ready.eq(1)
        beat = Signal(mac.i.payload.shape(), name="edge_beat")
        for r in range(cfg.rows):
            decoded, exponent = lanes[r][2], lanes[r][3]
            m.d.comb += [beat.a[r].elements.eq(decoded.payload), beat.a[r].exponent.eq(exponent.payload)]
        for c in range(cfg.cols):
            decoded, exponent = lanes[cfg.rows + c][2], lanes[cfg.rows + c][3]
            m.d.comb += [beat.w[c].elements.eq(decoded.payload), beat.w[c].exponent.eq(exponent.payload)]
        m.d.comb += beat.last.eq(last_out.payload)
        edge = SkidFIFO(len(beat.as_value()), fifo_depth)
        m.submodules.edge_fifo = edge
        m.d.comb += [
            edge.w_en.eq(last_out.valid),
            edge.w_data.eq(beat),
            mac.i.valid.eq(edge.r_valid),
            mac.i.payload.eq(edge.r_data),
            edge.r_en.eq(mac.i.ready),
        ]
        fire = Signal(name="mac_fire")
        m.d.comb += fire.eq(mac.i.valid & mac.i.ready)
        m.d.sync += inside.eq(inside + take - fire)

        wiring.connect(m, wiring.flipped(self.o), mac.o)
        if cfg.format.scaled:
            m.d.comb += mac.tensor_scale.eq(tensor_scale)

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


def predicted_utilization(config: TileConfig, out_features: int, k_blocks: int) -> float:
    """Steady-state MAC utilization of ``config`` on a layer with ``out_features`` weight rows.

    Per row tile the quantizers need ``rows / q * k_blocks * II_q`` cycles (``II_q``: a quantizer's
    initiation interval) and the array ``col_groups * k_blocks * L`` cycles; the two overlap through the
    ping-pong buffer, so the array is busy ``min(1, compute / quantize)`` of the time (hw/TILE.md).
    """
    col_groups = -(-out_features // (config.interleave * config.cols))
    compute = col_groups * k_blocks * config.interleave
    quantize = config.rows_per_quantizer * k_blocks * Tile.quantizer_timing(config).initiation_interval
    return min(1.0, compute / quantize)


class BufferRow(wiring.Component):
    """One row of the quantized-activation buffer: ``depth`` encoded blocks in flip-flops, one write port,
    one synchronous read port (read every cycle).

    Both ports take the word one-hot, one copy per chunk of the word (``write_select[c]`` and
    ``read_select[c]``, chunks ``BufferRow.chunks(entry)``; every copy holds the same word): a word
    chunk's clock enable is ``write_enable & write_select[c][k]``, one LUT of two registers driving
    ``ENABLE_FANOUT`` flip-flops at most, and the read is an AND-OR of the words' chunks by
    ``read_select[c]``, where a decoded address would fan out to every word (issue 10, Fmax).
    """

    @staticmethod
    def chunks(entry) -> list[tuple[int, int]]:
        return enable_chunks(data.Layout.cast(entry).size)

    def __init__(self, entry, depth: int) -> None:
        self.entry, self.depth = entry, depth
        super().__init__(
            {
                "write_select": In(data.ArrayLayout(depth, len(self.chunks(entry)))),
                "write_data": In(entry),
                "write_enable": In(1),
                "read_select": In(data.ArrayLayout(depth, len(self.chunks(entry)))),
                "read_data": Out(entry),
            }
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        width = data.Layout.cast(self.entry).size
        words = [Signal(width, name=f"word_{k}", reset_less=True) for k in range(self.depth)]
        incoming = self.write_data.as_value()
        read = Signal(width, name="read", reset_less=True)
        for c, (lo, hi) in enumerate(self.chunks(self.entry)):
            for k, word in enumerate(words):
                with m.If(self.write_enable & self.write_select[c][k]):
                    m.d.sync += word[lo:hi].eq(incoming[lo:hi])
            chunk = 0
            for k, word in enumerate(words):
                chunk = chunk | Mux(self.read_select[c][k], word[lo:hi], 0)
            m.d.sync += read[lo:hi].eq(chunk)
        m.d.comb += self.read_data.eq(read)
        return m


def _registered_end(m: Module, counter: Signal, limit: Value, advance: Value, name: str) -> Signal:
    """A register equal to ``counter + 1 >= limit`` for a counter that moves on (to 0 at its end, else
    by one) in the cycles ``advance`` is high: the comparison is computed one cycle ahead, from the
    counter's next value, so it leaves the register instead of a carry chain. While the counter holds,
    the register follows ``limit`` one cycle late (``limit`` is a control input held while streaming;
    it may change only while no beat is taken)."""
    end = Signal(name=name)
    m.d.sync += end.eq(Mux(advance, Mux(end, limit <= 1, counter + 2 >= limit), counter + 1 >= limit))
    return end


def _word_select(m: Module, depth: int, name: str, advance, jump, to_bank_1, first_of) -> Signal:
    """A buffer word select, one-hot (``BufferRow``'s ports): starts at word 0; on ``advance`` it moves to
    the next word (``_rotated``), or, with ``jump``, to the first word of bank 1 if ``to_bank_1`` else
    bank 0 (``first_of``: both one-hot). The write side and every read row keep copies of their own."""
    select = Signal(depth, init=1, name=name)
    with m.If(advance):
        m.d.sync += select.eq(Mux(jump, Mux(to_bank_1, first_of[1], first_of[0]), _rotated(select)))
    return select


def _rotated(select: Signal):
    """A one-hot word select moved to the next word. Within a bank this is a shift (a bank's last block
    always jumps instead); it is written as a rotation so that the copies' bits form a loop: a plain shift
    starts every copy from the same constant bit, and Yosys merges such copies bit by bit."""
    return Cat(select[-1], select[:-1])

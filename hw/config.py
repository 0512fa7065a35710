"""Frozen, JSON-serializable configurations of the hardware units.

Configuration flows one way: a config dataclass -> ``hw.build_unit`` (elaboration) -> Verilog in a
per-configuration directory (``rtl_gen``) -> the cocotb side, which reads the serialized config back
(``config_from_json``) instead of retyping any width. Every constructor is keyword-only and
validates its parameters with a sentence that repeats the bad value.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, fields

from golden.formats import DIALECTFP4_16, E2M1, FB32, Formatbook, get_format

__all__ = [
    "BLOCK_SIZES",
    "Book",
    "ConfigError",
    "DSUConfig",
    "DecoderConfig",
    "FrontEndConfig",
    "MACArrayConfig",
    "TwoStageConfig",
    "UnitConfig",
    "UnitKind",
    "config_from_json",
]

#: Block sizes the dialect formats allow (NUMERICS 1); every unit is generated for one of them.
BLOCK_SIZES = get_format("fb32").allowed_blocks


class Book(enum.Enum):
    """A formatbook the hardware can be generated for (``golden.formats`` tables)."""

    FB32 = "fb32"
    DIALECTFP4_16 = "dialectfp4"
    E2M1 = "e2m1"

    @property
    def formatbook(self) -> Formatbook:
        return {Book.FB32: FB32, Book.DIALECTFP4_16: DIALECTFP4_16, Book.E2M1: E2M1}[self]


class UnitKind(enum.Enum):
    FRONT_END = "front_end"
    DSU = "dsu"
    TWO_STAGE = "two_stage"
    DECODER = "decoder"
    MAC_ARRAY = "mac_array"


class ConfigError(ValueError):
    """A hardware parameter outside what the unit supports."""


def _check_block(block: int) -> None:
    if block not in BLOCK_SIZES:
        raise ConfigError(f"block size must be one of {list(BLOCK_SIZES)}, got {block!r}")


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


class UnitConfig:
    """Shared behaviour of the unit configurations: a kind, a stable name, JSON round trip."""

    kind: UnitKind

    @property
    def name(self) -> str:
        """Stable identifier used for the Verilog module, file and build directory names."""
        raise NotImplementedError

    def to_dict(self) -> dict:
        out = {"unit": self.kind.value}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, enum.Enum):
                value = value.value
            elif isinstance(value, tuple):
                value = [v.value if isinstance(v, enum.Enum) else v for v in value]
            out[f.name] = value
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


@dataclass(frozen=True, kw_only=True)
class FrontEndConfig(UnitConfig):
    """Block front-end: ``block`` raw bfloat16 values -> exponent byte, signs, 5-bit codes."""

    kind = UnitKind.FRONT_END
    block: int = 32

    def __post_init__(self) -> None:
        _check_block(self.block)

    @property
    def name(self) -> str:
        return f"front_end_b{self.block}"


@dataclass(frozen=True, kw_only=True)
class DSUConfig(UnitConfig):
    """Dialect-select unit (LUT selection, NUMERICS 2.2).

    ``dialects_per_cycle`` must divide the formatbook's dialect count; the unit needs
    ``num_dialects / dialects_per_cycle`` cycles per block (``None``: all of them, one block per cycle).
    ``pipeline_stages`` (full parallelism only): register cuts spread over the unit's logic levels
    (ERR ROM read, adder-tree levels, argmin levels, threshold read, encoder), a free-running
    pipeline with a skid FIFO at the output; ``None`` keeps the two-register unit.
    """

    kind = UnitKind.DSU
    book: Book = Book.FB32
    block: int = 32
    dialects_per_cycle: int | None = None
    pipeline_stages: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.book, Book) or self.book is Book.E2M1:
            raise ConfigError(f"the DSU selects among FB32 or DialectFP4-16 dialects, got {self.book!r}")
        _check_block(self.block)
        if self.dialects_per_cycle is not None:
            _check_positive("dialects_per_cycle", self.dialects_per_cycle)
            if self.num_dialects % self.dialects_per_cycle:
                raise ConfigError(
                    f"dialects_per_cycle must divide the {self.num_dialects} dialects of "
                    f"{self.book.formatbook.name}, got {self.dialects_per_cycle}"
                )
        if self.pipeline_stages is not None:
            _check_positive("pipeline_stages", self.pipeline_stages)
            if self.passes != 1:
                raise ConfigError(
                    f"pipeline_stages needs the DSU at full parallelism (one block per cycle), got "
                    f"dialects_per_cycle={self.dialects_per_cycle}"
                )

    @property
    def num_dialects(self) -> int:
        return self.book.formatbook.num_dialects

    @property
    def parallel(self) -> int:
        """Dialects costed per cycle."""
        return self.num_dialects if self.dialects_per_cycle is None else self.dialects_per_cycle

    @property
    def passes(self) -> int:
        """Cycles one block spends in the cost stage: the initiation interval."""
        return self.num_dialects // self.parallel

    @property
    def name(self) -> str:
        stages = "" if self.pipeline_stages is None else f"_s{self.pipeline_stages}"
        return f"dsu_{self.book.value}_b{self.block}_p{self.parallel}{stages}"


@dataclass(frozen=True, kw_only=True)
class TwoStageConfig(UnitConfig):
    """BlockDialect's two-stage selector (DialectFP4-16 only, NUMERICS 2.2).

    ``pipeline_stages``: register cuts spread over its logic levels (max-tree levels, pair and range
    read, range compares, count-tree levels, choice, threshold read, encoder), a free-running pipeline
    with a skid FIFO at the output; ``None`` keeps the two-register unit.
    """

    kind = UnitKind.TWO_STAGE
    block: int = 32
    pipeline_stages: int | None = None

    def __post_init__(self) -> None:
        _check_block(self.block)
        if self.pipeline_stages is not None:
            _check_positive("pipeline_stages", self.pipeline_stages)

    @property
    def book(self) -> Book:
        return Book.DIALECTFP4_16

    @property
    def name(self) -> str:
        return f"two_stage_b{self.block}{'' if self.pipeline_stages is None else f'_s{self.pipeline_stages}'}"


@dataclass(frozen=True, kw_only=True)
class DecoderConfig(UnitConfig):
    """Multi-format decoder: (format, dialect id, ``lanes`` 4-bit codes) -> sign + half-unit magnitude.

    ``books`` lists the formatbooks the decoder holds (its ``format`` input indexes this tuple).
    """

    kind = UnitKind.DECODER
    books: tuple[Book, ...] = (Book.FB32, Book.DIALECTFP4_16, Book.E2M1)
    lanes: int = 1

    def __post_init__(self) -> None:
        if not self.books or not all(isinstance(b, Book) for b in self.books):
            raise ConfigError(f"books must be a non-empty tuple of hw.Book members, got {self.books!r}")
        if len(set(self.books)) != len(self.books):
            raise ConfigError(f"books must not repeat a formatbook, got {self.books!r}")
        _check_positive("lanes", self.lanes)

    @property
    def name(self) -> str:
        return f"decoder_{'_'.join(b.value for b in self.books)}_l{self.lanes}"


@dataclass(frozen=True, kw_only=True)
class MACArrayConfig(UnitConfig):
    """Output-stationary MAC array of ``rows`` x ``cols`` processing elements over blocks of ``block``.

    ``interleave`` (C-slow factor L): each PE carries L independent outputs through an L-stage
    binary32 adder; beat ``n`` of a job group belongs to output ``n mod L``. ``L = 1`` is one job at
    a time with a single-cycle adder. ``nvfp4``: the operands' exponent bytes are E4M3 block scales and
    a ``tensor_scale`` input (T = fl32(t_a * t_w)) scales every term (``hw.mac_array.NVFP4ProcessingElement``). ``output_depth``: output FIFO beats (None: latency + 1, so an
    always-ready consumer never holds the array up, even with one K block per job).
    """

    kind = UnitKind.MAC_ARRAY
    rows: int = 2
    cols: int = 2
    block: int = 32
    interleave: int = 1
    output_depth: int | None = None
    nvfp4: bool = False

    def __post_init__(self) -> None:
        _check_positive("rows", self.rows)
        _check_positive("cols", self.cols)
        _check_block(self.block)
        _check_positive("interleave", self.interleave)
        if self.output_depth is not None:
            _check_positive("output_depth", self.output_depth)
        if not isinstance(self.nvfp4, bool):
            raise ConfigError(f"nvfp4 must be True or False, got {self.nvfp4!r}")

    @property
    def name(self) -> str:
        slow = "" if self.interleave == 1 else f"_l{self.interleave}"
        depth = "" if self.output_depth is None else f"_o{self.output_depth}"
        kind = "nvfp4_" if self.nvfp4 else ""
        return f"{kind}mac_array_r{self.rows}_c{self.cols}_b{self.block}{slow}{depth}"


_CONFIG_TYPES = {
    UnitKind.FRONT_END: FrontEndConfig,
    UnitKind.DSU: DSUConfig,
    UnitKind.TWO_STAGE: TwoStageConfig,
    UnitKind.DECODER: DecoderConfig,
    UnitKind.MAC_ARRAY: MACArrayConfig,
}


def config_from_dict(raw: dict) -> UnitConfig:
    """Inverse of ``UnitConfig.to_dict``."""
    raw = dict(raw)
    try:
        kind = UnitKind(raw.pop("unit"))
    except (KeyError, ValueError):
        raise ConfigError(f"config has no valid 'unit' entry: {raw!r}") from None
    cls = _CONFIG_TYPES[kind]
    if "book" in raw:
        raw["book"] = Book(raw["book"])
    if "books" in raw:
        raw["books"] = tuple(Book(b) for b in raw["books"])
    return cls(**raw)


def config_from_json(text: str) -> UnitConfig:
    return config_from_dict(json.loads(text))

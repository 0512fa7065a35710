"""Frozen, JSON-serializable configurations of the hardware units.

Configuration flows one way: a config dataclass -> ``hw.build_unit`` (elaboration) -> Verilog in a
per-configuration directory (``rtl_gen``) -> the cocotb side, which reads the serialized config back
(``config_from_json``) instead of retyping any width. Every constructor is keyword-only and
validates its parameters with a sentence that repeats the bad value.
"""

from __future__ import annotations

import enum
import json
import os
import re
from dataclasses import dataclass, fields
from pathlib import Path

from golden.formatbook import SHIPPED_DIR
from golden.formats import DIALECTFP4_16, E2M1, FB32, Formatbook, FormatError, FormatSpec, Grid, Scale, get_format

__all__ = [
    "BLOCK_SIZES",
    "Book",
    "ConfigError",
    "DSUConfig",
    "Grid",
    "DecoderConfig",
    "FrontEndConfig",
    "MACArrayConfig",
    "ScaledFrontEndConfig",
    "TwoStageConfig",
    "UnitConfig",
    "UnitKind",
    "config_from_json",
]

#: Block sizes the dialect formats allow (NUMERICS 1); every unit is generated for one of them.
BLOCK_SIZES = get_format("fb32").allowed_blocks


class Book(enum.Enum):
    """A formatbook the hardware is generated for: a ``golden.formats`` registry table.

    The three members are the built-in books (``E2M1`` is the MXFP4/NVFP4 element grid). Any other
    dialect format of the registry -- a shipped fitted book such as ``tdit64-q-e4m3``, or a
    formatbook file given by path -- is a book too: ``Book("tdit64-q-e4m3")`` or
    ``Book("path/to/book.json")`` loads it through ``golden.formats.get_format`` and returns a member
    whose value is its registry name (created once, so ``Book(name) is Book(name)``). ROMs,
    threshold and ERR tables are generated from its table; its grid (half or quarter units) and
    scale (E8M0 or E4M3) choose the unit variants. Iterating ``Book`` lists the built-in books only.
    """

    FB32 = "fb32"
    DIALECTFP4_16 = "dialectfp4"
    E2M1 = "e2m1"

    @classmethod
    def _missing_(cls, value):
        if not isinstance(value, (str, os.PathLike)):
            return None
        try:
            spec = get_format(os.fspath(value))
        except FormatError as err:
            raise ConfigError(f"no formatbook {os.fspath(value)!r} for the hardware: {err}") from None
        if not spec.is_dialect:
            raise ConfigError(f"format {spec.name!r} is not a dialect format, so it has no formatbook to generate")
        member = cls._value2member_map_.get(spec.name)
        if member is None:
            member = object.__new__(cls)
            member._name_ = re.sub(r"\W", "_", spec.name).upper()
            member._value_ = spec.name
            cls._value2member_map_[spec.name] = member
        return member

    @property
    def spec(self) -> FormatSpec | None:
        """The registry row (None for E2M1, which is an element grid, not a registry format)."""
        return None if self is Book.E2M1 else get_format(self.value)

    @property
    def formatbook(self) -> Formatbook:
        builtin = {Book.FB32: FB32, Book.DIALECTFP4_16: DIALECTFP4_16, Book.E2M1: E2M1}.get(self)
        return builtin if builtin is not None else self.spec.formatbook

    @property
    def grid(self) -> Grid:
        return self.formatbook.grid

    @property
    def scale(self) -> Scale:
        """The block scale of the format (E2M1: E8M0 as in MXFP4; NVFP4's E4M3 is the MAC array's option)."""
        return Scale.E8M0 if self is Book.E2M1 else self.spec.scale

    @property
    def ident(self) -> str:
        """The name as a Verilog identifier piece (``-`` and other non-word characters become ``_``)."""
        return re.sub(r"\W", "_", self.value)

    @property
    def ref(self) -> str:
        """What a serialized configuration stores: the registry name, or the formatbook file's path
        for a book loaded from a file outside the shipped set (another process may not know its name)."""
        spec = self.spec
        if spec is None or spec.source is None or Path(spec.source).resolve().parent == SHIPPED_DIR:
            return self.value
        return str(Path(spec.source).resolve())


class UnitKind(enum.Enum):
    FRONT_END = "front_end"
    SCALED_FRONT_END = "scaled_front_end"
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


def _serial(value: enum.Enum):
    return value.ref if isinstance(value, Book) else value.value


def _check_grid(grid) -> None:
    if not isinstance(grid, Grid):
        raise ConfigError(f"grid must be a golden.formats.Grid (half or quarter), got {grid!r}")


def _grid_suffix(grid: Grid) -> str:
    """Name piece of a grid: nothing for the half grid (the names of PR-era designs stay), ``_q`` for quarter."""
    return "" if grid is Grid.HALF else "_q"


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
                value = _serial(value)
            elif isinstance(value, tuple):
                value = [_serial(v) if isinstance(v, enum.Enum) else v for v in value]
            out[f.name] = value
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


@dataclass(frozen=True, kw_only=True)
class FrontEndConfig(UnitConfig):
    """Block front-end: ``block`` raw bfloat16 values -> exponent byte, signs, codes u.

    ``grid``: the half grid gives 5-bit codes (NUMERICS 2.1), the quarter grid 6-bit codes (8.2).
    """

    kind = UnitKind.FRONT_END
    block: int = 32
    grid: Grid = Grid.HALF

    def __post_init__(self) -> None:
        _check_block(self.block)
        _check_grid(self.grid)

    @property
    def name(self) -> str:
        return f"front_end_b{self.block}{_grid_suffix(self.grid)}"


#: Input word formats of the E4M3 front-end (raw bits: 1 sign, 8 exponent, 7 or 23 mantissa bits).
SCALED_INPUTS = {"bf16": 16, "fp32": 32}


@dataclass(frozen=True, kw_only=True)
class ScaledFrontEndConfig(UnitConfig):
    """E4M3 front-end (NUMERICS 8.3 step 4): ``block`` raw ``input`` words, the block's E4M3 scale byte
    and its binary32 reciprocal ``r = fl32(fl32(1 / t) / s)`` in -> scale byte, signs, codes
    ``u = min(U - 1, floor(fl32(|x| * r) * 2^(g + 1)))`` out (``hw.scaled_front_end``)."""

    kind = UnitKind.SCALED_FRONT_END
    block: int = 32
    grid: Grid = Grid.QUARTER
    input: str = "bf16"

    def __post_init__(self) -> None:
        _check_block(self.block)
        _check_grid(self.grid)
        if self.input not in SCALED_INPUTS:
            raise ConfigError(f"input must be one of {list(SCALED_INPUTS)}, got {self.input!r}")

    @property
    def input_bits(self) -> int:
        return SCALED_INPUTS[self.input]

    @property
    def name(self) -> str:
        return f"scaled_front_end_{self.input}_b{self.block}{_grid_suffix(self.grid)}"


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
            raise ConfigError(f"the DSU selects among the dialects of FB32 or DialectFP4-16 or another registry "
                              f"dialect formatbook, got {self.book!r}")  # fmt: skip
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
    def grid(self) -> Grid:
        return self.book.grid

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
        return f"dsu_{self.book.ident}_b{self.block}_p{self.parallel}{stages}"


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
    def grid(self) -> Grid:
        return Grid.HALF

    @property
    def name(self) -> str:
        return f"two_stage_b{self.block}{'' if self.pipeline_stages is None else f'_s{self.pipeline_stages}'}"


@dataclass(frozen=True, kw_only=True)
class DecoderConfig(UnitConfig):
    """Multi-format decoder: (format, dialect id, ``lanes`` 4-bit codes) -> sign + magnitude in grid units.

    ``books`` lists the formatbooks the decoder holds (its ``format`` input indexes this tuple); they
    share one grid (4-bit half-unit or 5-bit quarter-unit magnitudes), since the PEs behind the
    decoder take the magnitudes in one unit.
    """

    kind = UnitKind.DECODER
    books: tuple[Book, ...] = (Book.FB32, Book.DIALECTFP4_16, Book.E2M1)
    lanes: int = 1

    def __post_init__(self) -> None:
        if not self.books or not all(isinstance(b, Book) for b in self.books):
            raise ConfigError(f"books must be a non-empty tuple of hw.Book members, got {self.books!r}")
        if len(set(self.books)) != len(self.books):
            raise ConfigError(f"books must not repeat a formatbook, got {self.books!r}")
        grids = {b.grid for b in self.books}
        if len(grids) > 1:
            raise ConfigError(f"the books of one decoder must share a grid (half or quarter), got {self.books!r}")
        _check_positive("lanes", self.lanes)

    @property
    def grid(self) -> Grid:
        return self.books[0].grid

    @property
    def name(self) -> str:
        return f"decoder_{'_'.join(b.ident for b in self.books)}_l{self.lanes}"


@dataclass(frozen=True, kw_only=True)
class MACArrayConfig(UnitConfig):
    """Output-stationary MAC array of ``rows`` x ``cols`` processing elements over blocks of ``block``.

    ``interleave`` (C-slow factor L): each PE carries L independent outputs through an L-stage
    binary32 adder; beat ``n`` of a job group belongs to output ``n mod L``. ``L = 1`` is one job at
    a time with a single-cycle adder. ``nvfp4``: the E4M3 scale path (NVFP4 and the E4M3 dialect
    formats): the operands' exponent bytes are E4M3 block scales and a ``tensor_scale`` input
    (T = fl32(t_a * t_w)) scales every term (``hw.mac_array.NVFP4ProcessingElement``). ``grid``: the
    unit of the decoded magnitudes (half: 4 bits, quarter: 5 bits; NUMERICS 8.4). ``output_depth``:
    output FIFO beats (None: latency + 1, so an always-ready consumer never holds the array up, even
    with one K block per job).
    """

    kind = UnitKind.MAC_ARRAY
    rows: int = 2
    cols: int = 2
    block: int = 32
    interleave: int = 1
    output_depth: int | None = None
    nvfp4: bool = False
    grid: Grid = Grid.HALF

    def __post_init__(self) -> None:
        _check_positive("rows", self.rows)
        _check_positive("cols", self.cols)
        _check_block(self.block)
        _check_positive("interleave", self.interleave)
        if self.output_depth is not None:
            _check_positive("output_depth", self.output_depth)
        if not isinstance(self.nvfp4, bool):
            raise ConfigError(f"nvfp4 must be True or False, got {self.nvfp4!r}")
        _check_grid(self.grid)

    @property
    def name(self) -> str:
        slow = "" if self.interleave == 1 else f"_l{self.interleave}"
        depth = "" if self.output_depth is None else f"_o{self.output_depth}"
        kind = "nvfp4_" if self.nvfp4 else ""
        return f"{kind}mac_array_r{self.rows}_c{self.cols}_b{self.block}{_grid_suffix(self.grid)}{slow}{depth}"


_CONFIG_TYPES = {
    UnitKind.FRONT_END: FrontEndConfig,
    UnitKind.SCALED_FRONT_END: ScaledFrontEndConfig,
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
    if "grid" in raw:
        try:
            raw["grid"] = Grid(raw["grid"])
        except ValueError:
            raise ConfigError(f"config has grid {raw['grid']!r}; expected one of {[g.value for g in Grid]}") from None
    return cls(**raw)


def config_from_json(text: str) -> UnitConfig:
    return config_from_dict(json.loads(text))

"""The format registry: the one definition of every 4-bit format the project implements.

Everything that needs a format -- the golden quantizer, the Amaranth ROMs, the cocotb scoreboards,
the Triton kernels -- imports it from here. A formatbook is data (a table of dialects); the index
and error lookup tables are *derived* from it (``Formatbook.idx_table`` / ``err_table``), never
retyped. See ``docs/NUMERICS.md`` sections 2 and 3.
"""

from __future__ import annotations

import enum
import functools
import os
from dataclasses import dataclass, field

import torch

__all__ = [
    "CODE_BITS",
    "DIALECTFP4_16",
    "E2M1",
    "E2M1_HALF_UNITS",
    "EXPONENT_BIAS",
    "EXPONENT_BITS",
    "FB32",
    "FORMATS",
    "FormatError",
    "FormatKind",
    "FormatSpec",
    "Formatbook",
    "Grid",
    "MAGNITUDE_CODES",
    "NUM_UCODES",
    "Scale",
    "Selection",
    "get_format",
    "register_format",
]


class FormatError(ValueError):
    """An unknown format name, a malformed formatbook or an unsupported option for a format."""


#: Bits of one element code: a sign bit and a 3-bit index into the dialect (NUMERICS 2.1 step 5).
CODE_BITS = 4
#: Values per dialect: 2 ** (CODE_BITS - 1).
MAGNITUDE_CODES = 8
#: Width of the truncated magnitude code u (3 integer + 2 fraction bits, NUMERICS 2.1 step 2).
UCODE_BITS = 5
NUM_UCODES = 1 << UCODE_BITS
#: Shared exponent byte: E8M0-compatible, e = E - 127 (NUMERICS 2.1 step 1).
EXPONENT_BITS = 8
EXPONENT_BIAS = 127
EXPONENT_MIN = -127
EXPONENT_MAX = 127
#: Largest half-unit magnitude a dialect may hold (4-bit magnitude field of the decoder).
MAX_HALF_UNITS = 15


class Grid(enum.Enum):
    """The unit of a dialect's magnitudes (NUMERICS "Extended dialect formats").

    ``HALF``: magnitudes in half units, 0..15 (4-bit magnitude field), 5-bit truncated code u
    (3 integer + 2 fraction bits). ``QUARTER``: quarter units, 0..31 (5-bit magnitudes), 6-bit u
    (3 integer + 3 fraction bits). In both, u counts halves of the grid unit, so every midpoint
    between two grid values is a whole number of u steps and IDX/ERR keep their form.
    """

    HALF = "half"
    QUARTER = "quarter"

    @property
    def shift(self) -> int:
        """g with unit = 2^-g: 1 (half units) or 2 (quarter units)."""
        return 1 if self is Grid.HALF else 2

    @property
    def max_units(self) -> int:
        """Largest magnitude a dialect may hold, in grid units (15 or 31: just below 8.0)."""
        return (8 << self.shift) - 1

    @property
    def magnitude_bits(self) -> int:
        return self.max_units.bit_length()

    @property
    def ucode_bits(self) -> int:
        return 4 + self.shift

    @property
    def num_ucodes(self) -> int:
        return 1 << self.ucode_bits


class Scale(enum.Enum):
    """The per-block scale of a dialect format (NUMERICS "Extended dialect formats").

    ``E8M0``: the shared exponent of NUMERICS 2.1 (a power of two, amax * 2^-e in [4, 8)).
    ``E4M3``: an E4M3 block scale under a float32 tensor scale, as NVFP4, block max mapped to the
    grid's largest value.
    """

    E8M0 = "e8m0"
    E4M3 = "e4m3"


class Selection(enum.Enum):
    """How a dialect block chooses its dialect (NUMERICS 2.2)."""

    LUT = "lut"
    TWO_STAGE = "two-stage"
    MSE = "mse"


class FormatKind(enum.Enum):
    DIALECT = "dialect"  # block of B, shared E8M0 exponent, per-block dialect from a formatbook
    MXFP4 = "mxfp4"  # OCP MX: block of 32, E8M0 scale, E2M1 elements
    NVFP4 = "nvfp4"  # block of 16, E4M3 block scale, float32 tensor scale, E2M1 elements
    NVFP4_46 = "nvfp4-46"  # NVFP4 storage; each block maps its max to 6 or to 4, whichever is better


@dataclass(frozen=True)
class Formatbook:
    """An ordered table of dialects; each dialect is 8 increasing magnitudes in grid units.

    ``grid`` is the unit of the magnitudes (half units by default, NUMERICS 2; quarter units for
    the extended formats). ``family_size`` groups consecutive ids into sub-formatbooks (FB32: 4
    families of 8 levels, id = family * 8 + level); ``None`` means the formatbook has no family
    structure.
    """

    name: str
    dialects: tuple[tuple[int, ...], ...]
    family_size: int | None = None
    grid: Grid = Grid.HALF

    def __post_init__(self) -> None:
        if not isinstance(self.grid, Grid):
            raise FormatError(f"formatbook {self.name!r} has grid {self.grid!r}, expected a golden.formats.Grid")
        top = self.grid.max_units
        if not self.dialects:
            raise FormatError(f"formatbook {self.name!r} has no dialects")
        for d, h in enumerate(self.dialects):
            if len(h) != MAGNITUDE_CODES:
                raise FormatError(
                    f"dialect {d} of formatbook {self.name!r} has {len(h)} values, expected {MAGNITUDE_CODES}"
                )
            if h[0] != 0 or any(b <= a for a, b in zip(h, h[1:])) or h[-1] > top:
                raise FormatError(
                    f"dialect {d} of formatbook {self.name!r} is {h}: it must start at 0, increase "
                    f"strictly and stay within {top} {self.grid.value} units"
                )
        if self.family_size is not None and len(self.dialects) % self.family_size:
            raise FormatError(
                f"formatbook {self.name!r} has {len(self.dialects)} dialects, not a multiple of its "
                f"family size {self.family_size}"
            )

    @property
    def num_dialects(self) -> int:
        return len(self.dialects)

    @property
    def id_bits(self) -> int:
        """Bits needed to store a dialect id."""
        return max(1, (self.num_dialects - 1).bit_length())

    @property
    def num_families(self) -> int:
        return 1 if self.family_size is None else self.num_dialects // self.family_size

    def family_of(self, dialect_id: int) -> int:
        return 0 if self.family_size is None else dialect_id // self.family_size

    def family_mask(self, family: int) -> torch.Tensor:
        """Boolean candidate mask (num_dialects,) selecting the dialects of one family."""
        if not 0 <= family < self.num_families:
            raise FormatError(f"formatbook {self.name!r} has no family {family} (it has {self.num_families})")
        size = self.family_size or self.num_dialects
        mask = torch.zeros(self.num_dialects, dtype=torch.bool)
        mask[family * size : (family + 1) * size] = True
        return mask

    @functools.cached_property
    def units(self) -> torch.Tensor:
        """(D, 8) int64: magnitude of code index k of dialect d, in grid units."""
        return torch.tensor(self.dialects, dtype=torch.int64)

    @property
    def half_units(self) -> torch.Tensor:
        """(D, 8) int64 magnitudes in half units; a quarter-grid book raises (use ``units``).

        The RTL and kernels read this table and implement the half grid only, so they fail here
        rather than misread a quarter-unit table.
        """
        if self.grid is not Grid.HALF:
            raise FormatError(f"formatbook {self.name!r} is on the {self.grid.value}-unit grid, not half units")
        return self.units

    @property
    def num_ucodes(self) -> int:
        return self.grid.num_ucodes

    @functools.cached_property
    def idx_table(self) -> torch.Tensor:
        """(D, U) int64: IDX[d][u] = #{k in 0..6 : u >= h[k] + h[k+1]} (NUMERICS 2.1 step 4).

        U = 32 codes on the half grid, 64 on the quarter grid.
        """
        h = self.units
        midpoints2 = h[:, :-1] + h[:, 1:]  # twice the midpoint, in grid units == in units of u
        u = torch.arange(self.num_ucodes)
        return (u[None, :, None] >= midpoints2[:, None, :]).sum(-1)

    @functools.cached_property
    def err_table(self) -> torch.Tensor:
        """(D, U) int64: ERR[d][u] = (2u + 1 - 4 h[IDX[d][u]])^2, squared bin-centre error in
        units of (a quarter of a grid unit)^2 (1/64 on the half grid, 1/256 on the quarter grid)."""
        u = torch.arange(self.num_ucodes)
        nearest = torch.gather(self.units, 1, self.idx_table)
        return (2 * u[None, :] + 1 - 4 * nearest) ** 2

    @functools.cached_property
    def err_bits(self) -> int:
        return int(self.err_table.max()).bit_length()

    @functools.cached_property
    def two_stage_ranges(self) -> torch.Tensor:
        """(P, 2, 2) int64 of half-open u ranges [lo, hi) for BlockDialect's stage 2.

        Index ``[p, c]`` is the beneficial range of dialect ``2p + c`` (c = 0: A, c = 1: B): the
        codes whose nearest value (ties up) in the union of the pair's values is the dialect's
        distinguishing value (its largest value the other dialect lacks). NUMERICS 2.2.
        """
        if self.num_dialects % 2 or self.grid is not Grid.HALF:
            raise FormatError(f"formatbook {self.name!r} has no dialect pairs for two-stage selection")
        ranges = []
        u = torch.arange(NUM_UCODES)
        for p in range(self.num_dialects // 2):
            a, b = self.dialects[2 * p], self.dialects[2 * p + 1]
            union = torch.tensor(sorted(set(a) | set(b)))
            mid2 = union[:-1] + union[1:]
            nearest = union[(u[:, None] >= mid2[None, :]).sum(-1)]
            pair = []
            for own, other in ((a, b), (b, a)):
                distinguishing = max(set(own) - set(other))
                hit = (nearest == distinguishing).nonzero().flatten()
                lo, hi = int(hit.min()), int(hit.max()) + 1
                assert hi - lo == hit.numel(), "a beneficial range is contiguous"
                pair.append((lo, hi))
            ranges.append(pair)
        return torch.tensor(ranges, dtype=torch.int64)


#: BlockDialect's DialectFP4-16 (NUMERICS 2.3). Rows 2p / 2p+1 form pair p with maximum 15 - p.
DIALECTFP4_16 = Formatbook(
    name="DialectFP4-16",
    dialects=(
        (0, 1, 2, 3, 4, 6, 11, 15), (0, 1, 2, 3, 4, 6, 9, 15),
        (0, 1, 2, 3, 4, 6, 11, 14), (0, 1, 2, 3, 4, 6, 9, 14),
        (0, 1, 2, 3, 4, 6, 10, 13), (0, 1, 2, 3, 4, 6, 8, 13),
        (0, 1, 2, 3, 4, 6, 10, 12), (0, 1, 2, 3, 4, 6, 8, 12),
        (0, 1, 2, 3, 4, 6, 9, 11), (0, 1, 2, 3, 4, 6, 7, 11),
        (0, 1, 2, 3, 4, 6, 9, 10), (0, 1, 2, 3, 4, 6, 7, 10),
        (0, 1, 2, 3, 4, 6, 8, 9), (0, 1, 2, 3, 4, 6, 7, 9),
        (0, 1, 2, 3, 4, 6, 7, 8), (0, 1, 2, 3, 4, 5, 6, 8),
    ),  # fmt: skip
)

#: The project's 32-dialect formatbook (NUMERICS 2.4): id = family * 8 + level, level p has max 15 - p.
FB32 = Formatbook(
    name="FB32",
    dialects=(
        DIALECTFP4_16.dialects[0::2]  # family 0: DialectFP4 A dialects
        + DIALECTFP4_16.dialects[1::2]  # family 1: DialectFP4 B dialects
        + (  # family 2: near-uniform
            (0, 2, 4, 6, 9, 11, 13, 15), (0, 2, 4, 6, 8, 10, 12, 14),
            (0, 2, 4, 6, 7, 9, 11, 13), (0, 2, 3, 5, 7, 9, 10, 12),
            (0, 2, 3, 5, 6, 8, 9, 11), (0, 1, 3, 4, 6, 7, 9, 10),
            (0, 1, 3, 4, 5, 6, 8, 9), (0, 1, 2, 3, 5, 6, 7, 8),
        )
        + (  # family 3: fine-low
            (0, 1, 2, 3, 4, 5, 6, 15), (0, 1, 2, 3, 4, 5, 6, 14),
            (0, 1, 2, 3, 4, 5, 6, 13), (0, 1, 2, 3, 4, 5, 6, 12),
            (0, 1, 2, 3, 4, 5, 6, 11), (0, 1, 2, 3, 4, 5, 6, 10),
            (0, 1, 2, 3, 4, 5, 6, 9), (0, 1, 2, 3, 4, 5, 7, 8),
        )
    ),  # fmt: skip
    family_size=8,
)

#: FP4 E2M1 magnitudes in half units, indexed by the 3-bit magnitude code (0, 0.5, 1, ..., 6).
E2M1_HALF_UNITS = (0, 1, 2, 3, 4, 6, 8, 12)
#: E2M1 as a one-dialect formatbook, so decoders and dot products treat every format alike.
E2M1 = Formatbook(name="E2M1", dialects=(E2M1_HALF_UNITS,))


@dataclass(frozen=True)
class FormatSpec:
    """One row of the registry: a storage format and its defaults.

    ``scale`` is the per-block scale: E8M0 (dialect formats' shared exponent, MXFP4) or E4M3 under
    a float32 tensor scale (NVFP4 variants and the E4M3 dialect formats). ``provenance`` records
    where a formatbook loaded from a file came from (model, data, command, seed), else None.
    """

    name: str
    kind: FormatKind
    description: str
    default_block: int
    allowed_blocks: tuple[int, ...]
    formatbook: Formatbook  # element magnitudes (E2M1 for the MX/NV baselines)
    default_select: Selection | None = None  # dialect formats only
    scale: Scale = Scale.E8M0
    scale_bits: int = EXPONENT_BITS  # bits of the per-block scale (E8M0 exponent or E4M3)
    tensor_scale_bits: int = 0  # per-tensor float32 scale (E4M3 scales)
    provenance: dict | None = field(default=None, compare=False, hash=False)
    source: str | None = field(default=None, compare=False, hash=False)  # the formatbook file, if any

    def __post_init__(self) -> None:
        if self.scale is Scale.E4M3 and self.tensor_scale_bits != 32:
            raise FormatError(f"format {self.name!r} has an E4M3 block scale, so it needs a float32 tensor scale")
        if self.formatbook.grid is not Grid.HALF and not self.is_dialect:
            raise FormatError(f"format {self.name!r}: only dialect formats take a {self.formatbook.grid.value} grid")

    @property
    def is_dialect(self) -> bool:
        return self.kind is FormatKind.DIALECT

    @property
    def grid(self) -> Grid:
        return self.formatbook.grid

    @property
    def fields(self) -> tuple[str, ...]:
        """The QuantizedTensor fields this format stores, in checkpoint and capture order."""
        out = ("codes",)
        if self.scale is Scale.E8M0:
            out += ("exponent",)
        if self.is_dialect:
            out += ("dialect",)
        if self.scale is Scale.E4M3:
            out += ("block_scale", "tensor_scale")
        return out

    @property
    def metadata_bits_per_block(self) -> int:
        """Scale plus (for dialect formats) the dialect id."""
        return self.scale_bits + (self.formatbook.id_bits if self.is_dialect else 0)

    def bits_per_element(self, block: int | None = None) -> float:
        """Storage cost per element, excluding the per-tensor scale (amortized to ~0)."""
        block = self.check_block(block)
        return CODE_BITS + self.metadata_bits_per_block / block

    def check_block(self, block: int | None) -> int:
        block = self.default_block if block is None else block
        if block not in self.allowed_blocks:
            raise FormatError(
                f"format {self.name!r} supports block sizes {list(self.allowed_blocks)}, got {block}"
            )
        return block

    def check_select(self, select: Selection | str | None) -> Selection | None:
        if not self.is_dialect:
            if select is not None:
                raise FormatError(f"format {self.name!r} has no dialect selection (got select={select!r})")
            return None
        select = self.default_select if select is None else select
        try:
            select = Selection(select)
        except ValueError:
            names = ", ".join(s.value for s in Selection)
            raise FormatError(f"unknown selection {select!r}; expected one of {names}") from None
        if select is Selection.TWO_STAGE and (self.formatbook is not DIALECTFP4_16 or self.scale is not Scale.E8M0):
            raise FormatError(f"two-stage selection is defined for dialectfp4 only, not {self.name!r}")
        return select


def dialect_format(
    name: str,
    book: Formatbook,
    scale: Scale | str = Scale.E8M0,
    *,
    description: str | None = None,
    default_block: int = 32,
    default_select: Selection = Selection.LUT,
    provenance: dict | None = None,
    source: str | None = None,
) -> FormatSpec:
    """A dialect-format registry row for ``book`` on its grid with the given block scale."""
    try:
        scale = Scale(scale)
    except ValueError:
        raise FormatError(f"unknown scale {scale!r}; expected one of {', '.join(s.value for s in Scale)}") from None
    if default_block not in _DIALECT_BLOCKS:
        raise FormatError(f"dialect block size must be one of {list(_DIALECT_BLOCKS)}, got {default_block}")
    if description is None:
        scale_text = "E8M0 shared exponent" if scale is Scale.E8M0 else "E4M3 block scale + float32 tensor scale"
        description = (
            f"{book.num_dialects}-dialect formatbook {book.name}, {book.grid.value}-unit grid, {scale_text}, "
            f"{Selection(default_select).value.upper()} selection"
        )
    return FormatSpec(
        name=name,
        kind=FormatKind.DIALECT,
        description=description,
        default_block=default_block,
        allowed_blocks=_DIALECT_BLOCKS,
        formatbook=book,
        default_select=Selection(default_select),
        scale=scale,
        tensor_scale_bits=32 if scale is Scale.E4M3 else 0,
        provenance=provenance,
        source=source,
    )


_DIALECT_BLOCKS = (16, 32, 64)

FORMATS: dict[str, FormatSpec] = {
    spec.name: spec
    for spec in (
        FormatSpec(
            name="fb32",
            kind=FormatKind.DIALECT,
            description="SemanticDialect: 32-dialect formatbook FB32, LUT selection",
            default_block=32,
            allowed_blocks=_DIALECT_BLOCKS,
            formatbook=FB32,
            default_select=Selection.LUT,
        ),
        FormatSpec(
            name="dialectfp4",
            kind=FormatKind.DIALECT,
            description="BlockDialect: DialectFP4-16 formatbook, two-stage selection",
            default_block=32,
            allowed_blocks=_DIALECT_BLOCKS,
            formatbook=DIALECTFP4_16,
            default_select=Selection.TWO_STAGE,
        ),
        FormatSpec(
            name="mxfp4",
            kind=FormatKind.MXFP4,
            description="OCP MXFP4: E2M1 elements, E8M0 scale per 32",
            default_block=32,
            allowed_blocks=(32,),
            formatbook=E2M1,
        ),
        FormatSpec(
            name="nvfp4",
            kind=FormatKind.NVFP4,
            description="NVFP4: E2M1 elements, E4M3 scale per 16, float32 tensor scale",
            default_block=16,
            allowed_blocks=(16,),
            formatbook=E2M1,
            scale=Scale.E4M3,
            tensor_scale_bits=32,
        ),
        FormatSpec(
            name="nvfp4-46",
            kind=FormatKind.NVFP4_46,
            description="NVFP4 with 4/6 block scaling (fouroversix): max to 4 or 6, lower error wins",
            default_block=16,
            allowed_blocks=(16,),
            formatbook=E2M1,
            scale=Scale.E4M3,
            tensor_scale_bits=32,
        ),
    )
}


def register_format(spec: FormatSpec) -> FormatSpec:
    """Add ``spec`` to the registry; re-registering the same definition is a no-op.

    A different format under a name already taken raises FormatError (a formatbook file must not
    silently replace a registry format).
    """
    existing = FORMATS.get(spec.name)
    if existing is not None:
        if existing != spec:
            where = f" (from {existing.source})" if existing.source else ""
            raise FormatError(f"format name {spec.name!r} is already registered with a different definition{where}")
        return existing
    FORMATS[spec.name] = spec
    return spec


def get_format(name: str | FormatSpec) -> FormatSpec:
    """Look a format up by registry name, or load a formatbook file given by path.

    A name that is not in the registry but names a file (``*.json``) loads it with
    ``golden.formatbook.load_formatbook`` and registers it under the book's name, so
    ``QuantizedTensor.format`` and checkpoints refer to it by that name. An unknown name raises
    FormatError listing the known ones.
    """
    if isinstance(name, FormatSpec):
        return name
    spec = FORMATS.get(name)
    if spec is not None:
        return spec
    if isinstance(name, (str, os.PathLike)) and (str(name).endswith(".json") or os.sep in str(name)):
        from .formatbook import load_format_file

        return register_format(load_format_file(name))
    raise FormatError(
        f"unknown format {name!r}; expected one of {', '.join(FORMATS)} or a formatbook file (*.json)"
    ) from None


from .formatbook import shipped_formats  # noqa: E402  (the fitted books in golden/assets/formatbooks)

for _spec in shipped_formats():
    register_format(_spec)

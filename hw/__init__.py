"""Amaranth hardware units of the SemanticDialect datapath (``shared/spec/HARDWARE.md``).

``build_unit(config)`` elaborates any unit configuration (``hw.config``) into its component.
"""

from .config import (
    BLOCK_SIZES,
    Book,
    ConfigError,
    DecoderConfig,
    DSUConfig,
    FrontEndConfig,
    MACArrayConfig,
    TwoStageConfig,
    UnitConfig,
    UnitKind,
    config_from_json,
)
from .decoder import MultiFormatDecoder
from .front_end import BlockFrontEnd
from .mac_array import MACArray
from .select import DialectSelectUnit, TwoStageSelector

_UNITS = {
    FrontEndConfig: BlockFrontEnd,
    DSUConfig: DialectSelectUnit,
    TwoStageConfig: TwoStageSelector,
    DecoderConfig: MultiFormatDecoder,
    MACArrayConfig: MACArray,
}


def build_unit(config: UnitConfig):
    """The Amaranth component for ``config`` (a fresh instance each call)."""
    try:
        cls = _UNITS[type(config)]
    except KeyError:
        raise ConfigError(f"no hardware unit for configuration {config!r}") from None
    return cls(config)


__all__ = [
    "BLOCK_SIZES",
    "BlockFrontEnd",
    "Book",
    "ConfigError",
    "DSUConfig",
    "DecoderConfig",
    "DialectSelectUnit",
    "FrontEndConfig",
    "MACArray",
    "MACArrayConfig",
    "MultiFormatDecoder",
    "TwoStageConfig",
    "TwoStageSelector",
    "UnitConfig",
    "UnitKind",
    "build_unit",
    "config_from_json",
]

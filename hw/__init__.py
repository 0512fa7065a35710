"""Amaranth hardware units of the SemanticDialect datapath (``hw/README.md``).

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
    ScaledFrontEndConfig,
    TwoStageConfig,
    UnitConfig,
    UnitKind,
    config_from_json,
)
from .common import UnitTiming
from .decoder import MultiFormatDecoder
from .front_end import BlockFrontEnd
from .mac_array import MACArray
from .scaled_front_end import ScaledFrontEnd
from .select import DialectSelectUnit, TwoStageSelector

_UNITS = {
    FrontEndConfig: BlockFrontEnd,
    ScaledFrontEndConfig: ScaledFrontEnd,
    DSUConfig: DialectSelectUnit,
    TwoStageConfig: TwoStageSelector,
    DecoderConfig: MultiFormatDecoder,
    MACArrayConfig: MACArray,
}


def unit_class(config: UnitConfig) -> type:
    try:
        return _UNITS[type(config)]
    except KeyError:
        raise ConfigError(f"no hardware unit for configuration {config!r}") from None


def build_unit(config: UnitConfig):
    """The Amaranth component for ``config`` (a fresh instance each call)."""
    return unit_class(config)(config)


def unit_timing(config: UnitConfig) -> UnitTiming:
    """Documented latency and initiation interval of the unit ``config`` describes."""
    return unit_class(config).timing(config)


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
    "ScaledFrontEnd",
    "ScaledFrontEndConfig",
    "TwoStageConfig",
    "TwoStageSelector",
    "UnitConfig",
    "UnitKind",
    "UnitTiming",
    "build_unit",
    "config_from_json",
    "unit_class",
    "unit_timing",
]

"""SemanticDialect golden model: the bit-exact reference for every format and algorithm.

The numeric contract is ``docs/NUMERICS.md``; every fast path (RTL, Triton) is checked
against the functions exported here.
"""

from .blocks import InputError, exact_ldexp, front_end, shared_exponent
from .formats import (
    DIALECTFP4_16,
    E2M1,
    FB32,
    FORMATS,
    FormatError,
    FormatKind,
    FormatSpec,
    Formatbook,
    Grid,
    Scale,
    Selection,
    get_format,
)
from .matmul import accumulate_binary32, block_terms, quantized_linear, quantized_matmul, weight_selection
from .packing import CheckpointError, load_quantized, pack_codes, save_quantized, unpack_codes
from .quantize import QuantizedTensor, e2m1_encode, quantize
from .select import code_histogram, lut_costs, select_lut, select_mse, select_two_stage

__all__ = [
    "DIALECTFP4_16",
    "E2M1",
    "FB32",
    "FORMATS",
    "CheckpointError",
    "FormatError",
    "FormatKind",
    "FormatSpec",
    "Formatbook",
    "Grid",
    "InputError",
    "QuantizedTensor",
    "Scale",
    "Selection",
    "accumulate_binary32",
    "block_terms",
    "code_histogram",
    "e2m1_encode",
    "exact_ldexp",
    "front_end",
    "get_format",
    "load_quantized",
    "lut_costs",
    "pack_codes",
    "quantize",
    "quantized_linear",
    "quantized_matmul",
    "save_quantized",
    "select_lut",
    "select_mse",
    "select_two_stage",
    "shared_exponent",
    "unpack_codes",
    "weight_selection",
]

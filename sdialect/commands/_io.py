"""File helpers shared by the commands: validated .npy input; the path checks and atomic output
come from ``golden.paths`` (shared with ``rtl_gen`` and ``evaluation``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from golden.paths import check_input_file, check_output_dir, check_output_file, write_atomically

from ..errors import UsageError

__all__ = [
    "check_input_file", "check_output_dir", "check_output_file", "format_argument", "load_float_array", "write_atomically",
]  # fmt: skip

FLOAT_DTYPES = (np.float16, np.float32, np.float64)
NPY_MAGIC = b"\x93NUMPY"


def _read_npy_header(path: Path, what: str) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """(shape, dtype, fortran_order, data offset) of a .npy file, read without loading its data."""
    with open(path, "rb") as f:
        if f.read(len(NPY_MAGIC)) != NPY_MAGIC:
            raise UsageError(f"{what} file {path} is not a .npy file (it does not start with the NumPy header)")
        f.seek(0)
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        except (ValueError, OSError, EOFError) as err:
            raise UsageError(f"{what} file {path} has a corrupt .npy header ({err})") from None
        return shape, dtype, fortran, f.tell()


def load_float_array(path: str | os.PathLike, what: str) -> np.ndarray:
    """Read a float .npy file; a missing, unreadable, non-float or empty array raises UsageError.

    The header is checked against the file size before any data is read, so a header claiming a
    huge shape is refused instead of allocating.
    """
    path = check_input_file(path, what)
    shape, dtype, _, offset = _read_npy_header(path, what)
    if dtype.hasobject:
        raise UsageError(f"{what} file {path} holds Python objects; expected a float array")
    if dtype not in FLOAT_DTYPES:
        raise UsageError(f"{what} file {path} has dtype {dtype}; expected float16, float32 or float64")
    if len(shape) == 0:
        raise UsageError(f"{what} file {path} holds a scalar; expected an array with a last (block) axis")
    count = int(np.prod(shape, dtype=object))
    if count == 0:
        raise UsageError(f"{what} file {path} holds an empty array of shape {shape}; expected at least one element")
    need, have = count * dtype.itemsize, path.stat().st_size - offset
    if have < need:
        raise UsageError(
            f"{what} file {path} claims shape {shape} ({need} bytes of data) but holds only {have} bytes"
        )
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, MemoryError) as err:
        raise UsageError(f"{what} file {path} is not a readable .npy array ({err})") from None
    return array


def format_argument(value: str) -> str:
    """argparse type of ``--format``: a registry name or a formatbook file (registered on load)."""
    import argparse

    from golden.formats import FormatError, get_format

    try:
        return get_format(value).name
    except FormatError as err:
        raise argparse.ArgumentTypeError(str(err)) from None

"""File helpers shared by the commands: validated .npy input and atomic output."""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import UsageError

FLOAT_DTYPES = (np.float16, np.float32, np.float64)


def load_float_array(path: str | os.PathLike, what: str) -> np.ndarray:
    """Read a float .npy file; a missing, unreadable or non-float file raises UsageError."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{what} file {path} does not exist")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise UsageError(f"{what} file {path} is not a readable .npy array ({err})") from None
    if not isinstance(array, np.ndarray):
        raise UsageError(f"{what} file {path} holds several arrays; expected one .npy array")
    if array.dtype not in FLOAT_DTYPES:
        raise UsageError(f"{what} file {path} has dtype {array.dtype}; expected float16, float32 or float64")
    if array.ndim == 0:
        raise UsageError(f"{what} file {path} holds a scalar; expected an array with a last (block) axis")
    return array


def write_atomically(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path`` and rename it into place.

    On any failure the temporary file is removed, so no partial output is ever left behind.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise UsageError(f"output directory {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix or ".tmp")
    os.close(fd)
    tmp = Path(tmp)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def format_argument(value: str) -> str:
    """argparse type of ``--format``: a registry name or a formatbook file (registered on load)."""
    import argparse

    from golden.formats import FormatError, get_format

    try:
        return get_format(value).name
    except FormatError as err:
        raise argparse.ArgumentTypeError(str(err)) from None

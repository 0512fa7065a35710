"""Checked paths for every command that reads or writes files (the command line, ``rtl_gen``,
``evaluation``): one ``UsageError`` sentence before any long work, and atomic output.

``check_output_file`` / ``check_output_dir`` probe the place with a real temporary file, so
read-only mounts and folders a root process may not write (``/proc``) are caught too; nothing here
ever deletes a user's file or folder.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from .errors import UsageError

__all__ = ["check_input_file", "check_output_dir", "check_output_file", "write_atomically"]


def check_input_file(path: str | os.PathLike, what: str) -> Path:
    """An existing regular file, or a UsageError saying what the path is instead."""
    if str(path) == "":
        raise UsageError(f"the {what} path is empty")
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{what} {path} is a directory, not a file")
    if not path.exists():
        raise UsageError(f"{what} file {path} does not exist")
    if not path.is_file():
        raise UsageError(f"{what} {path} is not a regular file")
    return path


def _probe_directory(directory: Path, what: str) -> None:
    """Create and remove a temporary file in ``directory``: the one reliable writability test."""
    try:
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".sdialect-probe.")
    except OSError as err:
        raise UsageError(f"cannot write {what} into {directory} ({err.strerror or err})") from None
    os.close(fd)
    os.unlink(probe)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output_file(path: str | os.PathLike, suffix: str | None = None,
                      inputs: Iterable[str | os.PathLike] = (), what: str = "output") -> Path:
    """Validate an output file path before any work: suffix, not a directory, not an input, writable.

    The parent folder must exist (it is not created). Returns the path.
    """
    if str(path) == "":
        raise UsageError(f"the {what} path is empty")
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{what} {path} is an existing directory; give a file name")
    if suffix is not None and path.suffix != suffix:
        raise UsageError(f"{what} {path} must end in {suffix}")
    for source in inputs:
        if _same_file(path, Path(source)) or path.resolve() == Path(source).resolve():
            raise UsageError(f"{what} {path} is also an input; refusing to overwrite it")
    parent = path.parent
    if not parent.exists():
        raise UsageError(f"{what} directory {parent} does not exist")
    if not parent.is_dir():
        raise UsageError(f"{what} {path} is inside {parent}, which is a file, not a directory")
    _probe_directory(parent, what)
    return path


def check_output_dir(path: str | os.PathLike, what: str = "output directory", create: bool = True) -> Path:
    """Validate an output folder before any work: not a file, creatable and writable.

    With ``create`` the folder (and its parents) is created; it never deletes anything.
    """
    if str(path) == "":
        raise UsageError(f"the {what} path is empty")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{what} {path} is an existing file, not a directory")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{what} {path} is inside {existing}, which is a file, not a directory")
    _probe_directory(existing, what)
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UsageError(f"cannot create {what} {path} ({err.strerror or err})") from None
        _probe_directory(path, what)
    return path


def write_atomically(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path`` and rename it into place.

    On any failure the temporary file is removed, so no partial output is ever left behind.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise UsageError(f"output directory {path.parent} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix or ".tmp")
    except OSError as err:
        raise UsageError(f"cannot write output {path} ({err.strerror or err})") from None
    os.close(fd)
    tmp = Path(tmp)
    try:
        write(tmp)
        os.replace(tmp, path)
    except IsADirectoryError:
        raise UsageError(f"output {path} is an existing directory; give a file name") from None
    finally:
        tmp.unlink(missing_ok=True)

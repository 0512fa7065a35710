"""Formatbooks as versioned files: a dialect format (table, grid, scale, block) plus its provenance.

A formatbook file is JSON (schema ``semanticdialect.formatbook/1``)::

    {
      "schema": "semanticdialect.formatbook/1",
      "name": "tdit-q-e4m3",                 # registry name of the format
      "formatbook": "TDiT32-Q-E4M3",         # name of the table
      "grid": "quarter",                     # "half" (0..15 half units) or "quarter" (0..31)
      "scale": "e4m3",                       # "e8m0" or "e4m3" (+ float32 tensor scale)
      "block": 32,                           # default block size (16, 32, 64 allowed)
      "select": "lut",                       # default activation selection: "lut" or "mse"
      "family_size": 8,                      # SeDA sub-formatbooks of consecutive ids, or null
      "dialects": [[0, 2, ...], ...],        # D rows of 8 strictly increasing grid units, h[0] = 0
      "description": "...",
      "provenance": {"model": ..., "data": ..., "command": ..., "seed": ..., ...}
    }

The registry (``golden.formats.get_format``) loads such a file by path wherever a format name is
accepted and registers it under ``name``; the files under ``golden/assets/formatbooks/`` are
registered at import as named formats. The IDX/ERR tables, RTL ROMs and kernel tables are derived
from ``dialects`` like any other formatbook's.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .formats import (
    MAGNITUDE_CODES,
    Formatbook,
    FormatError,
    FormatSpec,
    Grid,
    Scale,
    Selection,
    dialect_format,
)

__all__ = [
    "FORMATBOOK_SCHEMA",
    "SHIPPED_DIR",
    "format_to_json",
    "load_format_file",
    "save_format_file",
    "shipped_formats",
]

FORMATBOOK_SCHEMA = "semanticdialect.formatbook/1"
#: The fitted formatbooks that ship with the package (registered at import).
SHIPPED_DIR = Path(__file__).resolve().parent / "assets" / "formatbooks"

_KEYS = {"schema", "name", "formatbook", "grid", "scale", "block", "select", "family_size", "dialects",
         "description", "provenance"}  # fmt: skip


def _fail(path, what: str) -> FormatError:
    return FormatError(f"formatbook file {path}: {what}")


def format_from_json(data: dict, path: str | os.PathLike = "<data>") -> FormatSpec:
    """Validate a parsed formatbook file and build its registry row (FormatError on any problem)."""
    if not isinstance(data, dict):
        raise _fail(path, "is not a JSON object")
    if data.get("schema") != FORMATBOOK_SCHEMA:
        raise _fail(path, f"has schema {data.get('schema')!r}, expected {FORMATBOOK_SCHEMA!r}")
    unknown = set(data) - _KEYS
    if unknown:
        raise _fail(path, f"has unknown keys {sorted(unknown)}")
    for key in ("name", "dialects", "grid", "scale"):
        if key not in data:
            raise _fail(path, f"is missing {key!r}")
    name = data["name"]
    if not isinstance(name, str) or not name or any(c in name for c in "/\\ ") or name.endswith(".json"):
        raise _fail(path, f"has an invalid format name {name!r} (a non-empty word, no path)")
    try:
        grid, scale = Grid(data["grid"]), Scale(data["scale"])
    except ValueError:
        raise _fail(path, f"has grid {data['grid']!r} / scale {data['scale']!r}; expected half|quarter and e8m0|e4m3") from None
    rows = data["dialects"]
    if (
        not isinstance(rows, list)
        or not rows
        or not all(isinstance(r, list) and len(r) == MAGNITUDE_CODES for r in rows)
        or not all(isinstance(v, int) and not isinstance(v, bool) for r in rows for v in r)
    ):
        raise _fail(path, f"'dialects' must be a non-empty list of rows of {MAGNITUDE_CODES} integers")
    if len(rows) > 256:
        raise _fail(path, f"has {len(rows)} dialects; a dialect id is stored in one byte (at most 256)")
    family_size = data.get("family_size")
    if family_size is not None and (not isinstance(family_size, int) or family_size < 1):
        raise _fail(path, f"has family_size {family_size!r}, expected a positive integer or null")
    select = data.get("select", "lut")
    if select not in (Selection.LUT.value, Selection.MSE.value):
        raise _fail(path, f"has select {select!r}; a formatbook file's default selection is 'lut' or 'mse'")
    provenance = data.get("provenance")
    if provenance is not None and not isinstance(provenance, dict):
        raise _fail(path, "has a 'provenance' that is not an object")
    try:
        book = Formatbook(
            name=str(data.get("formatbook", name)),
            dialects=tuple(tuple(r) for r in rows),
            family_size=family_size,
            grid=grid,
        )
        return dialect_format(
            name,
            book,
            scale,
            description=data.get("description"),
            default_block=data.get("block", 32),
            default_select=Selection(select),
            provenance=provenance,
            source=str(path),
        )
    except FormatError as err:
        raise _fail(path, str(err)) from None


def load_format_file(path: str | os.PathLike) -> FormatSpec:
    """Read and validate one formatbook file (FormatError naming the problem)."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(f"formatbook file {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _fail(path, f"is not readable JSON ({err})") from None
    return format_from_json(data, path)


def format_to_json(spec: FormatSpec) -> dict:
    """The file form of a dialect-format registry row (inverse of ``format_from_json``)."""
    if not spec.is_dialect:
        raise FormatError(f"format {spec.name!r} is not a dialect format; only formatbooks are written to files")
    book = spec.formatbook
    return {
        "schema": FORMATBOOK_SCHEMA,
        "name": spec.name,
        "formatbook": book.name,
        "grid": book.grid.value,
        "scale": spec.scale.value,
        "block": spec.default_block,
        "select": spec.default_select.value,
        "family_size": book.family_size,
        "description": spec.description,
        "dialects": [list(d) for d in book.dialects],
        "provenance": spec.provenance or {},
    }


def save_format_file(path: str | os.PathLike, spec: FormatSpec) -> None:
    """Write ``spec`` as a formatbook file atomically (one dialect per line, so diffs stay readable)."""
    data = format_to_json(spec)
    rows = data.pop("dialects")
    text = json.dumps(data, indent=2)
    body = ",\n".join("    " + json.dumps(r) for r in rows)
    text = text[:-2] + ',\n  "dialects": [\n' + body + "\n  ]\n}\n"
    format_from_json(json.loads(text), path)  # what is written must load back
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def shipped_formats() -> list[FormatSpec]:
    """The formatbook files under ``golden/assets/formatbooks``, sorted by file name."""
    if not SHIPPED_DIR.is_dir():
        return []
    return [load_format_file(p) for p in sorted(SHIPPED_DIR.glob("*.json"))]

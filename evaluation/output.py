"""The report folder's safety rules, checked before any work and applied when the report is moved in.

- ``--out`` must name a directory that does not exist yet, an empty directory, or an earlier report
  (a folder holding both ``metrics.json`` and ``summary.md``). Anything else (a file, a folder
  with other content, the current directory or one of its parents) is refused, never replaced.
- The staging folder is created (with any missing parents) before the evaluation starts, so an
  unwritable place fails at once; a failed run removes the staging folder and the parents it made.
- The finished report replaces the old one by renames only; the old report is deleted last.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from golden.errors import UsageError

#: Files whose presence marks a folder as a report this program wrote (and may replace).
REPORT_MARKERS = ("metrics.json", "summary.md")
#: Written first into a staging folder, so a stale one from a killed run is recognisably ours.
STAGING_MARKER = ".sdialect-staging"


def is_report(folder: Path) -> bool:
    return all((folder / name).is_file() for name in REPORT_MARKERS)


def check_out(out: Path) -> Path:
    """``out`` as an absolute path, or a UsageError naming why it cannot receive a report."""
    if str(out) == "":
        raise UsageError("--out is empty; name the report folder, e.g. build/report.")
    resolved = Path(os.path.abspath(out))
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents or resolved.parent == resolved:
        raise UsageError(
            f"--out {out} is the current directory or one of its parents; name a report folder inside it,"
            " e.g. build/report."
        )
    if resolved.is_symlink():
        raise UsageError(f"--out {out} is a symbolic link; name the report folder itself.")
    if resolved.exists() and not resolved.is_dir():
        raise UsageError(f"--out {out} is an existing file, not a folder; name a report folder instead.")
    if resolved.is_dir() and any(resolved.iterdir()) and not is_report(resolved):
        raise UsageError(
            f"--out {out} is a folder that is not an earlier report (it has no {' and '.join(REPORT_MARKERS)});"
            " refusing to replace it: name a new or empty folder."
        )
    for parent in resolved.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"--out {out} cannot be created: {parent} is a file, not a folder.")
            break
    return resolved


class Staging:
    """The folder a report is written into before it replaces ``out`` (``with Staging(out) as s``).

    Entering creates it (and missing parents; a UsageError if that fails); leaving with an
    exception removes it and the parents it created; ``commit()`` moves it into place."""

    def __init__(self, out: Path) -> None:
        self.out = check_out(out)
        self.path = self.out.with_name(f".{self.out.name}.partial")
        self._made: list[Path] = []

    def __enter__(self) -> Staging:
        if self.path.exists():
            if not (self.path / STAGING_MARKER).is_file():
                raise UsageError(f"{self.path} exists and was not left by this program; remove or rename it.")
            shutil.rmtree(self.path)
        missing = [p for p in reversed(self.path.parents) if not p.exists()]
        try:
            for parent in missing:
                parent.mkdir()
                self._made.append(parent)
            self.path.mkdir()
            (self.path / STAGING_MARKER).write_text("staging folder of sdialect demo/eval; safe to delete\n")
        except OSError as err:
            self._undo()
            raise UsageError(f"--out {self.out} cannot be written: {err.strerror or err}.") from None
        return self

    def _undo(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        for parent in reversed(self._made):
            try:
                parent.rmdir()
            except OSError:
                pass
        self._made.clear()

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None:
            self._undo()

    def commit(self) -> Path:
        """Replace ``out`` by the staging folder (renames; the old report is removed last)."""
        check_out(self.out)  # nothing else appeared there while we worked
        (self.path / STAGING_MARKER).unlink()
        if self.out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.old-", dir=self.out.parent))
            os.replace(self.out, old / self.out.name)
            os.replace(self.path, self.out)
            shutil.rmtree(old)
        else:
            os.replace(self.path, self.out)
        self._made.clear()
        return self.out


__all__ = ["REPORT_MARKERS", "Staging", "check_out", "is_report"]
